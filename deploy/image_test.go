package deploy_test

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ op, args string }

func dockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		cur += strings.TrimSpace(l)
		if strings.HasSuffix(cur, `\`) {
			cur = strings.TrimSuffix(cur, `\`) + " "
			continue
		}
		if op, args, ok := strings.Cut(cur, " "); ok {
			out = append(out, instruction{strings.ToUpper(op), strings.TrimSpace(args)})
		}
		cur = ""
	}
	return out
}

// TestDockerfile: a builder on go.mod's Go release with cache mounts, a
// static, trimmed and stripped build of cmd/eventshop, and a distroless
// non-root runtime that listens on the port it exposes and runs a real
// subcommand by default.
func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	find := func(op string) []string {
		var args []string
		for _, i := range ins {
			if i.op == op {
				args = append(args, i.args)
			}
		}
		return args
	}
	gomod, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil || !slices.Contains(find("ARG"), "GO_VERSION="+string(goVersion[1])) {
		t.Errorf("ARG GO_VERSION is not go.mod's Go release %s", goVersion)
	}
	froms := find("FROM")
	if len(froms) != 2 || !strings.Contains(froms[0], "golang:${GO_VERSION}") || !strings.HasSuffix(froms[0], " AS build") {
		t.Errorf("FROM %v: want a golang:${GO_VERSION} builder stage named build, then the runtime", froms)
	}
	if len(froms) == 0 || froms[len(froms)-1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("the runtime stage is %v, want distroless static nonroot", froms)
	}
	var build string
	for _, r := range find("RUN") {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	for _, want := range []string{"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build", "CGO_ENABLED=0", "-trimpath", "-ldflags='-s -w'", "-o /out/eventshop ./cmd/eventshop"} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build step lacks %q: %s", want, build)
		}
	}
	if !slices.Contains(find("COPY"), "--from=build /out/eventshop /eventshop") {
		t.Errorf("COPY %v: the runtime does not take the built binary", find("COPY"))
	}
	if users := find("USER"); len(users) == 0 || !strings.HasPrefix(users[len(users)-1], "nonroot") {
		t.Errorf("USER %v, want nonroot", users)
	}
	if !slices.Contains(find("EXPOSE"), "8080") || !strings.Contains(strings.Join(find("ENV"), " "), "HTTP_ADDR=:8080") {
		t.Errorf("EXPOSE %v and ENV %v: want port 8080 exposed and listened on (HTTP_ADDR=:8080)", find("EXPOSE"), find("ENV"))
	}
	if ep := find("ENTRYPOINT"); !slices.Equal(ep, []string{`["/eventshop"]`}) {
		t.Errorf(`ENTRYPOINT %v, want ["/eventshop"]`, ep)
	}
	_, commands := eventshopSource(t)
	if hc := find("HEALTHCHECK"); len(hc) != 1 || !strings.HasSuffix(hc[0], `CMD ["/eventshop", "healthcheck"]`) || !slices.Contains(commands, "healthcheck") {
		t.Errorf(`HEALTHCHECK %v, want CMD ["/eventshop", "healthcheck"]`, hc)
	}
	var cmd []string
	if c := find("CMD"); len(c) != 1 || json.Unmarshal([]byte(c[0]), &cmd) != nil || len(cmd) == 0 || !slices.Contains(commands, cmd[0]) {
		t.Errorf("CMD %v: want the exec form of a subcommand (%v)", find("CMD"), commands)
	}
}

// dockerignored reports whether .dockerignore's patterns leave rel (a
// slash-separated path below the context) out of the build context: as
// Docker does, a pattern matches the path or a directory above it, a
// leading **/ matches at any depth, ! takes a path back in, and the last
// matching pattern decides.
func dockerignored(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	out := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		rest, anyDepth := strings.CutPrefix(p, "**/")
		for end := 1; end <= len(parts); end++ {
			for start := 0; start < end && (start == 0 || anyDepth); start++ {
				if ok, _ := filepath.Match(rest, strings.Join(parts[start:end], "/")); ok {
					out = !neg
				}
			}
		}
	}
	return out
}

// TestDockerignore: the build context keeps every file `go build
// ./cmd/eventshop` reads (Go and embedded files of the module's packages,
// go.mod, go.sum) and leaves out the repository, local data and secrets.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, out := range []string{".git/config", ".env", "secrets/eventshop.env", ".data/kafka/x", "bin/eventshop", "eventshop"} {
		if !dockerignored(patterns, out) {
			t.Errorf(".dockerignore lets %s into the build context", out)
		}
	}
	list := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./cmd/eventshop")
	list.Dir = root(t)
	listed, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	inputs := []string{"go.mod", "go.sum"}
	for _, f := range strings.Fields(string(listed)) {
		rel, err := filepath.Rel(root(t), f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, filepath.ToSlash(rel))
	}
	if len(inputs) < 20 {
		t.Fatalf("go list found only %v", inputs)
	}
	for _, in := range inputs {
		if dockerignored(patterns, in) {
			t.Errorf(".dockerignore leaves out %s, which the build reads", in)
		}
	}
}

// TestStaticBuild builds cmd/eventshop as the Dockerfile does and checks
// the result runs on distroless/static: no dynamic loader, no shared
// libraries.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "eventshop")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/eventshop")
	build.Dir = root(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%s)", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	if out, err := exec.Command(bin, "help").Output(); err != nil || !strings.Contains(string(out), "Usage: eventshop") {
		t.Errorf("eventshop help: %v\n%s", err, out)
	}
}
