package retry_test

import (
	"context"
	"errors"
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
