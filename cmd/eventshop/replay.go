package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
)

const replayUsage = `Usage: eventshop replay [--projection NAME]... [--from-scratch]

Brings projections up to date with the event log, or with --from-scratch
rebuilds them from the first event, and exits when they have caught up.

A rebuild builds a shadow copy of each read model and swaps it in once it
has caught up, so a system that is serving keeps answering from the old
model meanwhile. When another process runs a projection, that process
carries out the rebuild and this command follows its progress.

Without --projection every read model is replayed (users.v1, orders.v1,
catalog.v1); the Kafka publisher (kafka.v1) is replayed only when named,
and --projection kafka.v1 --from-scratch publishes every event again.

Progress is a bar on a terminal and a line every few seconds otherwise.

MongoDB and Kafka are MONGO_URL and KAFKA_BROKERS; when they are not set,
the local run's embedded servers on MONGO_ADDR and KAFKA_ADDR are used if
they are up. With --embedded, stand-ins are started as the local run does
when they are not (its data: DATABASE_URL and DATA_DIR); without it, a
replay never writes to a stand-in by mistake.

Flags:
`

// replayTarget is one projection being replayed.
type replayTarget struct {
	runner *projections.Runner
	// total is how many events of the log the projection takes, in all
	// (--from-scratch) or after its checkpoint; last is the last of them.
	total int64
	last  eventstore.Position
	// since is the checkpoint before the replay.
	since eventstore.Position
	done  bool
	took  time.Duration
}

// replay is the replay subcommand.
func replay(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	var names []string
	fs.Func("projection", "a projection to replay (repeat, or separate with commas)", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		return nil
	})
	fromScratch := fs.Bool("from-scratch", false, "rebuild from the first event into a shadow copy, then swap it in")
	embedded := fs.Bool("embedded", false, "start the local run's embedded MongoDB and Kafka stand-ins when they are not up")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	readModels := len(names) == 0
	publish := slices.Contains(names, kafkapub.Name)

	// The local run's embedded servers are used when they are up.
	cfg = attachLocal(cfg, publish)
	a, err := buildApp(ctx, cfg, log, mode{local: *embedded, project: true, noPublish: !publish})
	if err != nil {
		return err
	}
	defer a.Close()
	var targets []*replayTarget
	for _, r := range a.runners {
		if readModels && r.Name() != kafkapub.Name || slices.Contains(names, r.Name()) {
			targets = append(targets, &replayTarget{runner: r})
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(targets, func(t *replayTarget) bool { return t.runner.Name() == n }) {
			return fmt.Errorf("replay: no projection %q; there are %s", n, strings.Join(a.projectionNames(), ", "))
		}
	}

	for _, t := range targets {
		if t.since, err = projections.Checkpoint(ctx, a.pool, t.runner.Name()); err != nil {
			return err
		}
		if *fromScratch {
			t.since = eventstore.Start
		}
	}
	fmt.Fprintln(stdout, "replay: reading the log to size the work")
	if err := sizeReplay(ctx, a.store, targets); err != nil {
		return err
	}
	if *fromScratch {
		for _, t := range targets {
			if err := projections.RequestRebuild(ctx, a.pool, t.runner.Name()); err != nil {
				return err
			}
		}
	}

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for _, t := range targets {
		wg.Go(func() { _ = t.runner.Run(rctx) })
	}
	return followReplay(ctx, a, targets, *fromScratch, stdout)
}

// attachLocal points the configuration at the local run's embedded
// servers when they are up and nothing else is configured, so a replay
// next to `make run` shares them instead of starting its own.
func attachLocal(cfg config, publish bool) config {
	up := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if cfg.MongoURL == "" && up(cfg.MongoAddr) {
		cfg.MongoURL = "mongodb://" + cfg.MongoAddr + "/"
	}
	if publish && len(cfg.KafkaBrokers) == 0 && up(cfg.KafkaAddr) {
		cfg.KafkaBrokers = []string{cfg.KafkaAddr}
	}
	return cfg
}

// sizeReplay reads the log once and counts, for each target, the events
// it takes after its starting point, and the last of them.
func sizeReplay(ctx context.Context, log eventstore.Store, targets []*replayTarget) error {
	if len(targets) == 0 {
		return nil
	}
	// One scan from the earliest starting point serves every target; a
	// checkpoint is a position the log can be read on from.
	from := targets[0].since
	filters := make([]eventstore.Filter, len(targets))
	for i, t := range targets {
		filters[i] = t.runner.Filter()
		if t.since.Less(from) {
			from = t.since
		}
	}
	for {
		page, err := log.ReadAll(ctx, from, eventstore.MaxReadCount)
		if err != nil {
			return fmt.Errorf("replay: read the log: %w", err)
		}
		for i := range page {
			e := &page[i]
			for j, t := range targets {
				if t.since.Less(e.Position) && filters[j].Match(e) {
					t.total++
					t.last = e.Position
				}
			}
		}
		if len(page) < eventstore.MaxReadCount {
			return nil
		}
		from = page[len(page)-1].Position
	}
}

// followReplay shows progress until every target has caught up: for a
// rebuild, once no rebuild is pending any more (only a swap clears the
// request filed before) and its checkpoint reached the last event it
// takes; otherwise once its checkpoint did. A target that fails is
// reported as it fails; the replay waits for it to recover. A rebuild
// given up (an event it cannot apply, under policy halt) ends the replay
// with its error. Events parked on the way are counted at the end.
func followReplay(ctx context.Context, a *app, targets []*replayTarget, fromScratch bool, stdout io.Writer) error {
	var total int64
	for _, t := range targets {
		total += t.total
	}
	bar, plain := replayBar(stdout, total)
	start := time.Now()
	lastLine := time.Time{}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.runner.Name()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	remoteNoted, errorShown := map[string]bool{}, map[string]string{}
	for {
		reports, err := projections.Reports(ctx, a.pool, names)
		if err != nil {
			return err
		}
		var done int64
		finished := true
		for i, t := range targets {
			rep, st := reports[i], t.runner.Status()
			if fromScratch && rep.Rebuild == "failed" {
				return fmt.Errorf("replay: the rebuild of %s was given up: %s", names[i], rep.RebuildError)
			}
			if !t.done {
				caught := !rep.Position.Less(t.last)
				if fromScratch {
					caught = caught && rep.Rebuild == ""
				}
				if caught {
					t.done, t.took = true, time.Since(start)
				}
			}
			switch {
			case t.done:
				done += t.total
			case st.Rebuild != nil:
				done += min(st.Rebuild.Applied, t.total)
			default:
				done += min(st.Applied, t.total)
			}
			if !t.done && st.State == projections.StateWaitingForLock && time.Since(start) > 2*time.Second && !remoteNoted[names[i]] {
				remoteNoted[names[i]] = true
				fmt.Fprintf(stdout, "replay: %s is active in another process, which carries out the work; following it\n", names[i])
			}
			if e := failure(st, rep); e != "" && errorShown[names[i]] != e {
				errorShown[names[i]] = e
				fmt.Fprintf(stdout, "replay: %s is failing, retrying: %s\n", names[i], e)
			}
			finished = finished && t.done
		}
		if bar != nil {
			_ = bar.Set64(done)
		}
		if plain && (time.Since(lastLine) >= 2*time.Second || finished) {
			lastLine = time.Now()
			fmt.Fprintln(stdout, progressLine(done, total, time.Since(start)))
		}
		if finished {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(stdout)
			}
			for i, t := range targets {
				rate := float64(t.total) / max(t.took.Seconds(), 1e-3)
				fmt.Fprintf(stdout, "replay: %-10s %d events in %s (%.0f events/s)\n", t.runner.Name(), t.total,
					t.took.Round(time.Millisecond), rate)
				if n := reports[i].Parked; n > 0 {
					fmt.Fprintf(stdout, "replay: %-10s %d events parked: GET /api/admin/projections/%s/parked\n", t.runner.Name(), n, t.runner.Name())
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replay: interrupted at %d of %d events", done, total)
		case <-tick.C:
		}
	}
}

// failure is what a target fails on now: its rebuild's or its own last
// error, from this process's runner or from the stored report; "" when
// it is healthy.
func failure(st projections.Status, rep projections.Report) string {
	switch {
	case st.Rebuild != nil && st.Rebuild.LastError != "":
		return "rebuild: " + st.Rebuild.LastError
	case st.Failing != nil:
		return st.LastError
	case rep.State == projections.StateFailing || rep.State == projections.StateHalted:
		return rep.LastError
	}
	return ""
}

// replayBar returns a progress bar on a terminal; plain is true when
// stdout is not one, and progress goes as lines instead.
func replayBar(stdout io.Writer, total int64) (bar *progressbar.ProgressBar, plain bool) {
	f, ok := stdout.(*os.File)
	if !ok {
		return nil, true
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil, true
	}
	return progressbar.NewOptions64(max(total, 1),
		progressbar.OptionSetWriter(stdout),
		progressbar.OptionSetDescription("replay"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
	), false
}

// progressLine is a plain progress line: events done, rate and ETA.
func progressLine(done, total int64, elapsed time.Duration) string {
	rate := float64(done) / max(elapsed.Seconds(), 1e-3)
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	eta := "-"
	if rate > 0 && done < total {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("replay: %d/%d events (%.0f%%), %.0f events/s, ETA %s", done, total, pct, rate, eta)
}
