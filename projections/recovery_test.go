package projections_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// TestLockConnectionLost: when the lock's connection dies, the runner
// stops applying, takes the lock again and continues without a gap or
// duplicate.
func TestLockConnectionLost(t *testing.T) {
	e := newEnv(t, "memory")
	e.appendN(t, "t", 100)
	p := &testProjection{name: "lost.v1"}
	run := start(t, e, p, projections.Options{RetryMin: 10 * time.Millisecond})
	waitFor(t, within, "100 rows", func() bool { return e.count(p.name) == 100 })
	var killed bool
	err := e.pool.QueryRow(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed)
	if err != nil || !killed {
		t.Fatalf("terminate the lock's backend: %v %v", killed, err)
	}
	waitFor(t, within, "the loss reported", func() bool { return strings.Contains(run.r.Status().LastError, "lock lost") })
	e.appendN(t, "t", 100)
	waitFor(t, within, "200 rows, live", func() bool {
		return e.count(p.name) == 200 && run.r.Status().State == projections.StateLive
	})
	sameIDs(t, "read model", e.rows(t, p.name), ids(e.logOf(t, eventstore.Filter{})))
}

// TestReset: after Reset (and emptying its table) a new runner applies
// the log again from the start.
func TestReset(t *testing.T) {
	e := newEnv(t, "memory")
	e.appendN(t, "t", 100)
	p := &testProjection{name: "reset.v1"}
	run := start(t, e, p, projections.Options{})
	waitFor(t, within, "100 rows", func() bool { return e.count(p.name) == 100 })
	run.stop(t)
	before := e.checkpoint(t, p.name)

	if err := projections.Reset(context.Background(), e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	if cp := e.checkpoint(t, p.name); cp != eventstore.Start {
		t.Fatalf("checkpoint after Reset %s", cp)
	}
	if _, err := e.pool.Exec(context.Background(), "TRUNCATE "+p.table()); err != nil {
		t.Fatal(err)
	}
	start(t, e, p, projections.Options{}) // stopped when the test ends
	waitFor(t, within, "100 rows again", func() bool { return e.count(p.name) == 100 })
	sameIDs(t, "rebuilt", e.rows(t, p.name), ids(e.logOf(t, eventstore.Filter{})))
	if cp := e.checkpoint(t, p.name); cp != before {
		t.Fatalf("checkpoint after rebuild %s, before %s", cp, before)
	}
}

// TestLateCommit: an append whose transaction commits after later appends
// is still applied, before them (the store's commit-order-safe read).
func TestLateCommit(t *testing.T) {
	e := newEnv(t, "postgres")
	p := &testProjection{name: "late.v1"}
	run := start(t, e, p, projections.Options{})
	waitFor(t, within, "live", func() bool { return run.r.Status().State == projections.StateLive })

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := uuid.Must(uuid.NewV7())
	if _, err := tx.Exec(ctx, `INSERT INTO eventstore.events (event_id, stream_id, version, type, schema_version, data, created_at)
		VALUES ($1, 't-held', 0, 'test.held', 1, '{}', now())`, held); err != nil {
		t.Fatal(err)
	}
	e.appendN(t, "t", 10)
	if n := e.count(p.name); n != 0 {
		t.Fatalf("%d events applied while an earlier append is open", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "11 rows", func() bool { return e.count(p.name) == 11 })
	got := e.rows(t, p.name)
	if got[0] != held {
		t.Fatalf("first row %s, want the late-committed event %s", got[0], held)
	}
	sameIDs(t, "read model", got, ids(e.logOf(t, eventstore.Filter{})))
}

// TestExclusive: of several processes running work under one Exclusive
// name, one at a time runs it; each gets its turn.
func TestExclusive(t *testing.T) {
	e := newEnv(t, "memory")
	var active, overlaps, ran atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			err := projections.Exclusive(context.Background(), e.pool, "worker.test", 10*time.Millisecond, quiet(),
				func(ctx context.Context) error {
					if active.Add(1) > 1 {
						overlaps.Add(1)
					}
					defer active.Add(-1)
					ran.Add(1)
					// Some work on the database while holding the lock.
					_, err := e.pool.Exec(ctx, "SELECT pg_sleep(0.05)")
					return err
				})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ran.Load() != 3 || overlaps.Load() != 0 {
		t.Fatalf("%d ran, %d overlapped; want 3 and 0", ran.Load(), overlaps.Load())
	}
}
