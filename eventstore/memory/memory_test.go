package memory_test

import (
	"context"
	"math"
	"testing"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/eventstore/memory"
)

func TestConformance(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return memory.New() }, eventstoretest.UniqueEventIDs, eventstoretest.Counts, eventstoretest.MultiStream)
}

// TestReadAllBeyondTheEnd: a position past every event (or past what a
// slice index can hold) reads nothing.
func TestReadAllBeyondTheEnd(t *testing.T) {
	s := memory.New()
	eventstoretest.MustAppend(t, s, "s-1", eventstore.NoStream, eventstoretest.Ev("x.a", 1))
	for _, p := range []eventstore.Position{{Commit: 2, Prepare: 2}, {Commit: math.MaxUint64}, {Commit: 1 << 63}} {
		got, err := s.ReadAll(context.Background(), p, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("ReadAll from %s: %d events, %v; want none", p, len(got), err)
		}
	}
}
