package user

import (
	"maps"

	"github.com/eventshop/eventshop/domain"
)

// Admins is the set of admins as folded from AdminsStream.
type Admins struct {
	set     map[string]bool
	Version int64
}

// NewAdmins is the state of an empty AdminsStream.
func NewAdmins() Admins { return Admins{Version: -1} }

// Count is the number of admins.
func (a Admins) Count() int { return len(a.set) }

// Has reports whether id is an admin.
func (a Admins) Has(id string) bool { return a.set[id] }

// EvolveAdmins applies one recorded event of AdminsStream.
func EvolveAdmins(a Admins, r domain.Recorded) Admins {
	a.Version = r.Version
	switch e := r.Event.(type) {
	case AdminAdded:
		a.set = maps.Clone(a.set)
		if a.set == nil {
			a.set = map[string]bool{}
		}
		a.set[e.UserID] = true
	case AdminRemoved:
		a.set = maps.Clone(a.set)
		delete(a.set, e.UserID)
	}
	return a
}

// DecideAdminAdded keeps the set in step with a user that holds the admin
// role; nothing happens when it already is.
func DecideAdminAdded(a Admins, userID string) []domain.Event {
	if a.Has(userID) {
		return nil
	}
	return []domain.Event{AdminAdded{UserID: userID}}
}

// DecideAdminRemoved removes userID, who holds the admin role, from the
// set. A holder the set misses (a grant stopped between its two writes) is
// counted in all the same. Errors: CodeConflict "last_admin" when userID
// is the only admin.
func DecideAdminRemoved(a Admins, userID string) ([]domain.Event, error) {
	if !a.Has(userID) {
		if a.Count() == 0 {
			return nil, domain.Conflict("last_admin", "user %s is the last admin; grant admin to another user first", userID)
		}
		return nil, nil
	}
	if a.Count() <= 1 {
		return nil, domain.Conflict("last_admin", "user %s is the last admin; grant admin to another user first", userID)
	}
	return []domain.Event{AdminRemoved{UserID: userID}}, nil
}
