package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies a domain error; the HTTP layer maps each code to one
// status in one place.
type Code string

const (
	// CodeInvalid: the command is well-formed but breaks a rule of its
	// fields (422).
	CodeInvalid Code = "invalid"
	// CodeConflict: the command is not allowed in the aggregate's current
	// state, such as an illegal status transition (409).
	CodeConflict Code = "conflict"
	// CodeNotFound: the aggregate does not exist (404).
	CodeNotFound Code = "not_found"
)

// Errors a command can end with besides an Error; each means one answer
// to the client wherever it comes from, and domain errors are never
// wrapped in them.
var (
	// ErrForbidden: the actor's roles do not allow this command on this
	// object (403).
	ErrForbidden = errors.New("forbidden")
	// ErrPreconditionFailed: the aggregate moved past the version the
	// client sent in If-Match (412).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrBadCredentials: unknown email or wrong password, one answer for
	// both (401).
	ErrBadCredentials = errors.New("invalid email or password")
	// ErrContention: the aggregate kept changing under the command for
	// every retry (503, safe to retry).
	ErrContention = errors.New("too much contention on one aggregate")
)

// FieldError names a bad field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the one typed error of the domain. Reason is a stable machine
// name ("insufficient_stock", "order_not_pending"); Detail says, for a
// person, what was wrong and with which values; Fields lists bad fields of
// an invalid command; Extra carries structured context a client can act on
// (for insufficient stock: the product and what is available).
type Error struct {
	Code   Code
	Reason string
	Detail string
	Fields []FieldError
	Extra  map[string]any
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Sprintf("%s: %s", e.Reason, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, &Error{Code: c}) match any domain error of code
// c, and errors.Is(err, &Error{Reason: r}) any of reason r.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return (t.Code == "" || t.Code == e.Code) && (t.Reason == "" || t.Reason == e.Reason)
}

// Conflict builds a CodeConflict error.
func Conflict(reason, format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// NotFound builds a CodeNotFound error.
func NotFound(what, id string) *Error {
	return &Error{Code: CodeNotFound, Reason: what + "_not_found", Detail: fmt.Sprintf("%s %s does not exist", what, id)}
}

// Fields collects field errors of one command; Err returns nil when there
// are none.
type Fields []FieldError

// Add records that field is wrong.
func (f *Fields) Add(field, format string, args ...any) {
	*f = append(*f, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns a CodeInvalid error listing the fields, or nil.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Code: CodeInvalid, Reason: "validation_failed", Detail: "the request has invalid fields", Fields: f}
}

// Validate checks the write bounds of events (each event's Validate) and
// returns one CodeInvalid error naming every bad field once, or nil.
// Errors: CodeInvalid; an error of another kind from a Validate as is.
func Validate(events ...Event) error {
	var f Fields
	seen := map[string]bool{}
	for _, e := range events {
		err := e.Validate()
		if err == nil {
			continue
		}
		var de *Error
		if !errors.As(err, &de) || len(de.Fields) == 0 {
			return err
		}
		for _, fe := range de.Fields {
			// Events of one decision share fields (the user id of a user
			// and of its credentials): each is named once.
			if !seen[fe.Field] {
				seen[fe.Field] = true
				f = append(f, fe)
			}
		}
	}
	return f.Err()
}

// ReasonStreamUnreadable is the reason of the CodeConflict error for a
// stream holding an event this build cannot decode: every command on that
// aggregate fails alike until an operator deals with the event, while the
// rest of the system keeps serving.
const ReasonStreamUnreadable = "stream_unreadable"

// StreamUnreadable is the error for stream, whose event eventID (of
// eventType, at version) does not decode because of cause. Extra names
// the stream and the event, for the operator a client reports it to.
func StreamUnreadable(stream, eventID, eventType string, version int64, cause error) *Error {
	return &Error{
		Code: CodeConflict, Reason: ReasonStreamUnreadable,
		Detail: fmt.Sprintf("stream %s cannot be read: its event %s (%s, version %d) does not decode (%v); an operator must repair it",
			stream, eventID, eventType, version, cause),
		Extra: map[string]any{"stream": stream, "event_id": eventID},
	}
}
