package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

// holdSlots takes every slot of s's grouper, so that appends queue, and
// returns what lets the queue go once n appends wait: the slot that frees
// takes them into one statement.
func holdSlots(t *testing.T, s *Store) (release func(n int)) {
	g := &s.group
	g.mu.Lock()
	g.busy = g.slots
	g.mu.Unlock()
	return func(n int) {
		waitQueued(t, s, n)
		g.mu.Lock()
		g.busy = 1 // the other slots stay taken: one statement takes them all
		g.mu.Unlock()
		g.leave()
	}
}

// waitQueued waits until n appends wait in s's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	g := &s.group
	testwait.Until(t, 10*time.Second, func() string {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.queue) < n {
			return fmt.Sprintf("%d of %d appends queued", len(g.queue), n)
		}
		return ""
	})
}

// outcome is what one append of a group got back.
type outcome struct {
	res []eventstore.AppendResult
	err error
}

// TestGroupMembersKeepTheirOwnConditions: appends sharing one statement
// are decided each on its own. In one group: two appends that hold, a
// multi-stream append one of whose streams does not hold (nothing of it
// is written), an append at a stale version (it gets the conflict), and a
// retry of an append already written (it gets the first result). The two
// that hold are committed by the group's statement itself.
func TestGroupMembersKeepTheirOwnConditions(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	ctx := eventstoretest.Ctx(t)
	p := eventstoretest.Prefix(t)
	eventstoretest.MustAppend(t, s, p+"stale", eventstore.NoStream, eventstoretest.Ev("x", 0), eventstoretest.Ev("x", 1))
	eventstoretest.MustAppend(t, s, p+"old", eventstore.NoStream, eventstoretest.Ev("x", 10))
	retried := eventstoretest.Ev("x", 2)
	first := eventstoretest.MustAppend(t, s, p+"retried", eventstore.NoStream, retried)

	release := holdSlots(t, s)
	before := s.group.grouped.Load()
	out := make([]outcome, 5)
	var wg sync.WaitGroup
	run := func(i int, f func() ([]eventstore.AppendResult, error)) {
		wg.Go(func() {
			res, err := f()
			out[i] = outcome{res, err}
		})
	}
	one := func(stream string, exp eventstore.ExpectedVersion, ev eventstore.EventData) func() ([]eventstore.AppendResult, error) {
		return func() ([]eventstore.AppendResult, error) {
			r, err := s.Append(ctx, stream, exp, ev)
			return []eventstore.AppendResult{r}, err
		}
	}
	run(0, one(p+"a", eventstore.NoStream, eventstoretest.Ev("x", 3)))
	run(1, func() ([]eventstore.AppendResult, error) {
		return s.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: p + "m1", Expected: eventstore.NoStream, Events: []eventstore.EventData{eventstoretest.Ev("x", 4)}},
			eventstore.StreamAppend{Stream: p + "m2", Expected: eventstore.NoStream, Events: []eventstore.EventData{eventstoretest.Ev("x", 5), eventstoretest.Ev("x", 6)}})
	})
	run(2, func() ([]eventstore.AppendResult, error) {
		return s.AppendMulti(ctx,
			eventstore.StreamAppend{Stream: p + "n1", Expected: eventstore.NoStream, Events: []eventstore.EventData{eventstoretest.Ev("x", 7)}},
			eventstore.StreamAppend{Stream: p + "stale", Expected: eventstore.Exact(0), Events: []eventstore.EventData{eventstoretest.Ev("x", 8)}})
	})
	run(3, one(p+"old", eventstore.NoStream, eventstoretest.Ev("x", 9)))
	run(4, one(p+"retried", eventstore.NoStream, retried))
	release(5)
	wg.Wait()

	if err := out[0].err; err != nil || out[0].res[0].Version != 0 {
		t.Fatalf("a new stream: %+v", out[0])
	}
	if err := out[1].err; err != nil || out[1].res[0].Version != 0 || out[1].res[1].Version != 1 {
		t.Fatalf("a multi-stream append that holds: %+v", out[1])
	}
	var wrong *eventstore.WrongExpectedVersionError
	if !errors.As(out[2].err, &wrong) || wrong.Stream != p+"stale" || wrong.Actual != 1 {
		t.Fatalf("a multi-stream append whose second stream moved on: %+v", out[2])
	}
	if !errors.As(out[3].err, &wrong) || wrong.Stream != p+"old" || wrong.Actual != 0 {
		t.Fatalf("an append to a stream that exists, expecting none: %+v", out[3])
	}
	if err := out[4].err; err != nil || out[4].res[0] != first {
		t.Fatalf("a retry: %+v, first written as %+v", out[4], first)
	}
	if evs := eventstoretest.ReadStreamAll(t, s, p+"n1"); len(evs) != 0 {
		t.Fatalf("the failed multi-stream append wrote %d events", len(evs))
	}
	if evs := eventstoretest.ReadStreamAll(t, s, p+"stale"); len(evs) != 2 {
		t.Fatalf("the stale stream holds %d events, want 2", len(evs))
	}
	if evs := eventstoretest.ReadStreamAll(t, s, p+"retried"); len(evs) != 1 {
		t.Fatalf("the retried stream holds %d events, want 1", len(evs))
	}
	// The a and m appends share their statement and its transaction.
	if n := s.group.grouped.Load() - before; n != 2 {
		t.Fatalf("%d appends committed by the group's statement, want 2", n)
	}
	if out[0].res[0].Position.Commit != out[1].res[1].Position.Commit {
		t.Fatalf("the group's appends committed in different transactions: %+v, %+v", out[0].res, out[1].res)
	}
	all := eventstoretest.ReadAllPrefix(t, s, p, 100)
	if len(all) != 4+4 {
		t.Fatalf("%d events under the prefix, want 8", len(all))
	}
}

// TestGroupThatFailsSendsItsMembersAlone: a statement that fails as a
// whole (one member reuses an event id of another stream) writes nothing,
// and each of its members then runs on its own: the others succeed, the
// reused id is refused.
func TestGroupThatFailsSendsItsMembersAlone(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	ctx := eventstoretest.Ctx(t)
	p := eventstoretest.Prefix(t)
	used := eventstoretest.Ev("x", 0)
	eventstoretest.MustAppend(t, s, p+"owner", eventstore.NoStream, used)

	release := holdSlots(t, s)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, stream := range []string{"a", "thief", "b"} {
		ev := eventstoretest.Ev("x", i+1)
		if stream == "thief" {
			ev = used
		}
		wg.Go(func() { _, errs[i] = s.Append(ctx, p+stream, eventstore.NoStream, ev) })
	}
	release(3)
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("members that hold failed: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], eventstore.ErrDuplicateEventID) {
		t.Fatalf("the reused event id: %v, want ErrDuplicateEventID", errs[1])
	}
	if n := s.group.grouped.Load(); n != 0 {
		t.Fatalf("%d appends counted as committed by the failed statement", n)
	}
	if all := eventstoretest.ReadAllPrefix(t, s, p, 100); len(all) != 3 {
		t.Fatalf("%d events under the prefix, want 3", len(all))
	}
}

// TestGroupKeepsToTheLimitsOfOneAppend: two appends that together hold
// more event data than one append may are not put in one statement.
func TestGroupKeepsToTheLimitsOfOneAppend(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	ctx := eventstoretest.Ctx(t)
	p := eventstoretest.Prefix(t)
	big := func() eventstore.EventData {
		e := eventstoretest.Ev("x", 0)
		e.Data = []byte(`{"s":"` + strings.Repeat("a", eventstore.MaxAppendBytes*6/10) + `"}`)
		return e
	}
	release := holdSlots(t, s)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Append(ctx, fmt.Sprintf("%sbig-%d", p, i), eventstore.NoStream, big()) })
	}
	release(2)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("appends: %v, %v", errs[0], errs[1])
	}
	if n := s.group.grouped.Load(); n != 0 {
		t.Fatalf("%d appends of over half the byte limit each shared a statement", n)
	}
}

// TestQueuedAppendGivesUp: an append whose context ends while it waits
// for a statement returns the context's error and is never written, and
// the queue goes on without it.
func TestQueuedAppendGivesUp(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	p := eventstoretest.Prefix(t)
	release := holdSlots(t, s)
	ctx, cancel := context.WithCancel(eventstoretest.Ctx(t))
	gaveUp := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, p+"quitter", eventstore.NoStream, eventstoretest.Ev("x", 0))
		gaveUp <- err
	}()
	stayed := make(chan error, 1)
	go func() {
		_, err := s.Append(eventstoretest.Ctx(t), p+"stayer", eventstore.NoStream, eventstoretest.Ev("x", 1))
		stayed <- err
	}()
	waitQueued(t, s, 2)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled append: %v, want context.Canceled", err)
	}
	release(1)
	if err := <-stayed; err != nil {
		t.Fatalf("the append that waited on: %v", err)
	}
	if evs := eventstoretest.ReadStreamAll(t, s, p+"quitter"); len(evs) != 0 {
		t.Fatalf("the cancelled append was written: %d events", len(evs))
	}
}

// TestConcurrentAppendsShareStatements: many writers appending at once,
// each to its own streams at exact versions and some across two streams,
// all succeed, every stream holds its events in order, most appends share
// a statement, and Close with appends queued returns.
func TestConcurrentAppendsShareStatements(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t), Options{})
	ctx := eventstoretest.Ctx(t)
	p := eventstoretest.Prefix(t)
	const writers, appends = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			a, b := fmt.Sprintf("%sw%d-a", p, w), fmt.Sprintf("%sw%d-b", p, w)
			va, vb := eventstore.NoStream, eventstore.NoStream
			for i := range appends {
				if i%4 == 3 {
					res, err := s.AppendMulti(ctx,
						eventstore.StreamAppend{Stream: a, Expected: va, Events: []eventstore.EventData{eventstoretest.Ev("x", i)}},
						eventstore.StreamAppend{Stream: b, Expected: vb, Events: []eventstore.EventData{eventstoretest.Ev("x", i)}})
					if err != nil {
						t.Error(err)
						return
					}
					va, vb = eventstore.Exact(res[0].Version), eventstore.Exact(res[1].Version)
					continue
				}
				res, err := s.Append(ctx, a, va, eventstoretest.Ev("x", i))
				if err != nil {
					t.Error(err)
					return
				}
				va = eventstore.Exact(res.Version)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range writers {
		a := eventstoretest.ReadStreamAll(t, s, fmt.Sprintf("%sw%d-a", p, w))
		if len(a) != appends {
			t.Fatalf("writer %d's stream holds %d events, want %d", w, len(a), appends)
		}
		for i, e := range a {
			if e.Version != int64(i) || string(e.Data) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("writer %d's event %d: version %d, data %s", w, i, e.Version, e.Data)
			}
		}
	}
	grouped := s.group.grouped.Load()
	t.Logf("%d of %d appends shared a statement", grouped, writers*appends)
	if grouped == 0 {
		t.Fatal("no append shared a statement with another")
	}

	// Close while appends wait in the queue: they return (each runs on
	// its own, racing the pool's close), and so does Close.
	holdSlots(t, s)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := s.Append(ctx, fmt.Sprintf("%slate-%d", p, i), eventstore.NoStream, eventstoretest.Ev("x", i))
			errs <- err
		}()
	}
	waitQueued(t, s, 3)
	s.Close()
	for range 3 {
		select {
		case <-errs:
		case <-time.After(10 * time.Second):
			t.Fatal("an append queued at Close has not returned 10 s after it")
		}
	}
}
