// Package chaos is the fault-injection suite (`make chaos`): it starts a
// private PostgreSQL cluster and a private Redis, runs eventshop serve as
// a child process against them, drives a bounded order load, and injects
// one fault per scenario — a kill -9 of eventshop mid-burst, PostgreSQL
// stopped the hard way for 10 s, Redis killed for 15 s, a SIGTERM while a
// slow client holds a request open, projection rebuilds under load —
// then checks the invariants (checks.go) and prints a table.
package chaos

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/tests/load"
)

// Config says what to run.
type Config struct {
	Binary string // the eventshop binary, built with -tags failpoints
	// PaymentsAdminURL is a PostgreSQL server other than the private
	// cluster, where the test payment provider gets a database of its
	// own: it stays up when the cluster is stopped, and outlives
	// eventshop.
	PaymentsAdminURL string
	paymentsURL      string
	Dir              string        // where the clusters, data and logs go
	Rate             int           // order flows started a second during a scenario
	Window           time.Duration // how long each scenario's load runs
	Timeout          time.Duration // ORDER_PAYMENT_TIMEOUT of the server
	Out              io.Writer
	Only             []string // scenario names; empty: all
	Shoppers         int
	Products         int
	Units            int64
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string
	Flows    int
	Acked    int
	Statuses map[int]int
	NoAnswer int
	Took     time.Duration
	Fault    string // what the fault did, as measured
	Checks   []Check
}

// OK reports whether every check passed and the fault ran.
func (r Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// env is the running system a scenario acts on.
type env struct {
	cfg    Config
	pg     *Postgres
	redis  *Redis
	srv    *load.LocalServer
	addr   string
	starts int
	shop   *shop
	mail   *smtpsink.Sink // outside eventshop, so a kill -9 loses none of what it received
	// failpoint is armed in the next start (EVENTSHOP_FAILPOINT)
	failpoint string
	// deaths counts the times eventshop died without a chance to record
	// what it had sent (kill -9, a crash at a failpoint)
	deaths int
}

func (e *env) serverConfig() load.ServerConfig {
	e.starts++
	return load.ServerConfig{
		Binary: e.cfg.Binary, DatabaseURL: e.pg.URL("eventshop"), DataDir: filepath.Join(e.cfg.Dir, "data"),
		RedisPrefix: "chaos:", LogPath: filepath.Join(e.cfg.Dir, fmt.Sprintf("eventshop-%d.log", e.starts)),
		Env: []string{"HTTP_ADDR=" + e.addr, "REDIS_URL=" + e.redis.URL(), "ORDER_PAYMENT_TIMEOUT=" + e.cfg.Timeout.String(),
			"SAGA_TICK=500ms", "LOG_LEVEL=info", "PAYMENT_TEST_DATABASE_URL=" + e.cfg.paymentsURL, "SMTP_ADDR=" + e.mail.Addr(),
			"EVENTSHOP_FAILPOINT=" + e.failpoint},
	}
}

// start starts eventshop, waiting up to a minute for it to be ready.
func (e *env) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	srv, err := load.StartServer(ctx, e.serverConfig())
	if err != nil {
		return err
	}
	e.srv = srv
	return nil
}

// Run runs the scenarios and returns their results.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(cfg.Dir, "servers.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	e := &env{cfg: cfg}
	if e.pg, err = StartPostgres(ctx, cfg.Dir, log); err != nil {
		return nil, err
	}
	defer e.pg.Stop()
	if err := createDatabase(ctx, e.pg.URL("postgres"), "eventshop"); err != nil {
		return nil, err
	}
	paymentsDB := "eventshop_chaos_payments_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := createDatabase(ctx, cfg.PaymentsAdminURL, paymentsDB); err != nil {
		return nil, fmt.Errorf("the payment provider's database: %w", err)
	}
	defer dropDatabase(cfg.PaymentsAdminURL, paymentsDB)
	e.cfg.paymentsURL, err = databaseURL(cfg.PaymentsAdminURL, paymentsDB)
	if err != nil {
		return nil, err
	}
	if e.redis, err = StartRedis(ctx, cfg.Dir, log); err != nil {
		return nil, err
	}
	defer e.redis.Kill()
	if e.mail, err = smtpsink.Start(smtpsink.Options{MaxMessages: 1 << 20, MaxTotalBytes: 2 << 30,
		Logger: slog.New(slog.DiscardHandler)}); err != nil {
		return nil, err
	}
	defer e.mail.Close()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	defer func() { e.srv.Stop() }()
	fmt.Fprintf(cfg.Out, "PostgreSQL on %d, Redis on %d, eventshop on %s; logs in %s\n", e.pg.Port, e.redis.Port, e.addr, cfg.Dir)

	c := newClient("http://" + e.addr)
	if e.shop, err = setUp(ctx, c, "admin@example.com", "Admin123!", cfg.Shoppers, cfg.Products, cfg.Units); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	var results []Result
	var lastEnd time.Time
	for _, sc := range scenarios {
		if len(cfg.Only) > 0 && !contains(cfg.Only, sc.name) {
			continue
		}
		r := e.run(ctx, sc)
		results = append(results, r)
		lastEnd = time.Now()
		fmt.Fprintln(cfg.Out, r.line())
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
	// Charges only the provider knows of are voided a minute after their
	// order ended (commands.chargeSettle); the last orders end a payment
	// timeout after the last scenario.
	fmt.Fprintln(cfg.Out, "waiting for the last orders' unrecorded charges to be voided")
	sleep(ctx, time.Until(lastEnd.Add(cfg.Timeout+75*time.Second)))
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	final := Result{Scenario: "all of them", Checks: []Check{
		e.shop.checkCharges(cctx, e.cfg.paymentsURL),
		e.shop.checkMails(cctx, e.mail, e.deaths*notifier.DefaultLanes*notifier.DefaultBatch),
	}}
	fmt.Fprintln(cfg.Out, final.line())
	return append(results, final), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// scenario is one fault, injected a few seconds into the load.
type scenario struct {
	name  string
	fault func(ctx context.Context, e *env) (string, error)
}

var scenarios = []scenario{
	{"kill -9 mid-burst", killServer},
	{"PostgreSQL stopped 10 s", stopPostgres},
	{"Redis killed 15 s", killRedis},
	{"SIGTERM, slow client", termWithSlowClient},
	{"rebuilds under load", rebuildUnderLoad},
	{"crash after a charge", crashAfterCharge},
}

// run runs one scenario: load for the window with the fault 5 s in, the
// clients' retries for up to a minute more, then the checks.
func (e *env) run(ctx context.Context, sc scenario) Result {
	res := Result{Scenario: sc.name}
	if err := e.shop.restock(ctx); err != nil {
		res.Checks = append(res.Checks, Check{Name: "restock", Detail: err.Error()})
		return res
	}
	start := time.Now()
	c := e.shop.c
	c.mu.Lock()
	c.statuses, c.errors, c.fives = map[int]int{}, 0, nil
	c.mu.Unlock()

	settle, cancelSettle := context.WithTimeout(ctx, e.cfg.Window+90*time.Second)
	defer cancelSettle()
	window, cancelWindow := context.WithTimeout(ctx, e.cfg.Window)
	defer cancelWindow()
	flowsc := make(chan []*flow, 1)
	go func() {
		flowsc <- e.shop.run(window, settle, e.cfg.Rate, rand.New(rand.NewPCG(uint64(start.UnixNano()), 7)))
	}()

	sleep(ctx, 5*time.Second)
	loadEnd := start.Add(e.cfg.Window)
	fault, err := sc.fault(ctx, e)
	res.Fault = fault
	flows := <-flowsc
	if err != nil {
		res.Checks = append(res.Checks, Check{Name: "fault", Detail: err.Error()})
	}
	res.Flows = len(flows)
	for _, f := range flows {
		if f.order != "" {
			res.Acked++
		}
	}
	checkCtx, cancel := context.WithTimeout(ctx, e.cfg.Timeout+90*time.Second)
	defer cancel()
	c.mu.Lock()
	fives := append([]string(nil), c.fives...)
	c.mu.Unlock()
	res.Checks = append(res.Checks, e.shop.check(checkCtx, flows, e.cfg.Timeout, fives, loadEnd)...)
	c.mu.Lock()
	res.Statuses, res.NoAnswer = c.statuses, c.errors
	c.mu.Unlock()
	res.Took = time.Since(start)
	return res
}

func (r Result) line() string {
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	if r.Flows == 0 && len(r.Checks) > 0 {
		return fmt.Sprintf("%-26s %s  %s", r.Scenario, verdict, r.Checks[0].Detail)
	}
	return fmt.Sprintf("%-26s %s  %d flows, %d orders acknowledged, %s; %s (%s)", r.Scenario, verdict, r.Flows, r.Acked, r.Fault, statusText(r.Statuses, r.NoAnswer), r.Took.Round(time.Second))
}

func statusText(st map[int]int, none int) string {
	s := ""
	for _, code := range []int{200, 201, 202, 400, 401, 404, 409, 412, 422, 429, 500, 503} {
		if n := st[code]; n > 0 {
			s += fmt.Sprintf("%d×%d ", code, n)
		}
	}
	return s + fmt.Sprintf("no answer×%d", none)
}
