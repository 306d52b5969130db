package projections

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
)

// An event a projection keeps failing to apply is a poison event. What the
// runner does with it is the projection's Policy:
//
//   - PolicyPark (the default) isolates the event's stream: the event goes
//     into the projection's parked list with its error, every later event
//     of the same stream joins it there, in order, without being applied
//     (a catalogue cannot skip one product event and apply the next; a
//     Kafka consumer drops what is not above the last sequence it saw), and
//     every other stream keeps flowing.
//   - PolicyHalt stops the projection on the event, named in its status and
//     in the list (state "halted"); it is retried with backoff until it
//     applies.
//
// Admins act on the list from any process (RequestRetry, RequestSkip): the
// request is written to the database and carried out by the projection's
// active runner, between two batches. A retry applies the stream's parked
// events again, in order, from the first; a skip passes the first over
// (recorded with who skipped it and why; a replay or rebuild skips it
// again) and then applies the rest.
//
// Only a failure of the event counts: an error that is Transient (the
// database, MongoDB or Kafka unreachable, a timeout) is retried for as long
// as it lasts and never parks or halts anything. An event is poison once it
// failed ParkAfter times in a row with errors that are not transient.
// Should maxParkRun events in a row be parked with nothing applied between
// them, the failure is taken to be the model's rather than the events', and
// the runner stops parking and retries (as halt does) until something
// applies again.

// Policies of a projection for its poison events.
const (
	PolicyPark = "park"
	PolicyHalt = "halt"
)

// ErrInvalidPolicy is returned for a policy that is neither PolicyPark nor
// PolicyHalt.
var ErrInvalidPolicy = errors.New("invalid projection policy")

// CheckPolicy returns ErrInvalidPolicy, wrapped, unless p is a policy.
func CheckPolicy(p string) error {
	if p != PolicyPark && p != PolicyHalt {
		return fmt.Errorf("%w %q: want %s or %s", ErrInvalidPolicy, p, PolicyPark, PolicyHalt)
	}
	return nil
}

// maxParkRun is how many events in a row may be parked, with nothing
// applied between them, before the runner takes the failure for the
// model's and stops parking.
const maxParkRun = 10

// Statuses of an entry of the parked list.
const (
	// ParkedStatusParked: the event failed, or waits behind one of its
	// stream that did (its Error is empty then).
	ParkedStatusParked = "parked"
	// ParkedStatusHalted: the event a halted projection stopped on.
	ParkedStatusHalted = "halted"
	// ParkedStatusSkipped: an admin passed the event over.
	ParkedStatusSkipped = "skipped"
)

// Actions an admin can ask for.
const (
	ActionRetry = "retry"
	ActionSkip  = "skip"
)

// ParkedEvent is one entry of a projection's parked list.
type ParkedEvent struct {
	EventID  uuid.UUID
	StreamID string
	Version  int64
	Type     string
	Position eventstore.Position
	// Status is a ParkedStatus constant.
	Status string
	// Error is the event's last failure; empty for an event that only
	// waits behind another of its stream.
	Error    string
	Attempts int
	// FirstSeen is when the event first failed or was parked.
	FirstSeen time.Time
	ParkedAt  time.Time
	// Action is what an admin asked for and the runner has not done yet
	// (ActionRetry, ActionSkip); empty when nothing is pending.
	Action            string
	ActionBy          string
	ActionRequestedAt time.Time
	// SkippedBy, SkipReason and SkippedAt record a skip.
	SkippedBy  string
	SkipReason string
	SkippedAt  time.Time
}

// Errors of the admin requests.
var (
	// ErrNotParked: the projection's parked list holds no such event (or
	// holds it as skipped already).
	ErrNotParked = errors.New("event not parked")
	// ErrInvalidReason: a skip's reason is empty, too long, or holds
	// control characters.
	ErrInvalidReason = errors.New("invalid skip reason")
)

// NotFirstError is returned by RequestSkip for an event that waits behind
// an earlier event of its stream: only the first can be skipped.
type NotFirstError struct {
	EventID uuid.UUID // the event asked for
	First   uuid.UUID // the first parked event of its stream
	Stream  string
}

func (e *NotFirstError) Error() string {
	return fmt.Sprintf("event %s waits behind event %s of stream %s; skip that one first", e.EventID, e.First, e.Stream)
}

// MaxSkipReason bounds a skip's reason, in characters.
const MaxSkipReason = 500

// Transient marks err as a failure of the target rather than of the event
// (unreachable, timed out, overloaded): the runner retries it for as long
// as it lasts and never parks or halts on it. Sinks wrap their drivers'
// network and timeout errors in it; the runner recognises PostgreSQL's
// itself.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err}
}

type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// parkRow is an entry the runner adds to (or updates in) a parked list.
type parkRow struct {
	e        *eventstore.Event
	status   string
	err      string
	attempts int
	skip     *ParkedEvent // for a skipped event carried into a rebuild: who skipped it and why
}

// parkedState is what a runner keeps in memory of a parked list: how many
// events of each stream are parked, and which events admins skipped.
type parkedState struct {
	streams map[string]int
	skipped map[uuid.UUID]ParkedEvent
}
