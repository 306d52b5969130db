package eventstore

import (
	"errors"
	"fmt"
)

var (
	// ErrWrongExpectedVersion is the one concurrency conflict every adapter
	// returns; the concrete error is a *WrongExpectedVersionError.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrStreamNotFound is returned when reading a stream that has no events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrInvalidArgument is returned for bad input; nothing is written. The
	// concrete error is a *ValidationError.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrDuplicateEventID is returned when an append reuses event ids
	// other than as a retry of the append that wrote them.
	ErrDuplicateEventID = errors.New("duplicate event id")
	// ErrClosed ends the subscriptions of a store that was closed.
	ErrClosed = errors.New("event store closed")
)

// WrongExpectedVersionError says which stream was not at the expected version.
type WrongExpectedVersionError struct {
	Stream   string
	Expected ExpectedVersion
	// Actual is the stream's last version, -1 when it has no events.
	Actual int64
}

func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("stream %q: expected version %s, actual %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

// ValidationError names the bad argument and what is wrong with it.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid argument %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidArgument }

func invalid(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }
