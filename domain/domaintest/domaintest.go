// Package domaintest holds what the aggregates' given/when/then tests
// share: a history builder, the check of a decision's outcome, and the
// check that what it decides reads back through the codec.
package domaintest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/eventshop/eventshop/domain"
)

// T0 is when every given history starts.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Given records events as a stream: versions from 0, a minute apart from
// T0, by actor "actor".
func Given(events ...domain.Event) []domain.Recorded {
	h := make([]domain.Recorded, len(events))
	for i, e := range events {
		h[i] = domain.Recorded{Event: e, Version: int64(i), At: T0.Add(time.Duration(i) * time.Minute), ActorID: "actor"}
	}
	return h
}

// Then checks the outcome of a decision: the events want, or (when code
// is set) a domain error of code and reason with no events.
func Then(t testing.TB, got []domain.Event, err error, want []domain.Event, code domain.Code, reason string) {
	t.Helper()
	if code != "" {
		var de *domain.Error
		if !errors.As(err, &de) {
			t.Fatalf("err = %v (%T), want a *domain.Error %s/%s; events %#v", err, err, code, reason, got)
		}
		if de.Code != code || de.Reason != reason {
			t.Fatalf("err = %s/%s (%v), want %s/%s", de.Code, de.Reason, err, code, reason)
		}
		if len(got) != 0 {
			t.Fatalf("events %#v alongside error %v", got, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error %v", err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events\n got %#v\nwant %#v", got, want)
	}
}

// FieldNames lists the field names of a validation error, in order.
func FieldNames(err error) []string {
	var de *domain.Error
	if !errors.As(err, &de) {
		return nil
	}
	var names []string
	for _, f := range de.Fields {
		names = append(names, f.Field)
	}
	return names
}

// Outcome is what a decision should give: Events, or a domain error of
// Code and Reason (and, for validation, the bad Fields in order).
type Outcome struct {
	Events []domain.Event
	Code   domain.Code
	Reason string
	Fields []string
}

// OK is the outcome of a decision that emits events (none: a no-op).
func OK(events ...domain.Event) Outcome { return Outcome{Events: events} }

// Invalid is a validation failure naming fields, in order.
func Invalid(fields ...string) Outcome {
	return Outcome{Code: domain.CodeInvalid, Reason: "validation_failed", Fields: fields}
}

// Check fails t unless the decision gave want.
func (want Outcome) Check(t testing.TB, got []domain.Event, err error) {
	t.Helper()
	Then(t, got, err, want.Events, want.Code, want.Reason)
	if want.Fields != nil {
		if names := FieldNames(err); fmt.Sprint(names) != fmt.Sprint(want.Fields) {
			t.Errorf("fields %v, want %v (%v)", names, want.Fields, err)
		}
	}
}

// RoundTrip fails t unless every event passes Validate and decodes with
// reg from its encoding to itself: what a decision writes, every reader
// reads back as decided.
func RoundTrip(t testing.TB, reg domain.Registry, events ...domain.Event) {
	t.Helper()
	for _, e := range events {
		if err := e.Validate(); err != nil {
			t.Fatalf("decided %#v, which Validate refuses: %v", e, err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("encode %#v: %v", e, err)
		}
		back, err := reg.Decode(e.EventType(), 1, b)
		if err != nil {
			t.Fatalf("decided %#v, whose encoding %s does not decode: %v", e, b, err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("decided %#v, read back as %#v", e, back)
		}
	}
}
