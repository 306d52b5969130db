package kafkalag_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/platform/kafkalag"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
)

// TestGroupLag: on a real Kafka-protocol broker, the lag of each partition
// follows the group's commits; a partition without a commit counts from
// its first offset, and a topic not created yet is left out.
func TestGroupLag(t *testing.T) {
	b := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Transport: tr, Timeout: 10 * time.Second}
	const topic, group = "orders", "mailer"
	created, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 3, ReplicationFactor: 1}}})
	if err != nil || created.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, created.Errors)
	}
	produce := func(partition, n int) {
		t.Helper()
		recs := make([]kafka.Record, n)
		for i := range recs {
			recs[i] = kafka.Record{Value: kafka.NewBytes([]byte("m"))}
		}
		res, err := c.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: partition, RequiredAcks: kafka.RequireAll,
			Records: kafka.NewRecordReader(recs...)})
		if err != nil || res.Error != nil {
			t.Fatalf("produce to %d: %v %v", partition, err, res.Error)
		}
	}
	produce(0, 5)
	produce(1, 2)
	commit := func(partition int, offset int64) {
		t.Helper()
		res, err := c.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: partition, Offset: offset}}}})
		if err != nil {
			t.Fatalf("commit %d on %d: %v", offset, partition, err)
		}
		for _, p := range res.Topics[topic] {
			if p.Error != nil {
				t.Fatalf("commit %d on %d: %v", offset, partition, p.Error)
			}
		}
	}
	lag := func() []kafkalag.Partition {
		t.Helper()
		got, err := kafkalag.Group(ctx, c, group, []string{topic, "not-yet"})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := func(l0, l1, l2 int64) []kafkalag.Partition {
		return []kafkalag.Partition{{Topic: topic, Partition: 0, Lag: l0}, {Topic: topic, Partition: 1, Lag: l1}, {Topic: topic, Partition: 2, Lag: l2}}
	}
	if got := lag(); !slices.Equal(got, want(5, 2, 0)) {
		t.Errorf("before any commit: %+v, want %+v", got, want(5, 2, 0))
	}
	commit(0, 3)
	if got := lag(); !slices.Equal(got, want(2, 2, 0)) {
		t.Errorf("after committing 3 on partition 0: %+v, want %+v", got, want(2, 2, 0))
	}
	commit(0, 5)
	commit(1, 2)
	produce(2, 4)
	if got := lag(); !slices.Equal(got, want(0, 0, 4)) {
		t.Errorf("caught up on 0 and 1, 4 new on 2: %+v, want %+v", got, want(0, 0, 4))
	}
}
