// Package user is the User aggregate: registration, credentials and roles,
// as pure decide/evolve functions over its event stream "user-<id>", plus
// the set of admins, the small aggregate that keeps a rule spanning users.
// Email uniqueness is a domain/unique claim on EmailStream.
package user

import (
	"net/mail"
	"strings"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/unique"
)

// Roles a user may hold.
const (
	RoleCustomer = "customer"
	RoleVendor   = "vendor"
	RoleAdmin    = "admin"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return r == RoleCustomer || r == RoleVendor || r == RoleAdmin }

// Stream names of this package.
const (
	StreamPrefix      = "user-"
	EmailStreamPrefix = "user_email-"
	// AdminsStream holds the set of admins, so the last admin's role can
	// never be revoked even by concurrent revocations.
	AdminsStream = "user_admins"
)

// Stream is the stream of user id.
func Stream(id string) string { return StreamPrefix + id }

// EmailStream is the uniqueness stream of a normalised email.
func EmailStream(normalisedEmail string) string {
	return unique.Stream(EmailStreamPrefix, normalisedEmail)
}

// Registered: a user signed up.
type Registered struct {
	UserID   string   `json:"user_id"`
	Email    string   `json:"email"`
	FullName string   `json:"full_name"`
	Roles    []string `json:"roles"`
}

// CredentialsSet: the user's password hash. It lives in its own event type
// so that publishing can leave it out: it never leaves the event store.
type CredentialsSet struct {
	UserID       string `json:"user_id"`
	PasswordHash string `json:"password_hash"`
}

// RoleGranted: an admin gave the user a role.
type RoleGranted struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
}

// RoleRevoked: an admin took a role away.
type RoleRevoked struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
}

// RegistrationAbandoned fences a user id whose registration never finished
// (the process stopped between reserving the email and writing the user):
// once it is in the stream, that registration can no longer complete.
type RegistrationAbandoned struct {
	UserID string `json:"user_id"`
}

// AdminAdded / AdminRemoved change the set of admins (AdminsStream).
type AdminAdded struct {
	UserID string `json:"user_id"`
}

// AdminRemoved: see AdminAdded.
type AdminRemoved struct {
	UserID string `json:"user_id"`
}

func (Registered) EventType() string            { return "user.registered" }
func (CredentialsSet) EventType() string        { return "user.credentials_set" }
func (RoleGranted) EventType() string           { return "user.role_granted" }
func (RoleRevoked) EventType() string           { return "user.role_revoked" }
func (RegistrationAbandoned) EventType() string { return "user.registration_abandoned" }
func (AdminAdded) EventType() string            { return "user.admin_added" }
func (AdminRemoved) EventType() string          { return "user.admin_removed" }

// Bounds of the user's fields.
const (
	MaxEmailLength = 254
	MaxNameLength  = 200
	// MaxPasswordHashLength bounds a stored hash; an argon2id or bcrypt
	// encoding is about 100 characters.
	MaxPasswordHashLength = 1024
)

// Validate checks a registration: the user id, a normalised email, a
// full name (one line, at most MaxNameLength) and known roles; field names
// are those of the sign-up request. Errors: CodeInvalid.
func (e Registered) Validate() error {
	var f domain.Fields
	f.CheckID("user_id", e.UserID)
	if checkEmail(&f, e.Email); e.Email != strings.ToLower(strings.TrimSpace(e.Email)) {
		f.Add("email", "must be normalised (trimmed, lower case)")
	}
	f.CheckName("full_name", e.FullName, MaxNameLength)
	if len(e.Roles) == 0 {
		f.Add("roles", "must hold at least one role")
	}
	for _, r := range e.Roles {
		checkRoleField(&f, "roles", r)
	}
	return f.Err()
}

// checkEmail: a bare address (no display name) with a dotted domain, at
// most MaxEmailLength bytes.
func checkEmail(f *domain.Fields, e string) {
	if !f.Require("email", e) {
		return
	}
	addr, err := mail.ParseAddress(e)
	_, domainPart, _ := strings.Cut(e, "@")
	switch {
	case len(e) > MaxEmailLength:
		f.Add("email", "must be at most %d characters", MaxEmailLength)
	case !domain.ValidText(e, false) || err != nil || addr.Address != e || addr.Name != "" ||
		!strings.Contains(domainPart, ".") || strings.HasSuffix(domainPart, "."):
		f.Add("email", "is not a valid email address")
	}
}

// checkRoleField: one of customer, vendor, admin.
func checkRoleField(f *domain.Fields, field, role string) {
	if !ValidRole(role) {
		f.Add(field, "must be one of customer, vendor, admin")
	}
}

// Validate checks the user id and a hash (one line, at most
// MaxPasswordHashLength). Errors: CodeInvalid.
func (e CredentialsSet) Validate() error {
	var f domain.Fields
	f.CheckID("user_id", e.UserID)
	f.CheckName("password_hash", e.PasswordHash, MaxPasswordHashLength)
	return f.Err()
}

// Validate checks the user id and the role. Errors: CodeInvalid.
func (e RoleGranted) Validate() error { return checkUserRole(e.UserID, e.Role) }

// Validate checks the user id and the role. Errors: CodeInvalid.
func (e RoleRevoked) Validate() error { return checkUserRole(e.UserID, e.Role) }

func checkUserRole(id, role string) error {
	var f domain.Fields
	f.CheckID("user_id", id)
	checkRoleField(&f, "role", role)
	return f.Err()
}

// Validate checks the user id. Errors: CodeInvalid.
func (e RegistrationAbandoned) Validate() error { return userID(e.UserID) }

// Validate checks the user id. Errors: CodeInvalid.
func (e AdminAdded) Validate() error { return userID(e.UserID) }

// Validate checks the user id. Errors: CodeInvalid.
func (e AdminRemoved) Validate() error { return userID(e.UserID) }

func userID(id string) error {
	var f domain.Fields
	f.CheckID("user_id", id)
	return f.Err()
}

// IsSecret reports whether events of eventType must never leave the event
// store (publishers and history skip them).
func IsSecret(eventType string) bool { return eventType == CredentialsSet{}.EventType() }

// Registry decodes every event of this package.
func Registry() domain.Registry {
	r := domain.Registry{}
	domain.Register[Registered](r)
	domain.Register[CredentialsSet](r)
	domain.Register[RoleGranted](r)
	domain.Register[RoleRevoked](r)
	domain.Register[RegistrationAbandoned](r)
	domain.Register[AdminAdded](r)
	domain.Register[AdminRemoved](r)
	return r
}
