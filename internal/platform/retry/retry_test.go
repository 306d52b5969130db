package retry_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/platform/retry"
)

func TestSleep(t *testing.T) {
	if err := retry.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with an ended context: %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep with an ended context waited")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range []time.Duration{10, 20, 40, 80, 100, 100} {
		if got := retry.Backoff(10, 100, n); got != want {
			t.Errorf("Backoff(10, 100, %d) = %d, want %d", n, got, want)
		}
	}
	if got := retry.Backoff(10, 100, 1<<40); got != 100 {
		t.Errorf("Backoff after many retries = %d, want the limit", got)
	}
}

// TestForever: a worker that stops is started again after the backoff,
// and Forever returns once its context ends.
func TestForever(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		retry.Forever(ctx, slog.New(slog.DiscardHandler), "worker", time.Millisecond, 4*time.Millisecond, func(ctx context.Context) error {
			runs++
			if runs == 3 {
				cancel()
				<-ctx.Done()
				return ctx.Err()
			}
			return errors.New("stopped")
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Forever did not return after its context ended")
	}
	if runs != 3 {
		t.Errorf("the worker ran %d times, want 3 (two restarts)", runs)
	}
}
