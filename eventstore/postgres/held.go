package postgres

import (
	"context"
	"sync"
	"time"
)

// heldWatch notices when readers have been held back for long: events
// exist that no reader may see because an older transaction, anywhere on
// the server, is still open. Nothing is lost, but live delivery stops
// until it ends, so an operator must hear of it.
type heldWatch struct {
	mu     sync.Mutex
	since  time.Time // when the current hold began; zero when not held
	warned time.Time
	after  time.Duration // how long a stall lasts before a warning
	every  time.Duration // the least time between two warnings
}

// blocker is an open transaction readers may be waiting for.
type blocker struct {
	PID         int32    `json:"pid"`
	Application string   `json:"application"`
	State       *string  `json:"state"` // null when the role may not see it
	AgeSeconds  *float64 `json:"age_s"` // likewise
	Database    *string  `json:"database"`
}

// noteHeld records the outcome of a read that reached the readable end of
// the log: stalled is true when events exist beyond it and the read got
// none (a read that got events is progress, even if more are held back).
// It warns when a stall has lasted longer than w.after.
func (s *Store) noteHeld(ctx context.Context, stalled bool) {
	w := &s.held
	now := time.Now()
	w.mu.Lock()
	if !stalled {
		w.since = time.Time{}
		w.mu.Unlock()
		return
	}
	if w.since.IsZero() {
		w.since = now
	}
	since := w.since
	report := now.Sub(since) >= w.after && now.Sub(w.warned) >= w.every
	if report {
		w.warned = now
	}
	w.mu.Unlock()
	if report {
		s.warnHeld(ctx, now.Sub(since))
	}
}

// warnHeld logs the stall with the oldest open transactions that hold a
// transaction id: readers wait for the oldest of them (or for a prepared
// transaction, when there is none).
func (s *Store) warnHeld(ctx context.Context, stalledFor time.Duration) {
	attrs := []any{"stalled_for", stalledFor.Round(time.Second).String(),
		"hint", "end the blocking transaction; idle_in_transaction_session_timeout limits such holds; " +
			"seeing other roles' sessions needs pg_read_all_stats"}
	rows, err := s.pool.Query(ctx, `SELECT pid, coalesce(application_name, ''), state,
			extract(epoch FROM now() - xact_start)::float8, datname
		  FROM pg_stat_activity WHERE backend_xid IS NOT NULL
		 ORDER BY age(backend_xid) DESC LIMIT 3`)
	var blockers []blocker
	if err == nil {
		for rows.Next() {
			var b blocker
			if err = rows.Scan(&b.PID, &b.Application, &b.State, &b.AgeSeconds, &b.Database); err != nil {
				break
			}
			blockers = append(blockers, b)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	switch {
	case err != nil:
		attrs = append(attrs, "blocking_unknown", err.Error())
	case len(blockers) == 0:
		attrs = append(attrs, "blocking", "no open transaction; look for prepared transactions (pg_prepared_xacts)")
	default:
		attrs = append(attrs, "blocking", blockers)
	}
	s.log.WarnContext(ctx, "event store: readers held back by an open transaction; live delivery is paused", attrs...)
}
