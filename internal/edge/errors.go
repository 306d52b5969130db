package edge

import (
	"context"
	"errors"
	"net/http"
	"os"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/edge/problem"
	"github.com/eventshop/eventshop/internal/platform/outage"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// requestError is a request the server cannot read: status 400, 413 or
// 415, or 422 with the field.
type requestError struct {
	status int
	detail string
	field  string
}

func (e *requestError) Error() string { return e.detail }

// unavailableError is a dependency (Redis, the event store, a read model)
// that failed where the request cannot go on without it.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// BadRequest is an error WriteError answers with 400 and detail: a
// request that cannot be read (a malformed header or parameter).
func BadRequest(detail string) error {
	return &requestError{status: http.StatusBadRequest, detail: detail}
}

// Invalid is an error WriteError answers with 422, naming field: a value
// of the right JSON type that the route cannot take.
func Invalid(field, detail string) error {
	return &requestError{status: http.StatusUnprocessableEntity, field: field, detail: detail}
}

// Unavailable wraps err, a failure of a dependency the request cannot go
// on without, so that WriteError answers 503 with Retry-After and logs err.
func Unavailable(err error) error { return &unavailableError{err} }

// WriteError answers err with its problem, the one mapping of errors to
// statuses of every route: domain errors by code, with their reason,
// fields and extra members; the domain's ErrForbidden 403,
// ErrPreconditionFailed 412, ErrBadCredentials 401 and ErrContention 503;
// BadRequest 400, Invalid 422, body errors 413 and 415; Unavailable, and
// any dependency's outage a handler did not mark (outage.Is), 503;
// auth.ErrInvalidToken 401; declined payments 402; anything unknown 500.
// A request that ran out of time is 503 with Retry-After, never 500: an
// error from a context that ended or an I/O deadline, and an unavailable
// dependency or unknown error once the request's own context has ended
// (its deadline, or the client gone). Details of a 5xx go to the log
// (Middleware's logger) only.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		de *domain.Error
		re *requestError
		ue *unavailableError
	)
	switch {
	case outOfTime(err):
		writeOutOfTime(w, r, err)
	case (errors.As(err, &ue) || outage.Is(err)) && r.Context().Err() != nil:
		writeOutOfTime(w, r, err)
	case errors.As(err, &ue) || outage.Is(err):
		logger(r.Context()).ErrorContext(r.Context(), "dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "a service this request needs is unavailable; retry"))
	case errors.As(err, &re):
		p := problem.New(re.status, re.detail)
		if re.field != "" {
			p.Errors = []problem.FieldError{{Field: re.field, Message: re.detail}}
		}
		problem.Write(w, p)
	case errors.As(err, &de):
		status := map[domain.Code]int{
			domain.CodeInvalid: http.StatusUnprocessableEntity, domain.CodeConflict: http.StatusConflict,
			domain.CodeNotFound: http.StatusNotFound,
		}[de.Code]
		if status == 0 {
			status = http.StatusInternalServerError
		}
		p := problem.New(status, de.Detail)
		p.Code, p.Extra = de.Reason, de.Extra
		for _, f := range de.Fields {
			p.Errors = append(p.Errors, problem.FieldError(f))
		}
		problem.Write(w, p)
	case errors.Is(err, auth.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		problem.Write(w, problem.New(http.StatusUnauthorized, "missing, invalid, expired or revoked token"))
	case errors.Is(err, domain.ErrBadCredentials):
		problem.Write(w, problem.New(http.StatusUnauthorized, "invalid email or password"))
	case errors.Is(err, domain.ErrForbidden):
		problem.Write(w, problem.New(http.StatusForbidden, "your roles do not allow this"))
	case errors.Is(err, domain.ErrPreconditionFailed):
		problem.Write(w, problem.New(http.StatusPreconditionFailed, "the resource has changed since the version in If-Match"))
	case errors.Is(err, payment.ErrDeclined):
		p := problem.New(http.StatusPaymentRequired, "the card was declined")
		var d *payment.DeclinedError
		if errors.As(err, &d) {
			p.Code = d.Reason
		}
		problem.Write(w, p)
	case errors.Is(err, payment.ErrKeyReused):
		problem.Write(w, problem.New(http.StatusConflict, "another card with the same last four digits and expiry was already tried for this order; pay with another card"))
	case errors.Is(err, domain.ErrContention):
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "the resource is busy; retry"))
	case r.Context().Err() != nil:
		writeOutOfTime(w, r, err)
	default:
		logger(r.Context()).ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal error"))
	}
}

// outOfTime reports whether err comes of time running out: a context that
// ended (deadline or cancellation) or an I/O deadline (a driver that maps
// the context's deadline onto its connection's).
func outOfTime(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, os.ErrDeadlineExceeded)
}

// writeOutOfTime answers a request that ran out of time: 503 with
// Retry-After. Its deadline passing is logged as a warning (one line per
// request; admission control keeps them rare); a client that went away is
// not worth more than a debug line, and no one reads the answer.
func writeOutOfTime(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if errors.Is(ctx.Err(), context.Canceled) {
		logger(ctx).DebugContext(ctx, "request ended by the client", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		logger(ctx).WarnContext(ctx, "request ran out of time", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Retry-After", "1")
	problem.Write(w, problem.New(http.StatusServiceUnavailable, "the request took too long; retry"))
}
