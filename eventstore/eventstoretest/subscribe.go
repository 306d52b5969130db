package eventstoretest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

const deliveryDeadline = 30 * time.Second

func testSubscribeHandoff(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	// More history than any adapter reads in one page, so catch-up takes
	// several reads while the writers below add more.
	const before, writers, each = 2500, 4, 75
	appendMany(t, s, p+"pre", "x.pre", before, 25)
	sub, err := s.SubscribeAll(Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Writers run while the subscription is still catching up, so events
	// land on both sides of the catch-up/live handoff.
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append(Ctx(t), p+string(rune('a'+w)), eventstore.Any, Ev("x.live", i)); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	got := Collect(t, sub, before+writers*each, deliveryDeadline)
	wg.Wait()
	want := ReadAllPrefix(t, s, p, 1000)
	sameIDs(t, "subscription vs read all", got, want)
	expectMarkerNext(t, s, sub, p+"marker")
}

// expectMarkerNext appends a marker to stream and checks that it is the
// next event the subscription delivers: no duplicate or stray event is
// waiting in between.
func expectMarkerNext(t *testing.T, s eventstore.Store, sub *eventstore.Subscription, stream string) {
	t.Helper()
	marker := Ev("x.marker", -1)
	MustAppend(t, s, stream, eventstore.Any, marker)
	if e := Collect(t, sub, 1, deliveryDeadline)[0]; e.ID != marker.ID {
		t.Fatalf("got %s on %s v%d where the marker was due", e.Type, e.StreamID, e.Version)
	}
}

// testSubscribeFrom resumes from a checkpoint: the position of an event
// that ReadAll delivered.
func testSubscribeFrom(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	for i := range 10 {
		MustAppend(t, s, p+"s", eventstore.Any, Ev("x.n", i))
	}
	read := ReadAllPrefix(t, s, p, 1000)
	if len(read) != 10 || N(t, read[6]) != 6 {
		t.Fatalf("read %d events, want the 10 appended", len(read))
	}
	sub, err := s.SubscribeAll(Ctx(t), read[6].Position, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := Collect(t, sub, 3, deliveryDeadline)
	for i, e := range got {
		if N(t, e) != 7+i {
			t.Fatalf("subscription from event 6's position delivered event %d at %d, want %d", N(t, e), i, 7+i)
		}
	}
	// Live events follow.
	MustAppend(t, s, p+"s", eventstore.Any, Ev("x.n", 10))
	if e := Collect(t, sub, 1, deliveryDeadline)[0]; N(t, e) != 10 {
		t.Fatalf("live event carries %d, want 10", N(t, e))
	}
}

func testFilters(t *testing.T, s eventstore.Store) {
	type write struct{ stream, typ string }
	writes := []write{
		{"order-1", "order.created"}, {"product-1", "product.created"},
		{"order-1", "order.paid"}, {"product-1", "inventory.reserved"},
		{"user-1", "user.registered"}, {"order-2", "order.created"},
		{"product-2", "product.created"}, {"order-2", "order.cancelled"},
	}
	for _, tc := range []struct {
		name    string
		types   []string
		streams []string
		want    []int
	}{
		{"type prefix", []string{"order."}, nil, []int{0, 2, 5, 7}},
		{"two type prefixes", []string{"user.", "inventory."}, nil, []int{3, 4}},
		{"stream prefix", nil, []string{"product-"}, []int{1, 3, 6}},
		{"stream and type", []string{"product."}, []string{"product-"}, []int{1, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Streams and types carry a prefix of this case's own, so the
			// filter can only match what this case writes, even on a
			// shared store.
			q := Prefix(t)
			tq := q[:9] + "."
			f := eventstore.Filter{}
			for _, p := range tc.types {
				f.EventTypePrefixes = append(f.EventTypePrefixes, tq+p)
			}
			for _, p := range tc.streams {
				f.StreamPrefixes = append(f.StreamPrefixes, q+p)
			}
			if len(f.StreamPrefixes) == 0 {
				f.StreamPrefixes = nil
			}
			for i, w := range writes {
				MustAppend(t, s, q+w.stream, eventstore.Any, Ev(tq+w.typ, i))
			}
			sub, err := s.SubscribeAll(Ctx(t), eventstore.Start, f)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			got := Collect(t, sub, len(tc.want), deliveryDeadline)
			for i, e := range got {
				if N(t, e) != tc.want[i] {
					t.Fatalf("event %d is write %d (%s on %s), want write %d", i, N(t, e), e.Type, e.StreamID, tc.want[i])
				}
			}
			// A matching marker written last proves nothing unmatched
			// slipped in after the expected events.
			last := writes[tc.want[len(tc.want)-1]]
			marker := Ev(tq+last.typ, 1000)
			MustAppend(t, s, q+last.stream, eventstore.Any, marker)
			if e := Collect(t, sub, 1, deliveryDeadline)[0]; e.ID != marker.ID {
				t.Fatalf("after the expected events came %s on %s, want the marker", e.Type, e.StreamID)
			}
		})
	}
}

func testSubscriptionClose(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	MustAppend(t, s, p+"c", eventstore.Any, Ev("x.n", 1))
	sub, err := s.SubscribeAll(Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	Collect(t, sub, 1, deliveryDeadline)
	sub.Close()
	if err := sub.Err(); err != nil {
		t.Fatalf("closed subscription reports %v, want nil", err)
	}
	for range sub.Events() { // drains and ends: the channel is closed
	}

	ctx, cancel := context.WithCancel(Ctx(t))
	sub2, err := s.SubscribeAll(ctx, eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	Collect(t, sub2, 1, deliveryDeadline)
	cancel()
	select {
	case <-sub2.Done():
	case <-time.After(deliveryDeadline):
		t.Fatal("subscription did not end when its context was cancelled")
	}
	if err := sub2.Err(); err != nil {
		t.Fatalf("cancelled subscription reports %v, want nil", err)
	}
}

// ClosingEndsSubscriptions checks, for stores that can be closed, that
// closing s ends its subscriptions with eventstore.ErrClosed: one idle at
// the end of the log and one whose consumer stopped reading with more
// events due than its buffer holds.
func ClosingEndsSubscriptions(t *testing.T, s eventstore.Store, closeStore func() error) {
	t.Helper()
	idle, err := s.SubscribeAll(Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{Prefix(t)}})
	if err != nil {
		t.Fatal(err)
	}
	p := Prefix(t)
	appendMany(t, s, p+"fill", "x.fill", eventstore.SubscriptionBuffer+200, 100)
	stuck, err := s.SubscribeAll(Ctx(t), eventstore.Start, eventstore.Filter{StreamPrefixes: []string{p}})
	if err != nil {
		t.Fatal(err)
	}
	// Let the stuck one fill its buffer and block on the next event.
	Collect(t, stuck, 1, deliveryDeadline)
	for deadline := time.Now().Add(deliveryDeadline); len(stuck.Events()) < eventstore.SubscriptionBuffer; {
		if time.Now().After(deadline) {
			t.Fatalf("subscription buffered only %d events", len(stuck.Events()))
		}
		<-time.After(time.Millisecond)
	}
	if err := closeStore(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for name, sub := range map[string]*eventstore.Subscription{"idle": idle, "stuck": stuck} {
		select {
		case <-sub.Done():
		case <-time.After(deliveryDeadline):
			t.Fatalf("%s subscription still running %s after the store closed", name, deliveryDeadline)
		}
		if err := sub.Err(); !errors.Is(err, eventstore.ErrClosed) {
			t.Fatalf("%s subscription of a closed store ended with %v, want ErrClosed", name, err)
		}
	}
}
