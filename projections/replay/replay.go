// Package replay brings projections up to date with the event log, or
// rebuilds them from the first event, and shows the progress until they
// have caught up: the work of `eventshop replay`.
//
// It sizes the work by reading the log once, files a rebuild request for
// each projection when rebuilding (projections.RequestRebuild: the runner
// that holds the projection's lock, in this process or another, builds
// the shadow and swaps it in), runs the runners it is given, and follows
// the stored reports. A projection that another process runs is followed
// there; a failing one is reported as it fails, and waited for.
package replay

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// Runner is a projection's runner, which Run runs while it follows the
// projection; *projections.Runner is one.
type Runner interface {
	Name() string
	Filter() eventstore.Filter
	Status() projections.Status
	Run(ctx context.Context) error
}

// Config is what Run replays, and where.
type Config struct {
	// Pool holds the projections' checkpoints and reports.
	Pool *pgxpool.Pool
	// Store is the event log, read once to size the work.
	Store eventstore.Store
	// Runners are the projections that can be replayed.
	Runners []Runner
	// Names are the projections to replay; none: every one of Runners.
	Names []string
	// All names every projection of the system, for the error about a
	// name that is not one of Runners.
	All []string
	// FromScratch rebuilds from the first event into a shadow copy,
	// swapped in once caught up; otherwise the projections go on from
	// their checkpoints.
	FromScratch bool
	// Out receives the progress (a bar on a terminal, a line every two
	// seconds otherwise) and a summary per projection.
	Out io.Writer
}

// target is one projection being replayed.
type target struct {
	runner Runner
	// total is how many events of the log the projection takes, in all
	// (FromScratch) or after its checkpoint; last is the last of them.
	total int64
	last  eventstore.Position
	// since is the checkpoint before the replay.
	since eventstore.Position
	done  bool
	took  time.Duration
}

// Run replays cfg.Names and returns once each has caught up with the
// log as it was when Run started. Errors: a name that is not one of
// cfg.Runners, the database's or the log's, a rebuild given up ("replay:
// the rebuild of NAME was given up: ..."), and ctx ending ("replay:
// interrupted at N of M events"); the runners are stopped before it
// returns.
func Run(ctx context.Context, cfg Config) error {
	targets, err := pick(cfg)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if t.since, err = projections.Checkpoint(ctx, cfg.Pool, t.runner.Name()); err != nil {
			return err
		}
		if cfg.FromScratch {
			t.since = eventstore.Start
		}
	}
	fmt.Fprintln(cfg.Out, "replay: reading the log to size the work")
	if err := size(ctx, cfg.Store, targets); err != nil {
		return err
	}
	if cfg.FromScratch {
		for _, t := range targets {
			if err := projections.RequestRebuild(ctx, cfg.Pool, t.runner.Name()); err != nil {
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
	return follow(ctx, cfg, targets)
}

// pick is the targets cfg names, in the order of cfg.Runners.
func pick(cfg Config) ([]*target, error) {
	var targets []*target
	for _, r := range cfg.Runners {
		if len(cfg.Names) == 0 || slices.Contains(cfg.Names, r.Name()) {
			targets = append(targets, &target{runner: r})
		}
	}
	for _, n := range cfg.Names {
		if !slices.ContainsFunc(targets, func(t *target) bool { return t.runner.Name() == n }) {
			return nil, fmt.Errorf("replay: no projection %q; there are %s", n, strings.Join(cfg.All, ", "))
		}
	}
	return targets, nil
}

// size reads the log once and counts, for each target, the events it
// takes after its starting point, and the last of them.
func size(ctx context.Context, log eventstore.Store, targets []*target) error {
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
