package deploy_test

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestK8sWorkloads: every eventshop pod runs a known subcommand with what
// it needs, reads only variables eventshop knows (from keys that exist),
// is probed on /readyz and /healthz, has resources set, and runs as a
// non-root user on a read-only root file system without capabilities.
func TestK8sWorkloads(t *testing.T) {
	m := loadK8s(t)
	type pod struct {
		where string
		spec  corev1.PodSpec
		long  bool // serves until stopped (probes), unlike a Job
	}
	var pods []pod
	for name, d := range m.deployments {
		pods = append(pods, pod{"Deployment " + name, d.Spec.Template.Spec, true})
		if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || len(d.Spec.Selector.MatchExpressions) > 0 {
			t.Errorf("Deployment %s: selector %v does not select its pods %v", name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
	}
	for name, j := range m.jobs {
		pods = append(pods, pod{"Job " + name, j.Spec.Template.Spec, false})
	}
	modes := map[string]bool{}
	for _, p := range pods {
		checkPodSecurity(t, p.where, p.spec)
		for _, c := range p.spec.Containers {
			where := p.where + " container " + c.Name
			checkContainer(t, where, c, p.long)
			if c.Image != "eventshop" {
				continue
			}
			if len(c.Args) == 0 {
				t.Errorf("%s runs no subcommand", where)
				continue
			}
			modes[c.Args[0]] = true
			env := containerEnv(t, m, where, p.spec, c)
			checkNeeds(t, where, c.Args[0], env)
			if !p.long {
				continue
			}
			checkProbe(t, where+" readiness", c, c.ReadinessProbe, "/readyz")
			checkProbe(t, where+" liveness", c, c.LivenessProbe, "/healthz")
			if httpPort := port(t, env["HTTP_ADDR"]); !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return httpPort == itoa(cp.ContainerPort) }) {
				t.Errorf("%s listens on HTTP_ADDR %s, which is not a container port", where, env["HTTP_ADDR"])
			}
		}
	}
	for _, mode := range []string{"writeapi", "readapi", "projector", "notifier", "migrate"} {
		if !modes[mode] {
			t.Errorf("no workload runs eventshop %s", mode)
		}
	}
	for name, replicas := range map[string]int32{"eventshop-projector": 2, "eventshop-notifier": 2} {
		if d, ok := m.deployments[name]; !ok || d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
			t.Errorf("Deployment %s: want %d replicas", name, replicas)
		}
	}
	for name, cm := range m.configMaps {
		if name == "eventshop-config" {
			checkEnvNames(t, "ConfigMap "+name, slices.Sorted(maps.Keys(cm.Data)))
		}
	}
	for name, s := range m.secrets {
		checkEnvNames(t, "Secret "+name, slices.Sorted(maps.Keys(s.StringData)))
		for k, v := range s.StringData {
			if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") {
				if !strings.Contains(v, "CHANGE-ME") {
					t.Errorf("Secret %s: %s is not marked as a placeholder (CHANGE-ME)", name, k)
				}
			}
		}
	}
}

func checkPodSecurity(t *testing.T, where string, spec corev1.PodSpec) {
	t.Helper()
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root user (runAsNonRoot, runAsUser)", where)
	}
	if sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: want seccompProfile RuntimeDefault (the namespace enforces the restricted profile)", where)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a service account token it never uses", where)
	}
}

func checkContainer(t *testing.T, where string, c corev1.Container, long bool) {
	t.Helper()
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
			t.Errorf("%s: no %s request", where, r)
		}
		if q, ok := c.Resources.Limits[r]; !ok || q.IsZero() {
			t.Errorf("%s: no %s limit", where, r)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", where)
	}
	if long && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
		t.Errorf("%s: no readiness or liveness probe", where)
	}
}

// checkProbe: an HTTP GET of path on one of the container's ports.
func checkProbe(t *testing.T, where string, c corev1.Container, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP probe", where)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: probes %s, want %s", where, p.HTTPGet.Path, path)
	}
	if !hasPort(c, p.HTTPGet.Port) {
		t.Errorf("%s: probes port %s, which the container does not declare", where, p.HTTPGet.Port.String())
	}
}

func hasPort(c corev1.Container, p intstr.IntOrString) bool {
	return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
		return (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal)
	})
}

// TestK8sWiring: Services, autoscalers, disruption budgets, the Ingress
// and the gateway's upstreams all reach what they name.
func TestK8sWiring(t *testing.T) {
	m := loadK8s(t)
	selected := func(sel map[string]string) []string {
		var names []string
		for name, d := range m.deployments {
			if len(sel) > 0 && subset(sel, d.Spec.Template.Labels) {
				names = append(names, name)
			}
		}
		return names
	}
	for name, s := range m.services {
		ds := selected(s.Spec.Selector)
		if len(ds) != 1 {
			t.Errorf("Service %s selects Deployments %v, want exactly one", name, ds)
			continue
		}
		c := m.deployments[ds[0]].Spec.Template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			if !hasPort(c, p.TargetPort) {
				t.Errorf("Service %s: targetPort %s is not a port of %s", name, p.TargetPort.String(), ds[0])
			}
		}
	}
	for name, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		d, ok := m.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !ok {
			t.Errorf("HorizontalPodAutoscaler %s targets %s %s, which does not exist", name, ref.Kind, ref.Name)
			continue
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas <= *h.Spec.MinReplicas || len(h.Spec.Metrics) == 0 {
			t.Errorf("HorizontalPodAutoscaler %s: want at least 2 replicas, a higher maximum, and a metric", name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
				t.Errorf("%s is scaled by CPU utilization but %s requests no CPU", name, c.Name)
			}
		}
	}
	for _, api := range []string{"eventshop-writeapi", "eventshop-readapi"} {
		if _, ok := m.hpas[api]; !ok {
			t.Errorf("no HorizontalPodAutoscaler for %s", api)
		}
	}
	for name, p := range m.pdbs {
		if p.Spec.Selector == nil {
			t.Errorf("PodDisruptionBudget %s has no selector", name)
			continue
		}
		ds := selected(p.Spec.Selector.MatchLabels)
		if len(ds) != 1 {
			t.Errorf("PodDisruptionBudget %s selects Deployments %v, want exactly one", name, ds)
			continue
		}
		d := m.deployments[ds[0]]
		if p.Spec.MinAvailable == nil || d.Spec.Replicas == nil || p.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
			t.Errorf("PodDisruptionBudget %s: minAvailable must stay below %s's replicas, or no node can be drained", name, ds[0])
		}
	}
	for name, ing := range m.ingresses {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				s, ok := m.services[b.Name]
				if !ok || !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == b.Port.Name || sp.Port == b.Port.Number }) {
					t.Errorf("Ingress %s: backend %s port %v does not exist", name, b.Name, b.Port)
				}
			}
		}
	}
	gw := gatewayEnv(t)
	for v, want := range map[string]string{"GATEWAY_WRITEAPI": "writeapi", "GATEWAY_READAPI": "readapi"} {
		s, ok := m.services[hostOf(gw[v])]
		if !ok {
			t.Errorf("gateway: %s=%q is not a Service", v, gw[v])
			continue
		}
		ds := selected(s.Spec.Selector)
		if len(ds) != 1 || m.deployments[ds[0]].Spec.Template.Spec.Containers[0].Args[0] != want {
			t.Errorf("gateway: %s=%q does not reach eventshop %s", v, gw[v], want)
		}
		if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return itoa(sp.Port) == portOf(gw[v]) }) {
			t.Errorf("gateway: %s=%q: Service %s has no such port", v, gw[v], s.Name)
		}
	}
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
