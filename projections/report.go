package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
)

// Report is what the database says about a projection: its checkpoint and
// the last status its active runner reported (see Runner), readable from
// any process.
type Report struct {
	Name     string
	Position eventstore.Position
	// State is a State constant as last reported; StateStopped when no
	// runner reported since ReportTTL, whatever it said before.
	State string
	// Policy is the policy the active runner last reported (PolicyPark
	// when none did).
	Policy string
	// LagEvents is as in Status, exact when LagExact.
	LagEvents int64
	LagExact  bool
	LagTime   time.Duration
	LastError string
	// Parked counts the entries of the live parked list that are not
	// skipped: events that failed, and those waiting behind them.
	Parked int64
	// ReportedAt is when the active runner last reported; zero if never.
	ReportedAt time.Time
	// Rebuild is "" (none pending), "requested", "running", or "failed"
	// (the last one was given up: RebuildError says why).
	Rebuild string
	// RebuildApplied and RebuildParked are the events the running (or
	// else the last) rebuild applied and parked; RebuildError is why the
	// last one was given up, if it was.
	RebuildApplied, RebuildParked int64
	RebuildError                  string
	// RebuiltAt is when the last rebuild was swapped in; zero if never.
	RebuiltAt time.Time
}

// ReportTTL is how long a runner's report stays current: a runner reports
// at least this often while it is active.
const ReportTTL = 15 * time.Second

// Reports returns the reports of the named projections, in that order;
// a projection that never ran gets a zero report in state "stopped".
// Errors: the database's.
func Reports(ctx context.Context, pool *pgxpool.Pool, names []string) ([]Report, error) {
	if err := Migrate(ctx, pool); err != nil {
		return nil, err
	}
	// Whether a report is current is the database's call: its clock wrote
	// reported_at.
	rows, err := pool.Query(ctx, `SELECT name, commit, prepare, state, policy, lag_events, lag_exact, lag_ms, last_error,
			reported_at, coalesce(reported_at > now() - make_interval(secs => $2), false),
			rebuild_requested_at, rebuild_started_at, rebuilt_at, rebuild_applied, rebuild_parked, rebuild_error,
			(SELECT count(*) FROM `+parkedTable+` p WHERE p.projection = c.name AND NOT p.shadow AND p.status <> 'skipped')
		FROM projections.checkpoints c WHERE name = ANY($1)`, names, ReportTTL.Seconds())
	if err != nil {
		return nil, fmt.Errorf("projections: reports: %w", err)
	}
	byName := map[string]Report{}
	for rows.Next() {
		var (
			rep                          Report
			commit, prepare, lagMS       int64
			reported, requested, started *time.Time
			rebuilt                      *time.Time
			current                      bool
		)
		if err := rows.Scan(&rep.Name, &commit, &prepare, &rep.State, &rep.Policy, &rep.LagEvents, &rep.LagExact, &lagMS,
			&rep.LastError, &reported, &current, &requested, &started, &rebuilt, &rep.RebuildApplied, &rep.RebuildParked,
			&rep.RebuildError, &rep.Parked); err != nil {
			rows.Close()
			return nil, fmt.Errorf("projections: reports: %w", err)
		}
		rep.Position = eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		rep.LagTime = time.Duration(lagMS) * time.Millisecond
		if reported != nil {
			rep.ReportedAt = *reported
		}
		if !current {
			rep.State = StateStopped
		}
		switch {
		case started != nil:
			rep.Rebuild = "running"
		case requested != nil:
			rep.Rebuild = "requested"
		case rep.RebuildError != "":
			rep.Rebuild = "failed"
		}
		if rebuilt != nil {
			rep.RebuiltAt = *rebuilt
		}
		byName[rep.Name] = rep
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projections: reports: %w", err)
	}
	out := make([]Report, 0, len(names))
	for _, n := range names {
		rep, ok := byName[n]
		if !ok {
			rep = Report{Name: n, State: StateStopped, Policy: PolicyPark, LagEvents: -1}
		}
		out = append(out, rep)
	}
	return out, nil
}

// RequestRebuild files a rebuild of the projection name for its active
// runner, in whichever process that runs, to pick up: it builds a shadow
// copy of the read model from the start of the log while the live one
// keeps serving, and swaps it in once caught up. A request already
// pending is left as it is. Errors: ErrInvalidName, the database's.
func RequestRebuild(ctx context.Context, pool *pgxpool.Pool, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	_, err := pool.Exec(ctx, `INSERT INTO projections.checkpoints (name, commit, prepare, rebuild_requested_at)
		VALUES ($1, 0, 0, now())
		ON CONFLICT (name) DO UPDATE SET rebuild_error = '',
			rebuild_requested_at = coalesce(projections.checkpoints.rebuild_requested_at, now())`, name)
	if err != nil {
		return fmt.Errorf("projections: request rebuild of %s: %w", name, err)
	}
	return nil
}

// rebuildRequested returns when the pending rebuild of name was
// requested; nil when none is.
func rebuildRequested(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, name string) (*time.Time, error) {
	var at *time.Time
	err := q.QueryRow(ctx, `SELECT rebuild_requested_at FROM projections.checkpoints WHERE name = $1`, name).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return at, err
}
