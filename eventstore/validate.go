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
	if err := ValidateStreamID(stream); err != nil {
		return nil, err
	}
	if !expected.Valid() {
		return nil, invalid("expected_version", fmt.Sprintf("%d is neither a version nor a sentinel", int64(expected)))
	}
	if len(events) == 0 {
		return nil, invalid("events", "at least one event is required")
	}
	if len(events) > MaxAppendEvents {
		return nil, invalid("events", fmt.Sprintf("%d events in one append, at most %d", len(events), MaxAppendEvents))
	}
	out := make([]EventData, len(events))
	seen := make(map[uuid.UUID]struct{}, len(events))
	size := 0
	for i, e := range events {
		field := fmt.Sprintf("events[%d]", i)
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("new event id: %w", err)
			}
			e.ID = id
		}
		if _, dup := seen[e.ID]; dup {
			return nil, invalid(field+".id", "the same event id appears twice in one append")
		}
		seen[e.ID] = struct{}{}
		if err := validateName(field+".type", e.Type, MaxTypeLength); err != nil {
			return nil, err
		}
		if e.SchemaVersion < 0 {
			return nil, invalid(field+".schema_version", "must not be negative")
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		if len(e.Data) == 0 || !json.Valid(e.Data) || !utf8.Valid(e.Data) {
			return nil, invalid(field+".data", "not valid JSON in UTF-8")
		}
		m := &e.Metadata
		for _, id := range []struct{ name, value string }{
			{"correlation_id", m.CorrelationID}, {"causation_id", m.CausationID}, {"actor_id", m.ActorID},
		} {
			if id.value != "" {
				if err := validateName(field+".metadata."+id.name, id.value, MaxMetadataIDLength); err != nil {
					return nil, err
				}
			}
		}
		if m.Timestamp.IsZero() {
			m.Timestamp = now
		}
		m.Timestamp = m.Timestamp.UTC().Truncate(time.Microsecond)
		if y := m.Timestamp.Year(); y < 1 || y > 9999 {
			return nil, invalid(field+".metadata.timestamp", fmt.Sprintf("year %d: want 1 to 9999", y))
		}
		size += len(e.Data) + len(e.Metadata.CorrelationID) + len(e.Metadata.CausationID) + len(e.Metadata.ActorID) + len(e.Type)
		out[i] = e
	}
	if size > MaxAppendBytes {
		return nil, invalid("events", fmt.Sprintf("%d bytes in one append, at most %d", size, MaxAppendBytes))
	}
	return out, nil
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
