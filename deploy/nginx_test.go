package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/deploy/nginxtest"
)

// templateVars are the GATEWAY_* variables deploy/nginx's templates use.
func templateVars(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "deploy", "nginx", "templates", "*.template"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates in deploy/nginx/templates: %v", err)
	}
	var vars []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vars = append(vars, nginxtest.TemplateVars(string(b))...)
	}
	return vars
}

// TestNginxConfig runs `nginx -t` on the gateway's configuration rendered
// with the values of each deployment: docker-compose.yml's nginx service
// (with .env.example) and deploy/k8s's gateway container. The upstream
// addresses become 127.0.0.1 (nginx -t resolves them, and the compose and
// Service names exist only there) and the listen address a free port;
// every other value (CORS expression, rates, the trusted network) is the
// deployment's own.
func TestNginxConfig(t *testing.T) {
	if _, err := nginxtest.Binary(); err != nil {
		t.Skip(err)
	}
	deployments := map[string]map[string]string{
		"compose": environment(loadCompose(t, dotEnvExample(t), "docker-compose.yml").Services["nginx"]),
		"k8s":     gatewayEnv(t),
	}
	for name, env := range deployments {
		t.Run(name, func(t *testing.T) {
			env["GATEWAY_LISTEN"] = "127.0.0.1:18080" // nginx -t does not bind
			env["GATEWAY_WRITEAPI"] = "127.0.0.1:18081"
			env["GATEWAY_READAPI"] = "127.0.0.1:18082"
			out, err := nginxtest.Check(t.TempDir(), env)
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
			if !strings.Contains(out, "test is successful") {
				t.Errorf("nginx -t said:\n%s", out)
			}
		})
	}
}

// TestNginxConfigRefusesMissingVariables: a deployment that lacks one of
// the template's variables fails here, not at the nginx image's start.
func TestNginxConfigRefusesMissingVariables(t *testing.T) {
	vars := templateVars(t)
	if len(vars) < 5 {
		t.Fatalf("the templates use only %v", vars)
	}
	env := map[string]string{}
	for _, v := range vars[1:] {
		env[v] = "x"
	}
	if _, err := nginxtest.Install(t.TempDir(), env); err == nil || !strings.Contains(err.Error(), vars[0]) {
		t.Errorf("rendering without %s: %v, want an error naming it", vars[0], err)
	}
}

// TestNginxConfPaths: nginx.conf names only the image's paths, which the
// tests can map (and a read-only container can provide).
func TestNginxConfPaths(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nginxtest.CheckPaths(string(b)); err != nil {
		t.Error(err)
	}
	if err := nginxtest.CheckPaths(string(b) + "\ninclude /usr/share/nginx/x.conf;\n"); err == nil {
		t.Error("CheckPaths accepts /usr/share/nginx")
	}
	for _, want := range []string{"server_tokens off;", "client_max_body_size 1m;", "escape=json", "$http_x_correlation_id", "$sent_http_x_correlation_id", "$request_time", "$upstream_addr", "include /etc/nginx/conf.d/*.conf;"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
}
