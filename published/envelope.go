package published

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

// Constants of the envelope and its message.
const (
	// SpecVersion is the CloudEvents version of the envelope.
	SpecVersion = "1.0"
	// Source is the envelope's source attribute.
	Source = "eventshop"
	// DataContentType is the media type of the envelope's data.
	DataContentType = "application/json"
	// ContentType is the message's content type: a structured-mode
	// CloudEvent in JSON, per the CloudEvents Kafka protocol binding.
	ContentType = "application/cloudevents+json; charset=utf-8"
)

// Envelope is the value of every message: a CloudEvents 1.0 event in the
// structured JSON format. Besides the core attributes it carries the
// event's metadata as extension attributes (lowercase alphanumerics, as
// CloudEvents names must be): correlationid, causationid, actorid,
// schemaversion, and sequence, the event's 0-based version in its stream.
// Sequence rises with each event of an aggregate, with gaps where events
// are not published (secret ones), so a consumer can drop a message whose
// sequence is not above the last it applied for that key: the message is
// a redelivery.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	CorrelationID   string          `json:"correlationid"`
	CausationID     string          `json:"causationid"`
	ActorID         string          `json:"actorid,omitempty"`
	SchemaVersion   int             `json:"schemaversion"`
	Sequence        int64           `json:"sequence"`
	Data            json.RawMessage `json:"data"`
}

// NewEnvelope returns the envelope of e.
func NewEnvelope(e *eventstore.Event) Envelope {
	sv := e.SchemaVersion
	if sv == 0 {
		sv = 1 // the store's "zero means 1"
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              e.ID.String(),
		Source:          Source,
		Type:            e.Type,
		Subject:         e.StreamID,
		Time:            e.Metadata.Timestamp.UTC(),
		DataContentType: DataContentType,
		CorrelationID:   e.Metadata.CorrelationID,
		CausationID:     e.Metadata.CausationID,
		ActorID:         e.Metadata.ActorID,
		SchemaVersion:   sv,
		Sequence:        e.Version,
		Data:            data,
	}
}

// ErrInvalidEnvelope is wrapped by Decode's errors: the value is not an
// envelope as NewMessage writes it.
var ErrInvalidEnvelope = errors.New("invalid event envelope")

// Decode reads a message value: an envelope as NewMessage encodes it. It checks the
// attributes a consumer relies on: specversion 1.0, and a non-empty id,
// source, type and subject. Errors: ErrInvalidEnvelope, wrapped with what
// is wrong.
func Decode(value []byte) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(value, &env); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	var missing []string
	for _, a := range []struct{ name, v string }{
		{"id", env.ID}, {"source", env.Source}, {"type", env.Type}, {"subject", env.Subject},
	} {
		if a.v == "" {
			missing = append(missing, a.name)
		}
	}
	switch {
	case env.SpecVersion != SpecVersion:
		return Envelope{}, fmt.Errorf("%w: specversion %q, want %q", ErrInvalidEnvelope, env.SpecVersion, SpecVersion)
	case len(missing) > 0:
		return Envelope{}, fmt.Errorf("%w: no %s", ErrInvalidEnvelope, strings.Join(missing, ", "))
	}
	return env, nil
}
