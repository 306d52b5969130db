// Package nginxtest runs the gateway configuration of deploy/nginx in
// tests, on the machine's nginx: it renders the templates as the official
// nginx image does at start (envsubst of the GATEWAY_* variables into
// conf.d/), maps the image's paths onto a directory of the test's own, and
// checks the result with `nginx -t` or runs nginx in the foreground.
//
// The tests of deploy/ check the configuration this way; the end-to-end
// tests of cmd/eventshop put it in front of a running eventshop.
package nginxtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Filter is what a variable's name must match for the nginx image to
// substitute it (NGINX_ENVSUBST_FILTER in docker-compose.yml and
// deploy/k8s/gateway.yaml): every other $name is left to nginx.
var Filter = regexp.MustCompile(`^GATEWAY_`)

// ErrNoNginx is returned by Binary when nginx is not installed;
// scripts/services.sh installs it on Debian.
var ErrNoNginx = errors.New("nginxtest: nginx is not installed (scripts/services.sh installs it)")

// Binary is the path of the nginx executable, or ErrNoNginx.
func Binary() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	// Debian installs it in /usr/sbin, which a user's PATH may lack.
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", ErrNoNginx
}

// Source is deploy/nginx, found from the working directory up to the
// module's root (tests run in their package's directory).
func Source() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "deploy", "nginx"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("nginxtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// TemplateVars returns the names of the variables template uses that the
// image substitutes (those matching Filter), sorted, each once.
func TemplateVars(template string) []string {
	var names []string
	for _, m := range varRef.FindAllStringSubmatch(stripComments(template), -1) {
		name := m[1] + m[2]
		if Filter.MatchString(name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Render substitutes env's values for ${NAME} and $NAME in template, for
// the names that match Filter, as the image's envsubst does; it fails when
// the template uses such a name that env lacks (the image would leave it
// in, and nginx would refuse it as an unknown variable).
func Render(template string, env map[string]string) (string, error) {
	var missing []string
	for _, name := range TemplateVars(template) {
		if _, ok := env[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("nginxtest: no value for %s", strings.Join(missing, ", "))
	}
	return varRef.ReplaceAllStringFunc(template, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		name := m[1] + m[2]
		if v, ok := env[name]; ok && Filter.MatchString(name) {
			return v
		}
		return ref
	}), nil
}

// imagePaths are the absolute paths nginx.conf may name, and what they
// become under the test's directory; anything else is refused, so the
// configuration cannot depend on a path only one machine has.
var imagePaths = []struct{ image, test string }{
	{"/etc/nginx/", ""},
	{"/tmp/", "tmp/"},
	{"/dev/stdout", ""},
	{"/dev/stderr", ""},
}

var absPath = regexp.MustCompile(`(?:^|[\s'"])(/[^\s;'"]*)`)

// CheckPaths fails when conf (nginx.conf) names an absolute path outside
// the image's /etc/nginx/ and /tmp/ (and /dev/stdout, /dev/stderr).
func CheckPaths(conf string) error {
	for _, m := range absPath.FindAllStringSubmatch(stripComments(conf), -1) {
		ok := false
		for _, p := range imagePaths {
			ok = ok || strings.HasPrefix(m[1], p.image)
		}
		if !ok {
			return fmt.Errorf("nginxtest: nginx.conf names %s, outside the image's /etc/nginx/ and /tmp/", m[1])
		}
	}
	return nil
}

// Install writes deploy/nginx's configuration into dir as the image would
// see it: nginx.conf with /etc/nginx/ and /tmp/ mapped onto dir and
// dir/tmp/, and every templates/X.template rendered with env into
// dir/conf.d/X. It returns the path of the main file.
func Install(dir string, env map[string]string) (string, error) {
	src, err := Source()
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(src, "nginx.conf"))
	if err != nil {
		return "", err
	}
	conf := string(raw)
	if err := CheckPaths(conf); err != nil {
		return "", err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	// One pass: dir itself may lie under /tmp/.
	conf = strings.NewReplacer(
		imagePaths[0].image, filepath.Join(dir, imagePaths[0].test)+"/",
		imagePaths[1].image, filepath.Join(dir, imagePaths[1].test)+"/",
	).Replace(conf)
	for _, sub := range []string{"conf.d", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	// nginx's workers (another user when the master runs as root) read
	// and write below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	templates, err := filepath.Glob(filepath.Join(src, "templates", "*.template"))
	if err != nil {
		return "", err
	}
	if len(templates) == 0 {
		return "", fmt.Errorf("nginxtest: no templates in %s", filepath.Join(src, "templates"))
	}
	for _, tpl := range templates {
		b, err := os.ReadFile(tpl)
		if err != nil {
			return "", err
		}
		out, err := Render(string(b), env)
		if err != nil {
			return "", fmt.Errorf("%s: %w", filepath.Base(tpl), err)
		}
		name := strings.TrimSuffix(filepath.Base(tpl), ".template")
		if err := os.WriteFile(filepath.Join(dir, "conf.d", name), []byte(out), 0o644); err != nil {
			return "", err
		}
	}
	main := filepath.Join(dir, "nginx.conf")
	return main, os.WriteFile(main, []byte(conf), 0o644)
}

// Check installs the configuration into dir with env and runs nginx -t on
// it, returning nginx's output with its error.
func Check(dir string, env map[string]string) (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	conf, err := Install(dir, env)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(bin, args(dir, conf, "-t")...).CombinedOutput()
	return string(out), err
}

// args are nginx's arguments for the configuration conf installed in dir.
func args(dir, conf string, extra ...string) []string {
	return append([]string{"-p", dir + "/", "-c", conf, "-e", "stderr"}, extra...)
}

// stripComments drops nginx comments: from a # at a line's start or after
// blank space, to the end of the line.
func stripComments(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		for j := 0; j < len(l); j++ {
			if l[j] == '#' && (j == 0 || l[j-1] == ' ' || l[j-1] == '\t') {
				lines[i] = l[:j]
				break
			}
		}
	}
	return strings.Join(lines, "\n")
}
