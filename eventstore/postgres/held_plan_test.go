package postgres

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// TestHeldReadsTheIndex: asking whether events follow the last one, as
// every caught-up reader does on every poll (alone, or within its read of
// the log), reads the global order's index, not the whole log: the plan has no sequential scan, and the
// query reads a handful of buffers, not one per page of the table.
func TestHeldReadsTheIndex(t *testing.T) {
	ctx := eventstoretest.Ctx(t)
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	// A log of some size, in one statement, as yet unanalysed (autovacuum
	// comes later), the state in which the planner chose the table scan.
	if _, err := s.pool.Exec(ctx, `INSERT INTO events (tx_id, event_id, stream_id, version, type, schema_version, data, created_at)
		SELECT n, gen_random_uuid(), 'plan-' || n, 0, 'plan.tested', 1, json_build_object('pad', repeat('x', 400)), now()
		FROM generate_series(1, 20000) AS n`); err != nil {
		t.Fatal(err)
	}
	var last eventstore.Position
	if err := s.pool.QueryRow(ctx, `SELECT tx_id, id FROM events ORDER BY tx_id DESC, id DESC LIMIT 1`).Scan(&last.Commit, &last.Prepare); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]struct {
		sql  string
		args []any
	}{
		"Held":    {heldSQL, []any{int64(last.Commit), int64(last.Prepare)}},
		"readAll": {readAllSQL, []any{int64(last.Commit), int64(last.Prepare), 1000}},
	} {
		var plan string
		if err := s.pool.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+q.sql, q.args...).Scan(&plan); err != nil {
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
			t.Errorf("%s after the last of 20,000 events scans the log (%d buffers):\n%s",
				name, parsed[0].Plan.SharedHit+parsed[0].Plan.SharedRead, plan)
		}
	}
	if held, err := s.Held(ctx, last); err != nil || held {
		t.Errorf("Held after the last event: %v, %v; want false", held, err)
	}
	if held, err := s.Held(ctx, eventstore.Start); err != nil || !held {
		t.Errorf("Held from the start: %v, %v; want true", held, err)
	}
}
