package deploy_test

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deploy/k8s/gateway-config.yaml from deploy/nginx")

// manifests is every object of deploy/k8s, by kind and name.
type manifests struct {
	files       []string // the manifest files, kustomization.yaml aside
	kust        kustomization
	namespaces  map[string]*corev1.Namespace
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
	jobs        map[string]*batchv1.Job
	ingresses   map[string]*networkingv1.Ingress
}

// kustomization is the part of kustomize's Kustomization used here; it
// is decoded strictly too, so any other field fails the test until added.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// loadK8s decodes every document of every manifest strictly (see
// decodeStrict) into its Kubernetes API type.
func loadK8s(t *testing.T) *manifests {
	t.Helper()
	dir := filepath.Join(root(t), "deploy", "k8s")
	m := &manifests{
		namespaces: map[string]*corev1.Namespace{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, deployments: map[string]*appsv1.Deployment{},
		services: map[string]*corev1.Service{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, jobs: map[string]*batchv1.Job{},
		ingresses: map[string]*networkingv1.Ingress{},
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Base(path)
		if file == "kustomization.yaml" {
			if err := decodeStrict(string(b), &m.kust); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			continue
		}
		m.files = append(m.files, file)
		for i, doc := range docSeparator.Split(string(b), -1) {
			if err := m.add(doc); err != nil {
				t.Errorf("%s, document %d: %v", file, i+1, err)
			}
		}
	}
	return m
}

// add decodes one YAML document by its apiVersion and kind.
func (m *manifests) add(doc string) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return err
	}
	if tm.Kind == "" && strings.TrimSpace(stripYAMLComments(doc)) == "" {
		return nil
	}
	var obj interface{ GetName() string }
	var into func()
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		o := &corev1.Namespace{}
		obj, into = o, func() { m.namespaces[o.Name] = o }
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		obj, into = o, func() { m.configMaps[o.Name] = o }
	case "v1 Secret":
		o := &corev1.Secret{}
		obj, into = o, func() { m.secrets[o.Name] = o }
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		obj, into = o, func() { m.deployments[o.Name] = o }
	case "v1 Service":
		o := &corev1.Service{}
		obj, into = o, func() { m.services[o.Name] = o }
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		obj, into = o, func() { m.hpas[o.Name] = o }
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		obj, into = o, func() { m.pdbs[o.Name] = o }
	case "batch/v1 Job":
		o := &batchv1.Job{}
		obj, into = o, func() { m.jobs[o.Name] = o }
	case "networking.k8s.io/v1 Ingress":
		o := &networkingv1.Ingress{}
		obj, into = o, func() { m.ingresses[o.Name] = o }
	default:
		return fmt.Errorf("apiVersion %q kind %q: not a type these tests know", tm.APIVersion, tm.Kind)
	}
	if err := decodeStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if obj.GetName() == "" {
		return fmt.Errorf("%s without a name", tm.Kind)
	}
	into()
	return nil
}

// decodeStrict decodes a YAML document into v as the API server's strict
// field validation does: duplicate keys, unknown fields and fields in the
// wrong case (which encoding/json would quietly accept) are errors.
func decodeStrict(doc string, v any) error {
	data, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(data, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func stripYAMLComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestK8sKustomization: kustomization.yaml lists every manifest (and
// nothing else), the namespace is declared and no object leaves it, and
// the image it sets is the one the workloads use.
func TestK8sKustomization(t *testing.T) {
	m := loadK8s(t)
	k := m.kust
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	if got, want := slices.Sorted(slices.Values(k.Resources)), m.files; !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v, want every manifest: %v", got, want)
	}
	if _, ok := m.namespaces[k.Namespace]; !ok || k.Namespace == "" {
		t.Errorf("namespace %q is not declared in a manifest", k.Namespace)
	}
	if len(k.Images) != 1 || k.Images[0].Name != "eventshop" || k.Images[0].NewName == "" || k.Images[0].NewTag == "" {
		t.Errorf("kustomization.yaml images %+v, want eventshop's name and tag set", k.Images)
	}
	for _, objs := range []map[string]metav1.Object{
		objects(m.configMaps), objects(m.secrets), objects(m.deployments), objects(m.services),
		objects(m.hpas), objects(m.pdbs), objects(m.jobs), objects(m.ingresses),
	} {
		for name, o := range objs {
			if ns := o.GetNamespace(); ns != "" && ns != k.Namespace {
				t.Errorf("%s is in namespace %s, not %s", name, ns, k.Namespace)
			}
		}
	}
}

func objects[T metav1.Object](m map[string]T) map[string]metav1.Object {
	out := map[string]metav1.Object{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// gatewayConfigFile is deploy/k8s's copy of deploy/nginx, as a ConfigMap.
const gatewayConfigFile = "gateway-config.yaml"

// TestK8sGatewayConfig: the gateway's ConfigMap carries deploy/nginx's
// files byte for byte (go test ./deploy -run TestK8sGatewayConfig -update
// rewrites it), and the gateway's environment has every variable the
// template uses.
func TestK8sGatewayConfig(t *testing.T) {
	src := filepath.Join(root(t), "deploy", "nginx")
	files := map[string]string{}
	for key, path := range map[string]string{"nginx.conf": "nginx.conf", "default.conf.template": "templates/default.conf.template"} {
		b, err := os.ReadFile(filepath.Join(src, path))
		if err != nil {
			t.Fatal(err)
		}
		files[key] = string(b)
	}
	if *update {
		writeGatewayConfig(t, files)
	}
	cm, ok := loadK8s(t).configMaps["eventshop-gateway"]
	if !ok {
		t.Fatalf("no ConfigMap eventshop-gateway in deploy/k8s/%s", gatewayConfigFile)
	}
	for key, want := range files {
		if cm.Data[key] != want {
			t.Errorf("deploy/k8s/%s: %s differs from deploy/nginx; run go test ./deploy -run TestK8sGatewayConfig -update", gatewayConfigFile, key)
		}
	}
	if len(cm.Data) != len(files) {
		t.Errorf("eventshop-gateway has keys %v, want %v", slices.Sorted(maps.Keys(cm.Data)), slices.Sorted(maps.Keys(files)))
	}
	// The nginx image reads the main file and the templates where the
	// Deployment mounts them.
	m := loadK8s(t)
	d := m.deployments["eventshop-gateway"]
	mounted := mountedFiles(t, m, "gateway", d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0])
	for path, key := range map[string]string{"/etc/nginx/nginx.conf": "nginx.conf", "/etc/nginx/templates/default.conf.template": "default.conf.template"} {
		if mounted[path] != files[key] {
			t.Errorf("the gateway does not see deploy/nginx's %s at %s", key, path)
		}
	}
	env := gatewayEnv(t)
	for _, v := range templateVars(t) {
		if env[v] == "" {
			t.Errorf("the gateway container does not set %s, which the template uses", v)
		}
	}
}

// writeGatewayConfig writes the ConfigMap with files as literal blocks.
func writeGatewayConfig(t *testing.T, files map[string]string) {
	var b strings.Builder
	b.WriteString("# GENERATED from deploy/nginx by `go test ./deploy -run TestK8sGatewayConfig -update`:\n" +
		"# edit deploy/nginx/nginx.conf and deploy/nginx/templates/, then run that.\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: eventshop-gateway\n  labels:\n" +
		"    app.kubernetes.io/name: eventshop\n    app.kubernetes.io/component: gateway\n" +
		"    app.kubernetes.io/part-of: eventshop\ndata:\n")
	for _, key := range slices.Sorted(maps.Keys(files)) {
		content := files[key]
		if !strings.HasSuffix(content, "\n") || strings.HasSuffix(content, "\n\n") {
			t.Fatalf("%s must end in exactly one newline to be kept as a YAML block", key)
		}
		b.WriteString("  " + key + ": |\n")
		for _, l := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
			if l == "" {
				b.WriteString("\n")
				continue
			}
			b.WriteString("    " + l + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(root(t), "deploy", "k8s", gatewayConfigFile), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gatewayEnv is the environment of the gateway Deployment's nginx.
func gatewayEnv(t *testing.T) map[string]string {
	t.Helper()
	d, ok := loadK8s(t).deployments["eventshop-gateway"]
	if !ok || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no Deployment eventshop-gateway with one container")
	}
	env := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}
