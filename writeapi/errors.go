package writeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/auth"
	"github.com/eventshop/eventshop/internal/payment"
	"github.com/eventshop/eventshop/internal/problem"
)

// requestError is a request the server cannot read: status 400, 413 or
// 415, or 422 with the field.
type requestError struct {
	status int
	detail string
	field  string
}

func (e *requestError) Error() string { return e.detail }

// unavailableError is a dependency (Redis, the event store) that failed
// where the request cannot go on without it: 503, safe to retry.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// BadRequest is an error WriteError answers with 400 and detail, for a
// request other packages' routes cannot read (a malformed header).
func BadRequest(detail string) error {
	return &requestError{status: http.StatusBadRequest, detail: detail}
}

// Unavailable wraps err, a failure of a dependency the request cannot go
// on without, so that WriteError answers 503 with Retry-After and logs err.
func Unavailable(err error) error { return &unavailableError{err} }

// WriteError is writeError for other packages' routes (the read API), so
// that every route of the binary maps errors in the one place: domain
// errors by code, commands.ErrForbidden 403, BadRequest 400, Unavailable
// 503, auth.ErrInvalidToken 401, anything unknown 500 (logged, not shown).
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, err)
}

// writeError maps every error to its problem response. 5xx details go to
// the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		de *domain.Error
		re *requestError
		ue *unavailableError
	)
	switch {
	case errors.As(err, &ue):
		s.log.ErrorContext(r.Context(), "dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
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
	case errors.Is(err, commands.ErrBadCredentials):
		problem.Write(w, problem.New(http.StatusUnauthorized, "invalid email or password"))
	case errors.Is(err, commands.ErrForbidden):
		problem.Write(w, problem.New(http.StatusForbidden, "your roles do not allow this"))
	case errors.Is(err, commands.ErrPreconditionFailed):
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
	case errors.Is(err, commands.ErrContention):
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "the resource is busy; retry"))
	default:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal error"))
	}
}

// decode reads one JSON object strictly into v: JSON content type, an
// object (not an array, string or null), unknown fields refused, nothing
// after the object.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &requestError{status: http.StatusUnsupportedMediaType, detail: "send application/json"}
		}
	}
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &requestError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf("the body is over %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return &requestError{status: http.StatusBadRequest, detail: "the body could not be read"}
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return &requestError{status: http.StatusBadRequest, detail: "the body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return &requestError{status: http.StatusBadRequest, detail: "the body must hold one JSON object and nothing after it"}
		}
		return nil
	}
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ute) && ute.Field != "":
		return &requestError{status: http.StatusUnprocessableEntity, field: ute.Field, detail: fmt.Sprintf("%s must be %s", ute.Field, jsonKind(ute.Type))}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json reports unknown fields only by this message.
		return &requestError{status: http.StatusBadRequest, detail: strings.TrimPrefix(err.Error(), "json: ")}
	default:
		return &requestError{status: http.StatusBadRequest, detail: "malformed JSON"}
	}
}

// jsonKind names, for a client, the JSON a Go type is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		if t == reflect.TypeFor[json.Number]() {
			return "a number"
		}
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	default:
		return "an object"
	}
}

// ifMatch reads If-Match: a version as ETag sends it ("3"), or * for any.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return commands.NoVersion, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 0 {
		return 0, &requestError{status: http.StatusBadRequest, detail: "If-Match must be an ETag this API gave out"}
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeResult answers a successful command with its state, position and
// version.
func writeResult(w http.ResponseWriter, status int, res commands.Result, v any) {
	w.Header().Set("X-Event-Position", res.Position.String())
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(res.Version, 10)))
	writeJSON(w, status, v)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	problem.Write(w, problem.New(status, detail))
}
