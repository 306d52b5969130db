package projections

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// TestClaimFences: a batch's claim moves the checkpoint only from where
// the batch began; a runner that read from an older checkpoint (another
// instance got further) is fenced off and changes nothing.
func TestClaimFences(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := openState(ctx, pool, "fence.v1")
	if err != nil {
		t.Fatal(err)
	}
	a := eventstore.Position{Commit: 10, Prepare: 1}
	b := eventstore.Position{Commit: 12, Prepare: 7}
	c := eventstore.Position{Commit: 15, Prepare: 2}
	claim := func(from, to eventstore.Position) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return s.claim(ctx, tx, "fence.v1", from, to) })
	}
	for _, step := range []struct {
		from, to eventstore.Position
		fenced   bool
		want     eventstore.Position
	}{
		{eventstore.Start, a, false, a}, // the first batch creates the row
		{eventstore.Start, b, true, a},  // a second first batch is fenced
		{a, b, false, b},
		{a, c, true, b}, // from a checkpoint another instance has passed
		{b, b, false, b},
		{b, c, false, c},
	} {
		err := claim(step.from, step.to)
		if fenced := errors.Is(err, errFenced); fenced != step.fenced || (err != nil && !fenced) {
			t.Fatalf("claim %s→%s: %v, want fenced %v", step.from, step.to, err, step.fenced)
		}
		if got, err := s.checkpoint(ctx, "fence.v1"); err != nil || got != step.want {
			t.Fatalf("after claim %s→%s: checkpoint %s, %v; want %s", step.from, step.to, got, err, step.want)
		}
	}
}
