package edge

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/platform/correlation"
	"github.com/eventshop/eventshop/internal/services/auth"
)

// Actor is the signed-in caller: who, with the roles the user holds now
// (checked on every request, so a revoked role stops working at once),
// and the claims of the verified access token.
type Actor struct {
	ID     string
	Roles  []string
	Claims auth.Claims
}

// Has reports whether the actor holds role.
func (a Actor) Has(role string) bool { return slices.Contains(a.Roles, role) }

type actorKey struct{}

// ActorFrom returns the caller that Authenticate put in ctx; ok is false
// outside Authenticate.
func ActorFrom(ctx context.Context) (a Actor, ok bool) {
	a, ok = ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// Tokens verifies access tokens and finds the roles of their users
// (auth.Service).
type Tokens interface {
	VerifyAccess(ctx context.Context, token string, roles auth.RoleSource) (auth.Claims, []string, error)
}

// Authenticate is the middleware of every signed-in route: it requires a
// valid, unrevoked access token of an existing user and puts the caller,
// with the roles the user holds now, in the request's context (see
// ActorFrom). tokens answers from Redis in one round trip; roles, the
// user's stream, is read only when the roles are not cached there (see
// auth.RoleCache). roles' errors: a domain NotFound error for a user that
// does not exist (401), a domain error of reason stream_unreadable for one
// whose stream cannot be read (409), anything else when it could not be
// read (503). It answers 401 for a refused token, and 503 when the token
// state cannot be asked.
func Authenticate(tokens Tokens, roles auth.RoleSource) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
				WriteError(w, r, auth.ErrInvalidToken)
				return
			}
			claims, held, err := tokens.VerifyAccess(r.Context(), strings.TrimSpace(token), roles)
			switch {
			case errors.Is(err, auth.ErrInvalidToken):
				WriteError(w, r, err)
				return
			case errors.Is(err, &domain.Error{Code: domain.CodeNotFound}):
				// A token of a user that no longer exists is no token.
				WriteError(w, r, auth.ErrInvalidToken)
				return
			case errors.Is(err, &domain.Error{Reason: domain.ReasonStreamUnreadable}):
				// Retrying cannot help: the caller's own stream needs an
				// operator, whom the 409 names it to.
				WriteError(w, r, err)
				return
			case err != nil:
				WriteError(w, r, Unavailable(err))
				return
			}
			ctx := context.WithValue(r.Context(), actorKey{}, Actor{ID: claims.UserID, Roles: held, Claims: claims})
			ids := correlation.From(ctx)
			ids.Actor = claims.UserID
			ctx = correlation.With(ctx, ids)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// RequireRole is function-level authorization: the caller must hold one
// of roles, checked before the body is read, so a caller without the role
// learns nothing about what the route would accept (403). Per-object
// checks (whose product, whose order) stay with the commands.
func RequireRole(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, _ := ActorFrom(r.Context())
			if slices.ContainsFunc(roles, a.Has) {
				next.ServeHTTP(w, r)
				return
			}
			WriteError(w, r, domain.ErrForbidden)
		})
	}
}
