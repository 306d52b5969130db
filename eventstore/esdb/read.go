package esdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventshop/eventshop/eventstore"
)

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error) {
	if err := eventstore.ValidateReadStream(stream, dir, from, count); err != nil {
		return nil, err
	}
	opts := client.ReadStreamOptions{Direction: client.Forwards, From: client.Revision(uint64(from))}
	if dir == eventstore.Backwards {
		opts.Direction = client.Backwards
		if from == eventstore.StreamEnd {
			opts.From = client.End{}
		}
	}
	// The whole read runs in call: a failed Recv reports to the client's
	// loop, which may have ended (see node).
	return call(ctx, s.node, func(c *client.Client) ([]eventstore.Event, error) {
		rs, err := c.ReadStream(ctx, stream, opts, uint64(count))
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		defer rs.Close()
		out := []eventstore.Event{}
		for {
			re, err := rs.Recv()
			switch {
			case isEOF(err):
				return out, nil
			case code(err) == client.ErrorCodeResourceNotFound:
				return nil, eventstore.ErrStreamNotFound
			case err != nil:
				return nil, fmt.Errorf("read stream %s: %w", stream, err)
			}
			if e, ok := fromRecorded(re.Event); ok {
				out = append(out, e)
			}
		}
	})
}

// ReadAll implements eventstore.Store. It skips system events and keeps
// reading until it has count events or reaches the end of the log, so a
// short page means the end, as on every adapter.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, error) {
	if err := eventstore.ValidateCount(count); err != nil {
		return nil, err
	}
	out := make([]eventstore.Event, 0, min(count, 1024))
	pos := from
	for len(out) < count {
		opts := client.ReadAllOptions{Direction: client.Forwards, From: allPosition(pos)}
		// A read from a position includes the event there: ask for one more.
		room := count - len(out)
		want := room + 1
		pg, err := call(ctx, s.node, func(c *client.Client) (page, error) {
			rs, err := c.ReadAll(ctx, opts, uint64(want))
			if err != nil {
				return page{}, err
			}
			defer rs.Close()
			return drain(rs, pos, room)
		})
		if err != nil {
			return nil, fmt.Errorf("read all from %s: %w", from, err)
		}
		out = append(out, pg.events...)
		if pg.records < want || pg.last == pos {
			return out, nil // the end of the log
		}
		pos = pg.last
	}
	return out, nil
}

// page is what drain read: the user events, how many records the read
// held, and the position of the last one.
type page struct {
	events  []eventstore.Event
	records int
	last    eventstore.Position
}

// drain reads rs to the end, keeping (up to room) the user events after
// pos.
func drain(rs *client.ReadStream, pos eventstore.Position, room int) (page, error) {
	pg := page{last: pos}
	for {
		re, err := rs.Recv()
		if isEOF(err) {
			return pg, nil
		}
		if err != nil {
			return pg, err
		}
		pg.records++
		if re.Event == nil {
			continue
		}
		p := position(re.Event.Position)
		if after(pos, p) {
			pg.last = p
			if e, ok := fromRecorded(re.Event); ok && room > 0 {
				pg.events = append(pg.events, e)
				room--
			}
		}
	}
}

// after reports whether p comes after from; Start comes before everything,
// even an event at position 0.
func after(from, p eventstore.Position) bool {
	return from == eventstore.Start || from.Less(p)
}

func allPosition(p eventstore.Position) client.AllPosition {
	if p == eventstore.Start {
		return client.Start{}
	}
	return client.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func position(p client.Position) eventstore.Position {
	return eventstore.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// SubscribeAll implements eventstore.Store with a catch-up subscription to
// $all, which the node serves history then live without a gap. The node
// filters on stream prefixes or, without those, on event type prefixes
// (it takes one kind at a time); the whole filter applies here too. The
// subscription ends with an error when the node drops it.
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, filter eventstore.Filter) (*eventstore.Subscription, error) {
	opts := client.SubscribeToAllOptions{From: allPosition(from), Filter: client.ExcludeSystemEventsFilter()}
	switch {
	case len(filter.StreamPrefixes) > 0:
		opts.Filter = &client.SubscriptionFilter{Type: client.StreamFilterType, Prefixes: filter.StreamPrefixes}
	case len(filter.EventTypePrefixes) > 0:
		opts.Filter = &client.SubscriptionFilter{Type: client.EventFilterType, Prefixes: filter.EventTypePrefixes}
	}
	sub, err := call(ctx, s.node, func(c *client.Client) (*client.Subscription, error) {
		return c.SubscribeToAll(ctx, opts)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to all from %s: %w", from, err)
	}
	subscriber := ctx // the gRPC stream's context
	return eventstore.NewStoreSubscription(ctx, s.ctx, func(ctx context.Context, emit func(eventstore.Event) error) error {
		defer sub.Close()
		// Recv blocks: the end of the subscription (or of the store) closes it.
		stop := context.AfterFunc(ctx, func() { sub.Close() })
		defer stop()
		for {
			ev := sub.Recv()
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case ev.SubscriptionDropped != nil && subscriber.Err() != nil:
				// The subscriber's context ended and the stream with it,
				// which the client can see before ctx, derived from that
				// context, is cancelled too: it is, at once.
				<-ctx.Done()
				return ctx.Err()
			case ev.SubscriptionDropped != nil:
				if ev.SubscriptionDropped.Error == nil {
					return errors.New("subscription to all dropped by the node")
				}
				return fmt.Errorf("subscription to all dropped: %w", ev.SubscriptionDropped.Error)
			case ev.EventAppeared != nil && ev.EventAppeared.Event != nil:
				e, ok := fromRecorded(ev.EventAppeared.Event)
				if ok && after(from, e.Position) && filter.Match(&e) {
					if err := emit(e); err != nil {
						return err
					}
				}
			}
		}
	}), nil
}

// fromRecorded maps a recorded event to the port's; ok is false for
// system events, which the port never shows.
func fromRecorded(r *client.RecordedEvent) (eventstore.Event, bool) {
	if r == nil || strings.HasPrefix(r.StreamID, "$") || strings.HasPrefix(r.EventType, "$") {
		return eventstore.Event{}, false
	}
	var md metadata
	if len(r.UserMetadata) > 0 {
		// Events written by other tools may carry other metadata; what
		// does not decode is left at its default.
		_ = json.Unmarshal(r.UserMetadata, &md)
	}
	if md.SchemaVersion < 1 {
		md.SchemaVersion = 1
	}
	if md.Timestamp.IsZero() {
		md.Timestamp = r.CreatedDate
	}
	return eventstore.Event{
		EventData: eventstore.EventData{
			ID:            r.EventID,
			Type:          r.EventType,
			SchemaVersion: md.SchemaVersion,
			Data:          r.Data,
			Metadata: eventstore.Metadata{
				CorrelationID: md.CorrelationID, CausationID: md.CausationID,
				ActorID: md.ActorID, Timestamp: md.Timestamp.UTC(),
			},
		},
		StreamID: r.StreamID,
		Version:  int64(r.EventNumber),
		Position: position(r.Position),
	}, true
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
