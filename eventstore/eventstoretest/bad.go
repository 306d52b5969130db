package eventstoretest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

func testBadInput(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	good := func() eventstore.EventData { return Ev("x.ok", 1) }
	withType := func(typ string) eventstore.EventData { e := good(); e.Type = typ; return e }
	withData := func(d string) eventstore.EventData { e := good(); e.Data = json.RawMessage(d); return e }
	withMeta := func(m eventstore.Metadata) eventstore.EventData { e := good(); e.Metadata = m; return e }
	dup := good()
	many := make([]eventstore.EventData, eventstore.MaxAppendEvents+1)
	for i := range many {
		many[i] = good()
	}
	for _, tc := range []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []eventstore.EventData
	}{
		{"empty stream", "", eventstore.Any, []eventstore.EventData{good()}},
		{"stream with space", p + "a b", eventstore.Any, []eventstore.EventData{good()}},
		{"reserved stream", "$" + p, eventstore.Any, []eventstore.EventData{good()}},
		{"long stream", p + strings.Repeat("x", eventstore.MaxStreamIDLength), eventstore.Any, []eventstore.EventData{good()}},
		{"no events", p + "none", eventstore.Any, nil},
		{"too many events", p + "many", eventstore.Any, many},
		{"empty type", p + "t", eventstore.Any, []eventstore.EventData{withType("")}},
		{"invalid json", p + "j", eventstore.Any, []eventstore.EventData{withData(`{"a":`)}},
		{"empty data", p + "e", eventstore.Any, []eventstore.EventData{withData(``)}},
		{"bad expected version", p + "v", eventstore.ExpectedVersion(-3), []eventstore.EventData{good()}},
		{"duplicate id in batch", p + "d", eventstore.Any, []eventstore.EventData{dup, dup}},
		{"one bad event spoils the batch", p + "b", eventstore.Any, []eventstore.EventData{good(), withData("nope")}},
		{"data not UTF-8", p + "u", eventstore.Any, []eventstore.EventData{withData("\"caf\xe9\"")}},
		{"correlation id with NUL", p + "c", eventstore.Any, []eventstore.EventData{withMeta(eventstore.Metadata{CorrelationID: "a\x00b"})}},
		{"actor id not UTF-8", p + "a", eventstore.Any, []eventstore.EventData{withMeta(eventstore.Metadata{ActorID: "\xff"})}},
		{"causation id too long", p + "l", eventstore.Any, []eventstore.EventData{withMeta(eventstore.Metadata{CausationID: strings.Repeat("c", eventstore.MaxMetadataIDLength+1)})}},
		{"timestamp after 9999", p + "ty", eventstore.Any, []eventstore.EventData{withMeta(eventstore.Metadata{Timestamp: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)})}},
		{"timestamp before year 1", p + "tb", eventstore.Any, []eventstore.EventData{withMeta(eventstore.Metadata{Timestamp: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)})}},
		{"too large", p + "big", eventstore.Any, []eventstore.EventData{withData(`"` + strings.Repeat("x", eventstore.MaxAppendBytes) + `"`)}},
	} {
		_, err := s.Append(Ctx(t), tc.stream, tc.expected, tc.events...)
		var ve *eventstore.ValidationError
		if !errors.Is(err, eventstore.ErrInvalidArgument) || !errors.As(err, &ve) || ve.Field == "" {
			t.Errorf("%s: err %v, want a ValidationError naming the field", tc.name, err)
		}
		if tc.stream != "" && eventstore.ValidateStreamID(tc.stream) == nil {
			if got := ReadStreamAll(t, s, tc.stream); len(got) != 0 {
				t.Errorf("%s: rejected append wrote %d events", tc.name, len(got))
			}
		}
	}
	stream := p + "r"
	MustAppend(t, s, stream, eventstore.Any, good())
	for _, tc := range []struct {
		name  string
		dir   eventstore.Direction
		from  int64
		count int
	}{
		{"zero count", eventstore.Forwards, 0, 0},
		{"negative count", eventstore.Forwards, 0, -1},
		{"absurd count", eventstore.Forwards, 0, 1 << 30},
		{"negative from", eventstore.Forwards, -5, 10},
		{"end forwards", eventstore.Forwards, eventstore.StreamEnd, 10},
		{"bad direction", eventstore.Direction(7), 0, 10},
	} {
		if _, err := s.ReadStream(Ctx(t), stream, tc.dir, tc.from, tc.count); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("read stream, %s: err %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	if _, err := s.ReadStream(Ctx(t), "", eventstore.Forwards, 0, 1); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("read stream with empty id: %v, want ErrInvalidArgument", err)
	}
	for _, n := range []int{0, -1, eventstore.MaxReadCount + 1} {
		if _, err := s.ReadAll(Ctx(t), eventstore.Start, n); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("read all with count %d: err %v, want ErrInvalidArgument", n, err)
		}
	}
}
