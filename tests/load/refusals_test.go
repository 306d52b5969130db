package load

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge/metrics"
)

// TestRefusalsFromMetrics: the refusals of the window are what the
// server's own counters grew by, by class and outcome.
func TestRefusalsFromMetrics(t *testing.T) {
	m := metrics.New(metrics.Config{})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	c := newClient(srv.URL, 2, 5*time.Second)
	defer c.close()
	ctx := context.Background()

	m.Overload("read", "overloaded") // before the window
	before, err := refusalCounts(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m.Overload("read", "overloaded")
	}
	m.Overload("read", "queue_wait")
	m.Overload("write", "timeout")
	after, err := refusalCounts(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []Refusal{{"read", "overloaded", 3}, {"read", "queue_wait", 1}, {"write", "timeout", 1}}
	if got := refusalsBetween(before, after); !slices.Equal(got, want) {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
	if got := refusalsBetween(after, after); len(got) != 0 {
		t.Errorf("nothing refused: %+v", got)
	}
}
