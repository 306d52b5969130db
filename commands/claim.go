package commands

import (
	"context"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/unique"
)

// owner tells claim about the aggregate that holds a claimed value.
type owner struct {
	// state reports whether the owner exists, or was fenced.
	state func(ctx context.Context, id string) (exists, fenced bool, err error)
	// fence stops a stalled creation of the owner for good and reports
	// the owner's state afterwards (it may have been created meanwhile).
	fence func(ctx context.Context, id string) (exists, fenced bool, err error)
}

// claim makes value unique to ownerID through its claim stream. A claim
// held by an owner that never came to exist is taken over once it is older
// than the grace period, after that owner's stream has been fenced, so the
// stalled creation can never complete with the value it lost. Errors:
// CodeConflict taken.
func claim(ctx context.Context, r *repository, grace time.Duration, stream, value, ownerID, taken string, o owner) (Result, error) {
	_, res, err := execute(ctx, r, claimKind, stream, NoVersion, func(c unique.Claim) ([]domain.Event, error) {
		exists, fenced := false, false
		if c.Owner != "" && c.Owner != ownerID {
			var err error
			if exists, fenced, err = o.state(ctx, c.Owner); err != nil {
				return nil, err
			}
			if !exists && !fenced && r.now().Sub(c.Since) >= grace {
				if exists, fenced, err = o.fence(ctx, c.Owner); err != nil {
					return nil, err
				}
			}
		}
		return unique.DecideClaim(c, value, ownerID, taken, exists, fenced, r.now(), grace)
	})
	return res, err
}
