package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func start(t *testing.T, dataDir string) *kafkabroker.Broker {
	t.Helper()
	b, err := kafkabroker.Start(kafkabroker.Options{Addr: "127.0.0.1:0", DataDir: dataDir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func client(b *kafkabroker.Broker) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(b.Addrs()...), Timeout: 10 * time.Second}
}

func TestStartServesTheKafkaProtocolOnItsAddress(t *testing.T) {
	b := start(t, "")
	addrs := b.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || strings.HasSuffix(addrs[0], ":0") {
		t.Fatalf("Addrs = %v, want one 127.0.0.1:<port>", addrs)
	}
	md, err := client(b).Metadata(ctxFor(t), &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Clients follow the advertised address, so it must be the listener's.
	if len(md.Brokers) != 1 || net.JoinHostPort(md.Brokers[0].Host, fmt.Sprint(md.Brokers[0].Port)) != addrs[0] {
		t.Fatalf("metadata advertises %+v, want the single broker %s", md.Brokers, addrs[0])
	}
}

func TestStartOnABusyAddressFails(t *testing.T) {
	b := start(t, "")
	_, err := kafkabroker.Start(kafkabroker.Options{Addr: b.Addrs()[0], Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), b.Addrs()[0]) {
		t.Fatalf("second Start on %s: err = %v, want a listen error naming the address", b.Addrs()[0], err)
	}
}

func TestCloseDropsClients(t *testing.T) {
	b := start(t, "")
	conn, err := kafka.DialContext(ctxFor(t), "tcp", b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ApiVersions(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close() // twice is allowed
	if _, err := conn.ApiVersions(); err == nil {
		t.Fatal("a connection made before Close still gets answers")
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection made before Close hung instead of being dropped: %v", err)
	}
	if _, err := kafka.DialContext(ctxFor(t), "tcp", b.Addrs()[0]); err == nil {
		t.Fatal("dial after Close succeeded")
	}
}

// TestDataDirSurvivesRestart writes a topic, records and a committed group
// offset, restarts the broker on the same directory (and another port),
// and finds all three again.
func TestDataDirSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka") // not there yet: Start creates it
	const topic, group = "restart.test", "restart-group"
	b := start(t, dir)
	ctx := ctxFor(t)
	resp, err := client(b).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: 2, ReplicationFactor: 1},
	}})
	if err != nil || resp.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, resp)
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("k%d=v%d", i%5, i))
	}
	msgs := make([]kafka.Message, len(want))
	for i, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		msgs[i] = kafka.Message{Key: []byte(k), Value: []byte(v)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	commit, err := client(b).OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 0, Offset: 3}}}})
	if err != nil || commit.Topics[topic][0].Error != nil {
		t.Fatalf("commit offset: %v %+v", err, commit)
	}
	before := readAll(t, b, topic, 2)
	if len(before) != len(want) {
		t.Fatalf("before restart: read %d records, want %d", len(before), len(want))
	}
	b.Close()

	b2 := start(t, dir)
	after := readAll(t, b2, topic, 2)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("after restart the log is\n%v\nwant\n%v", after, before)
	}
	got, err := client(b2).OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group,
		Topics: map[string][]int{topic: {0}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Topics[topic]; len(p) != 1 || p[0].CommittedOffset != 3 {
		t.Fatalf("committed offset after restart: %+v, want 3", got.Topics[topic])
	}

	// The restarted broker takes new writes after the old ones.
	w2 := &kafka.Writer{Addr: kafka.TCP(b2.Addrs()...), Topic: topic, Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w2.Close()
	if err := w2.WriteMessages(ctx, kafka.Message{Key: []byte("k0"), Value: []byte("later")}); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, b2, topic, 2)); n != len(want)+1 {
		t.Fatalf("after a new write: %d records, want %d", n, len(want)+1)
	}
}

// readAll returns every record of topic as "partition/offset key=value",
// partition by partition.
func readAll(t *testing.T, b *kafkabroker.Broker, topic string, partitions int) []string {
	t.Helper()
	if n := kafkatest.Partitions(t, b.Addrs(), topic); n != partitions {
		t.Fatalf("%s has %d partitions, want %d", topic, n, partitions)
	}
	var out []string
	for _, r := range kafkatest.ReadAll(t, b.Addrs(), topic) {
		out = append(out, fmt.Sprintf("%d/%d %s=%s", r.Partition, r.Offset, r.Key, r.Value))
	}
	return out
}

// TestRetentionBoundsWhatARestartReads: a bounded broker deletes the oldest
// records past RetentionBytes, on disk too, and what it left is what the
// next start holds; at Start it applies the bound to what an earlier
// unbounded run left, and Retention drops records older than it.
func TestRetentionBoundsWhatARestartReads(t *testing.T) {
	ctx := ctxFor(t)
	dir := t.TempDir()
	const topic, old = "history", "old"
	produce := func(b *kafkabroker.Broker, topic string, n int, at time.Time) {
		t.Helper()
		w := &kafka.Writer{Addr: kafka.TCP(b.Addrs()...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: 1,
			BatchTimeout: time.Millisecond}
		defer w.Close()
		for i := range n {
			if err := w.WriteMessages(ctx, kafka.Message{Value: []byte(strings.Repeat("x", 1<<10)), Time: at.Add(time.Duration(i) * time.Millisecond)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	offsets := func(b *kafkabroker.Broker, topic string) (first, last int64) {
		t.Helper()
		res, err := client(b).ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}}})
		if err != nil || len(res.Topics[topic]) != 1 || res.Topics[topic][0].Error != nil {
			t.Fatalf("offsets: %v %+v", err, res)
		}
		return res.Topics[topic][0].FirstOffset, res.Topics[topic][0].LastOffset
	}
	bounded := func(o kafkabroker.Options) *kafkabroker.Broker {
		t.Helper()
		o.Addr, o.DataDir, o.Logger = "127.0.0.1:0", dir, quiet()
		b, err := kafkabroker.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// An unbounded run leaves 100 records of 1 KiB.
	a := bounded(kafkabroker.Options{})
	if res, err := client(a).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}, {Topic: old, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil || res.Errors[topic] != nil || res.Errors[old] != nil {
		t.Fatalf("create topic: %v %v", err, res)
	}
	produce(a, topic, 100, time.Now())
	a.Close()

	// Bounded to 16 KiB: the start keeps about the newest 16, and what
	// it writes next stays within the bound.
	const bound = 16 << 10
	b := bounded(kafkabroker.Options{RetentionBytes: bound, RetentionCheck: 10 * time.Millisecond})
	if first, last := offsets(b, topic); last != 100 || first < 100-20 {
		t.Errorf("after a bounded start: offsets %d to %d, want the newest (about 16) of 100", first, last)
	}
	produce(b, topic, 100, time.Now())
	testwait.Until(t, 10*time.Second, func() string {
		if first, last := offsets(b, topic); last != 200 || first < 200-20 {
			return fmt.Sprintf("offsets %d to %d, want the newest (about 16) of 200", first, last)
		}
		return ""
	})
	b.Close()
	if size := dirSize(t, dir); size > 3*bound {
		t.Errorf("the data directory holds %d bytes, want about %d", size, bound)
	}

	// What the next start holds is what the bound left.
	c := bounded(kafkabroker.Options{})
	if first, last := offsets(c, topic); last != 200 || first < 200-20 {
		t.Errorf("after a restart: offsets %d to %d, want those the bound left", first, last)
	}
	c.Close()

	// Records older than Retention go at Start.
	e := bounded(kafkabroker.Options{})
	produce(e, old, 10, time.Now().Add(-2*time.Hour))
	e.Close()
	d := bounded(kafkabroker.Options{Retention: time.Hour})
	defer d.Close()
	if first, last := offsets(d, old); first != 10 || last != 10 {
		t.Errorf("with records two hours old and a retention of one: offsets %d to %d, want none left of 10", first, last)
	}
	if first, last := offsets(d, topic); last != 200 || first < 200-20 || first == last {
		t.Errorf("%s, its records new: offsets %d to %d, want them kept", topic, first, last)
	}
}

// dirSize is the size of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
