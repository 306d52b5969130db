package writeapi

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/auth"
	"github.com/eventshop/eventshop/internal/correlation"
	"github.com/eventshop/eventshop/internal/problem"
)

// correlationPattern is what an incoming X-Correlation-ID may look like;
// anything else is replaced, so logs and events never carry junk.
var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Middleware is what every API route runs under: a correlation id (echoed,
// or made), a 1 MiB body limit, and panics turned into a 500 problem.
func Middleware(log interface {
	ErrorContext(ctx context.Context, msg string, args ...any)
}) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get("X-Correlation-ID")
			if !correlationPattern.MatchString(id) {
				id = uuid.NewString()
			}
			w.Header().Set("X-Correlation-ID", id)
			ctx := correlation.With(r.Context(), correlation.IDs{Correlation: id, Causation: id})
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			}
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.ErrorContext(ctx, "panic in handler", "panic", v, "path", r.URL.Path)
					problem.Write(w, problem.New(http.StatusInternalServerError, "internal error"))
				}
			}()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

type actorKey struct{}

// actor is the signed-in caller: who, with the roles the user holds now
// (read from the user's stream, so a revoked role stops working at once),
// and the verified access token.
type actor struct {
	commands.Actor
	claims auth.Claims
}

func actorFrom(ctx context.Context) actor {
	a, _ := ctx.Value(actorKey{}).(actor)
	return a
}

// ActorFrom returns the caller that Authenticate put in ctx, with the
// roles the user holds now; ok is false outside Authenticate.
func ActorFrom(ctx context.Context) (a commands.Actor, ok bool) {
	v, ok := ctx.Value(actorKey{}).(actor)
	return v.Actor, ok
}

// Authenticate is the middleware of every signed-in route, for other
// packages' routes (the read API) to share: it requires a valid, unrevoked
// access token of an existing user and puts the caller in the request's
// context (see ActorFrom). It answers 401 otherwise, and 503 when Redis or
// the event store cannot be asked.
func (s *Server) Authenticate(next http.Handler) http.Handler { return s.authenticate(next) }

// authenticate requires a valid access token of an existing user.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			s.writeError(w, r, auth.ErrInvalidToken)
			return
		}
		claims, err := s.auth.VerifyAccess(r.Context(), strings.TrimSpace(token))
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) {
				err = &unavailableError{err}
			}
			s.writeError(w, r, err)
			return
		}
		u, _, err := s.cmd.User(r.Context(), claims.UserID)
		switch {
		case errors.Is(err, &domain.Error{Code: domain.CodeNotFound}):
			// A token of a user that no longer exists is no token.
			s.writeError(w, r, auth.ErrInvalidToken)
			return
		case errors.Is(err, &domain.Error{Reason: domain.ReasonStreamUnreadable}):
			// Retrying cannot help: the caller's own stream needs an
			// operator, whom the 409 names it to.
			s.writeError(w, r, err)
			return
		case err != nil:
			s.writeError(w, r, &unavailableError{err})
			return
		}
		a := actor{Actor: commands.Actor{ID: u.ID, Roles: u.Roles}, claims: claims}
		ctx := context.WithValue(r.Context(), actorKey{}, a)
		ids := correlation.From(ctx)
		ids.Actor = u.ID
		ctx = correlation.With(ctx, ids)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requireRole is function-level authorization: the caller must hold one of
// roles, checked before the body is read, so a caller without the role
// learns nothing about what the route would accept. Per-object checks
// (whose product, whose order) stay with the commands.
func requireRole(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := actorFrom(r.Context())
			for _, role := range roles {
				if a.Has(role) {
					next.ServeHTTP(w, r)
					return
				}
			}
			writeProblem(w, http.StatusForbidden, "your roles do not allow this")
		})
	}
}
