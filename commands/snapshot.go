package commands

import (
	"context"
	"errors"
	"time"

	"github.com/eventshop/eventshop/eventstore/snapshots"
)

// SnapshotStore keeps the snapshots of long streams; *snapshots.Postgres
// is one.
type SnapshotStore interface {
	Load(ctx context.Context, stream string, format int) (snapshots.Snapshot, bool, error)
	Save(ctx context.Context, s snapshots.Snapshot) error
}

// Defaults of the snapshots.
const (
	// DefaultSnapshotEvery is how many events a stream grows by between
	// two snapshots.
	DefaultSnapshotEvery = 1000
	// snapshotSaves bounds the snapshots saved at once; one due while
	// they are all busy is skipped (the next is due SnapshotEvery events
	// later).
	snapshotSaves = 4
	// snapshotTimeout bounds a snapshot's load and save.
	snapshotTimeout = 5 * time.Second
)

var errSnapshotVersion = errors.New("its state is not at its version")

// restore returns the state of stream's snapshot and the position of its
// last event, when the kind keeps snapshots and one can be read. A
// snapshot that cannot be read (the store fails, or it does not decode)
// is passed over: the stream is folded from its start instead.
func restore[S any](ctx context.Context, r *repository, k kind[S], stream string) (loaded[S], bool) {
	if k.format == 0 || r.snapshots == nil {
		return loaded[S]{}, false
	}
	sctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	s, ok, err := r.snapshots.Load(sctx, stream, k.format)
	if err != nil {
		if ctx.Err() == nil { // else the command is over anyway
			r.log.WarnContext(ctx, "load a snapshot; folding the stream from its start", "stream", stream, "err", err)
		}
		return loaded[S]{}, false
	}
	if !ok {
		return loaded[S]{}, false
	}
	st, err := k.restore(s.Data)
	if err == nil && k.version(st) != s.Version {
		err = errSnapshotVersion
	}
	if err != nil {
		r.log.WarnContext(ctx, "a snapshot does not decode; folding the stream from its start", "stream", stream, "version", s.Version, "err", err)
		return loaded[S]{}, false
	}
	return loaded[S]{state: st, pos: s.Position}, true
}

// keep hands e to the cache and, when it is due for a snapshot, saves one
// in the background. e.state is read-only from here on.
func keep[S any](r *repository, k kind[S], stream string, e cached) {
	var every int64
	if k.format != 0 && r.snapshots != nil {
		every = r.snapshotEvery
	}
	if !r.cache.put(stream, e, every) {
		return
	}
	select {
	case r.snapshotSlots <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-r.snapshotSlots }()
		data, err := k.snapshot(e.state.(S))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
			err = r.snapshots.Save(ctx, snapshots.Snapshot{Stream: stream, Format: k.format, Version: e.version, Position: e.pos, Data: data})
			cancel()
		}
		if err != nil {
			r.log.Warn("save a snapshot", "stream", stream, "version", e.version, "err", err)
		}
	}()
}
