package deploy_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// dotEnvExample is .env.example as Compose reads a .env file.
func dotEnvExample(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(nil, []string{filepath.Join(root(t), ".env.example")})
	if err != nil {
		t.Fatalf(".env.example: %v", err)
	}
	return env
}

// loadCompose loads the compose files, as `docker compose -f a -f b`
// would in the repository's root with env as its whole environment (the
// machine's own is left out), every profile enabled, and the loader's
// validation and consistency checks on.
func loadCompose(t *testing.T, env map[string]string, files ...string) *types.Project {
	t.Helper()
	p, err := tryLoadCompose(t, env, files...)
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	return p
}

// tryLoadCompose is loadCompose returning what refused the files.
func tryLoadCompose(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	var paths, kv []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root(t), f))
	}
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(root(t)),
		cli.WithEnv(kv),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// TestProductionNamesThePaymentProcessor: the production compose files
// do not start until .env names the payment processor (the only one
// built in moves no money); named, the write API gets it.
func TestProductionNamesThePaymentProcessor(t *testing.T) {
	env := prodEnv(t)
	delete(env, "PAYMENT_PROCESSOR")
	if _, err := tryLoadCompose(t, env, "docker-compose.yml", "docker-compose.prod.yml"); err == nil ||
		!strings.Contains(err.Error(), "PAYMENT_PROCESSOR") {
		t.Errorf("production without PAYMENT_PROCESSOR: %v, want refused naming it", err)
	}
	env["PAYMENT_PROCESSOR"] = "test"
	p := loadCompose(t, env, "docker-compose.yml", "docker-compose.prod.yml")
	s, err := p.GetService("writeapi")
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Environment["PAYMENT_PROCESSOR"]; v == nil || *v != "test" {
		t.Errorf("writeapi's PAYMENT_PROCESSOR %v, want test as .env names it", v)
	}
}

// prodEnv is .env.example as an operator would change it for production
// (a mail relay), with every secret it carries replaced by a marker, and
// SECRETS_DIR at the example secrets: in production no secret may come
// from .env.
func prodEnv(t *testing.T) map[string]string {
	env := dotEnvExample(t)
	for _, k := range []string{"JWT_SECRET", "DATABASE_URL", "MONGO_URL", "POSTGRES_PASSWORD", "MONGO_ROOT_PASSWORD", "SMTP_PASSWORD", "ADMIN_PASSWORD"} {
		env[k] = "FROM-DOTENV-" + k
	}
	env["SMTP_ADDR"] = "smtp.example.com:587"
	env["SECRETS_DIR"] = filepath.Join(root(t), "deploy", "secrets.example")
	return env
}

// eventshopServices are the services that run the eventshop image, by the
// subcommand each runs.
func eventshopServices(t *testing.T, p *types.Project) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, s := range p.AllServices() {
		if s.Build == nil || s.Build.Context != root(t) {
			continue
		}
		if len(s.Command) == 0 {
			t.Errorf("service %s runs the eventshop image without a subcommand", name)
			continue
		}
		out[name] = s.Command[0]
	}
	if len(out) < 5 {
		t.Fatalf("found only %v running the eventshop image", out)
	}
	return out
}

func environment(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// secretPath is where a service's secret is mounted.
func secretPath(sc types.ServiceSecretConfig) string {
	target := sc.Target
	if target == "" {
		target = sc.Source
	}
	if !strings.HasPrefix(target, "/") {
		target = "/run/secrets/" + target
	}
	return target
}

// resolvedEnv is the service's environment with every NAME_FILE that
// names one of its mounted secrets replaced by NAME and the file's
// contents, as eventshop reads it; one that names no mounted secret
// fails the test.
func resolvedEnv(t *testing.T, p *types.Project, name string) map[string]string {
	t.Helper()
	s := p.Services[name]
	env := environment(s)
	mounted := map[string]string{}
	for _, sc := range s.Secrets {
		if src, ok := p.Secrets[sc.Source]; ok {
			mounted[secretPath(sc)] = src.File
		}
	}
	for k, path := range environment(s) {
		v, ok := strings.CutSuffix(k, "_FILE")
		if !ok {
			continue
		}
		file, ok := mounted[path]
		if !ok {
			t.Errorf("%s: %s=%s is not one of its mounted secrets", name, k, path)
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("%s: %s: %v", name, k, err)
			continue
		}
		env[v] = strings.TrimRight(string(b), "\r\n")
		delete(env, k)
	}
	return env
}

func TestComposeBase(t *testing.T) {
	p := loadCompose(t, dotEnvExample(t), "docker-compose.yml")
	checkCompose(t, p)
	if !slices.Contains(p.ServiceNames(), "create-admin") {
		t.Error("create-admin (profile tools) is not loaded")
	}
	ns := p.Services["notifier"]
	if env := environment(ns); hostOf(env["SMTP_ADDR"]) != "mailpit" {
		t.Errorf("notifier: SMTP_ADDR %q, want Mailpit's", env["SMTP_ADDR"])
	}
}

func TestComposeProd(t *testing.T) {
	p := loadCompose(t, prodEnv(t), "docker-compose.yml", "docker-compose.prod.yml")
	checkCompose(t, p)
	if _, ok := p.Services["mailpit"]; ok {
		t.Error("mailpit runs in production")
	}
	for name, s := range p.Services {
		oneShot := s.Restart == types.RestartPolicyNo
		if !oneShot && s.Restart != types.RestartPolicyAlways {
			t.Errorf("%s: restart %q in production, want always", name, s.Restart)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil ||
			s.Deploy.Resources.Limits.MemoryBytes <= 0 || s.Deploy.Resources.Limits.NanoCPUs <= 0 {
			t.Errorf("%s: no CPU and memory limits in production", name)
		}
		if len(s.Ports) > 0 && name != "nginx" {
			t.Errorf("%s publishes %v in production; only nginx may", name, s.Ports)
		}
		env := environment(s)
		for k, v := range env {
			if strings.Contains(v, "FROM-DOTENV") {
				t.Errorf("%s: %s comes from .env in production, not from a secret file", name, k)
			}
		}
		for _, sc := range s.Secrets {
			if !slices.Contains(slices.Collect(maps.Values(env)), secretPath(sc)) {
				t.Errorf("%s mounts secret %s, which no *_FILE variable of it reads", name, sc.Source)
			}
		}
	}
	for name, pw := range map[string]string{"postgres": "POSTGRES_PASSWORD", "mongo": "MONGO_INITDB_ROOT_PASSWORD"} {
		env := environment(p.Services[name])
		file := env[pw+"_FILE"]
		secret, ok := strings.CutPrefix(file, "/run/secrets/")
		if !ok || !slices.ContainsFunc(p.Services[name].Secrets, func(s types.ServiceSecretConfig) bool { return s.Source == secret }) {
			t.Errorf("%s: %s_FILE %q is not one of its secrets", name, pw, file)
		}
		if src, ok := p.Secrets[secret]; !ok || src.File == "" {
			t.Errorf("secret %s is not read from a file", secret)
		} else if _, err := os.Stat(src.File); err != nil {
			t.Errorf("secret %s: %v", secret, err)
		}
	}
	env := resolvedEnv(t, p, "notifier")
	if env["SMTP_TLS"] != "starttls" {
		t.Errorf("notifier: SMTP_TLS %q in production, want starttls", env["SMTP_TLS"])
	}
	if h := hostOf(env["SMTP_ADDR"]); h == "" || slices.Contains(p.ServiceNames(), h) {
		t.Errorf("notifier: SMTP_ADDR %q in production, want an outside relay", env["SMTP_ADDR"])
	}
}

var composeRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)`)

// TestEnvExampleCoversCompose: every variable the compose files
// interpolate is in .env.example, and .env.example has nothing they do not
// use.
func TestEnvExampleCoversCompose(t *testing.T) {
	example := dotEnvExample(t)
	used := map[string]bool{}
	for _, f := range []string{"docker-compose.yml", "docker-compose.prod.yml"} {
		b, err := os.ReadFile(filepath.Join(root(t), f))
		if err != nil {
			t.Fatal(err)
		}
		// $$ is a literal $ for the container, not interpolation; and a
		// comment is not interpolated.
		text := strings.ReplaceAll(withoutComments(string(b)), "$$", "")
		for _, m := range composeRef.FindAllStringSubmatch(text, -1) {
			used[m[1]+m[2]] = true
		}
	}
	for v := range used {
		if _, ok := example[v]; !ok {
			t.Errorf("the compose files use %s, which .env.example does not list", v)
		}
	}
	for v := range example {
		if !used[v] {
			t.Errorf(".env.example lists %s, which no compose file uses", v)
		}
	}
}

// withoutComments drops YAML comments: from a # at a line's start or
// after blank space to the end of the line.
func withoutComments(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if j := strings.Index(l, "#"); j == 0 || (j > 0 && strings.Contains(" \t", l[j-1:j])) {
			lines[i] = l[:j]
		}
	}
	return strings.Join(lines, "\n")
}
