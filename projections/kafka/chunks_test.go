package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/published"
)

// TestChunksFitOneProduceRequest checks the bounds Apply's ordering
// argument rests on: every chunk is within the writer's BatchSize and
// BatchBytes, chunks cover the messages in order, and none is split
// needlessly.
func TestChunksFitOneProduceRequest(t *testing.T) {
	msg := func(n int) kafkago.Message {
		return kafkago.Message{Key: []byte("k"), Value: []byte(strings.Repeat("v", n)),
			Headers: []kafkago.Header{{Key: published.HeaderID, Value: []byte("id")}}}
	}
	for _, tc := range []struct {
		name   string
		sizes  []int
		chunks int
	}{
		{"one", []int{10}, 1},
		{"exactly a batch", repeat(10, maxBatchMessages), 1},
		{"a batch and one", repeat(10, maxBatchMessages+1), 2},
		{"three batches", repeat(10, 3*maxBatchMessages), 3},
		{"by bytes", repeat(maxBatchBytes/3-100, 7), 3},
		{"by bytes, just over", repeat(maxBatchBytes/3, 7), 4},
		{"one large message", []int{maxBatchBytes - 200}, 1},
	} {
		msgs := make([]kafkago.Message, len(tc.sizes))
		for i, n := range tc.sizes {
			msgs[i] = msg(n)
		}
		cs := chunks(msgs)
		if len(cs) != tc.chunks {
			t.Errorf("%s: %d chunks, want %d", tc.name, len(cs), tc.chunks)
		}
		next := 0
		for _, c := range cs {
			if c[0] != next || c[1] <= c[0] {
				t.Fatalf("%s: chunks %v do not cover the messages in order", tc.name, cs)
			}
			next = c[1]
			bytes := 0
			for i := c[0]; i < c[1]; i++ {
				bytes += sizeBound(&msgs[i])
			}
			if c[1]-c[0] > maxBatchMessages || bytes > maxBatchBytes {
				t.Errorf("%s: chunk %v has %d messages, %d bytes", tc.name, c, c[1]-c[0], bytes)
			}
		}
		if next != len(msgs) {
			t.Errorf("%s: chunks %v end at %d of %d", tc.name, cs, next, len(msgs))
		}
	}
}

// TestSizeBoundCoversKafkaGo checks that kafka-go counts no more than
// sizeBound for a message against BatchBytes: it refuses a message larger
// than BatchBytes before any I/O, and takes one of exactly sizeBound.
func TestSizeBoundCoversKafkaGo(t *testing.T) {
	m := kafkago.Message{Topic: "t", Key: []byte("key"), Value: []byte(strings.Repeat("x", 1000)),
		Headers: []kafkago.Header{{Key: published.HeaderID, Value: []byte("0123")}, {Key: published.HeaderType, Value: []byte("a.b")}}}
	write := func(batchBytes int) error {
		// Nothing listens on port 1: a message that fits fails to dial.
		w := &kafkago.Writer{Addr: kafkago.TCP("127.0.0.1:1"), BatchBytes: int64(batchBytes), MaxAttempts: 1}
		defer w.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return w.WriteMessages(ctx, m)
	}
	var tooLarge kafkago.MessageTooLargeError
	if err := write(sizeBound(&m)); err == nil || errors.As(err, &tooLarge) {
		t.Fatalf("with BatchBytes at sizeBound %d: %v, want a dial error", sizeBound(&m), err)
	}
	if err := write(len(m.Key) + len(m.Value)); !errors.As(err, &tooLarge) {
		t.Fatalf("with BatchBytes at key and value only: %v, want MessageTooLargeError (the check is not made)", err)
	}
}

// repeat returns n copies of size.
func repeat(size, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = size
	}
	return out
}
