// Package eventstore is the port every event store adapter implements: append
// to a stream with optimistic concurrency, read a stream, read the global log,
// and subscribe to the global log with catch-up then live delivery.
//
// The adapters live in sub-packages named after what they wrap
// (eventstore/memory, eventstore/postgres, eventstore/esdb) and all pass the
// conformance suite in eventstore/eventstoretest.
package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Store is the event store port.
type Store interface {
	// Append writes events to the end of stream if the stream's current
	// version satisfies expected. It returns the version of the last event
	// written and its global position. Appending a batch whose event ids were
	// already written, in the same order, to the same stream with a
	// compatible expected version (a client retry) succeeds with the first
	// append's result and writes nothing.
	// An event id used again other than by such a retry fails with
	// ErrDuplicateEventID where the store can tell (not on EventStoreDB,
	// which keeps no index of ids).
	// Errors: *WrongExpectedVersionError (errors.Is ErrWrongExpectedVersion),
	// *ValidationError (errors.Is ErrInvalidArgument), ErrDuplicateEventID.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)

	// ReadStream reads up to count events of stream starting at version from
	// (inclusive) in direction dir. from may be StreamEnd to start at the
	// last event when reading backwards. Errors: ErrStreamNotFound when the
	// stream has no events, ErrInvalidArgument.
	ReadStream(ctx context.Context, stream string, dir Direction, from int64, count int) ([]Event, error)

	// ReadAll reads up to count events of the global log that come after
	// from, in global order. Start reads from the beginning. A reader that
	// continues from the position of the last event it got never misses an
	// event that commits later. Errors: ErrInvalidArgument.
	ReadAll(ctx context.Context, from Position, count int) ([]Event, error)

	// SubscribeAll delivers every event after from that matches filter:
	// first the history, then live events as they are committed, each
	// exactly once and in global order. The subscription ends when ctx is
	// done, the subscription or the store is closed, or the store fails;
	// Err says which (ErrClosed when the store was closed).
	SubscribeAll(ctx context.Context, from Position, filter Filter) (*Subscription, error)
}

// Direction is the direction of a stream read.
type Direction int

const (
	// Forwards reads from older to newer events.
	Forwards Direction = iota
	// Backwards reads from newer to older events.
	Backwards
)

// StreamEnd, as the from argument of a backwards ReadStream, starts at the
// stream's last event.
const StreamEnd int64 = -1

// Limits on a single call; requests beyond them fail with ErrInvalidArgument.
const (
	MaxReadCount      = 10_000
	MaxAppendEvents   = 1_000
	MaxAppendBytes    = 1 << 20
	MaxStreamIDLength = 256
	MaxTypeLength     = 256
	// MaxMetadataIDLength bounds the correlation, causation and actor ids.
	MaxMetadataIDLength = 256
)

// ExpectedVersion is the optimistic concurrency condition of an append:
// Any, NoStream, StreamExists, or an exact version built with Exact.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's state.
	Any ExpectedVersion = -2
	// NoStream appends only if the stream has no events.
	NoStream ExpectedVersion = -1
	// StreamExists appends only if the stream has at least one event.
	StreamExists ExpectedVersion = -4
)

// Exact appends only if the stream's last event has version v.
func Exact(v int64) ExpectedVersion { return ExpectedVersion(v) }

// Valid reports whether e is one of the sentinels or a non-negative version.
func (e ExpectedVersion) Valid() bool {
	return e >= 0 || e == Any || e == NoStream || e == StreamExists
}

// Satisfied reports whether a stream whose last version is current (-1 for
// no stream) meets the condition.
func (e ExpectedVersion) Satisfied(current int64) bool {
	switch e {
	case Any:
		return true
	case NoStream:
		return current < 0
	case StreamExists:
		return current >= 0
	default:
		return int64(e) == current
	}
}

func (e ExpectedVersion) String() string {
	switch e {
	case Any:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	default:
		return strconv.FormatInt(int64(e), 10)
	}
}

// Position is an event's place in the global log. Positions are totally
// ordered by (Commit, Prepare); their meaning is the adapter's own. The zero
// Position is Start.
//
// Every event has a position, but only positions that ReadAll or
// SubscribeAll delivered are checkpoints to resume reading from. On
// PostgreSQL an append's position can lie ahead of an earlier-numbered
// transaction that has not committed yet: a reader that starts from it
// would never see that transaction's events. The position of an append
// (or of an event read from its stream) is for ordering: "has this reader
// got as far as my write?" is Less on the reader's checkpoint.
type Position struct {
	Commit  uint64
	Prepare uint64
}

// Start is the position before the first event.
var Start = Position{}

// Less reports whether p comes before o.
func (p Position) Less(o Position) bool {
	if p.Commit != o.Commit {
		return p.Commit < o.Commit
	}
	return p.Prepare < o.Prepare
}

// String returns the opaque token form of p, which ParsePosition reads back.
func (p Position) String() string {
	return strconv.FormatUint(p.Commit, 10) + "." + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition reads a token made by Position.String. Errors: ErrInvalidArgument.
func ParsePosition(s string) (Position, error) {
	c, pr, ok := strings.Cut(s, ".")
	if !ok {
		return Position{}, invalid("position", "want <commit>.<prepare>")
	}
	commit, err1 := strconv.ParseUint(c, 10, 64)
	prepare, err2 := strconv.ParseUint(pr, 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, invalid("position", "want <commit>.<prepare>")
	}
	return Position{Commit: commit, Prepare: prepare}, nil
}

// Metadata rides on every event.
type Metadata struct {
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	ActorID       string    `json:"actor_id,omitempty"`
	Timestamp     time.Time `json:"timestamp"`
}

// EventData is an event to append.
type EventData struct {
	// ID identifies the event; appending the same ids again is a no-op.
	// A zero ID is replaced by a new UUIDv7.
	ID uuid.UUID
	// Type is the stable wire name, such as "order.created".
	Type string
	// SchemaVersion of Data; zero means 1.
	SchemaVersion int
	// Data is the JSON payload.
	Data json.RawMessage
	// Metadata; a zero Timestamp is set to the time of the append.
	// Timestamps are kept to the microsecond, in UTC.
	Metadata Metadata
}

// Event is a recorded event.
type Event struct {
	EventData
	// StreamID is the stream the event belongs to.
	StreamID string
	// Version is the event's 0-based place in its stream.
	Version int64
	// Position is the event's place in the global log.
	Position Position
}

// AppendResult is what a successful Append wrote.
type AppendResult struct {
	// Version of the last event in the stream after the append.
	Version int64
	// Position of the last event appended.
	Position Position
}

// Filter selects events of a subscription. An event matches when its type
// starts with one of EventTypePrefixes (or that list is empty) and its stream
// starts with one of StreamPrefixes (or that list is empty).
type Filter struct {
	EventTypePrefixes []string
	StreamPrefixes    []string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e *Event) bool {
	return matchAny(f.EventTypePrefixes, e.Type) && matchAny(f.StreamPrefixes, e.StreamID)
}

func matchAny(prefixes []string, s string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// StreamName joins an aggregate kind and id into a stream id, such as "order-<id>".
func StreamName(kind, id string) string { return fmt.Sprintf("%s-%s", kind, id) }

// StreamAppend is one stream's part of an atomic multi-stream append.
type StreamAppend struct {
	Stream   string
	Expected ExpectedVersion
	Events   []EventData
}

// MultiAppender is implemented by stores that append to several streams in
// one atomic step: the PostgreSQL and in-memory stores. EventStoreDB, as
// this adapter drives it, cannot; a caller that needs all or nothing across
// streams there runs a saga instead.
type MultiAppender interface {
	// AppendMulti appends every part to its stream, all or nothing: either
	// each part's expected version holds and all the events are written,
	// in the order given, or nothing is written. Its results are in the
	// order of parts. A retry of the same parts with the same event ids
	// after they were written succeeds with the first results and writes
	// nothing. Streams must be distinct, and the limits of one append
	// apply to the parts together. Errors: *WrongExpectedVersionError
	// naming a stream whose condition failed, *ValidationError,
	// ErrDuplicateEventID where the store can tell.
	AppendMulti(ctx context.Context, parts ...StreamAppend) ([]AppendResult, error)
}

// Counter is implemented by stores that can count the events of the log
// after a position without reading them: the PostgreSQL and in-memory
// stores. Readers that measure how far behind they are use it where the
// store has it (a projection's lag), and read the log otherwise.
type Counter interface {
	// CountAfter counts the events after from that match filter, up to
	// limit (a count that reaches limit stops there), and returns the
	// position of the last of them (from when none). It counts every
	// event committed, including those ReadAll does not deliver yet (on
	// PostgreSQL, while an older transaction is open). Errors:
	// ErrInvalidArgument, the store's.
	CountAfter(ctx context.Context, from Position, filter Filter, limit int64) (n int64, last Position, err error)
}
