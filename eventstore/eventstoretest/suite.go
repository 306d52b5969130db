// Package eventstoretest is the conformance suite every eventstore adapter
// must pass: Run(t, newStore) from the adapter's own tests.
package eventstoretest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
)

// Option declares what an adapter can promise beyond the port's minimum.
type Option int

const (
	// UniqueEventIDs: the store refuses an event id used again other than
	// by a retry (EventStoreDB keeps no index of ids and cannot).
	UniqueEventIDs Option = iota + 1
	// Counts: the store is an eventstore.Counter.
	Counts
	// MultiStream: the store is an eventstore.MultiAppender.
	MultiStream
)

// Run runs the whole suite. newStore may return a fresh store or a shared
// one: every case works on streams named with a prefix of its own and looks
// at the global log only through that prefix.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store, opts ...Option) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s eventstore.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Timestamps", testTimestamps},
		{"ExpectedVersion", testExpectedVersion},
		{"ConcurrentSameVersion", testConcurrentSameVersion},
		{"ConcurrentAny", testConcurrentAny},
		{"IdempotentRetry", testIdempotentRetry},
		{"ConcurrentRetry", testConcurrentRetry},
		{"ReadStream", testReadStream},
		{"Paging", testPaging},
		{"ReadAllOrder", testReadAllOrder},
		{"ReadAllConcurrent", testReadAllConcurrent},
		{"SubscribeHandoff", testSubscribeHandoff},
		{"SubscribeFrom", testSubscribeFrom},
		{"Filters", testFilters},
		{"SubscriptionClose", testSubscriptionClose},
		{"BadInput", testBadInput},
	}
	if slices.Contains(opts, UniqueEventIDs) {
		cases = append(cases, struct {
			name string
			fn   func(t *testing.T, s eventstore.Store)
		}{"DuplicateEventID", testDuplicateEventID})
	}
	if slices.Contains(opts, Counts) {
		cases = append(cases, struct {
			name string
			fn   func(t *testing.T, s eventstore.Store)
		}{"CountAfter", testCountAfter})
	}
	if slices.Contains(opts, MultiStream) {
		cases = append(cases, []struct {
			name string
			fn   func(t *testing.T, s eventstore.Store)
		}{
			{"AppendMulti", testAppendMulti},
			{"AppendMultiAllOrNothing", testAppendMultiAllOrNothing},
			{"AppendMultiConcurrent", testAppendMultiConcurrent},
		}...)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newStore(t))
		})
	}
}

// Prefix returns a stream-name prefix no other test uses.
func Prefix(t *testing.T) string {
	return fmt.Sprintf("t%s_%s-", strings.ReplaceAll(uuid.NewString()[:8], "-", ""), sanitize(t.Name()))
}

func sanitize(name string) string {
	name = name[strings.LastIndex(name, "/")+1:]
	if len(name) > 24 {
		name = name[:24]
	}
	return strings.ToLower(name)
}

// Ctx returns a context that ends with the test or after a minute.
func Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Ev builds an event of type typ whose data carries n.
func Ev(typ string, n int) eventstore.EventData {
	return eventstore.EventData{
		ID:   uuid.Must(uuid.NewV7()),
		Type: typ,
		Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

// N decodes the n an Ev carries.
func N(t *testing.T, e eventstore.Event) int {
	t.Helper()
	var d struct{ N int }
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("decode %s: %v", e.Data, err)
	}
	return d.N
}

// MustAppend appends or fails the test.
func MustAppend(t *testing.T, s eventstore.Store, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(Ctx(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

// appendMany appends n events of type typ, carrying 0 to n-1, to stream
// in appends of up to batch events.
func appendMany(t *testing.T, s eventstore.Store, stream, typ string, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		evs := make([]eventstore.EventData, min(batch, n-i))
		for j := range evs {
			evs[j] = Ev(typ, i+j)
		}
		MustAppend(t, s, stream, eventstore.Any, evs...)
	}
}

// ReadStreamAll reads the whole stream forwards, or nil when it does not exist.
func ReadStreamAll(t *testing.T, s eventstore.Store, stream string) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	for from := int64(0); ; {
		page, err := s.ReadStream(Ctx(t), stream, eventstore.Forwards, from, 1000)
		if errors.Is(err, eventstore.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out
		}
		from = page[len(page)-1].Version + 1
	}
}

// ReadAllPrefix reads the global log from the start in pages of pageSize and
// keeps the events whose stream starts with prefix.
func ReadAllPrefix(t *testing.T, s eventstore.Store, prefix string, pageSize int) []eventstore.Event {
	t.Helper()
	return ReadAllMatching(t, s, eventstore.Filter{StreamPrefixes: []string{prefix}}, pageSize)
}

// ReadAllMatching reads the global log from the start in pages of pageSize,
// checking that positions increase, and keeps the events filter matches.
// On a store that can hold committed events back behind an open
// transaction (Held, as PostgreSQL's), it reads until none is held, so
// the result is everything committed before the call.
func ReadAllMatching(t *testing.T, s eventstore.Store, filter eventstore.Filter, pageSize int) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	pos := eventstore.Start
	holder, _ := s.(interface {
		Held(ctx context.Context, after eventstore.Position) (bool, error)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, err := s.ReadAll(Ctx(t), pos, pageSize)
		if err != nil {
			t.Fatalf("read all from %s: %v", pos, err)
		}
		for i := range page {
			if !pos.Less(page[i].Position) {
				t.Fatalf("read all: position %s does not come after %s", page[i].Position, pos)
			}
			pos = page[i].Position
			if filter.Match(&page[i]) {
				out = append(out, page[i])
			}
		}
		if len(page) < pageSize {
			if holder == nil {
				return out
			}
			held, err := holder.Held(Ctx(t), pos)
			if err != nil {
				t.Fatalf("read all: %v", err)
			}
			if !held {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("read all: events after %s held back for 30 s by an open transaction", pos)
			}
			time.Sleep(10 * time.Millisecond) // poll: the holder is another session
		}
	}
}

// Collect takes n events from sub, failing the test if they do not arrive
// within the deadline.
func Collect(t *testing.T, sub *eventstore.Subscription, n int, within time.Duration) []eventstore.Event {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	out := make([]eventstore.Event, 0, n)
	for len(out) < n {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events: %v", len(out), n, sub.Err())
			}
			out = append(out, e)
		case <-deadline.C:
			t.Fatalf("got %d of %d events within %s", len(out), n, within)
		}
	}
	return out
}

func ids(evs []eventstore.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func sameIDs(t *testing.T, what string, got, want []eventstore.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	g, w := ids(got), ids(want)
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("%s: event %d is %s (%s v%d), want %s (%s v%d)", what, i,
				g[i], got[i].StreamID, got[i].Version, w[i], want[i].StreamID, want[i].Version)
		}
	}
}

// testCountAfter: CountAfter counts what ReadAll would deliver after a
// position and matches the filter, up to its limit, and names the last;
// a prefix's own LIKE wildcards match only themselves.
func testCountAfter(t *testing.T, s eventstore.Store) {
	c, ok := s.(eventstore.Counter)
	if !ok {
		t.Fatalf("%T is not an eventstore.Counter", s)
	}
	q := Prefix(t) // holds '_', a LIKE wildcard
	lookalike := strings.Replace(q, "_", "x", 1)
	var mine []eventstore.AppendResult
	for i := range 6 {
		mine = append(mine, MustAppend(t, s, q+"a", eventstore.Any, Ev("count.one", i)))
		MustAppend(t, s, lookalike+"a", eventstore.Any, Ev("count.one", i))
	}
	start := ReadAllMatching(t, s, eventstore.Filter{StreamPrefixes: []string{q}}, 100)[0].Position
	for _, tc := range []struct {
		name    string
		from    eventstore.Position
		limit   int64
		filter  eventstore.Filter
		n       int64
		lastIdx int // -1: none
	}{
		{"all", eventstore.Start, 100, eventstore.Filter{StreamPrefixes: []string{q}}, 6, 5},
		{"limited", eventstore.Start, 4, eventstore.Filter{StreamPrefixes: []string{q}}, 4, 3},
		{"after the first", start, 100, eventstore.Filter{StreamPrefixes: []string{q}}, 5, 5},
		{"after the last", mine[5].Position, 100, eventstore.Filter{StreamPrefixes: []string{q}}, 0, -1},
		{"by type", start, 100, eventstore.Filter{StreamPrefixes: []string{q}, EventTypePrefixes: []string{"count."}}, 5, 5},
		{"other type", eventstore.Start, 100, eventstore.Filter{StreamPrefixes: []string{q}, EventTypePrefixes: []string{"other."}}, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, last, err := c.CountAfter(Ctx(t), tc.from, tc.filter, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.from
			if tc.lastIdx >= 0 {
				want = mine[tc.lastIdx].Position
			}
			if n != tc.n || last != want {
				t.Fatalf("CountAfter = %d, %s; want %d, %s", n, last, tc.n, want)
			}
		})
	}
	if _, _, err := c.CountAfter(Ctx(t), eventstore.Start, eventstore.Filter{}, 0); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Fatalf("limit 0: %v, want ErrInvalidArgument", err)
	}
}
