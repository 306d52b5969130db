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
}

// heldReportEvery spaces the warnings of one long hold.
const heldReportEvery = time.Minute

// noteHeld records the outcome of a read that reached the readable end of
// the log, and warns when a hold has lasted longer than s.heldWarn.
func (s *Store) noteHeld(ctx context.Context, held bool) {
	w := &s.held
	now := time.Now()
	w.mu.Lock()
	if !held {
		w.since = time.Time{}
		w.mu.Unlock()
		return
	}
	if w.since.IsZero() {
		w.since = now
	}
	since := w.since
	report := now.Sub(since) >= s.heldWarn && now.Sub(w.warned) >= heldReportEvery
	if report {
		w.warned = now
	}
	w.mu.Unlock()
	if !report {
		return
	}
	// Name the oldest open transaction that holds a transaction id: it is
	// what readers are waiting for (or a prepared transaction, if none).
	var pid int32
	var app, state string
	var age time.Duration
	err := s.pool.QueryRow(ctx, `SELECT pid, coalesce(application_name, ''), coalesce(state, ''),
			coalesce(now() - xact_start, '0')
		  FROM pg_stat_activity WHERE backend_xid IS NOT NULL
		 ORDER BY age(backend_xid) DESC LIMIT 1`).Scan(&pid, &app, &state, &age)
	attrs := []any{"held_for", now.Sub(since).Round(time.Second).String(),
		"hint", "end that transaction; idle_in_transaction_session_timeout limits such holds"}
	if err == nil {
		attrs = append(attrs, "blocking_pid", pid, "blocking_application", app, "blocking_state", state,
			"blocking_transaction_age", age.Round(time.Second).String())
	} else {
		attrs = append(attrs, "blocking", "no open transaction found; look for prepared transactions (pg_prepared_xacts)")
	}
	s.log.WarnContext(ctx, "event store: readers held back by an open transaction; live delivery is paused", attrs...)
}
