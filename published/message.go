package published

import (
	"encoding/json"
	"fmt"

	"github.com/eventshop/eventshop/eventstore"
)

// Message headers. They repeat envelope attributes so that consumers can
// route, trace and deduplicate without parsing the value. There is
// deliberately no ce_specversion header: the Kafka binding treats a
// message carrying it as a binary-mode event, and this one is structured.
const (
	HeaderContentType   = "content-type"
	HeaderID            = "ce_id"
	HeaderType          = "ce_type"
	HeaderSource        = "ce_source"
	HeaderSubject       = "ce_subject"
	HeaderCorrelationID = "correlation_id"
	HeaderCausationID   = "causation_id"
)

// Header is a message header.
type Header struct {
	Key   string
	Value []byte
}

// Message is what is published for an event, whatever carries it: the
// topic, the key, the value (the JSON envelope) and the headers.
type Message struct {
	Topic   string
	Key     string
	Value   []byte
	Headers []Header
}

// NewMessage returns the message of e; ok is false when e is not
// published (see Destination). The headers are content-type, ce_id,
// ce_type, ce_source and ce_subject, then correlation_id and causation_id
// when they are not empty. Errors: e's data is not JSON.
func NewMessage(e *eventstore.Event) (m Message, ok bool, err error) {
	topic, key, ok := Destination(e.StreamID, e.Type)
	if !ok {
		return Message{}, false, nil
	}
	env := NewEnvelope(e)
	value, err := json.Marshal(env)
	if err != nil {
		return Message{}, false, fmt.Errorf("event %s (%s v%d, %s): encode envelope: %w",
			e.ID, e.StreamID, e.Version, e.Type, err)
	}
	h := []Header{
		{Key: HeaderContentType, Value: []byte(ContentType)},
		{Key: HeaderID, Value: []byte(env.ID)},
		{Key: HeaderType, Value: []byte(env.Type)},
		{Key: HeaderSource, Value: []byte(env.Source)},
		{Key: HeaderSubject, Value: []byte(env.Subject)},
	}
	if env.CorrelationID != "" {
		h = append(h, Header{Key: HeaderCorrelationID, Value: []byte(env.CorrelationID)})
	}
	if env.CausationID != "" {
		h = append(h, Header{Key: HeaderCausationID, Value: []byte(env.CausationID)})
	}
	return Message{Topic: topic, Key: key, Value: value, Headers: h}, true, nil
}
