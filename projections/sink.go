package projections

import (
	"context"

	"github.com/eventshop/eventshop/eventstore"
)

// Sink is a projection whose target lies outside PostgreSQL: a MongoDB
// read model, a Kafka topic. Its writes cannot share a transaction with
// the checkpoint, so the runner applies a batch first and moves the
// checkpoint after: a crash in between applies the batch again. Apply
// must therefore be idempotent (a read model guarded by stream versions)
// or the target must tolerate duplicates (at-least-once publishing).
type Sink interface {
	// Name identifies the projection and its checkpoint, as for Projection.
	Name() string
	// Filter selects the events the sink needs.
	Filter() eventstore.Filter
	// Setup prepares the target (collections and indexes, topics). It must
	// be idempotent; it runs each time the runner becomes active.
	Setup(ctx context.Context) error
	// Apply applies batch, in order, and returns only once it is durable
	// in the target.
	Apply(ctx context.Context, batch []eventstore.Event) error
}

// Rebuildable is a Sink that can be rebuilt without downtime: Shadow
// returns a sink writing an empty, separate copy of the target, which the
// runner fills from the start of the log while the live one keeps
// serving, and then Swaps in for the live one when it has caught up.
type Rebuildable interface {
	Sink
	// Shadow drops any earlier shadow and returns a sink writing a fresh
	// one. Its Name is the live one's.
	Shadow(ctx context.Context) (Sink, error)
	// Swap makes the shadow the live target, atomically for readers, and
	// drops the old live target.
	Swap(ctx context.Context) error
}
