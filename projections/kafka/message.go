package kafka

import (
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/published"
)

// Limits of one produce request per partition; see Apply.
const (
	maxBatchMessages = 500
	// maxBatchBytes stays below the broker's default message.max.bytes
	// (1 MiB plus a few bytes), leaving room for the record batch's own
	// framing.
	maxBatchBytes = 1_000_000
)

// message returns the Kafka message of e: published.NewMessage's, stamped
// with now as its Kafka timestamp; ok is false when e is not published.
// Errors: e's data is not JSON.
func message(e *eventstore.Event, now time.Time) (m kafkago.Message, ok bool, err error) {
	pm, ok, err := published.NewMessage(e)
	if err != nil {
		return kafkago.Message{}, false, fmt.Errorf("kafka publish: %w", err)
	}
	if !ok {
		return kafkago.Message{}, false, nil
	}
	h := make([]kafkago.Header, len(pm.Headers))
	for i, x := range pm.Headers {
		h[i] = kafkago.Header(x)
	}
	// The Kafka timestamp is the publishing time, not the event's: brokers
	// apply time-based retention to it, and a rebuild republishing old
	// events must not have them deleted at once. The event's time is in
	// the envelope.
	return kafkago.Message{Topic: pm.Topic, Key: []byte(pm.Key), Value: pm.Value, Headers: h, Time: now}, true, nil
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
