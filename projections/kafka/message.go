package kafka

import (
	"encoding/json"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
)

// Limits of one produce request per partition; see Apply.
const (
	maxBatchMessages = 500
	// maxBatchBytes stays below the broker's default message.max.bytes
	// (1 MiB plus a few bytes), leaving room for the record batch's own
	// framing.
	maxBatchBytes = 1_000_000
)

// message returns the Kafka message of e, topic and key set; ok is false
// when e is not published: a secret event, or one of a stream no topic
// takes. now is the message's Kafka timestamp. Errors: e's data is not JSON.
func message(e *eventstore.Event, now time.Time) (m kafkago.Message, ok bool, err error) {
	topic, key, ok := Route(e.StreamID)
	if !ok || user.IsSecret(e.Type) {
		return kafkago.Message{}, false, nil
	}
	env := NewEnvelope(e)
	value, err := json.Marshal(env)
	if err != nil {
		return kafkago.Message{}, false, fmt.Errorf("kafka publish: event %s (%s v%d, %s): encode envelope: %w",
			e.ID, e.StreamID, e.Version, e.Type, err)
	}
	h := []kafkago.Header{
		{Key: HeaderContentType, Value: []byte(ContentType)},
		{Key: HeaderID, Value: []byte(env.ID)},
		{Key: HeaderType, Value: []byte(env.Type)},
		{Key: HeaderSource, Value: []byte(env.Source)},
		{Key: HeaderSubject, Value: []byte(env.Subject)},
	}
	if env.CorrelationID != "" {
		h = append(h, kafkago.Header{Key: HeaderCorrelationID, Value: []byte(env.CorrelationID)})
	}
	if env.CausationID != "" {
		h = append(h, kafkago.Header{Key: HeaderCausationID, Value: []byte(env.CausationID)})
	}
	// The Kafka timestamp is the publishing time, not the event's: brokers
	// apply time-based retention to it, and a rebuild republishing old
	// events must not have them deleted at once. The event's time is in
	// the envelope.
	return kafkago.Message{Topic: topic, Key: []byte(key), Value: value, Headers: h, Time: now}, true, nil
}

// chunks splits msgs into [start, end) ranges each holding at most
// maxBatchMessages messages of at most maxBatchBytes in all, so that the
// writer never splits a chunk's messages for one partition over two
// produce requests.
func chunks(msgs []kafkago.Message) [][2]int {
	var out [][2]int
	start, bytes := 0, 0
	for i := range msgs {
		n := sizeBound(&msgs[i])
		if i > start && (i-start == maxBatchMessages || bytes+n > maxBatchBytes) {
			out = append(out, [2]int{start, i})
			start, bytes = i, 0
		}
		bytes += n
	}
	return append(out, [2]int{start, len(msgs)})
}

// sizeBound is at least the size kafka-go counts for m against BatchBytes:
// fixed fields, lengths as (at most 5-byte) varints or 4-byte ints, key,
// value and headers.
func sizeBound(m *kafkago.Message) int {
	n := 32 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}
