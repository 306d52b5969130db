package postgres

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// tailSize and tailBytes bound the newest events the tail keeps: it
// drops the oldest once it holds twice either, down to both.
var (
	tailSize  = 4096
	tailBytes = 16 << 20
)

// eventBytes is what e costs the tail, roughly: its data and a share for
// the rest.
func eventBytes(e *eventstore.Event) int { return len(e.Data) + 512 }

// tail is one reader of the log's newest events shared by the store's
// subscriptions. Without it every live subscription of a process (each
// projection, the publisher, the notifier, the process manager) read the
// log on every append, two statements each: under load that was half of
// every statement PostgreSQL ran. The tail reads once per wake-up and
// keeps the newest events (tailSize, tailBytes); a subscription whose
// position lies within them reads its page from memory, and one further
// behind (a catch-up, a rebuild) reads PostgreSQL as before, until it
// reaches them.
//
// Its events are contiguous in the global order: it reads them with the
// store's readAll, which never skips an event whose transaction commits
// late, from the head it found when it started. Pages share the events'
// data with every other subscription, read-only.
type tail struct {
	store *Store
	wake  *eventstore.Waker // woken when events are added

	mu     sync.Mutex
	ready  bool                // start holds the head the events follow
	start  eventstore.Position // what the first event follows
	events []eventstore.Event  // in global order
	bytes  int                 // eventBytes of events
}

// page returns the events after from, at most count, when the tail holds
// them all: from lies between its start and its last event. ok is false
// otherwise, and the caller reads the store.
func (t *tail) page(from eventstore.Position, count int) (events []eventstore.Event, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready || from.Less(t.start) {
		return nil, false
	}
	if n := len(t.events); n > 0 && t.events[n-1].Position.Less(from) {
		return nil, false // beyond what the tail has read
	} else if n == 0 && from != t.start {
		return nil, false
	}
	i, _ := slices.BinarySearchFunc(t.events, from, func(e eventstore.Event, p eventstore.Position) int {
		switch {
		case e.Position.Less(p):
			return -1
		case p.Less(e.Position):
			return 1
		}
		return 0
	})
	if i < len(t.events) && t.events[i].Position == from {
		i++ // from is an event's position: the page begins after it
	}
	return slices.Clone(t.events[i:min(i+count, len(t.events))]), true
}

// add appends e, the event after the last one held. Beyond twice
// tailSize or tailBytes it drops the oldest down to both at once, so that
// an add moves one event on average rather than all of them.
func (t *tail) add(e eventstore.Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.bytes += eventBytes(&e)
	if len(t.events) > 2*tailSize || t.bytes > 2*tailBytes {
		drop := 0
		for len(t.events)-drop > tailSize || t.bytes > tailBytes {
			t.bytes -= eventBytes(&t.events[drop])
			drop++
		}
		t.start = t.events[drop-1].Position
		t.events = append(t.events[:0], t.events[drop:]...)
	}
	t.mu.Unlock()
	t.wake.Wake()
}

// follow reads the log from its head, as it grows, until the store
// closes, going on from its last event after an error.
func (t *tail) follow() {
	s := t.store
	var from eventstore.Position
	for n := 0; ; n++ {
		head, err := s.head(s.ctx)
		if err == nil {
			from = head
			break
		}
		if retry.Sleep(s.ctx, retry.Backoff(50*time.Millisecond, 5*time.Second, n)) != nil {
			return
		}
	}
	t.mu.Lock()
	t.start, t.ready = from, true
	t.mu.Unlock()
	t.wake.Wake()
	retry.Forever(s.ctx, s.log, "event store: shared reader", 50*time.Millisecond, 5*time.Second, func(ctx context.Context) error {
		return eventstore.CatchUp(from, eventstore.Filter{}, 1000, s.poll, s.wake, s.readAll)(ctx, func(e eventstore.Event) error {
			from = e.Position
			t.add(e)
			return nil
		})
	})
}

// headSQL is the position of the newest event every reader may see: no
// event will ever be inserted at or before it.
const headSQL = `SELECT coalesce(max(ARRAY[tx_id, id]), ARRAY[0, 0]::bigint[]) FROM (
	SELECT tx_id, id FROM events WHERE tx_id < ` + visibleBelow + ` ORDER BY tx_id DESC, id DESC LIMIT 1) AS h`

// head reads headSQL.
func (s *Store) head(ctx context.Context) (eventstore.Position, error) {
	var p []int64
	if err := s.pool.QueryRow(ctx, headSQL).Scan(&p); err != nil {
		return eventstore.Position{}, err
	}
	return eventstore.Position{Commit: uint64(p[0]), Prepare: uint64(p[1])}, nil
}

// readShared is readAll for subscriptions: from the tail when it holds
// the page, from PostgreSQL otherwise. At the tail's end it reports
// nothing held: the tail itself reads again while events are held back,
// and wakes its subscriptions when they come.
func (s *Store) readShared(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, bool, error) {
	if events, ok := s.tail.page(from, count); ok {
		return events, false, nil
	}
	return s.readAll(ctx, from, count)
}

// ReadAllThrough is ReadAll for a reader that needs the log only up to
// through (the read API's X-Min-Position, finding the last event a model
// needs before a client's token): it reads the newest events the store's
// subscriptions share (see tail) when they hold the page from from and
// reach through, and PostgreSQL otherwise. Like ReadAll, it returns the
// events after from in order, never skipping one, at most count; unlike
// ReadAll it may stop short of events committed since the tail last read
// when they lie after through.
func (s *Store) ReadAllThrough(ctx context.Context, from eventstore.Position, count int, through eventstore.Position) ([]eventstore.Event, error) {
	events, ok := s.tail.page(from, count)
	if ok && len(events) > 0 && (len(events) == count || !events[len(events)-1].Position.Less(through)) {
		return events, nil
	}
	return s.ReadAll(ctx, from, count)
}
