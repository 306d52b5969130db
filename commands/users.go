package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/services/auth"
)

// Users runs the commands on user accounts: sign-up, sign-in, roles, and
// the lookups the API needs to authenticate a caller.
type Users struct {
	*repository
	grace     time.Duration
	hashSlots chan struct{} // a slot per argon2id computation under way
	roles     RoleCache     // nil: no API caches roles
}

// RoleCache is where the APIs cache the roles of users so that a request
// reads no stream (*auth.RoleCache is one). Every role change is marked
// before its append, and so can never leave the old roles trusted, and
// its result offered after.
type RoleCache interface {
	// Changing marks a change of the user's roles that will be appended
	// at stream version next; on error nothing is appended.
	Changing(ctx context.Context, userID string, next int64) error
	// Offer caches the roles the user holds at version, the change's.
	Offer(ctx context.Context, userID string, roles []string, version int64) error
}

// CacheRoles makes every role change go through cache, the one the APIs
// read. Call it before the handlers are used, in every process that
// changes roles while an API caches them (the write API, create-admin).
func (h *Users) CacheRoles(cache RoleCache) { h.roles = cache }

// RegisterUser is the sign-up command.
type RegisterUser struct {
	Email    string
	Password string
	FullName string
}

// RegisterUser creates a customer. The email is claimed first (unique,
// case-insensitive), then the user is written with the password hashed by
// argon2id. Errors: CodeInvalid listing every bad field, CodeConflict
// "email_taken".
func (h *Users) RegisterUser(ctx context.Context, c RegisterUser) (user.State, Result, error) {
	var f domain.Fields
	email, err := user.NormaliseEmail(c.Email)
	if err != nil {
		f = append(f, fieldsOf(err)...)
	}
	if err := user.CheckPassword(c.Password); err != nil {
		f = append(f, fieldsOf(err)...)
	}
	f.CheckName("full_name", c.FullName, user.MaxNameLength)
	if err := f.Err(); err != nil {
		return user.State{}, Result{}, err
	}
	id := h.newID()
	hash, err := h.hashPassword(ctx, c.Password)
	if err != nil {
		return user.State{}, Result{}, wrap("hash password", err)
	}
	if _, err := claim(ctx, h.repository, h.grace, user.EmailStream(email), email, id, "email_taken", h.userOwner()); err != nil {
		return user.State{}, Result{}, err
	}
	fresh(h.repository, userKind, user.Stream(id))
	st, res, err := execute(ctx, h.repository, userKind, user.Stream(id), NoVersion, func(s user.State) ([]domain.Event, error) {
		return user.DecideRegister(s, user.Register{UserID: id, Email: email, FullName: c.FullName, PasswordHash: hash})
	})
	return st, res, wrap("register user", err)
}

func fieldsOf(err error) []domain.FieldError {
	var de *domain.Error
	if errors.As(err, &de) {
		return de.Fields
	}
	return nil
}

func (h *Users) userOwner() owner {
	return owner{
		state: func(ctx context.Context, id string) (bool, bool, error) {
			u, err := load(ctx, h.repository, userKind, user.Stream(id))
			return u.state.Exists(), u.state.Abandoned, err
		},
		fence: func(ctx context.Context, id string) (bool, bool, error) {
			s, _, err := execute(ctx, h.repository, userKind, user.Stream(id), NoVersion, func(s user.State) ([]domain.Event, error) {
				return user.DecideAbandon(s, id), nil
			})
			return s.Exists(), s.Abandoned, err
		},
	}
}

// Authenticate checks an email and password. Unknown email and wrong
// password give the same error and take the same time. Errors:
// domain.ErrBadCredentials.
func (h *Users) Authenticate(ctx context.Context, email, password string) (user.State, error) {
	release, err := h.hashSlot(ctx)
	if err != nil {
		return user.State{}, err
	}
	defer release()
	norm, err := user.NormaliseEmail(email)
	if err != nil || len(password) > 4*user.MaxPasswordLength {
		auth.DummyVerify(password)
		return user.State{}, domain.ErrBadCredentials
	}
	claim, err := load(ctx, h.repository, claimKind, user.EmailStream(norm))
	if err != nil {
		return user.State{}, wrap("authenticate", err)
	}
	if claim.state.Owner == "" {
		auth.DummyVerify(password)
		return user.State{}, domain.ErrBadCredentials
	}
	u, err := load(ctx, h.repository, userKind, user.Stream(claim.state.Owner))
	if err != nil {
		return user.State{}, wrap("authenticate", err)
	}
	if !u.state.Exists() || u.state.PasswordHash == "" {
		auth.DummyVerify(password)
		return user.State{}, domain.ErrBadCredentials
	}
	ok, err := auth.VerifyPassword(u.state.PasswordHash, password)
	if err != nil {
		return user.State{}, wrap("authenticate", err)
	}
	if !ok {
		return user.State{}, domain.ErrBadCredentials
	}
	if auth.NeedsRehash(u.state.PasswordHash) {
		// Stored with older hashing parameters: the password is at hand
		// now, so store it again with the current ones. Best effort.
		if err := h.rehash(ctx, u.state.ID, password); err != nil {
			h.log.WarnContext(ctx, "rehash password", "user_id", u.state.ID, "err", err)
		}
	}
	return u.state, nil
}

// rehash stores password again for id with the current parameters; the
// caller holds a hash slot.
func (h *Users) rehash(ctx context.Context, id, password string) error {
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	_, _, err = execute(ctx, h.repository, userKind, user.Stream(id), NoVersion, func(s user.State) ([]domain.Event, error) {
		if !auth.NeedsRehash(s.PasswordHash) {
			return nil, nil
		}
		return user.DecideSetPassword(s, hash)
	})
	return err
}

// User returns the current state of user id. Errors: CodeNotFound.
func (h *Users) User(ctx context.Context, id string) (user.State, Result, error) {
	u, err := load(ctx, h.repository, userKind, user.Stream(id))
	if err != nil {
		return user.State{}, Result{}, wrap("load user", err)
	}
	if !u.state.Exists() {
		return user.State{}, Result{}, domain.NotFound("user", id)
	}
	return u.state, Result{Version: u.state.Version, Position: u.pos}, nil
}

// Roles is the roles user id holds now, read from its stream, with the
// stream's version, for authenticating its requests when the roles are
// not cached (auth.RoleSource). Errors: those of User.
func (h *Users) Roles(ctx context.Context, id string) ([]string, int64, error) {
	u, _, err := h.User(ctx, id)
	return u.Roles, u.Version, err
}

// changingRoles wraps decide, a decision on user id's roles, so that when
// it decides to write, the role cache is marked first (inside execute,
// right before the append, with the version the append will take; again
// on every retry). A failed mark fails the decision: no append.
func (h *Users) changingRoles(ctx context.Context, id string, decide decision[user.State]) decision[user.State] {
	return func(s user.State) ([]domain.Event, error) {
		events, err := decide(s)
		if err != nil || len(events) == 0 || h.roles == nil {
			return events, err
		}
		if err := h.roles.Changing(ctx, id, s.Version+1); err != nil {
			return nil, err
		}
		return events, nil
	}
}

// changedRoles offers the roles st holds after a change to the cache. A
// failure is only logged: the change is marked, so the next request reads
// the stream.
func (h *Users) changedRoles(ctx context.Context, st user.State) {
	if h.roles == nil {
		return
	}
	if err := h.roles.Offer(ctx, st.ID, st.Roles, st.Version); err != nil {
		h.log.WarnContext(ctx, "cache roles after a change", "user_id", st.ID, "err", err)
	}
}

// GrantRole gives a user a role. Only admins may. Errors: domain.ErrForbidden,
// CodeNotFound, CodeInvalid for an unknown role.
func (h *Users) GrantRole(ctx context.Context, actor Actor, userID, role string) (user.State, Result, error) {
	if !actor.Has(user.RoleAdmin) {
		return user.State{}, Result{}, domain.ErrForbidden
	}
	granted := false
	st, res, err := execute(ctx, h.repository, userKind, user.Stream(userID), NoVersion, h.changingRoles(ctx, userID, func(s user.State) ([]domain.Event, error) {
		if !s.Exists() {
			return nil, domain.NotFound("user", userID)
		}
		events, err := user.DecideGrantRole(s, role)
		granted = len(events) > 0
		return events, err
	}))
	if err != nil {
		return st, res, wrap("grant role", err)
	}
	if granted {
		h.changedRoles(ctx, st)
	}
	if role == user.RoleAdmin && granted {
		// The user stream is written first, so a crash in between leaves
		// the admins set short of an admin, never holding one too many:
		// the last real admin can never lose the role. Only a grant that
		// changed the user touches the set: a no-op grant racing a
		// revocation must not put back a member the revocation is taking
		// out.
		if _, _, err := execute(ctx, h.repository, adminsKind, user.AdminsStream, NoVersion, func(a user.Admins) ([]domain.Event, error) {
			return user.DecideAdminAdded(a, userID), nil
		}); err != nil {
			return st, res, wrap("grant role", err)
		}
	}
	return st, res, nil
}

// RevokeRole takes a role away. Only admins may; the last admin keeps the
// admin role. Errors: domain.ErrForbidden, CodeNotFound, CodeInvalid,
// CodeConflict "last_admin".
func (h *Users) RevokeRole(ctx context.Context, actor Actor, userID, role string) (user.State, Result, error) {
	if !actor.Has(user.RoleAdmin) {
		return user.State{}, Result{}, domain.ErrForbidden
	}
	u, err := load(ctx, h.repository, userKind, user.Stream(userID))
	if err != nil {
		return user.State{}, Result{}, wrap("revoke role", err)
	}
	if !u.state.Exists() {
		return user.State{}, Result{}, domain.NotFound("user", userID)
	}
	admins := user.NewAdmins()
	if role == user.RoleAdmin && u.state.HasRole(user.RoleAdmin) {
		// The admins set is written first (and is where two concurrent
		// revocations collide), so no interleaving removes the last admin.
		if admins, _, err = execute(ctx, h.repository, adminsKind, user.AdminsStream, NoVersion, func(a user.Admins) ([]domain.Event, error) {
			return user.DecideAdminRemoved(a, userID)
		}); err != nil {
			return u.state, Result{}, wrap("revoke role", err)
		}
	}
	revoked := false
	st, res, err := execute(ctx, h.repository, userKind, user.Stream(userID), NoVersion, h.changingRoles(ctx, userID, func(s user.State) ([]domain.Event, error) {
		events, err := user.DecideRevokeRole(s, role, admins)
		revoked = len(events) > 0
		return events, err
	}))
	if err != nil {
		return st, res, wrap("revoke role", err)
	}
	if revoked {
		h.changedRoles(ctx, st)
	}
	return st, res, nil
}

// EnsureAdmin makes sure a user with email exists and is an admin,
// registering it with password when absent; an existing account is made
// admin only when password is its password. It is how an operator (the
// local run's seed, or the `eventshop admin` command) creates the first
// admin; it never runs by default outside the local run.
func (h *Users) EnsureAdmin(ctx context.Context, email, password, fullName string) (user.State, error) {
	u, _, err := h.RegisterUser(ctx, RegisterUser{Email: email, Password: password, FullName: fullName})
	if errors.Is(err, &domain.Error{Reason: "email_taken"}) {
		// Only the account's owner is made admin: whoever registered the
		// address first must have set this password.
		u, err = h.Authenticate(ctx, email, password)
		if errors.Is(err, domain.ErrBadCredentials) {
			return user.State{}, fmt.Errorf("%s is registered with another password; an admin is made only of an account whose password is given", email)
		}
	}
	if err != nil {
		return user.State{}, err
	}
	system := Actor{ID: "system", Roles: []string{user.RoleAdmin}}
	u, _, err = h.GrantRole(ctx, system, u.ID, user.RoleAdmin)
	return u, err
}

// UserIDByEmail returns the id of the user who holds email. Errors:
// CodeNotFound.
func (h *Users) UserIDByEmail(ctx context.Context, email string) (string, error) {
	norm, err := user.NormaliseEmail(email)
	if err != nil {
		return "", err
	}
	claim, err := load(ctx, h.repository, claimKind, user.EmailStream(norm))
	if err != nil {
		return "", wrap("find user", err)
	}
	if claim.state.Owner == "" {
		return "", domain.NotFound("user", email)
	}
	return claim.state.Owner, nil
}

// hashSlot bounds how many argon2id computations (19 MiB each) run at
// once, so a burst of sign-ins or sign-ups cannot exhaust memory; callers
// wait their turn or give up with their context.
func (h *Users) hashSlot(ctx context.Context) (release func(), err error) {
	select {
	case h.hashSlots <- struct{}{}:
		return func() { <-h.hashSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (h *Users) hashPassword(ctx context.Context, pw string) (string, error) {
	release, err := h.hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return auth.HashPassword(pw)
}
