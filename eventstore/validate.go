package eventstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// PrepareAppend checks an append's arguments and fills in defaults: a new
// UUIDv7 for a zero ID, schema version 1, and now (UTC) for a zero
// timestamp. Adapters call it before touching storage so that bad input
// writes nothing. The returned slice is a copy. Errors: ErrInvalidArgument.
func PrepareAppend(stream string, expected ExpectedVersion, events []EventData, now time.Time) ([]EventData, error) {
	out, size, err := prepare(stream, expected, events, now, "events")
	if err != nil {
		return nil, err
	}
	if size > MaxAppendBytes {
		return nil, invalid("events", fmt.Sprintf("%d bytes in one append, at most %d", size, MaxAppendBytes))
	}
	return out, nil
}

// PrepareAppendMulti is PrepareAppend for an atomic multi-stream append:
// each part is checked as an append of its own, the streams must be
// distinct and the event ids unique across parts, and the limits on events
// and bytes hold for the parts together. The returned parts are copies.
// Errors: ErrInvalidArgument.
func PrepareAppendMulti(parts []StreamAppend, now time.Time) ([]StreamAppend, error) {
	if len(parts) == 0 {
		return nil, invalid("parts", "at least one part is required")
	}
	out := make([]StreamAppend, len(parts))
	streams := make(map[string]struct{}, len(parts))
	ids := map[uuid.UUID]struct{}{}
	events, size := 0, 0
	for k, p := range parts {
		field := fmt.Sprintf("parts[%d]", k)
		evs, n, err := prepare(p.Stream, p.Expected, p.Events, now, field+".events")
		if err != nil {
			return nil, err
		}
		if _, dup := streams[p.Stream]; dup {
			return nil, invalid(field+".stream", "the same stream appears twice in one append")
		}
		streams[p.Stream] = struct{}{}
		for i, e := range evs {
			if _, dup := ids[e.ID]; dup {
				return nil, invalid(fmt.Sprintf("%s.events[%d].id", field, i), "the same event id appears twice in one append")
			}
			ids[e.ID] = struct{}{}
		}
		events += len(evs)
		size += n
		out[k] = StreamAppend{Stream: p.Stream, Expected: p.Expected, Events: evs}
	}
	if events > MaxAppendEvents {
		return nil, invalid("parts", fmt.Sprintf("%d events in one append, at most %d", events, MaxAppendEvents))
	}
	if size > MaxAppendBytes {
		return nil, invalid("parts", fmt.Sprintf("%d bytes in one append, at most %d", size, MaxAppendBytes))
	}
	return out, nil
}

// prepare checks one stream's append, naming its events field, and
// returns the copy and the bytes it counts against MaxAppendBytes.
func prepare(stream string, expected ExpectedVersion, events []EventData, now time.Time, field string) ([]EventData, int, error) {
	if err := ValidateStreamID(stream); err != nil {
		return nil, 0, err
	}
	if !expected.Valid() {
		return nil, 0, invalid("expected_version", fmt.Sprintf("%d is neither a version nor a sentinel", int64(expected)))
	}
	if len(events) == 0 {
		return nil, 0, invalid(field, "at least one event is required")
	}
	if len(events) > MaxAppendEvents {
		return nil, 0, invalid(field, fmt.Sprintf("%d events in one append, at most %d", len(events), MaxAppendEvents))
	}
	out := make([]EventData, len(events))
	seen := make(map[uuid.UUID]struct{}, len(events))
	size := 0
	for i, e := range events {
		at := fmt.Sprintf("%s[%d]", field, i)
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, 0, fmt.Errorf("new event id: %w", err)
			}
			e.ID = id
		}
		if _, dup := seen[e.ID]; dup {
			return nil, 0, invalid(at+".id", "the same event id appears twice in one append")
		}
		seen[e.ID] = struct{}{}
		if err := validateName(at+".type", e.Type, MaxTypeLength); err != nil {
			return nil, 0, err
		}
		if e.SchemaVersion < 0 {
			return nil, 0, invalid(at+".schema_version", "must not be negative")
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		if len(e.Data) == 0 || !json.Valid(e.Data) || !utf8.Valid(e.Data) {
			return nil, 0, invalid(at+".data", "not valid JSON in UTF-8")
		}
		m := &e.Metadata
		for _, id := range []struct{ name, value string }{
			{"correlation_id", m.CorrelationID}, {"causation_id", m.CausationID}, {"actor_id", m.ActorID},
		} {
			if id.value != "" {
				if err := validateName(at+".metadata."+id.name, id.value, MaxMetadataIDLength); err != nil {
					return nil, 0, err
				}
			}
		}
		if m.Timestamp.IsZero() {
			m.Timestamp = now
		}
		m.Timestamp = m.Timestamp.UTC().Truncate(time.Microsecond)
		if y := m.Timestamp.Year(); y < 1 || y > 9999 {
			return nil, 0, invalid(at+".metadata.timestamp", fmt.Sprintf("year %d: want 1 to 9999", y))
		}
		size += len(e.Data) + len(e.Metadata.CorrelationID) + len(e.Metadata.CausationID) + len(e.Metadata.ActorID) + len(e.Type)
		out[i] = e
	}
	return out, size, nil
}

// ValidateStreamID checks a stream id. Errors: ErrInvalidArgument.
func ValidateStreamID(stream string) error {
	if err := validateName("stream", stream, MaxStreamIDLength); err != nil {
		return err
	}
	if strings.HasPrefix(stream, "$") {
		return invalid("stream", "names starting with $ are reserved")
	}
	return nil
}

// ValidateReadStream checks the arguments of a stream read. Errors: ErrInvalidArgument.
func ValidateReadStream(stream string, dir Direction, from int64, count int) error {
	if err := ValidateStreamID(stream); err != nil {
		return err
	}
	if dir != Forwards && dir != Backwards {
		return invalid("direction", "must be Forwards or Backwards")
	}
	if from < 0 && !(from == StreamEnd && dir == Backwards) {
		return invalid("from", fmt.Sprintf("%d: want a version ≥ 0, or StreamEnd when reading backwards", from))
	}
	return ValidateCount(count)
}

// ValidateCount checks a read's count. Errors: ErrInvalidArgument.
func ValidateCount(count int) error {
	if count < 1 || count > MaxReadCount {
		return invalid("count", fmt.Sprintf("%d: want 1 to %d", count, MaxReadCount))
	}
	return nil
}

func validateName(field, s string, max int) error {
	if s == "" {
		return invalid(field, "must not be empty")
	}
	if len(s) > max {
		return invalid(field, fmt.Sprintf("%d bytes, at most %d", len(s), max))
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return invalid(field, "must not contain spaces, control characters or invalid UTF-8")
		}
	}
	return nil
}
