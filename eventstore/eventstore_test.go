package eventstore_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
)

func TestPositionToken(t *testing.T) {
	for _, p := range []eventstore.Position{eventstore.Start, {Commit: 1, Prepare: 2}, {Commit: math.MaxUint64, Prepare: 7}} {
		got, err := eventstore.ParsePosition(p.String())
		if err != nil || got != p {
			t.Errorf("round trip of %v: %v, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "1", "1.", ".2", "a.b", "1.2.3", "-1.2", "18446744073709551616.0"} {
		if _, err := eventstore.ParsePosition(bad); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("ParsePosition(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
	a, b := eventstore.Position{Commit: 5, Prepare: 9}, eventstore.Position{Commit: 6, Prepare: 1}
	if !a.Less(b) || b.Less(a) || a.Less(a) || !eventstore.Start.Less(a) {
		t.Error("Less does not order by (commit, prepare)")
	}
}

func TestExpectedVersion(t *testing.T) {
	for _, tc := range []struct {
		e       eventstore.ExpectedVersion
		current int64
		want    bool
	}{
		{eventstore.Any, -1, true}, {eventstore.Any, 3, true},
		{eventstore.NoStream, -1, true}, {eventstore.NoStream, 0, false},
		{eventstore.StreamExists, -1, false}, {eventstore.StreamExists, 0, true},
		{eventstore.Exact(0), 0, true}, {eventstore.Exact(0), -1, false}, {eventstore.Exact(4), 5, false},
	} {
		if got := tc.e.Satisfied(tc.current); got != tc.want {
			t.Errorf("%s satisfied by %d: %v, want %v", tc.e, tc.current, got, tc.want)
		}
	}
	if eventstore.ExpectedVersion(-3).Valid() || !eventstore.Exact(0).Valid() || !eventstore.StreamExists.Valid() {
		t.Error("Valid accepts a bad sentinel or rejects a good one")
	}
}

func TestPrepareAppendDefaults(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	in := []eventstore.EventData{{Type: "a.b", Data: []byte(`{}`)}}
	out, err := eventstore.PrepareAppend("s-1", eventstore.Any, in, now)
	if err != nil {
		t.Fatal(err)
	}
	e := out[0]
	if e.ID == uuid.Nil || e.ID.Version() != 7 {
		t.Errorf("id %s, want a new UUIDv7", e.ID)
	}
	if e.SchemaVersion != 1 || !e.Metadata.Timestamp.Equal(now) || e.Metadata.Timestamp.Location() != time.UTC {
		t.Errorf("defaults not applied: %+v", e)
	}
	if in[0].ID != uuid.Nil {
		t.Error("PrepareAppend changed the caller's slice")
	}
}

func TestFilterMatch(t *testing.T) {
	e := &eventstore.Event{EventData: eventstore.EventData{Type: "order.paid"}, StreamID: "order-1"}
	for _, tc := range []struct {
		f    eventstore.Filter
		want bool
	}{
		{eventstore.Filter{}, true},
		{eventstore.Filter{EventTypePrefixes: []string{"order."}}, true},
		{eventstore.Filter{EventTypePrefixes: []string{"user.", "order.p"}}, true},
		{eventstore.Filter{EventTypePrefixes: []string{"user."}}, false},
		{eventstore.Filter{StreamPrefixes: []string{"order-"}, EventTypePrefixes: []string{"order."}}, true},
		{eventstore.Filter{StreamPrefixes: []string{"product-"}, EventTypePrefixes: []string{"order."}}, false},
	} {
		if got := tc.f.Match(e); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
	}
}
