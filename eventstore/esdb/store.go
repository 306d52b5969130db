// Package esdb is the EventStoreDB event store adapter, over the official
// Go client (EventStore-Client-Go v4).
//
// Streams, revisions and $all positions map one to one onto the port's
// streams, versions and positions. The port's metadata (correlation,
// causation, actor, timestamp, schema version) rides in each event's
// custom metadata as JSON, with EventStoreDB's own $correlationId and
// $causationId keys. System events ($-streams and $-types) are never
// returned.
package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventshop/eventshop/eventstore"
)

// Options tune a Store; the zero value is usable.
type Options struct {
	// Logger receives the client's warnings and errors; default slog.Default().
	Logger *slog.Logger
}

// Store is the EventStoreDB event store.
type Store struct {
	node   *node
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
}

var _ eventstore.Store = (*Store)(nil)

// Open connects to the node or cluster named by url, an EventStoreDB
// connection string such as esdb://host:2113?tls=false, and checks that
// it answers. Errors: a bad connection string, or a node that does not answer.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := client.ParseConnectionString(url)
	if err != nil {
		var urlErr *neturl.Error
		if errors.As(err, &urlErr) {
			// That message quotes the whole string, password included.
			return nil, errors.New("event store: the EventStoreDB connection string is not a valid URL " +
				"(percent-encode special characters in the user name and password)")
		}
		return nil, fmt.Errorf("event store: EventStoreDB connection string: %w", err)
	}
	cfg.Logger = clientLogger(opts.Logger)
	n, err := newNode(cfg, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &Store{node: n, ctx: bg, cancel: cancel}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("event store: %w", err)
	}
	return s, nil
}

// clientLogger sends the client's log lines to log; its errors are
// warnings here, as the adapter reports what matters as errors itself.
func clientLogger(log *slog.Logger) client.LoggingFunc {
	return func(level client.LogLevel, format string, args ...any) {
		l := slog.LevelDebug
		switch level {
		case client.LogWarn, client.LogError:
			l = slog.LevelWarn
		}
		log.Log(context.Background(), l, "eventstoredb client: "+fmt.Sprintf(format, args...))
	}
}

// Ping reads the last event of $all. Errors: the node's.
func (s *Store) Ping(ctx context.Context) error {
	_, err := call(ctx, s.node, func(c *client.Client) (struct{}, error) {
		rs, err := c.ReadAll(ctx, client.ReadAllOptions{Direction: client.Backwards, From: client.End{}}, 1)
		if err != nil {
			return struct{}{}, err
		}
		defer rs.Close()
		if _, err := rs.Recv(); err != nil && !isEOF(err) {
			return struct{}{}, err
		}
		return struct{}{}, nil
	})
	return err
}

// Close closes the connection. Subscriptions end with eventstore.ErrClosed.
func (s *Store) Close() error {
	s.cancel()
	s.node.close()
	return nil
}

// metadata is the custom metadata of an event as stored.
type metadata struct {
	CorrelationID string    `json:"$correlationId,omitempty"`
	CausationID   string    `json:"$causationId,omitempty"`
	ActorID       string    `json:"actor_id,omitempty"`
	Timestamp     time.Time `json:"timestamp"`
	SchemaVersion int       `json:"schema_version"`
}

// Append implements eventstore.Store. The node decides the expected
// version and recognises a retry of the same event ids; the result is
// then read back, so that it names the last event's exact position
// whether the node wrote or recognised a retry.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	events, err := eventstore.PrepareAppend(stream, expected, events, time.Now())
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	proposed := make([]client.EventData, len(events))
	for i, e := range events {
		md, err := json.Marshal(metadata{
			CorrelationID: e.Metadata.CorrelationID, CausationID: e.Metadata.CausationID,
			ActorID: e.Metadata.ActorID, Timestamp: e.Metadata.Timestamp, SchemaVersion: e.SchemaVersion,
		})
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		proposed[i] = client.EventData{
			EventID: e.ID, EventType: e.Type, ContentType: client.ContentTypeJson, Data: e.Data, Metadata: md,
		}
	}
	res, err := call(ctx, s.node, func(c *client.Client) (*client.WriteResult, error) {
		return c.AppendToStream(ctx, stream, client.AppendToStreamOptions{ExpectedRevision: expectedRevision(expected)}, proposed...)
	})
	if err != nil {
		if code(err) != client.ErrorCodeWrongExpectedVersion {
			return eventstore.AppendResult{}, fmt.Errorf("append to %s: %w", stream, err)
		}
		// The node may not recognise every retry (a batch it wrote
		// before a later append moved the stream on): look for the
		// batch where this expectation would have put it.
		if expected >= eventstore.NoStream {
			if r, found, err := s.written(ctx, stream, int64(expected)+1, events); err != nil || found {
				return r, err
			}
		}
		return eventstore.AppendResult{}, s.conflict(ctx, stream, expected)
	}
	last := int64(res.NextExpectedVersion) // the client's name for the last event's revision
	r, found, err := s.written(ctx, stream, last-int64(len(events))+1, events)
	if err == nil && !found && expected >= eventstore.NoStream {
		// A node that answers a recognised retry with the stream's
		// current revision: the batch is where the expectation put it.
		r, found, err = s.written(ctx, stream, int64(expected)+1, events)
	}
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if !found {
		return eventstore.AppendResult{}, fmt.Errorf("append to %s: the node acknowledged revision %d but the events are not there", stream, last)
	}
	return r, nil
}

func expectedRevision(e eventstore.ExpectedVersion) client.ExpectedRevision {
	switch e {
	case eventstore.Any:
		return client.Any{}
	case eventstore.NoStream:
		return client.NoStream{}
	case eventstore.StreamExists:
		return client.StreamExists{}
	default:
		return client.Revision(uint64(e))
	}
}

// written reports whether events are in stream from version from on, and
// the result an append of them has.
func (s *Store) written(ctx context.Context, stream string, from int64, events []eventstore.EventData) (eventstore.AppendResult, bool, error) {
	if from < 0 {
		return eventstore.AppendResult{}, false, nil
	}
	got, err := s.ReadStream(ctx, stream, eventstore.Forwards, from, len(events))
	if errors.Is(err, eventstore.ErrStreamNotFound) {
		return eventstore.AppendResult{}, false, nil
	}
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: read back: %w", stream, err)
	}
	if len(got) != len(events) {
		return eventstore.AppendResult{}, false, nil
	}
	for i := range got {
		if got[i].ID != events[i].ID {
			return eventstore.AppendResult{}, false, nil
		}
	}
	last := got[len(got)-1]
	return eventstore.AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

// conflict builds the wrong-expected-version error with the stream's
// current version; the client reports it only as text.
func (s *Store) conflict(ctx context.Context, stream string, expected eventstore.ExpectedVersion) error {
	actual := int64(-1)
	last, err := s.ReadStream(ctx, stream, eventstore.Backwards, eventstore.StreamEnd, 1)
	switch {
	case err == nil && len(last) == 1:
		actual = last[0].Version
	case err != nil && !errors.Is(err, eventstore.ErrStreamNotFound):
		return fmt.Errorf("append to %s: %w (reading the actual version: %v)", stream, eventstore.ErrWrongExpectedVersion, err)
	}
	return &eventstore.WrongExpectedVersionError{Stream: stream, Expected: expected, Actual: actual}
}

// code is the client's error code of err, ErrorCodeUnknown for other errors.
func code(err error) client.ErrorCode {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return client.ErrorCodeUnknown
}
