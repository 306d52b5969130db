package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is one run of the harness.
type Config struct {
	// Target is the base URL of the system under test; empty starts a
	// local eventshop from Server for the run and stops it after.
	Target string
	// AllowRemote lets Target be a host other than this machine's
	// loopback addresses.
	AllowRemote bool
	Server      ServerConfig
	// ServerPID is the target's process, for its CPU use, when the
	// harness did not start it (0: unknown).
	ServerPID int

	Rate     float64       // arrivals per second
	Duration time.Duration // of the timed window
	// Mix names the scenario the arrivals play, one of Mixes; ""
	// is MixShoppers.
	Mix string
	// Step mode: phases of StepDuration from StepStart, StepBy higher
	// each, up to StepMax, until one fails a goal.
	Step                       bool
	StepStart, StepBy, StepMax float64
	StepDuration               time.Duration

	Products    int // the catalogue's size: seeded up to it
	Shoppers    int // signed in before the window
	SeedWorkers int // concurrent product listings while seeding
	// ViewIDs bounds the product ids collected from the listing to view
	// and order.
	ViewIDs int

	MaxInFlight  int           // arrivals in flight at once
	Timeout      time.Duration // per request
	SetupTimeout time.Duration // seeding, signing in

	AdminEmail, AdminPassword string

	Goals Goals
	Out   string    // the report's directory
	Log   io.Writer // progress and the summary
}

// Result is what a run measured.
type Result struct {
	Target    string        `json:"target"`
	Started   time.Time     `json:"started"`
	Step      bool          `json:"step"`
	Products  int           `json:"products"`
	Catalogue int           `json:"catalogue"`
	Shoppers  int           `json:"shoppers"`
	Mix       string        `json:"mix"`
	Goals     Goals         `json:"goals"`
	Phases    []PhaseResult `json:"phases"`
	// Knee is the highest rate of a passing step (step mode; 0 when the
	// first step failed); BrokeAt is the rate of the step that failed
	// (0 when none did).
	Knee     float64  `json:"knee,omitempty"`
	BrokeAt  float64  `json:"broke_at,omitempty"`
	Timeline []Second `json:"timeline"`
	CPU      CPU      `json:"cpu"`
	// Lag is each projection's lag over the timed window and how long
	// it took to catch up after it.
	Lag []ProjectionLag `json:"lag"`
	// Refusals is what the server's admission control refused during
	// the timed window, by class and outcome, from its /metrics; nil
	// (RefusalsMeasured false) when /metrics could not be read.
	Refusals         []Refusal `json:"refusals"`
	RefusalsMeasured bool      `json:"refusals_measured"`
	// Mail is how the mails the timed window caused were delivered.
	Mail MailCheck `json:"mail"`
}

// PhaseResult is one phase's figures.
type PhaseResult struct {
	Phase    Phase          `json:"phase"`
	Tally    Tally          `json:"tally"`
	Routes   []RouteSummary `json:"routes"`
	Verdicts []Verdict      `json:"verdicts"`
	Pass     bool           `json:"pass"`
	CPU      CPU            `json:"cpu"`
}

// Run sets up, plays the phases and writes the report. Setup errors end
// it; a phase that fails its goals does not (it is what the report is
// for).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	base, pid := strings.TrimSuffix(cfg.Target, "/"), cfg.ServerPID
	if base == "" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		srv, err := StartServer(sctx, cfg.Server)
		cancel()
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := srv.Stop(); err != nil {
				fmt.Fprintf(log, "load: stopping the local eventshop: %v\n", err)
			}
		}()
		base, pid = srv.URL, srv.PID()
		fmt.Fprintf(log, "load: started eventshop at %s (pid %d, log %s)\n", base, pid, cfg.Server.LogPath)
	}
	// Setup's requests may take long (a listing that scans 100,000
	// products); its whole is bounded by SetupTimeout.
	sc := newClient(base, cfg.SeedWorkers+8, cfg.SetupTimeout)
	setupCtx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	world, err := setup(setupCtx, sc, cfg, log)
	cancel()
	sc.close()
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	c := newClient(base, cfg.MaxInFlight+16, cfg.Timeout)
	defer c.close()

	res := &Result{Target: base, Started: time.Now().UTC(), Step: cfg.Step, Products: cfg.Products,
		Catalogue: world.Total, Shoppers: len(world.Shoppers), Mix: cfg.mix(), Goals: cfg.Goals}
	timeline := NewTimeline(time.Now())
	play := newScenario(c, world, Mixes[cfg.mix()], timeline)
	sched := Scheduler{MaxInFlight: cfg.MaxInFlight, Drain: cfg.Timeout + time.Second,
		OnDrop: func(due time.Time) { timeline.Due(due, true) }}
	arrive := func(ctx context.Context, due time.Time) {
		timeline.Due(due, false)
		play.arrive(ctx, due)
	}
	// The admin's sign-in (a password hash) happens before the window.
	a := &admin{c: c, email: cfg.AdminEmail, password: cfg.AdminPassword}
	if _, err := a.get(ctx, ""); err != nil {
		return nil, fmt.Errorf("sign the admin in to watch the projections: %w", err)
	}
	lags := watchLag(ctx, a)
	refusedBefore, refusedErr := refusalCounts(ctx, c)
	first := sampleCPU(pid)
	windowStart := time.Now()
	for _, p := range cfg.phases() {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(log, "load: %.0f arrivals/s for %s …\n", p.Rate, p.Duration)
		play.stats = NewStats()
		before := sampleCPU(pid)
		t := sched.Run(ctx, p, arrive)
		pr := PhaseResult{Phase: p, Tally: t, Routes: play.stats.Summary(), CPU: cpuBetween(before, sampleCPU(pid))}
		pr.Verdicts = cfg.Goals.Check(pr.Routes, t)
		pr.Pass = passed(pr.Verdicts)
		res.Phases = append(res.Phases, pr)
		fmt.Fprintln(log, "load: "+phaseLine(pr))
		if cfg.Step {
			if !pr.Pass {
				res.BrokeAt = p.Rate
				break
			}
			res.Knee = p.Rate
		}
	}
	res.CPU = cpuBetween(first, sampleCPU(pid))
	res.Timeline = timeline.Seconds()
	// The mails are watched while the projections catch up. The server's
	// clock stamps them; the 2 s spare it the skew of another machine's.
	mails := make(chan MailCheck, 1)
	go func() {
		mails <- checkMails(ctx, c, world.Shoppers, play.mails.snapshot(), windowStart.Add(-2*time.Second), time.Now(),
			max(mailWait, 2*cfg.Goals.MailWithin))
	}()
	if res.Lag, err = lags.finish(ctx); err != nil {
		fmt.Fprintf(log, "load: watching the projections' lag: %v\n", err)
	}
	res.Mail = <-mails
	if n := len(res.Phases); n > 0 && !cfg.Step {
		// A step's verdicts decide the knee as it ends; the mails of all
		// steps are checked once, after the last.
		last := &res.Phases[n-1]
		last.Verdicts = append(last.Verdicts, mailVerdict(res.Mail, cfg.Goals.MailWithin))
		last.Pass = passed(last.Verdicts)
	}
	if refusedErr == nil {
		var after map[[2]string]float64
		if after, refusedErr = refusalCounts(ctx, c); refusedErr == nil {
			res.Refusals, res.RefusalsMeasured = refusalsBetween(refusedBefore, after), true
		}
	}
	if refusedErr != nil {
		fmt.Fprintf(log, "load: reading the server's refusals: %v\n", refusedErr)
	}
	if err := writeReport(cfg.Out, res); err != nil {
		return res, err
	}
	fmt.Fprint(log, Summary(res))
	fmt.Fprintf(log, "report: %s\n", filepath.Join(cfg.Out, "report.html"))
	return res, ctx.Err()
}

// setup signs the admin in, seeds the catalogue, collects what to view
// and order, and signs the shoppers in.
func setup(ctx context.Context, c *client, cfg Config, log io.Writer) (*World, error) {
	a := &admin{c: c, email: cfg.AdminEmail, password: cfg.AdminPassword}
	if err := c.seed(ctx, a, cfg.Products, cfg.SeedWorkers, log); err != nil {
		return nil, err
	}
	w := &World{}
	var err error
	if w.Total, err = c.catalogueTotal(ctx); err != nil {
		return nil, err
	}
	if w.Categories, err = c.categories(ctx); err != nil {
		return nil, err
	}
	if w.Products, w.Orderable, err = c.products(ctx, cfg.ViewIDs); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "setup: %d products in the catalogue, %d categories; %d ids to view, %d to order\n",
		w.Total, len(w.Categories), len(w.Products), len(w.Orderable))
	if w.Shoppers, err = c.shoppers(ctx, cfg.Shoppers, 4, log); err != nil {
		return nil, err
	}
	return w, nil
}

// phases is the run's schedule: one phase, or the steps.
func (cfg Config) phases() []Phase {
	if !cfg.Step {
		return []Phase{{Rate: cfg.Rate, Duration: cfg.Duration}}
	}
	var ps []Phase
	for r := cfg.StepStart; r <= cfg.StepMax+1e-9; r += cfg.StepBy {
		ps = append(ps, Phase{Rate: r, Duration: cfg.StepDuration})
	}
	return ps
}

// mailWait is the least time the mail check waits after the window.
const mailWait = time.Minute

// mix is the name of the run's mix.
func (cfg Config) mix() string {
	if cfg.Mix == "" {
		return MixShoppers
	}
	return cfg.Mix
}

// check refuses a configuration that cannot run, and any target that is
// not this machine unless AllowRemote.
func (cfg Config) check() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if cfg.Target != "" {
		if err := checkTarget(cfg.Target, cfg.AllowRemote); err != nil {
			bad("%v", err)
		}
	} else if cfg.Server.Binary == "" {
		bad("no target and no eventshop binary to start")
	}
	if cfg.Step {
		if cfg.StepStart <= 0 || cfg.StepBy <= 0 || cfg.StepMax < cfg.StepStart || cfg.StepDuration <= 0 {
			bad("step mode wants a start > 0, a step > 0, a max ≥ the start and a step duration > 0")
		}
	} else if cfg.Rate <= 0 || cfg.Duration <= 0 {
		bad("rate and duration must be > 0")
	}
	if cfg.Shoppers < 1 || cfg.Products < 1 || cfg.MaxInFlight < 1 || cfg.Timeout <= 0 || cfg.SetupTimeout <= 0 ||
		cfg.SeedWorkers < 1 || cfg.ViewIDs < 1 {
		bad("shoppers, products, seed workers, view ids, max in flight, timeout and setup timeout must be > 0")
	}
	if cfg.AdminEmail == "" || cfg.AdminPassword == "" {
		bad("an admin's email and password are needed to seed the catalogue")
	}
	if cfg.Out == "" {
		bad("no report directory")
	}
	if _, ok := Mixes[cfg.mix()]; !ok {
		bad("mix %q: want %s or %s", cfg.Mix, MixShoppers, MixOrders)
	}
	if len(errs) > 0 {
		return errors.New("load: " + strings.Join(errs, "; "))
	}
	return nil
}

// checkTarget accepts an http(s) URL on a loopback address (127.0.0.0/8,
// ::1, localhost) and, with allowRemote, any host.
func checkTarget(target string, allowRemote bool) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %q: want an http:// or https:// URL", target)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost") {
		return nil
	}
	return fmt.Errorf("target %q is not this machine (127.0.0.1, ::1, localhost): refused without -allow-remote", target)
}
