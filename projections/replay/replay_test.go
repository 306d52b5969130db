package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/projections"
)

// fakeRunner is a Runner that takes the events its filter matches and
// never runs.
type fakeRunner struct {
	name   string
	filter eventstore.Filter
}

func (r fakeRunner) Name() string                  { return r.name }
func (r fakeRunner) Filter() eventstore.Filter     { return r.filter }
func (r fakeRunner) Status() projections.Status    { return projections.Status{Name: r.name} }
func (r fakeRunner) Run(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

// TestSizeCountsWhatEachTargetTakes: one scan of the log, across pages,
// counts each target's events after its own starting point.
func TestSizeCountsWhatEachTargetTakes(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	n := eventstore.MaxReadCount + 10 // more than one page
	for i := range n {
		stream := fmt.Sprintf("user-%d", i)
		if i%2 == 1 {
			stream = fmt.Sprintf("order-%d", i)
		}
		if _, err := store.Append(ctx, stream, eventstore.NoStream, eventstore.EventData{
			Type: "test.happened", Data: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := store.ReadAll(ctx, eventstore.Start, 20)
	if err != nil {
		t.Fatal(err)
	}
	users := &target{runner: fakeRunner{name: "users", filter: eventstore.Filter{StreamPrefixes: []string{"user-"}}}}
	orders := &target{runner: fakeRunner{name: "orders", filter: eventstore.Filter{StreamPrefixes: []string{"order-"}}},
		since: all[9].Position} // 5 orders taken already
	if err := size(ctx, store, []*target{users, orders}); err != nil {
		t.Fatal(err)
	}
	if users.total != int64(n/2) || orders.total != int64(n/2-5) {
		t.Errorf("users %d, orders %d; want %d and %d", users.total, orders.total, n/2, n/2-5)
	}
	if orders.last.Less(users.last) {
		t.Errorf("the last order %v before the last user %v, but the log ends with an order", orders.last, users.last)
	}
}

// TestPickNamesAnUnknownProjection: without names every runner is a
// target; a name that is not a runner's is an error listing them all.
func TestPickNamesAnUnknownProjection(t *testing.T) {
	cfg := Config{Runners: []Runner{fakeRunner{name: "a"}, fakeRunner{name: "b"}}, All: []string{"a", "b", "c"}}
	if ts, err := pick(cfg); err != nil || len(ts) != 2 {
		t.Fatalf("every runner: %d targets, %v", len(ts), err)
	}
	cfg.Names = []string{"b"}
	if ts, err := pick(cfg); err != nil || len(ts) != 1 || ts[0].runner.Name() != "b" {
		t.Fatalf("b: %v, %v", ts, err)
	}
	cfg.Names = []string{"c"}
	if _, err := pick(cfg); err == nil || !strings.Contains(err.Error(), `no projection "c"; there are a, b, c`) {
		t.Fatalf("c: %v", err)
	}
}

func TestProgressLine(t *testing.T) {
	if got, want := progressLine(50, 200, 10*time.Second), "replay: 50/200 events (25%), 5 events/s, ETA 30s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := progressLine(0, 0, time.Second), "replay: 0/0 events (100%), 0 events/s, ETA -"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
