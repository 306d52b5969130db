package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	"github.com/eventshop/eventshop/published"
)

// kcatRecord is a line of `kcat -J`.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int      `json:"partition"`
	Offset    int64    `json:"offset"`
	Headers   []string `json:"headers"` // name, value, name, value, …
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// TestKcatReadsWhatThePublisherWrote reads the topics with kcat, a client
// built on librdkafka rather than kafka-go, and finds the same records the
// Publisher wrote: keys, headers and envelopes.
func TestKcatReadsWhatThePublisherWrote(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed: `apt-get install -y kcat` (scripts/services.sh installs it when it can)")
	}
	e := newEnv(t)
	writeHistory(t, e)
	p := e.publisher(t, kafkapub.Config{})
	ctx := ctxFor(t)
	if err := p.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, e.published(t, p)); err != nil {
		t.Fatal(err)
	}
	for _, topic := range published.Topics() {
		want := kafkatest.ReadAll(t, e.broker.Addrs(), topic)
		if len(want) == 0 {
			t.Fatalf("%s: nothing published", topic)
		}
		got := runKcat(t, kcat, e.broker.Addrs()[0], topic)
		if len(got) != len(want) {
			t.Fatalf("%s: kcat read %d records, want %d", topic, len(got), len(want))
		}
		byPlace := map[[2]int64]kcatRecord{}
		for _, r := range got {
			byPlace[[2]int64{int64(r.Partition), r.Offset}] = r
		}
		for _, w := range want {
			r, ok := byPlace[[2]int64{int64(w.Partition), w.Offset}]
			if !ok || r.Topic != topic || r.Key == nil || *r.Key != w.Key || r.Payload == nil || *r.Payload != string(w.Value) {
				t.Fatalf("%s/%d@%d: kcat read %+v, want key %s value %s", topic, w.Partition, w.Offset, r, w.Key, w.Value)
			}
			var headers []string
			for _, h := range w.HeaderList {
				headers = append(headers, h.Key, string(h.Value))
			}
			if !reflect.DeepEqual(r.Headers, headers) {
				t.Fatalf("%s/%d@%d: kcat read headers %v, want %v", topic, w.Partition, w.Offset, r.Headers, headers)
			}
			env, err := published.Decode([]byte(*r.Payload))
			if err != nil {
				t.Fatalf("%s/%d@%d: %v", topic, w.Partition, w.Offset, err)
			}
			if gotTopic, key, _ := published.Route(env.Subject); gotTopic != topic || key != *r.Key {
				t.Fatalf("%s/%d@%d: envelope of %s under key %s", topic, w.Partition, w.Offset, env.Subject, *r.Key)
			}
		}
	}
}

// runKcat consumes topic from the beginning to its end with kcat and
// returns its records.
func runKcat(t *testing.T, kcat, broker, topic string) []kcatRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-J", "-q")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", topic, err, stderr.String())
	}
	var out []kcatRecord
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}
