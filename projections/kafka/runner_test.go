package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
)

// run runs s under a sink runner until t ends, and returns the runner.
func (e *env) run(t *testing.T, s projections.Sink) *projections.Runner {
	t.Helper()
	r := projections.NewSinkRunner(e.pool, e.store, s, projections.Options{LockPoll: 50 * time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the runner did not stop within 10s")
		}
	})
	return r
}

// waitPublished waits until the runner's checkpoint is the last event of
// the log the publisher takes, and every such event that is not secret has
// a message; it returns the messages.
func waitPublished(t *testing.T, e *env, r *projections.Runner, p *kafkapub.Publisher) []message {
	t.Helper()
	evs := e.published(t, p)
	last := evs[len(evs)-1].Position
	want := map[string]bool{}
	for _, ev := range evs {
		if ev.Type != "user.credentials_set" {
			want[ev.ID.String()] = true
		}
	}
	var msgs []message
	testwait.Until(t, 30*time.Second, func() string {
		if st := r.Status(); st.Position != last {
			return fmt.Sprintf("checkpoint %s, want %s (state %s, error %q)", st.Position, last, st.State, st.LastError)
		}
		msgs = readTopics(t, e.broker.Addrs())
		missing := len(want)
		seen := map[string]bool{}
		for _, m := range msgs {
			if want[m.env.ID] && !seen[m.env.ID] {
				seen[m.env.ID] = true
				missing--
			}
		}
		if missing > 0 {
			return fmt.Sprintf("%d of %d events not published", missing, len(want))
		}
		return ""
	})
	return msgs
}

func TestRunnerPublishesTheLogThenFollowsIt(t *testing.T) {
	e := newEnv(t)
	writeHistory(t, e)
	p := e.publisher(t, kafkapub.Config{})
	r := e.run(t, p)
	msgs := waitPublished(t, e, r, p)
	checkOrder(t, msgs)
	if n := len(e.published(t, p)) - len(msgs); n != 4 {
		t.Fatalf("%d events not published, want the 4 secret ones", n)
	}

	// Live: events appended while the runner follows the log.
	appendSynthetic(t, e.store, streamsOf(3), 5)
	msgs = waitPublished(t, e, r, p)
	for k, n := range checkOrder(t, msgs) {
		if n == 0 {
			t.Errorf("key %s has no events", k)
		}
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		if ids[m.env.ID] {
			t.Errorf("event %s published twice without a failure", m.env.ID)
		}
		ids[m.env.ID] = true
	}
}

// checkpointLost publishes through the Publisher and then fails, as a
// process that crashed before saving its checkpoint would, fails times.
type checkpointLost struct {
	*kafkapub.Publisher
	fails   atomic.Int32
	batches atomic.Int32
}

func (c *checkpointLost) Apply(ctx context.Context, batch []eventstore.Event) error {
	if err := c.Publisher.Apply(ctx, batch); err != nil {
		return err
	}
	c.batches.Add(1)
	if c.fails.Add(-1) >= 0 {
		return errors.New("crashed before the checkpoint")
	}
	return nil
}

func TestRunnerRepublishesWhatItDidNotCheckpoint(t *testing.T) {
	e := newEnv(t)
	streams := streamsOf(5)
	appendSynthetic(t, e.store, streams, 8)
	p := e.publisher(t, kafkapub.Config{})
	s := &checkpointLost{Publisher: p}
	s.fails.Store(3)
	r := e.run(t, s)
	msgs := waitPublished(t, e, r, p)
	for k, n := range checkOrder(t, msgs) {
		if n != 8 {
			t.Errorf("key %s: %d events, want 8", k, n)
		}
	}
	if len(msgs) <= len(streams)*8 {
		t.Fatalf("%d messages for %d events: the batches that lost their checkpoint were not published again",
			len(msgs), len(streams)*8)
	}
	t.Logf("%d messages for %d events after %d publishes", len(msgs), len(streams)*8, s.batches.Load())
}
