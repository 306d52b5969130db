package readapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// appendOne appends one event to stream and returns its position.
func appendOne(t *testing.T, st eventstore.Store, stream, typ string) eventstore.Position {
	t.Helper()
	res, err := st.Append(context.Background(), stream, eventstore.Any, eventstore.EventData{Type: typ, Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	return res.Position
}

// TestAwait: the wait ends once the checkpoint reaches the last event up to
// the token that the projection consumes, not the token itself; a token
// beyond the log waits out MaxWait.
func TestAwait(t *testing.T) {
	st := memory.New()
	p := pgread.OrdersProjection{}
	order1 := appendOne(t, st, "order-00000000-0000-0000-0000-000000000001", "order.created")
	user1 := appendOne(t, st, "user-00000000-0000-0000-0000-000000000002", "user.registered")
	order2 := appendOne(t, st, "order-00000000-0000-0000-0000-000000000003", "order.created")
	user2 := appendOne(t, st, "user-00000000-0000-0000-0000-000000000004", "user.registered")

	for _, c := range []struct {
		name       string
		checkpoint eventstore.Position
		token      eventstore.Position
		log        LogReader
		want       bool
	}{
		{"checkpoint at the token", order2, order2, st, true},
		{"checkpoint past the token", order2, order1, st, true},
		{"only ignored events after the checkpoint", order2, user2, st, true},
		{"a consumed event not applied yet", order1, user2, st, false},
		{"an ignored token, without the log", order2, user2, nil, false},
		{"ignored events after the checkpoint, without the log", order1, user1, nil, false},
		{"ignored events after the checkpoint", order1, user1, st, true},
		{"a token beyond the log", order2, eventstore.Position{Commit: 1 << 40}, st, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := New(Config{
				Log: c.log, MaxWait: 100 * time.Millisecond, Poll: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
				Checkpoint: func(context.Context, string) (eventstore.Position, error) { return c.checkpoint, nil },
			})
			start := time.Now()
			if got := s.await(context.Background(), p, c.token); got != c.want {
				t.Fatalf("await = %v, want %v", got, c.want)
			}
			if c.want && time.Since(start) > 50*time.Millisecond {
				t.Errorf("took %s to find it was fresh", time.Since(start))
			}
		})
	}
}

// TestAwaitFollowsCheckpoint: a waiting request is released when the
// checkpoint moves on to what it needs.
func TestAwaitFollowsCheckpoint(t *testing.T) {
	st := memory.New()
	target := appendOne(t, st, "order-00000000-0000-0000-0000-000000000001", "order.created")
	moved := make(chan struct{})
	s := New(Config{
		Log: st, MaxWait: 2 * time.Second, Poll: time.Millisecond,
		Checkpoint: func(context.Context, string) (eventstore.Position, error) {
			select {
			case <-moved:
				return target, nil
			default:
				return eventstore.Start, nil
			}
		},
	})
	time.AfterFunc(20*time.Millisecond, func() { close(moved) })
	if !s.await(context.Background(), pgread.OrdersProjection{}, target) {
		t.Fatal("await gave up although the checkpoint reached the token")
	}
}

func TestParameters(t *testing.T) {
	for query, bad := range map[string][]string{
		"":                          nil,
		"page=2&limit=100":          nil,
		"status=paid":               nil,
		"limit=101":                 {"limit"},
		"limit=0&page=0":            {"page", "limit"},
		"page=x&limit=1.5":          {"page", "limit"},
		"status=abandoned":          {"status"},
		"status=PAID&limit=-1":      {"limit", "status"},
		"page=1000000000":           nil,
		"page=1000000001":           {"page"},
		"page=99999999999999999":    {"page"},
		"page=99999999999999999999": {"page"},
	} {
		q, _ := url.ParseQuery(query)
		var f domain.Fields
		pagination(q, &f)
		statusParam(q, &f)
		var got []string
		for _, e := range f {
			got = append(got, e.Field)
		}
		if len(got) != len(bad) {
			t.Errorf("%q: bad %v, want %v", query, got, bad)
			continue
		}
		for i := range got {
			if got[i] != bad[i] {
				t.Errorf("%q: bad %v, want %v", query, got, bad)
			}
		}
	}
	q, _ := url.ParseQuery("")
	var f domain.Fields
	if page, limit := pagination(q, &f); page != 1 || limit != pgread.DefaultLimit {
		t.Errorf("defaults: page %d, limit %d", page, limit)
	}
}

func TestNoneMatch(t *testing.T) {
	for header, want := range map[string]bool{
		`"3"`: true, `W/"3"`: true, `"1", "3"`: true, `*`: true,
		``: false, `"4"`: false, `3`: false, `"33"`: false,
	} {
		if got := noneMatch(header, `"3"`); got != want {
			t.Errorf("If-None-Match %q against \"3\": %v, want %v", header, got, want)
		}
	}
}

// TestAwaitBoundsWaiters: once maxWaiters requests wait, the next one is
// not made to wait: it answers stale at once, and a slot freed is taken
// again.
func TestAwaitBoundsWaiters(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, maxWaiters)
	s := New(Config{
		MaxWait: time.Minute, Poll: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Checkpoint: func(ctx context.Context, _ string) (eventstore.Position, error) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
			return eventstore.Position{Commit: 1 << 40}, nil
		},
	})
	p := pgread.OrdersProjection{}
	token := eventstore.Position{Commit: 1 << 30}
	done := make(chan bool, maxWaiters)
	for range maxWaiters {
		go func() { done <- s.await(context.Background(), p, token) }()
	}
	for range maxWaiters {
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the waiters did not all start")
		}
	}
	if s.await(context.Background(), p, token) {
		t.Fatal("a request beyond maxWaiters waited and reported fresh")
	}
	close(release)
	for range maxWaiters {
		if !<-done {
			t.Fatal("a waiting request did not see its checkpoint")
		}
	}
	if !s.await(context.Background(), p, token) {
		t.Fatal("a request after the waiters left was not served fresh")
	}
}

// watcher is a ProgressWatcher a test moves by hand.
type watcher struct {
	mu      sync.Mutex
	known   bool
	pos     eventstore.Position
	changed chan struct{}
}

func newWatcher() *watcher { return &watcher{changed: make(chan struct{})} }

func (w *watcher) Watch(string) (eventstore.Position, bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos, w.known, w.changed
}

func (w *watcher) set(known bool, pos eventstore.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.known, w.pos = known, pos
	close(w.changed)
	w.changed = make(chan struct{})
}

// TestAwaitTakesProgress: while the process knows the projection's
// checkpoint (its runner is the active instance here), a waiting request
// neither reads the checkpoint from the database nor polls: it is woken
// by the commit that reaches its token. It asks the database again once
// the process no longer knows.
func TestAwaitTakesProgress(t *testing.T) {
	st := memory.New()
	before := appendOne(t, st, "order-00000000-0000-0000-0000-000000000001", "order.created")
	target := appendOne(t, st, "order-00000000-0000-0000-0000-000000000002", "order.created")
	var reads atomic.Int64
	w := newWatcher()
	w.set(true, before)
	s := New(Config{
		Log: st, MaxWait: 5 * time.Second, Poll: time.Hour, Progress: w, Logger: slog.New(slog.DiscardHandler),
		Checkpoint: func(context.Context, string) (eventstore.Position, error) {
			reads.Add(1)
			return target, nil
		},
	})
	time.AfterFunc(20*time.Millisecond, func() { w.set(true, target) })
	start := time.Now()
	if !s.await(context.Background(), pgread.OrdersProjection{}, target) {
		t.Fatal("await gave up although the commit reached the token")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s: the commit did not wake the request", took)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("read the checkpoint from the database %d times while the process knew it", n)
	}
	w.set(false, eventstore.Position{})
	if !s.await(context.Background(), pgread.OrdersProjection{}, target) || reads.Load() == 0 {
		t.Fatalf("await = false or no database read (%d) once the process no longer knew the checkpoint", reads.Load())
	}
}
