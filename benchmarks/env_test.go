package benchmarks_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/projections"
)

// env is the read side's storage as cmd/eventshop wires it on one
// database: the PostgreSQL event store, a pool of its own for the read
// models and checkpoints (pgxpool's defaults, as DATABASE_URL without
// pool settings gives), and the catalogue's MongoDB (an embedded
// FerretDB, on a PostgreSQL database of its own, as the local run has it).
type env struct {
	dbURL string
	store *postgres.Store
	pool  *pgxpool.Pool
	mongo *mongo.Database
}

// newEnv builds an env; withMongo adds the catalogue's MongoDB.
func newEnv(tb testing.TB, withMongo bool) *env {
	tb.Helper()
	ctx := context.Background()
	e := &env{dbURL: pgtest.NewDatabase(tb)}
	var err error
	if e.store, err = postgres.Open(ctx, e.dbURL, postgres.Options{Logger: quietLogger()}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.store.Close() })
	if e.pool, err = pgxpool.New(ctx, e.dbURL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.pool.Close)
	if err := projections.Migrate(ctx, e.pool); err != nil {
		tb.Fatal(err)
	}
	if withMongo {
		e.mongo = mongotest.NewDatabase(tb)
	}
	return e
}

// quietLogger passes on warnings and errors only: a failing projection
// must show, the routine lines must not drown the figures.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runnerOptions are the runtime's defaults but for LockPoll, which also
// sets how often an active runner looks for a rebuild request: 100 ms
// rather than 1 s, so that the rebuild figures are the rebuild's and not
// the wait for the request to be noticed.
func runnerOptions() projections.Options {
	return projections.Options{Logger: quietLogger(), LockPoll: 100 * time.Millisecond}
}

// running is a runner running in the background.
type running struct {
	r      *projections.Runner
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// start runs r in the background until stop, or until tb ends.
func start(tb testing.TB, r *projections.Runner) *running {
	ctx, cancel := context.WithCancel(context.Background())
	x := &running{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(x.done)
		if err := r.Run(ctx); err != nil {
			tb.Errorf("runner %s: %v", r.Name(), err)
		}
	}()
	tb.Cleanup(x.stop)
	return x
}

// stop ends the runner and waits for it.
func (x *running) stop() {
	x.once.Do(func() {
		x.cancel()
		<-x.done
	})
}

// waitApplied waits until r's checkpoint is at or past target, polling
// its in-process status (no I/O); it gives up after within.
func waitApplied(r *projections.Runner, target eventstore.Position, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		st := r.Status()
		if !st.Position.Less(target) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: checkpoint %s after %s, want %s (state %s, last error %q)",
				r.Name(), st.Position, within, target, st.State, st.LastError)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// copyChunk is how many events one COPY writes, in one transaction.
const copyChunk = 20_000

var eventColumns = []string{"event_id", "stream_id", "version", "type", "schema_version", "data",
	"correlation_id", "causation_id", "actor_id", "created_at"}

// writeLog writes events, in order, into the event table of the store
// whose pool is pool, with COPY in transactions of copyChunk events: the
// rows an Append of each event would have written, at a fraction of the
// cost (Append takes one stream at a time, and a simulated history of
// 200,000 events spans some 40,000 streams). Each event first passes the
// checks of Append (eventstore.PrepareAppend), and the table's constraints
// check every row. The positions are the store's: read them back with
// ReadAll.
func writeLog(tb testing.TB, pool *pgxpool.Pool, events []eventstore.Event) {
	tb.Helper()
	ctx := context.Background()
	for i := range events {
		e := &events[i]
		if _, err := eventstore.PrepareAppend(e.StreamID, eventstore.Any, []eventstore.EventData{e.EventData}, time.Now()); err != nil {
			tb.Fatalf("simulated event %d (%s v%d, %s): %v", i, e.StreamID, e.Version, e.Type, err)
		}
	}
	for i := 0; i < len(events); i += copyChunk {
		part := events[i:min(i+copyChunk, len(events))]
		_, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromSlice(len(part), func(j int) ([]any, error) {
			e := &part[j]
			m := e.Metadata
			return []any{e.ID, e.StreamID, e.Version, e.Type, int32(e.SchemaVersion), string(e.Data),
				m.CorrelationID, m.CausationID, m.ActorID, m.Timestamp}, nil
		}))
		if err != nil {
			tb.Fatalf("write the simulated log, events %d to %d: %v", i, i+len(part), err)
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE events"); err != nil {
		tb.Fatal(err)
	}
}
