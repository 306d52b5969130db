// Package edge is the HTTP edge every API route stands on: the request
// middleware (correlation id, body limit, panics), who the caller is
// (authentication, role checks, the actor in the context), the one mapping
// of errors to RFC 9457 problems, strict JSON decoding, If-Match, JSON
// answers, id canonicalisation, and the root router (health, readiness,
// metrics, docs, 404 and 405).
//
// The route sets (writeapi, readapi) are built on it and never on each
// other. It knows the domain's errors and the services' (tokens,
// payments), and takes what it needs of the rest (where the roles of a
// user are read: auth.RoleSource) as small interfaces, so it imports
// neither the command layer nor the APIs.
package edge

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/internal/edge/problem"
	"github.com/eventshop/eventshop/internal/platform/correlation"
)

// MaxBodyBytes bounds every request body (413 beyond).
const MaxBodyBytes = 1 << 20

// correlationPattern is what an incoming X-Correlation-ID may look like;
// anything else is replaced, so logs and events never carry junk.
var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

type loggerKey struct{}

// Middleware is what every route runs under: a correlation id (echoed, or
// made), the MaxBodyBytes body limit, log as the logger WriteError reports
// to, and panics turned into a 500 problem.
func Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get("X-Correlation-ID")
			if !correlationPattern.MatchString(id) {
				id = uuid.NewString()
			}
			w.Header().Set("X-Correlation-ID", id)
			ctx := correlation.With(r.Context(), correlation.IDs{Correlation: id, Causation: id})
			ctx = context.WithValue(ctx, loggerKey{}, log)
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

// logger is the logger Middleware put in ctx; outside it, one that
// discards.
func logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
