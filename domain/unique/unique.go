// Package unique keeps a value (an email, a SKU) unique across streams
// without a read model: each value has a claim stream, named after a hash
// of the value, whose first event is appended with NoStream. The idiom
// works the same on every event store adapter.
//
// A claim names its owner, the aggregate that holds the value. A claim
// whose owner never came to exist (the process stopped between claiming
// and writing the owner) can be taken over once it is older than a grace
// period, after the caller has fenced the owner's stream so the stalled
// writer can no longer complete.
package unique

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/eventshop/eventshop/domain"
)

// Stream is the claim stream of value under prefix ("user_email-").
func Stream(prefix, value string) string {
	sum := sha256.Sum256([]byte(value))
	return prefix + hex.EncodeToString(sum[:])
}

// Claim is a claim stream folded.
type Claim struct {
	Owner   string
	Since   time.Time
	Version int64
}

// New is the state of an empty claim stream.
func New() Claim { return Claim{Version: -1} }

// Evolve applies one recorded event.
func Evolve(c Claim, r domain.Recorded) Claim {
	c.Version = r.Version
	switch e := r.Event.(type) {
	case Claimed:
		c.Owner, c.Since = e.OwnerID, r.At
	case Released:
		if c.Owner == e.OwnerID {
			c.Owner = ""
		}
	}
	return c
}

// DecideClaim claims value for owner. ownerExists says whether the current
// owner's aggregate exists (the caller reads it); ownerFenced whether its
// stream was fenced. Errors: CodeConflict with reason taken when another
// live owner holds it, and also when another owner's claim is younger than
// grace and may still complete (only the detail differs).
func DecideClaim(c Claim, value, owner, taken string, ownerExists, ownerFenced bool, now time.Time, grace time.Duration) ([]domain.Event, error) {
	switch {
	case c.Owner == "":
		return []domain.Event{Claimed{Value: value, OwnerID: owner}}, nil
	case c.Owner == owner:
		return nil, nil
	case ownerExists:
		return nil, domain.Conflict(taken, "%s is already taken", value)
	case ownerFenced || now.Sub(c.Since) >= grace:
		// The owner never came to exist: take the value over. The caller
		// fences the stale owner first when it is not fenced yet.
		return []domain.Event{
			Released{Value: value, OwnerID: c.Owner, Reason: "owner_never_created"},
			Claimed{Value: value, OwnerID: owner},
		}, nil
	default:
		return nil, domain.Conflict(taken, "%s is being registered by another request", value)
	}
}
