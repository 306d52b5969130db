package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/syncbuf"
)

func openStore(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// heldAppend starts an append in a transaction it leaves open, as a slow
// writer would, and returns the transaction.
func heldAppend(t *testing.T, s *Store, stream string, ev eventstore.EventData) (pgx.Tx, *pgx.Conn) {
	t.Helper()
	ctx := eventstoretest.Ctx(t)
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := eventstore.PrepareAppend(stream, eventstore.Any, []eventstore.EventData{ev}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	args := appendArgs(stream, eventstore.Any, evs)
	if _, err := tx.Exec(ctx, appendStatement(args), args...); err != nil {
		t.Fatal(err)
	}
	return tx, conn
}

// readPrefix reads everything visible after from and keeps prefix's
// events; it returns them and the position a checkpointing reader would
// continue from.
func readPrefix(t *testing.T, s *Store, from eventstore.Position, prefix string) ([]eventstore.Event, eventstore.Position) {
	t.Helper()
	var out []eventstore.Event
	for {
		page, err := s.ReadAll(eventstoretest.Ctx(t), from, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			from = e.Position
			if len(e.StreamID) >= len(prefix) && e.StreamID[:len(prefix)] == prefix {
				out = append(out, e)
			}
		}
		if len(page) < 100 {
			return out, from
		}
	}
}

// TestLateCommit holds one append's transaction open while later appends
// commit, and checks that neither a checkpointing ReadAll reader nor a
// subscription skips the held event once it commits.
func TestLateCommit(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{PollInterval: time.Hour})
	p := eventstoretest.Prefix(t)
	sub, err := s.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	held := eventstoretest.Ev("x.held", 0)
	tx, _ := heldAppend(t, s, p+"slow", held)
	b := eventstoretest.MustAppend(t, s, p+"fast", eventstore.Any, eventstoretest.Ev("x.b", 1))
	eventstoretest.MustAppend(t, s, p+"fast", eventstore.Any, eventstoretest.Ev("x.c", 2))

	// The held event has the lower row id. Were the later ones readable
	// now, a reader would checkpoint past it and never see it.
	before, checkpoint := readPrefix(t, s, eventstore.Start, p)
	if len(before) != 0 {
		t.Fatalf("%d events readable while an earlier append is still open", len(before))
	}
	if !checkpoint.Less(b.Position) {
		t.Fatalf("reader checkpoint %s already past the later append at %s", checkpoint, b.Position)
	}

	if err := tx.Commit(eventstoretest.Ctx(t)); err != nil {
		t.Fatal(err)
	}
	s.committed() // the test appended outside Append; wake as Append would

	// Other sessions of the server (tests of other packages) may hold the
	// log back a little longer: wait for the held events, with a deadline.
	after, _ := readPrefix(t, s, checkpoint, p)
	for deadline := time.Now().Add(10 * time.Second); len(after) < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		after, _ = readPrefix(t, s, checkpoint, p)
	}
	if len(after) != 3 || after[0].ID != held.ID {
		t.Fatalf("after the commit the reader got %d events starting with %v, want 3 starting with the held one", len(after), after)
	}
	got := eventstoretest.Collect(t, sub, 3, 30*time.Second)
	for i := range got {
		if got[i].ID != after[i].ID {
			t.Fatalf("subscription event %d is %s, read all has %s", i, got[i].Type, after[i].Type)
		}
	}
}

// TestAbortedAppend kills the connection of an append in flight, as a
// crashed writer would: its events never appear, and later events flow.
func TestAbortedAppend(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{PollInterval: time.Hour})
	p := eventstoretest.Prefix(t)
	sub, err := s.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	lost := eventstoretest.Ev("x.lost", 0)
	_, conn := heldAppend(t, s, p+"crash", lost)
	pid := conn.PgConn().PID()
	later := eventstoretest.Ev("x.later", 1)
	eventstoretest.MustAppend(t, s, p+"other", eventstore.Any, later)
	if _, err := s.pool.Exec(eventstoretest.Ctx(t), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	// Nothing notifies about a dead transaction: the subscription must
	// notice by itself that the held-back event became readable.
	if e := eventstoretest.Collect(t, sub, 1, 30*time.Second)[0]; e.ID != later.ID {
		t.Fatalf("got %s, want the later event", e.Type)
	}
	if evs := eventstoretest.ReadStreamAll(t, s, p+"crash"); len(evs) != 0 {
		t.Fatalf("the aborted append left %d events", len(evs))
	}
	// The writer retries with the same ids: written once.
	res := eventstoretest.MustAppend(t, s, p+"crash", eventstore.NoStream, lost)
	again := eventstoretest.MustAppend(t, s, p+"crash", eventstore.NoStream, lost)
	if res != again || len(eventstoretest.ReadStreamAll(t, s, p+"crash")) != 1 {
		t.Fatalf("retry after the crash: %+v then %+v", res, again)
	}
}

// TestHeldByOtherTransaction: an unrelated transaction holding back the
// readable horizon delays delivery, and when it ends the subscription
// delivers without any notification (polling is set to an hour).
// While held, a warning names the transaction that holds the readers.
func TestHeldByOtherTransaction(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var logs syncbuf.Buffer
	s := openStore(t, url, Options{PollInterval: time.Hour, HeldWarning: 50 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	p := eventstoretest.Prefix(t)
	ctx := eventstoretest.Ctx(t)
	sub, err := s.SubscribeAll(ctx, eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE unrelated (x int); INSERT INTO unrelated VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	ev := eventstoretest.Ev("x.after", 1)
	eventstoretest.MustAppend(t, s, p+"s", eventstore.Any, ev)
	if evs, _ := readPrefix(t, s, eventstore.Start, p); len(evs) != 0 {
		t.Fatalf("event readable while an older transaction is open")
	}
	// Other transactions on the shared server may be older; the warning
	// lists the oldest few and, here, comes again until it names ours.
	s.held.mu.Lock()
	s.held.every = 10 * time.Millisecond
	s.held.mu.Unlock()
	want := fmt.Sprintf(`"pid":%d,`, other.PgConn().PID())
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no warning naming the blocking transaction (%s) within 30s; logs: %s", want, logs.String())
		}
		<-time.After(10 * time.Millisecond) // the subscription rereads on its own meanwhile
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if e := eventstoretest.Collect(t, sub, 1, 30*time.Second)[0]; e.ID != ev.ID {
		t.Fatalf("got %s, want the appended event", e.Type)
	}
}

// TestCrossProcessWake: a subscription on one store is woken by an append
// through another store on the same database, as between processes.
// Polling is set to an hour, so only LISTEN/NOTIFY can deliver in time.
func TestCrossProcessWake(t *testing.T) {
	url := pgtest.NewDatabase(t)
	writer := openStore(t, url, Options{PollInterval: time.Hour})
	reader := openStore(t, url, Options{PollInterval: time.Hour})
	p := eventstoretest.Prefix(t)
	sub, err := reader.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for i := range 20 {
		ev := eventstoretest.Ev("x.n", i)
		eventstoretest.MustAppend(t, writer, p+"s", eventstore.Any, ev)
		if e := eventstoretest.Collect(t, sub, 1, 30*time.Second)[0]; e.ID != ev.ID {
			t.Fatalf("event %d: got %s", i, e.Type)
		}
	}
}
