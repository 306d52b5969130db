// Package kafkatest gives tests an embedded Kafka-protocol broker and reads
// topics back in full, partition by partition, so tests can check what was
// published without a consumer group.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
)

// Start starts an in-memory broker on a free loopback port and closes it
// when tb ends.
func Start(tb testing.TB) *kafkabroker.Broker {
	tb.Helper()
	b, err := kafkabroker.Start(kafkabroker.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b
}

// Record is a record as stored in a partition.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       string
	Value     []byte
	// Headers by name; a name given twice keeps its last value.
	Headers map[string]string
	// HeaderList is every header in order.
	HeaderList []kafka.Header
	Time       time.Time
}

// ReadAll returns every record of topic that is in the log when it is
// called: partition 0 first, each partition in offset order. It fails tb
// when the topic does not exist or a read fails.
func ReadAll(tb testing.TB, brokers []string, topic string) []Record {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A transport of its own: a shared one may answer from metadata it
	// cached before the topic existed.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		tb.Fatalf("kafkatest: metadata of %s: %v", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		tb.Fatalf("kafkatest: topic %s: %+v", topic, md.Topics)
	}
	var parts []int
	for _, p := range md.Topics[0].Partitions {
		parts = append(parts, p.ID)
	}
	slices.Sort(parts)
	var out []Record
	for _, p := range parts {
		recs, err := readPartition(ctx, c, topic, p)
		if err != nil {
			tb.Fatalf("kafkatest: %v", err)
		}
		out = append(out, recs...)
	}
	return out
}

// Partitions returns the partition count of topic.
func Partitions(tb testing.TB, brokers []string, topic string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		tb.Fatalf("kafkatest: metadata of %s: %v %+v", topic, err, md)
	}
	return len(md.Topics[0].Partitions)
}

func readPartition(ctx context.Context, c *kafka.Client, topic string, p int) ([]Record, error) {
	offs, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.LastOffsetOf(p)},
	}})
	if err != nil {
		return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p, err)
	}
	po := offs.Topics[topic]
	if len(po) != 1 || po[0].Error != nil {
		return nil, fmt.Errorf("end offset of %s/%d: %+v", topic, p, po)
	}
	var out []Record
	for next, end := int64(0), po[0].LastOffset; next < end; {
		f, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p, Offset: next, MaxBytes: 4 << 20})
		if err != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, p, next, err)
		}
		if f.Error != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, p, next, f.Error)
		}
		got := false
		for {
			r, err := f.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read %s/%d at %d: %w", topic, p, next, err)
			}
			key, value, err := readBoth(r)
			if err != nil {
				return nil, fmt.Errorf("read %s/%d at %d: %w", topic, p, r.Offset, err)
			}
			if r.Offset < next {
				continue // a fetch may start at the batch before the offset asked for
			}
			rec := Record{Topic: topic, Partition: p, Offset: r.Offset, Key: string(key), Value: value,
				Headers: map[string]string{}, HeaderList: r.Headers, Time: r.Time}
			for _, h := range r.Headers {
				rec.Headers[h.Key] = string(h.Value)
			}
			out = append(out, rec)
			next, got = r.Offset+1, true
		}
		if !got {
			return nil, fmt.Errorf("fetch %s/%d at %d: no records before the end offset %d", topic, p, next, end)
		}
	}
	return out, nil
}

func readBoth(r *kafka.Record) (key, value []byte, err error) {
	if r.Key != nil {
		if key, err = io.ReadAll(r.Key); err != nil {
			return nil, nil, err
		}
	}
	if r.Value != nil {
		if value, err = io.ReadAll(r.Value); err != nil {
			return nil, nil, err
		}
	}
	return key, value, nil
}
