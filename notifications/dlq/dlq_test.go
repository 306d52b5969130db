package dlq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"github.com/eventshop/eventshop/notifications/dlq"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/published"
)

// checkReplayed fails the test unless rec is a replay of the dead letter
// with key, value and headers: the same key and value, every header kept,
// and dlq_replayed_at added.
func checkReplayed(t *testing.T, rec kafkatest.Record, key string, value []byte, headers map[string]string) {
	t.Helper()
	if rec.Key != key || !bytes.Equal(rec.Value, value) {
		t.Fatalf("replayed message key %q value %q, want %q %q", rec.Key, rec.Value, key, value)
	}
	for k, v := range headers {
		if rec.Headers[k] != v {
			t.Errorf("replayed header %s = %q, want %q (headers %v)", k, rec.Headers[k], v, rec.Headers)
		}
	}
	if _, err := time.Parse(time.RFC3339, rec.Headers[dlq.HeaderReplayedAt]); err != nil {
		t.Errorf("header %s: %v", dlq.HeaderReplayedAt, err)
	}
	if len(rec.HeaderList) != len(headers)+1 {
		t.Errorf("replayed headers %v, want the %d of the dead letter and %s", rec.Headers, len(headers), dlq.HeaderReplayedAt)
	}
}

// TestReplaySendsOnceAfterTheFix is the operator's story: a mail refused
// for good is dead-lettered; the cause is fixed and the dead letter
// replayed; the notifier, still running, sends it once; replaying again
// does nothing.
func TestReplaySendsOnceAfterTheFix(t *testing.T) {
	e := newEnv(t)
	e.sink.FailNext(1, 550, "mailbox unavailable")
	e.startNotifier()
	ada, reg := e.newUser("Ada")
	failed := e.waitRow(ada, ledger.StatusFailed)
	dead := e.waitRecords(dlqTopic, 1)
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d mails before the replay, want 0", n)
	}

	if res := e.replay(dlq.Config{}); res != (dlq.Result{Replayed: 1, Requeued: 1}) {
		t.Fatalf("Replay = %+v, want 1 replayed, 1 requeued", res)
	}
	e.mailsTo("ada@example.com", 1)
	sent := e.waitRow(ada, ledger.StatusSent)
	if sent.ID != failed.ID || sent.Attempts != 1 || sent.MessageID != failed.MessageID {
		t.Fatalf("ledger row after the replay %+v, want row %s sent at attempt 1", sent, failed.ID)
	}
	retried := kafkatest.ReadAll(t, e.brokers, retryTopic)
	if len(retried) != 1 {
		t.Fatalf("retry topic holds %d messages, want 1", len(retried))
	}
	checkReplayed(t, retried[0], ada.String(), reg, dead[0].Headers)
	if h := retried[0].Headers; h[published.HeaderCorrelationID] != "corr-Ada" || !strings.Contains(h[notifier.HeaderDLQReason], "550") ||
		h[notifier.HeaderDLQTopic] != published.TopicUsers || h[notifier.HeaderDLQOffset] != "0" {
		t.Fatalf("replayed headers %v: want the original and the dead letter's", h)
	}
	if got := e.committed(dead[0].Partition); got != 1 {
		t.Fatalf("committed offset %d, want 1", got)
	}

	// Replaying again: nothing is left, nothing is published.
	if res := e.replay(dlq.Config{}); res != (dlq.Result{}) {
		t.Fatalf("second Replay = %+v, want nothing", res)
	}
	if n := len(kafkatest.ReadAll(t, e.brokers, retryTopic)); n != 1 {
		t.Fatalf("retry topic holds %d messages after the second replay, want 1", n)
	}
	// A marker behind Ada's message in its partition of the retry topic:
	// once its mail is out, the notifier has handled all before it.
	_, bob := registered(t, "Bob")
	e.write(retryTopic, ada.String(), bob)
	msgs := e.mailsTo("bob@example.com", 1)
	if n := countTo(msgs, "ada@example.com"); n != 1 {
		t.Fatalf("%d mails to Ada, want 1", n)
	}
	if n := len(kafkatest.ReadAll(t, e.brokers, dlqTopic)); n != 1 {
		t.Fatalf("dead-letter topic holds %d messages, want 1", n)
	}
}

// TestReplayOfStillFailingLettersReturns replays while the cause is not
// fixed: every replayed message is dead-lettered again, and Replay
// returns after the dead letters it found, not chasing the new ones. Two
// dead letters of one event (as a notifier crashing between writing the
// dead letter and marking the row failed leaves) mail once when replayed
// after the fix.
func TestReplayOfStillFailingLettersReturns(t *testing.T) {
	e := newEnv(t)
	e.sink.FailNext(1000, 550, "still broken")
	e.startNotifier()
	ada, _ := e.newUser("Ada")
	e.waitRow(ada, ledger.StatusFailed)
	dead := e.waitRecords(dlqTopic, 1)
	e.write(dlqTopic, dead[0].Key, dead[0].Value, dead[0].HeaderList...)
	dead = e.waitRecords(dlqTopic, 2)
	if dead[0].Partition != dead[1].Partition {
		t.Fatalf("dead letters of one key in partitions %d and %d", dead[0].Partition, dead[1].Partition)
	}
	p := dead[0].Partition

	res := e.replay(dlq.Config{})
	t.Logf("first replay: %+v", res)
	// The second dead letter resets the row again when the notifier has
	// failed the first replay by then, or leaves it to that replay's
	// claim when it has not: 1 or 2 resets.
	if res.Replayed != 2 || res.Undecodable != 0 || res.Requeued < 1 || res.Requeued > 2 {
		t.Fatalf("Replay = %+v, want 2 replayed, 1 or 2 requeued", res)
	}
	// Each reset gives one claim that fails again, and one new dead letter,
	// after the two replayed; exactly that many: nothing loops.
	again := 2 + res.Requeued
	e.waitRecords(dlqTopic, again)
	e.waitRow(ada, ledger.StatusFailed)
	if got := e.committed(p); got != 2 {
		t.Fatalf("committed offset %d, want 2: only the dead letters there at the start", got)
	}
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d mails accepted while the relay refuses all, want 0", n)
	}

	// The cause is fixed: the next replay takes the new dead letters only,
	// and Ada gets one mail however many of them there are.
	e.sink.FailNext(0, 550, "")
	res2 := e.replay(dlq.Config{})
	if res2 != (dlq.Result{Replayed: res.Requeued, Requeued: 1}) {
		t.Fatalf("Replay after the fix = %+v, want %d replayed, 1 requeued", res2, res.Requeued)
	}
	sent := e.waitRow(ada, ledger.StatusSent)
	if sent.Attempts != 1 {
		t.Fatalf("sent at attempt %d, want 1", sent.Attempts)
	}
	_, bob := registered(t, "Bob")
	e.write(retryTopic, ada.String(), bob)
	msgs := e.mailsTo("bob@example.com", 1)
	if n := countTo(msgs, "ada@example.com"); n != 1 {
		t.Fatalf("%d mails to Ada, want 1", n)
	}
	if got := e.committed(p); got != int64(again) {
		t.Fatalf("committed offset %d, want %d", got, again)
	}
	if n := len(kafkatest.ReadAll(t, e.brokers, dlqTopic)); n != again {
		t.Fatalf("dead-letter topic holds %d messages, want %d", n, again)
	}
}

func TestReplayWithNothingToReplay(t *testing.T) {
	t.Run("empty dead-letter topic", func(t *testing.T) {
		e := newEnv(t)
		if res := e.replay(dlq.Config{}); res != (dlq.Result{}) {
			t.Fatalf("Replay = %+v, want nothing", res)
		}
		if n := len(kafkatest.ReadAll(t, e.brokers, retryTopic)); n != 0 {
			t.Fatalf("retry topic holds %d messages, want 0", n)
		}
		if got := e.committed(0); got != -1 {
			t.Fatalf("committed offset %d, want none", got)
		}
	})
	t.Run("no dead-letter topic", func(t *testing.T) {
		e := newBareEnv(t)
		if res := e.replay(dlq.Config{}); res != (dlq.Result{}) {
			t.Fatalf("Replay = %+v, want nothing", res)
		}
	})
}

func TestUndecodableDeadLettersAreRepublished(t *testing.T) {
	e := newEnv(t)
	badID, err := json.Marshal(published.Envelope{SpecVersion: published.SpecVersion, ID: "evt-1", Source: published.Source,
		Type: "user.registered", Subject: "user-1", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, noRow := registered(t, "Ada") // an event the ledger has no row of
	letters := []struct {
		key     string
		value   []byte
		headers map[string]string
	}{
		{"k-garbage", []byte("not an envelope"), map[string]string{notifier.HeaderDLQReason: "kafka: invalid envelope", "x-trace": "t1"}},
		{"k-bad-id", badID, map[string]string{notifier.HeaderDLQReason: "event id: invalid UUID length: 5"}},
		{"k-no-row", noRow, map[string]string{notifier.HeaderDLQReason: "no recipient"}},
	}
	for _, l := range letters {
		var hs []kafka.Header
		for k, v := range l.headers {
			hs = append(hs, kafka.Header{Key: k, Value: []byte(v)})
		}
		e.write(dlqTopic, l.key, l.value, hs...)
	}

	if res := e.replay(dlq.Config{}); res != (dlq.Result{Replayed: 3, Undecodable: 2}) {
		t.Fatalf("Replay = %+v, want 3 replayed, 2 undecodable", res)
	}
	byKey := map[string]kafkatest.Record{}
	for _, r := range kafkatest.ReadAll(t, e.brokers, retryTopic) {
		byKey[r.Key] = r
	}
	if len(byKey) != len(letters) {
		t.Fatalf("retry topic holds %v, want one message per dead letter", byKey)
	}
	for _, l := range letters {
		checkReplayed(t, byKey[l.key], l.key, l.value, l.headers)
	}
}

// TestReplayWaitsForAnAttemptInFlight replays a dead letter whose
// notifier has not marked the row failed yet: Replay waits, resets the
// row once it is failed, and leaves a dead letter written meanwhile to
// the next replay.
func TestReplayWaitsForAnAttemptInFlight(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	ada, reg := registered(t, "Ada")
	row := e.claim(ada, reg, time.Minute)
	headers := []kafka.Header{{Key: notifier.HeaderDLQReason, Value: []byte("550")}}
	e.write(dlqTopic, ada.String(), reg, headers...)
	p := e.waitRecords(dlqTopic, 1)[0].Partition

	type outcome struct {
		res dlq.Result
		err error
	}
	done := make(chan outcome, 1)
	rctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	go func() {
		res, err := e.tryReplay(rctx, dlq.Config{SettleTimeout: time.Hour})
		done <- outcome{res, err}
	}()
	testwait.Until(t, within, func() string {
		if e.logs.logged("dlq: waiting for notifications to settle") {
			return ""
		}
		return "Replay is not waiting for the row in flight"
	})
	// After the snapshot, in the same partition: not this replay's.
	e.write(dlqTopic, ada.String(), reg, headers...)
	ok, err := e.ledger.MarkFailed(ctx, row.ID, 1, "550 mailbox unavailable")
	if err != nil || !ok {
		t.Fatalf("MarkFailed = %v, %v", ok, err)
	}
	var got outcome
	select {
	case got = <-done:
	case <-time.After(within):
		t.Fatal("Replay did not return")
	}
	if got.err != nil || got.res != (dlq.Result{Replayed: 1, Requeued: 1}) {
		t.Fatalf("Replay = %+v, %v; want 1 replayed, 1 requeued", got.res, got.err)
	}
	if n := len(kafkatest.ReadAll(t, e.brokers, retryTopic)); n != 1 {
		t.Fatalf("retry topic holds %d messages, want 1", n)
	}
	if c := e.committed(p); c != 1 {
		t.Fatalf("committed offset %d, want 1", c)
	}
	reset, err := e.ledger.Get(ctx, row.ID)
	if err != nil || reset.Status != ledger.StatusRetrying || reset.Attempts != 0 {
		t.Fatalf("row after the replay %+v, %v; want retrying at attempt 0", reset, err)
	}

	// The next replay takes the second dead letter. The row it reset, not
	// claimed since, has no attempt in flight: no waiting for it (an hour
	// here, beyond the test's deadline).
	if res := e.replay(dlq.Config{SettleTimeout: time.Hour}); res != (dlq.Result{Replayed: 1}) {
		t.Fatalf("second Replay = %+v, want 1 replayed, 0 requeued", res)
	}
	if c := e.committed(p); c != 2 {
		t.Fatalf("committed offset %d, want 2", c)
	}
}

// TestReplayGivesUpWaitingAfterSettleTimeout: a row left 'sending' by a
// crashed notifier does not hold the replay beyond SettleTimeout; the
// message is republished (its claim will take the row over once the
// lease runs out) and the row is left alone.
func TestReplayGivesUpWaitingAfterSettleTimeout(t *testing.T) {
	e := newEnv(t)
	ada, reg := registered(t, "Ada")
	row := e.claim(ada, reg, time.Hour)
	e.write(dlqTopic, ada.String(), reg)

	if res := e.replay(dlq.Config{SettleTimeout: 50 * time.Millisecond}); res != (dlq.Result{Replayed: 1}) {
		t.Fatalf("Replay = %+v, want 1 replayed, 0 requeued", res)
	}
	if !e.logs.logged("dlq: notifications still unsettled after the settle timeout; replaying anyway") {
		t.Error("no warning that the replay gave up waiting")
	}
	if recs := kafkatest.ReadAll(t, e.brokers, retryTopic); len(recs) != 1 || !bytes.Equal(recs[0].Value, reg) {
		t.Fatalf("retry topic holds %+v, want the dead letter", recs)
	}
	got, err := e.ledger.Get(context.Background(), row.ID)
	if err != nil || got.Status != ledger.StatusSending || got.Attempts != 1 {
		t.Fatalf("row %+v, %v; want it untouched", got, err)
	}
}

// TestReplayStoppedByItsContext: a replay stopped while it waits on a
// dead letter returns ctx's error, with the dead letters before it
// republished and committed, and that one left to the next replay.
func TestReplayStoppedByItsContext(t *testing.T) {
	e := newEnv(t)
	ada, reg := registered(t, "Ada")
	row := e.claim(ada, reg, time.Hour)
	// One key, so one partition and this order.
	e.write(dlqTopic, ada.String(), []byte("not an envelope"))
	e.write(dlqTopic, ada.String(), reg)
	p := e.waitRecords(dlqTopic, 2)[0].Partition

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res dlq.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.tryReplay(ctx, dlq.Config{SettleTimeout: time.Hour})
		done <- outcome{res, err}
	}()
	testwait.Until(t, within, func() string {
		if e.logs.logged("dlq: waiting for notifications to settle") {
			return ""
		}
		return "Replay is not waiting for the row in flight"
	})
	cancel()
	var got outcome
	select {
	case got = <-done:
	case <-time.After(within):
		t.Fatal("Replay did not return once its context ended")
	}
	if !errors.Is(got.err, context.Canceled) || got.res != (dlq.Result{Replayed: 1, Undecodable: 1}) {
		t.Fatalf("Replay = %+v, %v; want context.Canceled after 1 replayed, 1 undecodable", got.res, got.err)
	}
	if c := e.committed(p); c != 1 {
		t.Fatalf("committed offset %d, want 1: the first dead letter only", c)
	}
	if recs := kafkatest.ReadAll(t, e.brokers, retryTopic); len(recs) != 1 || string(recs[0].Value) != "not an envelope" {
		t.Fatalf("retry topic holds %+v, want the first dead letter only", recs)
	}

	// The attempt settles (it fails); the next replay does the rest.
	ok, err := e.ledger.MarkFailed(context.Background(), row.ID, 1, "550")
	if err != nil || !ok {
		t.Fatalf("MarkFailed = %v, %v", ok, err)
	}
	if res := e.replay(dlq.Config{}); res != (dlq.Result{Replayed: 1, Requeued: 1}) {
		t.Fatalf("next Replay = %+v, want 1 replayed, 1 requeued", res)
	}
}

// TestReplayWithoutRetryTopic: with nowhere to publish, Replay fails
// before it resets anything.
func TestReplayWithoutRetryTopic(t *testing.T) {
	e := newBareEnv(t)
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	if _, err := c.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: dlqTopic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	ada, reg := registered(t, "Ada")
	row := e.claim(ada, reg, time.Minute)
	if ok, err := e.ledger.MarkFailed(context.Background(), row.ID, 1, "550"); err != nil || !ok {
		t.Fatalf("MarkFailed = %v, %v", ok, err)
	}
	e.write(dlqTopic, ada.String(), reg)

	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	res, err := e.tryReplay(ctx, dlq.Config{})
	if err == nil || !strings.Contains(err.Error(), retryTopic) || res != (dlq.Result{}) {
		t.Fatalf("Replay = %+v, %v; want an error naming %s", res, err, retryTopic)
	}
	if got, err := e.ledger.Get(context.Background(), row.ID); err != nil || got.Status != ledger.StatusFailed {
		t.Fatalf("row %+v, %v; want it failed still", got, err)
	}
}

func TestReplayConfig(t *testing.T) {
	l := ledger.New(nil) // never used: the config is refused first
	for name, cfg := range map[string]dlq.Config{
		"no brokers":      {Ledger: l},
		"no ledger":       {Brokers: []string{"127.0.0.1:1"}},
		"negative settle": {Brokers: []string{"127.0.0.1:1"}, Ledger: l, SettleTimeout: -time.Second},
		"negative poll":   {Brokers: []string{"127.0.0.1:1"}, Ledger: l, Poll: -time.Second},
		"same topics":     {Brokers: []string{"127.0.0.1:1"}, Ledger: l, DLQTopic: "t", RetryTopic: "t"},
	} {
		if _, err := dlq.Replay(context.Background(), cfg); !errors.Is(err, dlq.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestResultString(t *testing.T) {
	for res, want := range map[dlq.Result]string{
		{}:                         "replayed 0 dead letters (0 notifications requeued, 0 undecodable)",
		{Replayed: 1, Requeued: 1}: "replayed 1 dead letter (1 notification requeued, 0 undecodable)",
		{Replayed: 3, Requeued: 2, Undecodable: 1}: "replayed 3 dead letters (2 notifications requeued, 1 undecodable)",
	} {
		if got := res.String(); got != want {
			t.Errorf("%+v: %q, want %q", res, got, want)
		}
	}
}

// claim records, as a notifier would, that an attempt at the welcome mail
// of the user.registered event value is in flight, leased for lease.
func (e *env) claim(userID uuid.UUID, value []byte, lease time.Duration) ledger.Notification {
	e.t.Helper()
	env, err := published.Decode(value)
	if err != nil {
		e.t.Fatal(err)
	}
	eventID := uuid.MustParse(env.ID)
	c, err := e.ledger.Claim(context.Background(), ledger.Notification{
		UserID: userID, EventID: eventID, EventType: env.Type, Template: "welcome",
		Recipient: "ada@example.com", Subject: "Welcome", MessageID: "<" + ledger.Key(eventID, "welcome") + "@eventshop>",
	}, lease)
	if err != nil || c.Outcome != ledger.Won {
		e.t.Fatalf("claim: %+v, %v", c, err)
	}
	return c.Row
}
