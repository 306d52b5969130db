package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/projections"
)

// testProjection writes one row per event into t_<name>. Hooks, when set,
// run inside Apply after the rows are inserted; an error they return
// fails the batch.
type testProjection struct {
	name   string
	filter eventstore.Filter
	after  func(ctx context.Context, batch []eventstore.Event) error
	// afterTx is like after, with the transaction.
	afterTx func(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error
	calls   atomic.Int64 // Apply calls
}

func (p *testProjection) Name() string              { return p.name }
func (p *testProjection) Filter() eventstore.Filter { return p.filter }
func (p *testProjection) table() string             { return pgx.Identifier{tableName(p.name)}.Sanitize() }
func (p *testProjection) Schema() string            { return "public" }
func (p *testProjection) Tables() []string          { return []string{tableName(p.name)} }

func tableName(name string) string {
	return "t_" + strings.NewReplacer(".", "_", "-", "_").Replace(name)
}

func tableOf(name string) string { return pgx.Identifier{tableName(name)}.Sanitize() }

func (p *testProjection) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+p.table()+
		" (event_id uuid PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL, seq bigserial)")
	return err
}

func (p *testProjection) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	p.calls.Add(1)
	ids, streams, versions := make([]string, len(batch)), make([]string, len(batch)), make([]int64, len(batch))
	for i, e := range batch {
		ids[i], streams[i], versions[i] = e.ID.String(), e.StreamID, e.Version
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+p.table()+` (event_id, stream, version)
		SELECT id::uuid, s, v FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS u(id, s, v, n) ORDER BY n`,
		ids, streams, versions)
	if err != nil {
		return err
	}
	if p.after != nil {
		return p.after(ctx, batch)
	}
	if p.afterTx != nil {
		return p.afterTx(ctx, tx, batch)
	}
	return nil
}

// env is a database for checkpoints and read models plus an event store.
type env struct {
	url   string
	pool  *pgxpool.Pool
	store eventstore.Store
}

// newEnv gives a fresh database and an event store: kind "memory" or
// "postgres" (in the same database).
func newEnv(t *testing.T, kind string) *env {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{url: url, pool: pool}
	switch kind {
	case "memory":
		e.store = memory.New()
	case "postgres":
		s, err := postgres.Open(context.Background(), url, postgres.Options{PollInterval: 50 * time.Millisecond,
			Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		e.store = s
	default:
		t.Fatalf("unknown store %q", kind)
	}
	return e
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// appendN appends n events of type "test.happened" to streams named
// prefix-0 … prefix-6, ten at a time.
func (e *env) appendN(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i += 10 {
		var evs []eventstore.EventData
		for j := i; j < min(i+10, n); j++ {
			evs = append(evs, eventstore.EventData{Type: "test.happened", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, j))})
		}
		if _, err := e.store.Append(context.Background(), fmt.Sprintf("%s-%d", prefix, (i/10)%7), eventstore.Any, evs...); err != nil {
			t.Fatal(err)
		}
	}
}

// logOf reads the whole log and keeps what filter matches.
func (e *env) logOf(t *testing.T, filter eventstore.Filter) []eventstore.Event {
	t.Helper()
	return eventstoretest.ReadAllMatching(t, e.store, filter, 1000)
}

func ids(evs []eventstore.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// rows returns the event ids in the projection's table in insertion order.
func (e *env) rows(t *testing.T, name string) []uuid.UUID {
	t.Helper()
	rs, err := e.pool.Query(context.Background(), "SELECT event_id FROM "+tableOf(name)+" ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rs, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// count is like len(rows) but tolerates a table not created yet.
func (e *env) count(name string) int {
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+tableOf(name)).Scan(&n); err != nil {
		return -1
	}
	return n
}

func (e *env) checkpoint(t *testing.T, name string) eventstore.Position {
	t.Helper()
	var c, p int64
	err := e.pool.QueryRow(context.Background(), "SELECT commit, prepare FROM projections.checkpoints WHERE name = $1", name).Scan(&c, &p)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Start
	}
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.Position{Commit: uint64(c), Prepare: uint64(p)}
}

// sameIDs fails t unless got equals want, element by element.
func sameIDs(t *testing.T, what string, got, want []uuid.UUID) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	i := 0
	for i < min(len(got), len(want)) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: %d rows, want %d; first difference at row %d", what, len(got), len(want), i)
}

// running is a runner started in the background.
type running struct {
	r      *projections.Runner
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func start(t *testing.T, e *env, p projections.Projection, opts projections.Options) *running {
	t.Helper()
	opts = testOptions(opts)
	return startRunner(t, projections.NewRunner(e.pool, e.store, p, opts))
}

// testOptions fills the options tests leave out.
func testOptions(opts projections.Options) projections.Options {
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	if opts.LockPoll == 0 {
		opts.LockPoll = 50 * time.Millisecond
	}
	return opts
}

// startRunner runs r in the background until t ends.
func startRunner(t *testing.T, r *projections.Runner) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, cancel: cancel, done: make(chan error, 1)}
	go func() { run.done <- run.r.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	return run
}

// stop cancels the runner and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of its context ending")
		}
	})
}

// waitFor polls cond until it holds, failing t after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
