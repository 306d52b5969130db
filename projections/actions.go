package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
)

// doActions carries out what admins asked for on the live parked list, in
// the live loop, which stands at the checkpoint from. Per stream with a
// request: a skip of its first entry marks it skipped; then (for a retry,
// or after a skip) its parked events are applied in order until one fails
// again, which keeps its place with the new error. The checkpoint does not
// move: the events are behind it already.
//
// halted, when not nil, is the event a halted projection stands on; its
// entry's action is not carried out but returned, for the caller to act
// on, its request still filed. Errors: ctx's, errFenced, and a transient failure (the request stays
// filed for the next call).
func (r *Runner) doActions(ctx context.Context, from eventstore.Position, halted *eventstore.Event) (string, error) {
	list, err := r.state.pendingActions(ctx, r.name)
	if err != nil {
		return "", err
	}
	haltedAction := ""
	for len(list) > 0 {
		n := 1
		for n < len(list) && list[n].stream == list[0].stream {
			n++
		}
		stream := list[:n]
		list = list[n:]
		if halted != nil && stream[0].id == halted.ID {
			// Left filed: a skip records who asked, and why, from it.
			haltedAction = stream[0].action
			continue
		}
		if err := r.retryStream(ctx, from, stream); err != nil {
			return "", err
		}
	}
	return haltedAction, nil
}

// retryStream carries out the requests on one stream's parked entries, in
// version order.
func (r *Runner) retryStream(ctx context.Context, from eventstore.Position, entries []pendingAction) error {
	stream := entries[0].stream
	if entries[0].status == ParkedStatusHalted {
		// A halted entry left from a run under policy halt: the live loop
		// meets its event again (it is not behind the checkpoint).
		return r.state.clearActions(ctx, r.name, stream)
	}
	if entries[0].action == ActionSkip {
		st := step{skipped: []uuid.UUID{entries[0].id}, to: from}
		if err := r.commit(ctx, from, st); err != nil {
			return err
		}
		r.stepped(st)
		r.mu.Lock()
		r.unparkLocked(stream)
		r.mu.Unlock()
		r.log.Warn("projection skipped a parked event, as an admin asked", "event_id", entries[0].id.String(),
			"stream", stream, "version", entries[0].version)
		entries = entries[1:]
	}
	applied := 0
	for _, p := range entries {
		e, err := r.parkedEvent(ctx, p)
		if err == nil {
			err = r.commit(ctx, from, step{apply: []eventstore.Event{e}, unpark: []uuid.UUID{p.id}, to: from})
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errFenced) || r.transient(ctx, err) {
				return err
			}
			if uerr := r.state.failedAgain(ctx, r.name, p.id, err.Error()); uerr != nil {
				return uerr
			}
			r.log.Warn("projection: a parked event failed again; its stream stays parked", "event_id", p.id.String(),
				"stream", stream, "version", p.version, "error", err)
			break
		}
		applied++
		r.mu.Lock()
		r.status.Applied++
		r.unparkLocked(stream)
		r.mu.Unlock()
	}
	if applied > 0 {
		r.log.Info("projection applied parked events again", "stream", stream, "applied", applied, "still_parked", len(entries)-applied)
	}
	return r.state.clearActions(ctx, r.name, stream)
}

// parkedEvent reads the event of entry p from the log.
func (r *Runner) parkedEvent(ctx context.Context, p pendingAction) (eventstore.Event, error) {
	evs, err := r.store.ReadStream(ctx, p.stream, eventstore.Forwards, p.version, 1)
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("read parked event %s: %w", p.id, err)
	}
	if len(evs) != 1 || evs[0].ID != p.id {
		return eventstore.Event{}, fmt.Errorf("parked event %s: the log holds another event at %s version %d", p.id, p.stream, p.version)
	}
	return evs[0], nil
}

// unparkLocked counts one event of stream out of the parked list; r.mu
// is held.
func (r *Runner) unparkLocked(stream string) {
	if r.parked.streams[stream]--; r.parked.streams[stream] <= 0 {
		delete(r.parked.streams, stream)
	}
}
