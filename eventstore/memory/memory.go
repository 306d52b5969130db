// Package memory is an in-process event store. It is the working fake that
// unit tests of higher layers use, and passes the same conformance suite as
// the durable adapters. Nothing survives the process.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
)

// Store keeps events in memory. The zero value is not usable; use New.
type Store struct {
	mu      sync.RWMutex
	log     []eventstore.Event // global order; log[i].Position.Commit == i+1
	streams map[string][]int   // stream id → indexes into log
	byID    map[uuid.UUID]int  // event id → index into log
	wake    *eventstore.Waker
	now     func() time.Time
}

var (
	_ eventstore.Store         = (*Store)(nil)
	_ eventstore.MultiAppender = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		streams: map[string][]int{},
		byID:    map[uuid.UUID]int{},
		wake:    eventstore.NewWaker(),
		now:     time.Now,
	}
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	events, err := eventstore.PrepareAppend(stream, expected, events, s.now())
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res, ok := s.retried(stream, expected, events); ok {
		return res, nil
	}
	if err := s.admit(stream, expected, events); err != nil {
		return eventstore.AppendResult{}, err
	}
	res := s.write(stream, events)
	s.wake.Wake()
	return res, nil
}

// AppendMulti implements eventstore.MultiAppender: the parts are checked
// and written under one lock.
func (s *Store) AppendMulti(ctx context.Context, parts ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	parts, err := eventstore.PrepareAppendMulti(parts, s.now())
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	results := make([]eventstore.AppendResult, len(parts))
	retry := true
	for k, p := range parts {
		res, ok := s.retried(p.Stream, p.Expected, p.Events)
		results[k], retry = res, retry && ok
	}
	if retry {
		return results, nil
	}
	for _, p := range parts {
		if err := s.admit(p.Stream, p.Expected, p.Events); err != nil {
			return nil, err
		}
	}
	for k, p := range parts {
		results[k] = s.write(p.Stream, p.Events)
	}
	s.wake.Wake()
	return results, nil
}

// admit checks that an append of events to stream with expected, not a
// retry, may be written: the stream's version meets expected and no
// event id is taken.
func (s *Store) admit(stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) error {
	current := int64(len(s.streams[stream])) - 1
	if !expected.Satisfied(current) {
		return &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: current}
	}
	for _, e := range events {
		if _, dup := s.byID[e.ID]; dup {
			return fmt.Errorf("append to %s: event %s: %w", stream, e.ID, eventstore.ErrDuplicateEventID)
		}
	}
	return nil
}

// write appends events to stream, whose conditions admit checked, and
// returns the result.
func (s *Store) write(stream string, events []eventstore.EventData) eventstore.AppendResult {
	current := int64(len(s.streams[stream])) - 1
	for _, e := range events {
		current++
		n := len(s.log)
		s.log = append(s.log, eventstore.Event{
			EventData: e,
			StreamID:  stream,
			Version:   current,
			Position:  eventstore.Position{Commit: uint64(n + 1), Prepare: uint64(n + 1)},
		})
		s.streams[stream] = append(s.streams[stream], n)
		s.byID[e.ID] = n
	}
	return eventstore.AppendResult{Version: current, Position: s.log[len(s.log)-1].Position}
}

// retried reports whether events were written before, in order, as a run
// of stream that an append with expected could have written, and that
// append's result.
func (s *Store) retried(stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, bool) {
	first, seen := s.byID[events[0].ID]
	if !seen || s.log[first].StreamID != stream || !expected.Satisfied(s.log[first].Version-1) {
		return eventstore.AppendResult{}, false
	}
	idx := s.streams[stream]
	from := int(s.log[first].Version)
	if from+len(events) > len(idx) {
		return eventstore.AppendResult{}, false
	}
	for i, e := range events {
		if s.log[idx[from+i]].ID != e.ID {
			return eventstore.AppendResult{}, false
		}
	}
	last := s.log[idx[from+len(events)-1]]
	return eventstore.AppendResult{Version: last.Version, Position: last.Position}, true
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error) {
	if err := eventstore.ValidateReadStream(stream, dir, from, count); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx := s.streams[stream]
	if len(idx) == 0 {
		return nil, eventstore.ErrStreamNotFound
	}
	out := []eventstore.Event{}
	if dir == eventstore.Forwards {
		for v := from; v < int64(len(idx)) && len(out) < count; v++ {
			out = append(out, s.log[idx[v]])
		}
		return out, nil
	}
	if from == eventstore.StreamEnd || from >= int64(len(idx)) {
		from = int64(len(idx)) - 1
	}
	for v := from; v >= 0 && len(out) < count; v-- {
		out = append(out, s.log[idx[v]])
	}
	return out, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, error) {
	if err := eventstore.ValidateCount(count); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	start := len(s.log) // Commit n is log[n-1]
	if from.Commit < uint64(start) {
		start = int(from.Commit)
	}
	end := min(start+count, len(s.log))
	return slices.Clone(s.log[start:end]), nil
}

// SubscribeAll implements eventstore.Store.
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, filter eventstore.Filter) (*eventstore.Subscription, error) {
	read := func(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, bool, error) {
		evs, err := s.ReadAll(ctx, from, count)
		return evs, false, err
	}
	return eventstore.NewSubscription(ctx, eventstore.CatchUp(from, filter, 256, time.Minute, s.wake, read)), nil
}

var _ eventstore.Counter = (*Store)(nil)

// CountAfter implements eventstore.Counter.
func (s *Store) CountAfter(ctx context.Context, from eventstore.Position, filter eventstore.Filter, limit int64) (int64, eventstore.Position, error) {
	if limit < 1 {
		return 0, from, &eventstore.ValidationError{Field: "limit", Reason: "must be at least 1"}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n, last := int64(0), from
	for i := min(from.Commit, uint64(len(s.log))); i < uint64(len(s.log)) && n < limit; i++ {
		if e := &s.log[i]; filter.Match(e) {
			n, last = n+1, e.Position
		}
	}
	return n, last, nil
}
