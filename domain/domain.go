// Package domain holds what the aggregates share: the typed domain error,
// money in cents, the event contract and the registry that decodes stored
// events. The aggregates live in domain/user, domain/product and
// domain/order. Everything here is pure: no I/O, no clock, no randomness;
// time and ids are passed in.
package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Event is a domain event: a value with a stable wire name such as
// "order.created" and the bounds every value it carries must keep when it
// is written. Renaming a Go type never changes the wire name.
//
// Validate holds the event's write bounds, in the event's own file: the
// one place each bound lives. Decide functions return its error for input
// a client sent, and the command layer checks every event with it before
// appending, so nothing out of bounds is ever stored. Reading never
// validates: a stored event decodes whatever bound it was written under.
// Errors: CodeInvalid naming the event's bad fields by their JSON names.
type Event interface {
	EventType() string
	Validate() error
}

// Recorded is an event as it was stored: its place in the stream and when
// it happened. Aggregates fold Recorded events.
type Recorded struct {
	Event   Event
	Version int64
	At      time.Time
	ActorID string
}

// Fold applies history to s, oldest first, with evolve.
func Fold[S any](s S, evolve func(S, Recorded) S, history []Recorded) S {
	for _, r := range history {
		s = evolve(s, r)
	}
	return s
}

// Registry decodes stored events by wire name. It is a value, built by each
// aggregate package and merged by its users, never a global.
type Registry map[string]func() Event

// Merge returns a registry holding the entries of r and others.
func (r Registry) Merge(others ...Registry) Registry {
	out := Registry{}
	for _, reg := range append([]Registry{r}, others...) {
		for k, v := range reg {
			out[k] = v
		}
	}
	return out
}

// Decode builds the event named eventType from its JSON data. Schema
// version 1 is the only one so far; a later version is refused rather than
// misread. Errors: *UnknownEventError, or the JSON error.
func (r Registry) Decode(eventType string, schemaVersion int, data []byte) (Event, error) {
	mk, ok := r[eventType]
	if !ok {
		return nil, &UnknownEventError{Type: eventType}
	}
	if schemaVersion > 1 {
		return nil, fmt.Errorf("decode %s: schema version %d is newer than this build understands", eventType, schemaVersion)
	}
	e := mk()
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", eventType, err)
	}
	// Factories return pointers so Unmarshal can fill them; aggregates
	// switch on values.
	return deref(e), nil
}

// CanonicalJSON is raw as the event codec writes it: json.Marshal compacts
// embedded JSON and escapes <, >, & and U+2028/U+2029 in it. An event
// carrying client JSON (a product's metadata) holds this form, so that it
// is what the event is read back as, and what its bounds are checked on.
// raw that is not JSON is returned as it is, for Validate to refuse.
func CanonicalJSON(raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return raw
	}
	return b
}

// UnknownEventError names a stored event type no registry knows.
type UnknownEventError struct{ Type string }

func (e *UnknownEventError) Error() string { return fmt.Sprintf("unknown event type %q", e.Type) }

func deref(e Event) Event {
	if v := reflect.ValueOf(e); v.Kind() == reflect.Pointer {
		if ev, ok := v.Elem().Interface().(Event); ok {
			return ev
		}
	}
	return e
}

// Register adds the event type of the zero value of T to r; T must be a
// struct type whose value implements Event.
func Register[T Event](r Registry) {
	var zero T
	r[zero.EventType()] = func() Event {
		// A pointer, so json.Unmarshal can fill it.
		return any(new(T)).(Event)
	}
}
