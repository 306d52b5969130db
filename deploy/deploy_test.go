// Package deploy_test checks the deployment artifacts without a container
// engine or a cluster: the Dockerfile and .dockerignore, docker-compose.yml
// alone and with docker-compose.prod.yml (loaded by the compose-spec
// loader, as `docker compose` loads them), .env.example, every Kubernetes
// manifest of deploy/k8s (decoded strictly into the API types), and the
// nginx gateway of deploy/nginx (`nginx -t` on the rendered
// configuration). What eventshop reads is taken from cmd/eventshop's
// source, so a misspelt or retired variable fails here.
package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// root is the repository's root (the tests run in deploy/).
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", dir, err)
	}
	return dir
}

// runtimeVars are read by the Go runtime, not by eventshop's
// configuration; a deployment may set them.
var runtimeVars = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG"}

// needs is what each subcommand cannot run without, beyond defaults that
// only make sense on a developer's machine (see cmd/eventshop's app.go:
// every mode opens the event store; the APIs check tokens in Redis; the
// projector uses MongoDB; Kafka and SMTP for the
// publisher and the notifier).
var needs = map[string][]string{
	"writeapi":     {"HTTP_ADDR", "DATABASE_URL", "EVENTSTORE_URL", "REDIS_URL", "JWT_SECRET", "PAYMENT_PROCESSOR"},
	"readapi":      {"HTTP_ADDR", "DATABASE_URL", "EVENTSTORE_URL", "REDIS_URL", "JWT_SECRET"},
	"projector":    {"HTTP_ADDR", "DATABASE_URL", "EVENTSTORE_URL", "MONGO_URL", "KAFKA_BROKERS"},
	"notifier":     {"HTTP_ADDR", "DATABASE_URL", "EVENTSTORE_URL", "KAFKA_BROKERS", "SMTP_ADDR"},
	"migrate":      {"DATABASE_URL", "EVENTSTORE_URL"},
	"create-admin": {"DATABASE_URL", "EVENTSTORE_URL", "ADMIN_EMAIL", "ADMIN_PASSWORD"},
}

// apis are the subcommands that serve the API behind the gateway.
var apis = []string{"writeapi", "readapi"}

var (
	sourceOnce sync.Once
	source     eventshop
	sourceErr  error
)

// eventshop is what cmd/eventshop's source says of its configuration.
type eventshop struct {
	names    []string // the environment variables it reads
	commands []string // its subcommands
	files    bool     // any variable NAME may be given as NAME_FILE
}

// eventshopSource parses cmd/eventshop once: the environment variables it
// reads, and its subcommands.
func eventshopSource(t *testing.T) (names, commands []string) {
	t.Helper()
	src := parsed(t)
	return src.names, src.commands
}

func parsed(t *testing.T) eventshop {
	t.Helper()
	sourceOnce.Do(func() {
		source, sourceErr = parseEventshop(filepath.Join(root(t), "cmd", "eventshop"), filepath.Join(root(t), "internal", "platform", "environ"))
	})
	if sourceErr != nil {
		t.Fatal(sourceErr)
	}
	return source
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// plainCall reports whether fun is a plain name (getenv) or a method of
// one (e.Get).
func plainCall(fun ast.Expr) bool {
	if sel, ok := fun.(*ast.SelectorExpr); ok {
		fun = sel.X
	}
	_, plain := fun.(*ast.Ident)
	return plain
}

// parseEventshop reads the non-test Go files of dirs: cmd/eventshop and
// the environment reader it uses. A variable is the first argument, an
// upper-case string literal, of a call of a plain function name or of a
// method of a plain name: getenv("X") and config.go's e.Get("X", …),
// e.Duration, e.Int and their kind. A subcommand is a string literal of a
// case in the function run's switch. The literal "_FILE" anywhere says
// that NAME_FILE works for every NAME (internal/platform/environ's New).
func parseEventshop(dirs ...string) (src eventshop, err error) {
	fset := token.NewFileSet()
	var files []string
	for _, dir := range dirs {
		matches, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return src, err
		}
		files = append(files, matches...)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return src, err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Value == `"_FILE"` {
				src.files = true
			}
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			if !plainCall(call.Fun) {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && envName.MatchString(s) && !slices.Contains(src.names, s) {
					src.names = append(src.names, s)
				}
			}
			return true
		})
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "run" || fn.Recv != nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				cc, ok := n.(*ast.CaseClause)
				if !ok {
					return true
				}
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil {
							src.commands = append(src.commands, s)
						}
					}
				}
				return true
			})
		}
	}
	slices.Sort(src.names)
	return src, nil
}

// TestEventshopSourceParsed guards the parser above: it must find what
// the binary is known to read and run, or every check built on it would
// pass vacuously.
func TestEventshopSourceParsed(t *testing.T) {
	names, commands := eventshopSource(t)
	if !parsed(t).files {
		t.Error("cmd/eventshop takes no NAME_FILE, by this parser; the deployments read secrets from files")
	}
	for _, n := range []string{"HTTP_ADDR", "DATABASE_URL", "EVENTSTORE_URL", "JWT_SECRET", "MONGO_URL", "KAFKA_BROKERS", "SMTP_ADDR", "TRUST_PROXY_HEADERS"} {
		if !slices.Contains(names, n) {
			t.Errorf("cmd/eventshop does not read %s, by this parser (found %v)", n, names)
		}
	}
	for _, mode := range append(slices.Collect(maps.Keys(needs)), "healthcheck") {
		if !slices.Contains(commands, mode) {
			t.Errorf("cmd/eventshop has no subcommand %q, by this parser (found %v)", mode, commands)
		}
		for _, n := range needs[mode] {
			if !slices.Contains(names, n) {
				t.Errorf("needs[%s] names %s, which cmd/eventshop does not read", mode, n)
			}
		}
	}
}

// checkEnvNames fails for every name in env that eventshop does not read
// (directly, or as NAME_FILE), and for a variable given both ways, which
// eventshop refuses.
func checkEnvNames(t *testing.T, where string, env []string) {
	t.Helper()
	src := parsed(t)
	for _, k := range env {
		name, file := strings.CutSuffix(k, "_FILE")
		switch {
		case file && src.files && slices.Contains(src.names, name):
			if slices.Contains(env, name) {
				t.Errorf("%s: both %s and %s are set; eventshop refuses that", where, name, k)
			}
		case slices.Contains(src.names, k), slices.Contains(runtimeVars, k):
		default:
			t.Errorf("%s: %s is not a variable cmd/eventshop reads", where, k)
		}
	}
}

// checkNeeds fails unless env (NAME_FILE variables replaced by the
// contents of their files) has every variable mode needs, each non-empty.
func checkNeeds(t *testing.T, where, mode string, env map[string]string) {
	t.Helper()
	want, ok := needs[mode]
	if !ok {
		t.Errorf("%s: runs %q, which is no deployable subcommand", where, mode)
		return
	}
	for _, k := range want {
		if strings.TrimSpace(env[k]) == "" {
			t.Errorf("%s (%s) lacks %s", where, mode, k)
		}
	}
	if slices.Contains(apis, mode) && env["TRUST_PROXY_HEADERS"] != "true" {
		t.Errorf("%s (%s) serves behind the gateway: TRUST_PROXY_HEADERS is %q, want true (or every client shares nginx's address in the sign-in throttling)", where, mode, env["TRUST_PROXY_HEADERS"])
	}
	if a, ok := env["HTTP_ADDR"]; ok {
		host, _, err := net.SplitHostPort(a)
		if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
			t.Errorf("%s: HTTP_ADDR %q must listen on every interface of the container (:8080)", where, a)
		}
	}
	if s, ok := env["JWT_SECRET"]; ok && len(s) < 32 {
		t.Errorf("%s: JWT_SECRET has %d characters; eventshop refuses fewer than 32", where, len(s))
	}
}

// port is the port of an address ":8080" or "host:8080".
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("address %q: %v", addr, err)
	}
	return p
}
