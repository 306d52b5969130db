package deploy_test

import (
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/eventshop/eventshop/deploy/nginxtest"
)

// checkCompose holds for the development and the production project.
func checkCompose(t *testing.T, p *types.Project) {
	t.Helper()
	for name, s := range p.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s has neither image nor build", name)
		}
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != types.RestartPolicyNo {
					t.Errorf("%s waits for %s to complete, which restarts (%q)", name, dep, target.Restart)
				}
			case types.ServiceConditionStarted:
			default:
				t.Errorf("%s depends on %s with condition %q", name, dep, d.Condition)
			}
		}
		for _, port := range s.Ports {
			if port.Target == 0 || port.Published == "" {
				t.Errorf("%s: port %+v does not resolve to a published and a container port", name, port)
			}
			if _, err := strconv.Atoi(port.Published); err != nil {
				t.Errorf("%s: published port %q is not a number", name, port.Published)
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume {
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s mounts volume %s, which is not declared", name, v.Source)
				}
			}
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s binds %s: %v", name, v.Source, err)
				}
			}
		}
	}
	published := map[string]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if other, dup := published[port.Published]; dup {
				t.Errorf("%s and %s both publish port %s", name, other, port.Published)
			}
			published[port.Published] = name
		}
	}
	services := eventshopServices(t, p)
	for name, mode := range services {
		s := p.Services[name]
		checkEnvNames(t, "compose service "+name, slices.Sorted(maps.Keys(environment(s))))
		env := resolvedEnv(t, p, name)
		checkNeeds(t, "compose service "+name, mode, env)
		checkHosts(t, p, name, env)
		if s.Restart != types.RestartPolicyNo {
			checkComposeHealth(t, name, s)
		} else if s.HealthCheck == nil || !s.HealthCheck.Disable {
			t.Errorf("%s runs once: it must turn off the image's health check, which asks a server it does not run", name)
		}
		if mode != "migrate" {
			if d, ok := s.DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s does not wait for migrate to complete successfully", name)
			}
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want a read-only root file system and every capability dropped", name)
		}
	}
	if r := p.Services["readapi"].Deploy; r == nil || r.Replicas == nil || *r.Replicas != 2 {
		t.Errorf("readapi: deploy.replicas is not 2")
	}
	checkComposeGateway(t, p, services)
}

// checkComposeHealth: a long-running eventshop service is healthy when
// the binary's healthcheck subcommand says so (the image has no shell).
func checkComposeHealth(t *testing.T, name string, s types.ServiceConfig) {
	t.Helper()
	_, commands := eventshopSource(t)
	h := s.HealthCheck
	if h == nil || h.Disable || len(h.Test) < 3 || h.Test[0] != "CMD" || h.Test[1] != "/eventshop" || !slices.Contains(commands, h.Test[2]) || h.Test[2] != "healthcheck" {
		t.Errorf("%s: health check %v, want [CMD /eventshop healthcheck]", name, healthTest(h))
	}
}

// checkHosts fails for a server address in env whose host is no service of
// p (SMTP_ADDR may name an outside relay), or whose port the service does
// not listen on by its image's default.
func checkHosts(t *testing.T, p *types.Project, name string, env map[string]string) {
	t.Helper()
	defaults := map[string]string{"DATABASE_URL": "5432", "EVENTSTORE_URL": "2113", "MONGO_URL": "27017", "REDIS_URL": "6379", "KAFKA_BROKERS": "9092"}
	for k, wantPort := range defaults {
		v, ok := env[k]
		if !ok {
			continue
		}
		for _, addr := range strings.Split(v, ",") {
			h, prt := hostOf(addr), portOf(addr)
			if _, ok := p.Services[h]; !ok {
				t.Errorf("%s: %s names host %q, which is not a service", name, k, h)
			}
			if prt != wantPort {
				t.Errorf("%s: %s names port %q, want %s", name, k, prt, wantPort)
			}
		}
	}
}

// hostOf and portOf read a URL (scheme://user@host:port/...) or host:port.
func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(hostPort(addr))
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(hostPort(addr))
	return p
}

func hostPort(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		return u.Host
	}
	return addr
}

// checkComposeGateway: nginx has every variable its template takes, and
// sends to the API services on the port they listen on.
func checkComposeGateway(t *testing.T, p *types.Project, services map[string]string) {
	t.Helper()
	ng, ok := p.Services["nginx"]
	if !ok {
		t.Fatal("no nginx service")
	}
	env := environment(ng)
	if env["NGINX_ENVSUBST_FILTER"] != nginxtest.Filter.String() {
		t.Errorf("nginx: NGINX_ENVSUBST_FILTER %q, want %q", env["NGINX_ENVSUBST_FILTER"], nginxtest.Filter)
	}
	for _, v := range templateVars(t) {
		if _, ok := env[v]; !ok {
			t.Errorf("nginx: the template uses %s, which the service does not set", v)
		}
	}
	for v, api := range map[string]string{"GATEWAY_WRITEAPI": "writeapi", "GATEWAY_READAPI": "readapi"} {
		if services[hostOf(env[v])] != api {
			t.Errorf("nginx: %s=%q is not the %s service", v, env[v], api)
			continue
		}
		if got, want := portOf(env[v]), port(t, environment(p.Services[hostOf(env[v])])["HTTP_ADDR"]); got != want {
			t.Errorf("nginx: %s port %s, but %s listens on %s", v, got, api, want)
		}
	}
	if !slices.ContainsFunc(ng.Ports, func(pc types.ServicePortConfig) bool { return strconv.Itoa(int(pc.Target)) == env["GATEWAY_LISTEN"] }) {
		t.Errorf("nginx publishes %v, not its GATEWAY_LISTEN %s", ng.Ports, env["GATEWAY_LISTEN"])
	}
}

func healthTest(h *types.HealthCheckConfig) []string {
	if h == nil {
		return nil
	}
	return h.Test
}
