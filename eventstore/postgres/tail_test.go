package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// TestSubscriptionsShareOneRead: live subscriptions of one store read the
// log once per append between them, not once each. Polling is set to an
// hour, so every read follows an append.
func TestSubscriptionsShareOneRead(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{PollInterval: time.Hour})
	p := eventstoretest.Prefix(t)
	const subs, appends = 6, 40
	var all []*eventstore.Subscription
	for range subs {
		sub, err := s.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		all = append(all, sub)
	}
	// Each subscription reaches the end of the (empty) log first.
	eventstoretest.MustAppend(t, s, p+"s", eventstore.Any, eventstoretest.Ev("x.first", 0))
	for _, sub := range all {
		eventstoretest.Collect(t, sub, 1, 30*time.Second)
	}
	before := s.reads.Load()
	for i := range appends {
		ev := eventstoretest.Ev("x.n", i)
		eventstoretest.MustAppend(t, s, p+"s", eventstore.Any, ev)
		for j, sub := range all {
			if e := eventstoretest.Collect(t, sub, 1, 30*time.Second)[0]; e.ID != ev.ID {
				t.Fatalf("subscription %d, event %d: got %s", j, i, e.Type)
			}
		}
	}
	// The shared reader reads on each wake-up: the append's own, and its
	// notification's when that comes after the read (and again while a
	// transaction holds events back). A read per subscription would be
	// at least subs per append.
	if reads := s.reads.Load() - before; reads > 3*appends {
		t.Fatalf("%d subscriptions read the log %d times for %d appends; want at most %d", subs, reads, appends, 3*appends)
	}
}

// TestSharedReaderKeepsOrder: subscriptions that start at the beginning,
// in the middle and at the end of a log being written by several writers
// at once, and one that falls far behind, each get every event once, in
// the global order, while the shared reader keeps only a few events and
// they move between it and PostgreSQL.
func TestSharedReaderKeepsOrder(t *testing.T) {
	for _, bound := range []struct {
		name         string
		size, nbytes int
	}{{"8 events", 8, 16 << 20}, {"1,500 bytes", 4096, 1500}} {
		t.Run(bound.name, func(t *testing.T) {
			oldSize, oldBytes := tailSize, tailBytes
			tailSize, tailBytes = bound.size, bound.nbytes
			t.Cleanup(func() { tailSize, tailBytes = oldSize, oldBytes })
			testSharedReaderKeepsOrder(t)
		})
	}
}

func testSharedReaderKeepsOrder(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{PollInterval: 50 * time.Millisecond})
	p := eventstoretest.Prefix(t)
	filter := eventstore.Filter{StreamPrefixes: []string{p}}
	ctx := eventstoretest.Ctx(t)
	const writers, each = 4, 100
	eventstoretest.MustAppend(t, s, p+"first", eventstore.Any, eventstoretest.Ev("x.first", 0))

	subscribe := func(from eventstore.Position) *eventstore.Subscription {
		sub, err := s.SubscribeAll(ctx, from, filter)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		return sub
	}
	early, slow := subscribe(eventstore.Start), subscribe(eventstore.Start)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(ctx, fmt.Sprintf("%sw%d-%d", p, w, i%7), eventstore.Any, eventstoretest.Ev("x.n", i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	got := make(map[string][]eventstore.Event)
	var mu sync.Mutex
	var readers sync.WaitGroup
	collect := func(name string, sub *eventstore.Subscription, n int) {
		readers.Go(func() {
			var evs []eventstore.Event
			timeout := time.After(time.Minute)
			for len(evs) < n {
				select {
				case e, ok := <-sub.Events():
					if !ok {
						t.Errorf("%s: the subscription ended after %d events: %v", name, len(evs), sub.Err())
						return
					}
					evs = append(evs, e)
				case <-timeout:
					t.Errorf("%s: %d of %d events within a minute", name, len(evs), n)
					return
				}
			}
			mu.Lock()
			got[name] = evs
			mu.Unlock()
		})
	}
	collect("early", early, 1+writers*each)
	// One that starts part-way: from the position of the 50th event.
	mid := eventstoretest.Collect(t, subscribe(eventstore.Start), 50, time.Minute)
	middle := subscribe(mid[49].Position)
	collect("middle", middle, 1+writers*each-50)
	wg.Wait()
	late := subscribe(eventstore.Start)
	collect("late", late, 1+writers*each)
	readers.Wait()
	collect("slow", slow, 1+writers*each) // its buffer filled long ago
	readers.Wait()

	if t.Failed() {
		return
	}
	want := eventstoretest.ReadAllPrefix(t, s, p, 100)
	if len(want) != 1+writers*each {
		t.Fatalf("the log holds %d events, want %d", len(want), 1+writers*each)
	}
	for name, evs := range got {
		w := want
		if name == "middle" {
			w = want[50:]
		}
		if len(evs) != len(w) {
			t.Fatalf("%s: %d events, want %d", name, len(evs), len(w))
		}
		for i := range w {
			if evs[i].ID != w[i].ID || evs[i].Position != w[i].Position {
				t.Fatalf("%s: event %d is %s at %s, want %s at %s", name, i, evs[i].ID, evs[i].Position, w[i].ID, w[i].Position)
			}
		}
	}
}

// TestReadAllThroughFromTheTail: a read that needs the log only up to a
// position the shared reader holds is served from it without a statement,
// and equals ReadAll; one that needs more than it holds reads PostgreSQL.
func TestReadAllThroughFromTheTail(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{PollInterval: time.Hour})
	p := eventstoretest.Prefix(t)
	sub, err := s.SubscribeAll(eventstoretest.Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Once it follows from the head, the appends below come after it.
	testwait.Until(t, 30*time.Second, func() string {
		s.tail.mu.Lock()
		defer s.tail.mu.Unlock()
		if !s.tail.ready {
			return "the shared reader did not start"
		}
		return ""
	})
	for i := range 10 {
		eventstoretest.MustAppend(t, s, p+"s", eventstore.Any, eventstoretest.Ev("x.n", i))
	}
	log := eventstoretest.Collect(t, sub, 10, 30*time.Second)
	testwait.Until(t, 30*time.Second, func() string {
		if evs, ok := s.tail.page(log[2].Position, 1000); !ok || len(evs) != 7 {
			return "the shared reader does not hold the appends"
		}
		return ""
	})
	ctx := eventstoretest.Ctx(t)
	want, err := s.ReadAll(ctx, log[2].Position, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		through eventstore.Position
		reads   int64
	}{
		{"through an event the tail holds", log[7].Position, 0},
		{"through the last event", log[9].Position, 0},
		{"through a position past the log", eventstore.Position{Commit: 1 << 40}, 1},
	} {
		// The shared reader may still read once, on the appends' late
		// notification: the fewest statements over a few tries are the
		// call's own.
		var got []eventstore.Event
		fewest := int64(-1)
		for range 5 {
			before := s.reads.Load()
			if got, err = s.ReadAllThrough(ctx, log[2].Position, 1000, c.through); err != nil {
				t.Fatal(err)
			}
			if reads := s.reads.Load() - before; fewest < 0 || reads < fewest {
				fewest = reads
			}
		}
		if fewest != c.reads {
			t.Errorf("%s: %d statements, want %d", c.name, fewest, c.reads)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d events, want ReadAll's %d", c.name, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Position != want[i].Position {
				t.Fatalf("%s: event %d is %s at %s, want %s at %s", c.name, i, got[i].ID, got[i].Position, want[i].ID, want[i].Position)
			}
		}
	}
}
