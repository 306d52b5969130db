package nginxtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/syncbuf"
)

// Gateway is nginx running in the foreground on deploy/nginx's
// configuration.
type Gateway struct {
	// URL is http://Addr.
	URL  string
	Addr string

	t      testing.TB
	stdout *syncbuf.Buffer // the access log
	stderr *syncbuf.Buffer // the error log
}

// Start installs the configuration, rendered with env, into a temporary
// directory of t and runs nginx on it until t ends. Unless env sets
// GATEWAY_LISTEN, nginx listens on a free port of 127.0.0.1. Start returns
// once nginx answers its /healthz, and fails t if it does not within 10 s;
// it skips t when nginx is not installed.
func Start(t testing.TB, env map[string]string) *Gateway {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skip(err)
	}
	fixed := env["GATEWAY_LISTEN"] != ""
	for attempt := 1; ; attempt++ {
		e := make(map[string]string, len(env)+1)
		for k, v := range env {
			e[k] = v
		}
		if !fixed {
			e["GATEWAY_LISTEN"] = freeAddr(t)
		}
		g, err := start(t, bin, e)
		if err == nil {
			return g
		}
		// Another process may have taken the free port in between.
		if fixed || attempt == 3 || !strings.Contains(err.Error(), "in use") {
			t.Fatal(err)
		}
	}
}

func start(t testing.TB, bin string, env map[string]string) (*Gateway, error) {
	dir := t.TempDir()
	conf, err := Install(dir, env)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Addr: env["GATEWAY_LISTEN"], t: t, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	g.URL = "http://" + g.Addr
	cmd := exec.Command(bin, args(dir, conf, "-g", "daemon off;")...)
	cmd.Stdout, cmd.Stderr = g.stdout, g.stderr
	// Its own process group, so that the workers go with the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		// QUIT is nginx's graceful shutdown; the group is killed if it
		// has not ended in 5 s.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for !answers(client, g.URL+"/healthz") {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("nginx exited before answering (%v): %s", err, g.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("nginx did not answer /healthz on %s within 10s: %s", g.Addr, g.stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("nginx error log:\n%s", g.stderr.String())
		}
	})
	return g, nil
}

// answers reports whether url answers 200.
func answers(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freeAddr is 127.0.0.1 and a port nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// AccessLog is every access log line so far, decoded; a line that is not
// a JSON object fails the test.
func (g *Gateway) AccessLog() []map[string]any {
	g.t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(g.stdout.String()))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			g.t.Fatalf("access log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// WaitLog returns the first access log line that match accepts, waiting
// up to within for it, and fails the test when none comes.
func (g *Gateway) WaitLog(within time.Duration, match func(line map[string]any) bool) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, l := range g.AccessLog() {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no matching access log line within %s; the log:\n%s", within, g.stdout.String())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// ErrorLog is what nginx wrote to stderr so far.
func (g *Gateway) ErrorLog() string { return g.stderr.String() }
