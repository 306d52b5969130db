package load

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/eventshop/eventshop/internal/testsupport/syncbuf"
)

// buildEventshop builds the real binary for the harness to start.
func buildEventshop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eventshop")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/eventshop/eventshop/cmd/eventshop")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestHarnessAgainstEventshop runs the harness as `make load` does, for
// two seconds at a low rate: it starts a real eventshop of its own, seeds
// the catalogue through the API, signs shoppers in, plays the
// whole mix without an error, writes the report and stops the server. A
// second run, against that system started by hand, finds the catalogue
// seeded and the shoppers registered and reports the server's CPU.
func TestHarnessAgainstEventshop(t *testing.T) {
	_, prefix := redistest.New(t)
	dir := t.TempDir()
	srvCfg := ServerConfig{
		Binary:      buildEventshop(t),
		DatabaseURL: pgtest.NewDatabase(t),
		DataDir:     filepath.Join(dir, "data"),
		RedisPrefix: prefix,
		LogPath:     filepath.Join(dir, "eventshop.log"),
		Env:         []string{"REDIS_URL=" + redistest.URL()},
	}
	log := &syncbuf.Buffer{}
	cfg := Config{Server: srvCfg, Rate: 20, Duration: 2 * time.Second, Products: 100, Shoppers: 10,
		SeedWorkers: 4, ViewIDs: 1000, MaxInFlight: 100, Timeout: 10 * time.Second, SetupTimeout: time.Minute,
		AdminEmail: "admin@example.com", AdminPassword: "Admin123!", Goals: DefaultGoals,
		Out: filepath.Join(dir, "report"), Log: log}
	t.Cleanup(func() {
		t.Logf("harness output:\n%s", log.String())
		if t.Failed() {
			if b, err := os.ReadFile(srvCfg.LogPath); err == nil {
				t.Logf("eventshop log (last 8 KiB):\n%s", b[max(len(b)-8<<10, 0):])
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkResult(t, res, 40)
	if res.Catalogue < 100 || res.Shoppers != 10 {
		t.Errorf("catalogue %d, shoppers %d; want ≥ 100 and 10", res.Catalogue, res.Shoppers)
	}
	if resp, err := http.Get(res.Target + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("the started eventshop still answers at %s after the run", res.Target)
	}
	for _, f := range []string{"summary.txt", "summary.json", "report.html", "latency.svg", "throughput.svg", "percentiles.svg"} {
		if fi, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("report file %s: %v", f, err)
		}
	}
	sum, _ := os.ReadFile(filepath.Join(cfg.Out, "summary.txt"))
	if !strings.Contains(string(sum), "PASS  0 errors") {
		t.Errorf("summary.txt does not pass the error goal:\n%s", sum)
	}
	checkMail(t, res, string(sum))

	// The same system again, started by hand and given as the target.
	srvCfg.LogPath = filepath.Join(dir, "eventshop-2.log")
	srv, err := StartServer(ctx, srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	log2 := &syncbuf.Buffer{}
	cfg.Log = log2
	cfg.Target, cfg.ServerPID, cfg.Duration = srv.URL, srv.PID(), time.Second
	res, err = Run(ctx, cfg)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	checkResult(t, res, 20)
	t.Logf("second run's output:\n%s", log2.String())
	if out := log2.String(); !strings.Contains(out, "no seeding") {
		t.Errorf("the second run seeded again:\n%s", out)
	}
	if res.CPU.Server <= 0 {
		t.Errorf("server CPU %v, want it measured from /proc", res.CPU.Server)
	}
	// Every read model's lag is reported, and each caught up after the
	// load: a light load leaves nothing behind for long.
	seen := map[string]bool{}
	for _, l := range res.Lag {
		seen[l.Name] = true
		if l.CaughtUp < 0 || l.Max < 0 {
			t.Errorf("projection %s: lag %+v; want it measured and caught up", l.Name, l)
		}
	}
	for _, name := range []string{"orders.v1", "products.v1", "catalog.v1"} {
		if !seen[name] {
			t.Errorf("no lag reported for %s: %+v", name, res.Lag)
		}
	}
	if !strings.Contains(log2.String(), "projection lag in events") {
		t.Errorf("the summary does not report the projections' lag:\n%s", log2.String())
	}
	// A light load: the server refused nothing, and says so.
	if !res.RefusalsMeasured || len(res.Refusals) != 0 || !strings.Contains(log2.String(), "admission control refused nothing") {
		t.Errorf("refusals measured %v: %+v, want none reported", res.RefusalsMeasured, res.Refusals)
	}
	checkMail(t, res, log2.String())

	// The write-heavy mix: every arrival an order, paid and read back,
	// and its mails, counted apart from those of the runs before.
	log3 := &syncbuf.Buffer{}
	cfg.Log, cfg.Mix = log3, MixOrders
	if res, err = Run(ctx, cfg); err != nil {
		t.Fatalf("orders run: %v", err)
	}
	t.Logf("orders run's output:\n%s", log3.String())
	p := res.Phases[0]
	if res.Mix != MixOrders || p.Tally.Started != 20 || len(p.Routes) != 4 || !p.Pass {
		t.Errorf("orders run: mix %q, %d arrivals, routes %+v, pass %v; want 20 flows of place, pay and read back passing every goal",
			res.Mix, p.Tally.Started, p.Routes, p.Pass)
	}
	if res.Mail.Expected != 40 {
		t.Errorf("orders run: %d mails expected, want 40 (20 confirmations, 20 receipts)", res.Mail.Expected)
	}
	checkMail(t, res, log3.String())
}

// checkMail wants the run's mails counted, all listed as sent within the
// goal, and the summary saying so.
func checkMail(t *testing.T, res *Result, summary string) {
	t.Helper()
	if m := res.Mail; m.Expected == 0 || !m.Done || m.Sent != m.Expected || m.AllSent > DefaultGoals.MailWithin {
		t.Errorf("mail check %+v, want every mail the window caused sent within %s", m, DefaultGoals.MailWithin)
	}
	if !strings.Contains(summary, "PASS  every mail sent") || !strings.Contains(summary, "confirmations and receipts the window caused") {
		t.Errorf("the summary does not report the mails:\n%s", summary)
	}
}

// checkResult wants one phase of n arrivals, all started, every route
// answered without an error.
func checkResult(t *testing.T, res *Result, n int64) {
	t.Helper()
	if len(res.Phases) != 1 {
		t.Fatalf("%d phases, want 1", len(res.Phases))
	}
	p := res.Phases[0]
	if p.Tally.Scheduled != n || p.Tally.Started != n || p.Tally.Dropped != 0 || p.Tally.Cancelled != 0 {
		t.Errorf("tally %+v, want %d arrivals, all started and finished", p.Tally, n)
	}
	got := map[string]RouteSummary{}
	for _, r := range p.Routes {
		got[r.Route] = r
	}
	for _, route := range Routes {
		r, ok := got[route]
		if !ok || r.Count == 0 || r.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors %v; want some, none failed", route, r.Count, r.Errors, r.ByKind)
		}
	}
	if !p.Verdicts[0].Pass {
		t.Errorf("error goal: %s", p.Verdicts[0].Got)
	}
}
