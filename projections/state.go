package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
)

// stateStore is the runtime's own state in PostgreSQL, in the schema
// "projections" that Migrate keeps: for each projection its checkpoint
// row (the position, the status its active runner reports, the rebuild
// requested and how the last one went) and its parked lists (the live one
// and a rebuild's shadow's, with admins' requests on them). Every
// statement on those tables is here; what a projection writes into its
// own tables is its business.
//
// The methods that take a pgx.Tx write in the transaction that applies
// the projection's events, so that the state moves with the read model;
// the others run on the pool. None calls Migrate: the runner does, once
// per active period, and so do the package's functions for any process.
type stateStore struct{ pool *pgxpool.Pool }

// openState returns the state store on pool for the package's functions
// that any process calls about the projection name, once name is valid
// and the database holds the runtime's tables. Errors: ErrInvalidName,
// Migrate's.
func openState(ctx context.Context, pool *pgxpool.Pool, name string) (stateStore, error) {
	if err := checkName(name); err != nil {
		return stateStore{}, err
	}
	if err := Migrate(ctx, pool); err != nil {
		return stateStore{}, err
	}
	return stateStore{pool}, nil
}

// parkedTable is the parked lists' table.
const parkedTable = "projections.parked"

// checkpoint returns the checkpoint of name, Start when it has none.
func (s stateStore) checkpoint(ctx context.Context, name string) (eventstore.Position, error) {
	var commit, prepare int64
	err := s.pool.QueryRow(ctx, "SELECT commit, prepare FROM projections.checkpoints WHERE name = $1", name).Scan(&commit, &prepare)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Start, fmt.Errorf("read checkpoint of %s: %w", name, err)
	}
	return eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, nil
}

// claim locks the checkpoint row of name for tx and sets it to to,
// provided it is still at from (or absent, when from is Start); otherwise
// errFenced. It makes a second instance that somehow runs at the same
// time (a lock lost mid-batch) fail instead of applying a batch twice.
// One statement, since a runner claims once per batch.
func (s stateStore) claim(ctx context.Context, tx pgx.Tx, name string, from, to eventstore.Position) error {
	var sql string
	if from == eventstore.Start {
		sql = `INSERT INTO projections.checkpoints AS c (name, commit, prepare) VALUES ($1, $4, $5)
			ON CONFLICT (name) DO UPDATE SET commit = $4, prepare = $5, updated_at = now() WHERE c.commit = $2 AND c.prepare = $3`
	} else {
		sql = `UPDATE projections.checkpoints SET commit = $4, prepare = $5, updated_at = now()
			WHERE name = $1 AND commit = $2 AND prepare = $3`
	}
	tag, err := tx.Exec(ctx, sql, name, int64(from.Commit), int64(from.Prepare), int64(to.Commit), int64(to.Prepare))
	if err != nil {
		return fmt.Errorf("claim checkpoint: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return errFenced
	}
	return nil
}

// reset deletes the checkpoint row of name.
func (s stateStore) reset(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM projections.checkpoints WHERE name = $1", name); err != nil {
		return fmt.Errorf("projections: reset %s: %w", name, err)
	}
	return nil
}

// report writes st, the status of the active runner of name, to its
// checkpoint row, with the rebuild's counts when one runs. actionsDue
// reports that admins have asked for something on the live parked list.
func (s stateStore) report(ctx context.Context, name string, st Status, policy string) (actionsDue bool, err error) {
	rebuilding := st.Rebuild != nil
	var applied, parked int64
	if rebuilding {
		applied, parked = st.Rebuild.Applied, st.Rebuild.Parked
	}
	err = s.pool.QueryRow(ctx, `INSERT INTO projections.checkpoints AS c (name, commit, prepare, state, lag_events,
			lag_exact, lag_ms, last_error, policy, reported_at)
		VALUES ($1, 0, 0, $2, $3, $4, $5, $6, $7, now())
		ON CONFLICT (name) DO UPDATE SET state = $2, lag_events = $3, lag_exact = $4, lag_ms = $5, last_error = $6,
			policy = $7, reported_at = now(),
			rebuild_applied = CASE WHEN $8 THEN $9 ELSE c.rebuild_applied END,
			rebuild_parked = CASE WHEN $8 THEN $10 ELSE c.rebuild_parked END
		RETURNING EXISTS (SELECT 1 FROM `+parkedTable+` WHERE projection = $1 AND NOT shadow AND action IS NOT NULL)`,
		name, st.State, st.LagEvents, st.LagExact, st.LagTime.Milliseconds(), st.LastError, policy,
		rebuilding, applied, parked).Scan(&actionsDue)
	return actionsDue, err
}

// stopped reports that the runner of name stopped.
func (s stateStore) stopped(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `UPDATE projections.checkpoints SET state = $2, reported_at = now() WHERE name = $1`,
		name, StateStopped)
	return err
}

// reports reads the reports of names, in that order; a projection without
// a row gets a zero report in state "stopped".
func (s stateStore) reports(ctx context.Context, names []string) ([]Report, error) {
	// Whether a report is current is the database's call: its clock wrote
	// reported_at.
	rows, err := s.pool.Query(ctx, `SELECT name, commit, prepare, state, policy, lag_events, lag_exact, lag_ms, last_error,
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

// requestRebuild files a rebuild of name, unless one is pending.
func (s stateStore) requestRebuild(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO projections.checkpoints (name, commit, prepare, rebuild_requested_at)
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
func (s stateStore) rebuildRequested(ctx context.Context, name string) (*time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `SELECT rebuild_requested_at FROM projections.checkpoints WHERE name = $1`, name).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return at, err
}

// rebuildStarted records that a rebuild of name started.
func (s stateStore) rebuildStarted(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `UPDATE projections.checkpoints SET rebuild_started_at = now() WHERE name = $1`, name)
	return err
}

// rebuildGivenUp records that the rebuild of name answering the request
// of requestedAt was given up for cause, having applied and parked that
// many events; the request is withdrawn, unless a later one was filed.
func (s stateStore) rebuildGivenUp(ctx context.Context, name string, requestedAt time.Time, cause string, applied, parked int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE projections.checkpoints SET rebuild_started_at = NULL, rebuild_error = $3,
			rebuild_applied = $4, rebuild_parked = $5,
			rebuild_requested_at = CASE WHEN rebuild_requested_at <= $2 THEN NULL ELSE rebuild_requested_at END
		WHERE name = $1`, name, requestedAt, cause, applied, parked)
	return err
}

// swapParked makes, in tx, the shadow's parked list of name the live one.
// After a restart (a sink rebuilt by replaying the log into its live
// target) there is no shadow list: the live one loses its entries but the
// skipped ones, as its events park again as they fail again.
func (s stateStore) swapParked(ctx context.Context, tx pgx.Tx, name string, restart bool) error {
	lists := []string{`DELETE FROM ` + parkedTable + ` WHERE projection = $1 AND NOT shadow`,
		`UPDATE ` + parkedTable + ` SET shadow = false WHERE projection = $1 AND shadow`}
	if restart {
		lists = []string{`DELETE FROM ` + parkedTable + ` WHERE projection = $1 AND NOT shadow AND status <> 'skipped'`}
	}
	for _, sql := range lists {
		if _, err := tx.Exec(ctx, sql, name); err != nil {
			return fmt.Errorf("parked lists: %w", err)
		}
	}
	return nil
}

// rebuildSwapped records, in tx, that the rebuild of name answering the
// request of requestedAt was swapped in, having applied and parked that
// many events; the request is withdrawn, unless a later one was filed.
func (s stateStore) rebuildSwapped(ctx context.Context, tx pgx.Tx, name string, requestedAt time.Time, applied, parked int64) error {
	_, err := tx.Exec(ctx, `UPDATE projections.checkpoints SET rebuild_started_at = NULL, rebuilt_at = now(),
		rebuild_error = '', rebuild_applied = $3, rebuild_parked = $4,
		rebuild_requested_at = CASE WHEN rebuild_requested_at <= $2 THEN NULL ELSE rebuild_requested_at END
		WHERE name = $1`, name, requestedAt, applied, parked)
	return err
}

// park adds rows to the list (shadow's, or the live one) of name, in tx.
// An entry that exists already (an event that failed again after a
// restart) takes the new status and error, and keeps when it was first
// seen.
func (s stateStore) park(ctx context.Context, tx pgx.Tx, name string, shadow bool, rows []parkRow) error {
	for _, r := range rows {
		var by, reason *string
		var at *time.Time
		if r.skip != nil {
			by, reason, at = &r.skip.SkippedBy, &r.skip.SkipReason, &r.skip.SkippedAt
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+parkedTable+` AS p (projection, shadow, event_id, stream_id, version, type,
				commit, prepare, status, error, attempts, skipped_by, skip_reason, skipped_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			ON CONFLICT (projection, shadow, event_id) DO UPDATE SET status = excluded.status, error = excluded.error,
				attempts = p.attempts + excluded.attempts, parked_at = now()`,
			name, shadow, r.e.ID, r.e.StreamID, r.e.Version, r.e.Type, int64(r.e.Position.Commit), int64(r.e.Position.Prepare),
			r.status, r.err, r.attempts, by, reason, at)
		if err != nil {
			return fmt.Errorf("park event %s: %w", r.e.ID, err)
		}
	}
	return nil
}

// unpark deletes the live list's entries ids of name, in tx: events a
// retry applied, or a halted event that finally applied.
func (s stateStore) unpark(ctx context.Context, tx pgx.Tx, name string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM `+parkedTable+` WHERE projection = $1 AND NOT shadow AND event_id = ANY($2)
		AND status <> 'skipped'`, name, ids)
	if err != nil {
		return fmt.Errorf("unpark: %w", err)
	}
	return nil
}

// skip marks the live list's entries ids of name skipped, in tx, as their
// pending requests ask, recording who asked and why.
func (s stateStore) skip(ctx context.Context, tx pgx.Tx, name string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE `+parkedTable+` SET status = 'skipped', skipped_by = action_by,
			skip_reason = action_reason, skipped_at = now(), action = NULL, action_by = NULL, action_reason = NULL,
			action_requested_at = NULL
		WHERE projection = $1 AND NOT shadow AND event_id = ANY($2)`, name, ids); err != nil {
		return fmt.Errorf("skip: %w", err)
	}
	return nil
}

// loadParked reads the list (shadow's, or the live one) of name. Halted
// entries are not counted: their event is the one the runner stops on,
// which it meets again.
func (s stateStore) loadParked(ctx context.Context, name string, shadow bool) (parkedState, error) {
	st := parkedState{streams: map[string]int{}, skipped: map[uuid.UUID]ParkedEvent{}}
	rows, err := s.pool.Query(ctx, `SELECT event_id, stream_id, status, coalesce(skipped_by, ''), coalesce(skip_reason, ''),
			coalesce(skipped_at, 'epoch'::timestamptz)
		FROM `+parkedTable+` WHERE projection = $1 AND shadow = $2 AND status IN ('parked', 'skipped')`, name, shadow)
	if err != nil {
		return st, fmt.Errorf("read the parked list of %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p ParkedEvent
		if err := rows.Scan(&p.EventID, &p.StreamID, &p.Status, &p.SkippedBy, &p.SkipReason, &p.SkippedAt); err != nil {
			return st, fmt.Errorf("read the parked list of %s: %w", name, err)
		}
		if p.Status == ParkedStatusSkipped {
			st.skipped[p.EventID] = p
		} else {
			st.streams[p.StreamID]++
		}
	}
	return st, rows.Err()
}

// clearShadowParked empties the shadow's parked list of name.
func (s stateStore) clearShadowParked(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM `+parkedTable+` WHERE projection = $1 AND shadow`, name); err != nil {
		return fmt.Errorf("clear the shadow's parked list: %w", err)
	}
	return nil
}

// pendingActions reads the live list's entries of name in the streams
// with a request pending, by stream and version.
func (s stateStore) pendingActions(ctx context.Context, name string) ([]pendingAction, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id, stream_id, version, status, coalesce(action, '')
		FROM `+parkedTable+` WHERE projection = $1 AND NOT shadow AND status <> 'skipped'
			AND stream_id IN (SELECT stream_id FROM `+parkedTable+`
				WHERE projection = $1 AND NOT shadow AND action IS NOT NULL)
		ORDER BY stream_id, version`, name)
	if err != nil {
		return nil, fmt.Errorf("read admin requests: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pendingAction, error) {
		var a pendingAction
		err := row.Scan(&a.id, &a.stream, &a.version, &a.status, &a.action)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read admin requests: %w", err)
	}
	return list, nil
}

// failedAgain records that the live list's entry id of name failed once
// more, with cause.
func (s stateStore) failedAgain(ctx context.Context, name string, id uuid.UUID, cause string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE `+parkedTable+` SET error = $3, attempts = attempts + 1, parked_at = now()
		WHERE projection = $1 AND NOT shadow AND event_id = $2`, name, id, cause); err != nil {
		return fmt.Errorf("record the failed retry of %s: %w", id, err)
	}
	return nil
}

// clearActions marks the requests on stream's entries of name done.
func (s stateStore) clearActions(ctx context.Context, name, stream string) error {
	_, err := s.pool.Exec(ctx, `UPDATE `+parkedTable+` SET action = NULL, action_by = NULL, action_reason = NULL,
		action_requested_at = NULL WHERE projection = $1 AND NOT shadow AND stream_id = $2 AND action IS NOT NULL`, name, stream)
	if err != nil {
		return fmt.Errorf("clear admin requests on %s: %w", stream, err)
	}
	return nil
}

// pendingAction is an entry of the live parked list as doActions sees it.
type pendingAction struct {
	id      uuid.UUID
	stream  string
	version int64
	status  string
	action  string
}

const parkedColumns = `event_id, stream_id, version, type, commit, prepare, status, error, attempts, first_seen, parked_at,
	coalesce(action, ''), coalesce(action_by, ''), coalesce(action_requested_at, 'epoch'::timestamptz),
	coalesce(skipped_by, ''), coalesce(skip_reason, ''), coalesce(skipped_at, 'epoch'::timestamptz)`

func scanParked(row pgx.Row) (ParkedEvent, error) {
	var (
		p               ParkedEvent
		commit, prepare int64
	)
	err := row.Scan(&p.EventID, &p.StreamID, &p.Version, &p.Type, &commit, &prepare, &p.Status, &p.Error, &p.Attempts,
		&p.FirstSeen, &p.ParkedAt, &p.Action, &p.ActionBy, &p.ActionRequestedAt, &p.SkippedBy, &p.SkipReason, &p.SkippedAt)
	p.Position = eventstore.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
	for _, t := range []*time.Time{&p.ActionRequestedAt, &p.SkippedAt} {
		if t.Unix() == 0 {
			*t = time.Time{}
		}
	}
	return p, err
}

// parked reads a page of the live list of name, as Parked returns it.
func (s stateStore) parked(ctx context.Context, name, status string, page, limit int) ([]ParkedEvent, int, error) {
	out, total, err := listPage(ctx, s.pool, parkedTable, parkedColumns, `projection = $1 AND NOT shadow AND ($2 = '' OR status = $2)`,
		"stream_id, version", []any{name, status}, page, limit, func(r pgx.CollectableRow) (ParkedEvent, error) { return scanParked(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("projections: parked list of %s: %w", name, err)
	}
	return out, total, nil
}

// requestAction files action (ActionRetry, ActionSkip) by by, for reason,
// on the live list's entry id of name, and returns the entry as it is
// now. Errors: ErrNotParked, *NotFirstError (a skip of an entry behind
// another of its stream), the database's.
func (s stateStore) requestAction(ctx context.Context, name string, id uuid.UUID, action, by, reason string) (ParkedEvent, error) {
	var out ParkedEvent
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		p, err := scanParked(tx.QueryRow(ctx, `SELECT `+parkedColumns+` FROM `+parkedTable+`
			WHERE projection = $1 AND NOT shadow AND event_id = $2 AND status <> 'skipped' FOR UPDATE`, name, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotParked
		}
		if err != nil {
			return err
		}
		if action == ActionSkip {
			var first uuid.UUID
			if err := tx.QueryRow(ctx, `SELECT event_id FROM `+parkedTable+`
				WHERE projection = $1 AND NOT shadow AND stream_id = $2 AND status <> 'skipped'
				ORDER BY version LIMIT 1`, name, p.StreamID).Scan(&first); err != nil {
				return err
			}
			if first != id {
				return &NotFirstError{EventID: id, First: first, Stream: p.StreamID}
			}
		}
		out, err = scanParked(tx.QueryRow(ctx, `UPDATE `+parkedTable+` SET action = $3, action_by = $4,
				action_reason = NULLIF($5, ''), action_requested_at = now()
			WHERE projection = $1 AND NOT shadow AND event_id = $2 RETURNING `+parkedColumns, name, id, action, by, reason))
		return err
	})
	if err != nil {
		var nf *NotFirstError
		if errors.Is(err, ErrNotParked) || errors.As(err, &nf) {
			return ParkedEvent{}, err
		}
		return ParkedEvent{}, fmt.Errorf("projections: %s event %s of %s: %w", action, id, name, err)
	}
	return out, nil
}

// listPage reads page (from 1) of limit entries of table that match where
// (whose parameters are args), in the given order, and how many match,
// from one snapshot: runners change the lists meanwhile. Failures reads
// its list through it too.
func listPage[T any](ctx context.Context, pool *pgxpool.Pool, table, columns, where, order string, args []any,
	page, limit int, scan pgx.RowToFunc[T]) ([]T, int, error) {
	page, limit = max(page, 1), max(limit, 1)
	var (
		total int
		out   []T
	)
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+where, args...).Scan(&total); err != nil {
			return err
		}
		n := len(args)
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d`,
			columns, table, where, order, n+1, n+2), append(args, limit, (page-1)*limit)...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scan)
		return err
	})
	return out, total, err
}
