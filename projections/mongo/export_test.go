package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// LiveCollection is the collection the Store reads; nil when there is none.
func (s *Store) LiveCollection(ctx context.Context) (*mongo.Collection, error) {
	return s.collection(ctx)
}

// SetShadowFlushAt sets how many documents a shadow keeps in memory,
// until t's cleanup.
func SetShadowFlushAt(t interface{ Cleanup(func()) }, n int) {
	old := shadowFlushAt
	shadowFlushAt = n
	t.Cleanup(func() { shadowFlushAt = old })
}

// WriteConcurrency is the write commands in flight at most.
const WriteConcurrency = writeConcurrency
