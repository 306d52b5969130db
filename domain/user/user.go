package user

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventshop/eventshop/domain"
)

// State is a user as folded from its stream. Version is -1 before the
// first event.
type State struct {
	ID           string
	Email        string
	FullName     string
	Roles        []string
	PasswordHash string
	Abandoned    bool
	CreatedAt    time.Time
	Version      int64
}

// Exists reports whether the user registered.
func (s State) Exists() bool { return s.ID != "" && !s.Abandoned }

// HasRole reports whether the user holds role.
func (s State) HasRole(role string) bool { return slices.Contains(s.Roles, role) }

// New is the state of a stream with no events.
func New() State { return State{Version: -1} }

// Evolve applies one recorded event; it never fails, and ignores events of
// other aggregates.
func Evolve(s State, r domain.Recorded) State {
	s.Version = r.Version
	switch e := r.Event.(type) {
	case Registered:
		s.ID, s.Email, s.FullName = e.UserID, e.Email, e.FullName
		s.Roles = slices.Clone(e.Roles)
		s.CreatedAt = r.At
	case CredentialsSet:
		s.PasswordHash = e.PasswordHash
	case RoleGranted:
		if !s.HasRole(e.Role) {
			s.Roles = append(slices.Clone(s.Roles), e.Role)
		}
	case RoleRevoked:
		s.Roles = slices.DeleteFunc(slices.Clone(s.Roles), func(r string) bool { return r == e.Role })
	case RegistrationAbandoned:
		s.Abandoned = true
	}
	return s
}

// Fold folds history from New.
func Fold(history []domain.Recorded) State { return domain.Fold(New(), Evolve, history) }

// Password policy bounds. The upper bound keeps hashing cost fixed.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 128
)

// NormaliseEmail trims and lower-cases an address and checks it is a bare
// address (no display name) with a dotted domain. Errors: CodeInvalid on
// field "email".
func NormaliseEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	var f domain.Fields
	checkEmail(&f, e)
	return e, f.Err()
}

// CheckPassword applies the password policy (8 to 128 characters, not all
// white space). Errors: CodeInvalid on field "password".
func CheckPassword(pw string) error {
	var f domain.Fields
	n := utf8.RuneCountInString(pw)
	switch {
	case !utf8.ValidString(pw):
		f.Add("password", "must be valid UTF-8")
	case n < MinPasswordLength:
		f.Add("password", "must be at least %d characters", MinPasswordLength)
	case n > MaxPasswordLength:
		f.Add("password", "must be at most %d characters", MaxPasswordLength)
	case strings.TrimSpace(pw) == "":
		f.Add("password", "must not be only white space")
	}
	return f.Err()
}

// Register is the command to sign up. Email must already be normalised and
// the password already checked and hashed by the caller.
type Register struct {
	UserID       string
	Email        string
	FullName     string
	PasswordHash string
}

// DecideRegister registers a new user with the customer role, the full
// name trimmed. Errors: CodeConflict "user_exists" when the stream is
// taken, CodeInvalid (Registered.Validate, CredentialsSet.Validate).
func DecideRegister(s State, c Register) ([]domain.Event, error) {
	if s.Version >= 0 {
		return nil, domain.Conflict("user_exists", "user %s already exists", c.UserID)
	}
	events := []domain.Event{
		Registered{UserID: c.UserID, Email: c.Email, FullName: strings.TrimSpace(c.FullName), Roles: []string{RoleCustomer}},
		CredentialsSet{UserID: c.UserID, PasswordHash: c.PasswordHash},
	}
	if err := domain.Validate(events...); err != nil {
		return nil, err
	}
	return events, nil
}

// DecideSetPassword stores a new password hash (a rehash with current
// parameters, or a changed password). Errors: CodeNotFound.
func DecideSetPassword(s State, hash string) ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("user", s.ID)
	}
	return []domain.Event{CredentialsSet{UserID: s.ID, PasswordHash: hash}}, nil
}

// checkRole refuses a role that is not one of the three. Errors:
// CodeInvalid on field "role".
func checkRole(role string) error {
	var f domain.Fields
	checkRoleField(&f, "role", role)
	return f.Err()
}

// DecideGrantRole gives the user role; granting a role the user holds
// changes nothing. Errors: CodeNotFound, CodeInvalid "unknown role".
func DecideGrantRole(s State, role string) ([]domain.Event, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, domain.NotFound("user", s.ID)
	}
	if s.HasRole(role) {
		return nil, nil
	}
	return []domain.Event{RoleGranted{UserID: s.ID, Role: role}}, nil
}

// DecideRevokeRole takes role away; revoking a role the user lacks changes
// nothing. admins is the current set of admins: the last admin keeps the
// admin role. Errors: CodeNotFound, CodeInvalid, CodeConflict "last_admin".
func DecideRevokeRole(s State, role string, admins Admins) ([]domain.Event, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	if !s.Exists() {
		return nil, domain.NotFound("user", s.ID)
	}
	if !s.HasRole(role) {
		return nil, nil
	}
	if role == RoleAdmin && admins.Count() <= 1 && admins.Has(s.ID) {
		return nil, domain.Conflict("last_admin", "user %s is the last admin; grant admin to another user first", s.ID)
	}
	return []domain.Event{RoleRevoked{UserID: s.ID, Role: role}}, nil
}

// DecideAbandon fences a user id whose registration never completed.
// Nothing happens when the user exists or is already fenced.
func DecideAbandon(s State, userID string) []domain.Event {
	if s.Version >= 0 {
		return nil
	}
	return []domain.Event{RegistrationAbandoned{UserID: userID}}
}
