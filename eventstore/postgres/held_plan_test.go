package postgres

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// TestHeldReadsTheIndex: asking whether events follow the last one, as
// every caught-up reader does on every poll (alone, or within its read of
// the log), reads the global order's index, not the whole log (see
// readsTheIndex).
func TestHeldReadsTheIndex(t *testing.T) {
	ctx := eventstoretest.Ctx(t)
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	// A log of some size, as yet unanalysed (autovacuum comes later), the
	// state in which the planner chose the table scan.
	last := fillLog(t, s)
	readsTheIndex(t, s, last, last, 1000)
	// A reader at the start of the log, as one catching up is: the part
	// of its read that looks for a held event starts at the oldest
	// transaction in progress, not at the reader, so it does not walk the
	// backlog.
	readsTheIndex(t, s, last, eventstore.Start, 1)
	if held, err := s.Held(ctx, last); err != nil || held {
		t.Errorf("Held after the last event: %v, %v; want false", held, err)
	}
	if held, err := s.Held(ctx, eventstore.Start); err != nil || !held {
		t.Errorf("Held from the start: %v, %v; want true", held, err)
	}
}

// fillLog writes 20,000 events in one statement and returns the position
// of the last.
func fillLog(t *testing.T, s *Store) eventstore.Position {
	t.Helper()
	ctx := eventstoretest.Ctx(t)
	if _, err := s.pool.Exec(ctx, `INSERT INTO events (tx_id, event_id, stream_id, version, type, schema_version, data, created_at)
		SELECT n, gen_random_uuid(), 'plan-' || n, 0, 'plan.tested', 1, json_build_object('pad', repeat('x', 400)), now()
		FROM generate_series(1, 20000) AS n`); err != nil {
		t.Fatal(err)
	}
	var last eventstore.Position
	if err := s.pool.QueryRow(ctx, `SELECT tx_id, id FROM events ORDER BY tx_id DESC, id DESC LIMIT 1`).Scan(&last.Commit, &last.Prepare); err != nil {
		t.Fatal(err)
	}
	return last
}

// readsTheIndex checks that Held after held and readAll of count events
// after read read the global order's index, not the whole log: the plan
// has no sequential scan, and the query reads a handful of buffers, not
// one per page of the table or of its index.
func readsTheIndex(t *testing.T, s *Store, held, read eventstore.Position, count int) {
	t.Helper()
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"Held":    {heldSQL, []any{int64(held.Commit), int64(held.Prepare)}},
		"readAll": {readAllSQL, []any{int64(read.Commit), int64(read.Prepare), count}},
	} {
		var plan string
		if err := s.pool.QueryRow(eventstoretest.Ctx(t), `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+q.sql, q.args...).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var parsed []struct {
			Plan struct {
				SharedHit  int `json:"Shared Hit Blocks"`
				SharedRead int `json:"Shared Read Blocks"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(plan), &parsed); err != nil || len(parsed) != 1 {
			t.Fatalf("plan %s: %v", plan, err)
		}
		if strings.Contains(plan, `"Seq Scan"`) || parsed[0].Plan.SharedHit+parsed[0].Plan.SharedRead > 20 {
			t.Errorf("%s after %s of 20,000 events scans the log (%d buffers):\n%s",
				name, map[string]eventstore.Position{"Held": held, "readAll": read}[name], parsed[0].Plan.SharedHit+parsed[0].Plan.SharedRead, plan)
		}
	}
}

// TestReadsKeepTheirPlans: the reads every subscription makes at the
// tail of the log keep one plan made for any position rather than being
// planned for each call. PostgreSQL plans a statement's first five
// executions for their values and then keeps the plan made for any values
// only if it looks no dearer; once the log has statistics, a plan for
// "after the last event" looks cheaper than one for any position, so
// each read near the tail (most of them) was planned anew: 0.5 ms of
// planning per read under load, more than the read itself. The plan for
// any position still reads the global order's index.
func TestReadsKeepTheirPlans(t *testing.T) {
	ctx := eventstoretest.Ctx(t)
	s := openStore(t, pgtest.NewDatabase(t)+"&pool_max_conns=1", Options{})
	last := fillLog(t, s)
	if _, err := s.pool.Exec(ctx, "ANALYZE events"); err != nil {
		t.Fatal(err)
	}
	near := eventstore.Position{Commit: last.Commit - 3, Prepare: 0}
	const calls = 12
	for range calls {
		if evs, err := s.ReadAll(ctx, near, 100); err != nil || len(evs) != 4 {
			t.Fatalf("ReadAll near the end: %d events, %v; want 4", len(evs), err)
		}
		if held, err := s.Held(ctx, last); err != nil || held {
			t.Fatalf("Held after the last event: %v, %v", held, err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement IN ($1, $2)`, readAllSQL, heldSQL)
	if err != nil {
		t.Fatal(err)
	}
	type plans struct {
		stmt            string
		generic, custom int64
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (p plans, err error) {
		return p, r.Scan(&p.stmt, &p.generic, &p.custom)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d of the 2 reads are prepared on the connection: %+v", len(got), got)
	}
	for _, p := range got {
		if p.custom > 5 || p.generic+p.custom != calls {
			t.Errorf("of %d calls, %d were planned for their values and %d used the plan for any position (%.40s…)",
				calls, p.custom, p.generic, strings.Join(strings.Fields(p.stmt), " "))
		}
	}
	readsTheIndex(t, s, last, near, 1000)
}
