// Package redistest gives tests a Redis client on the server named by
// TEST_REDIS_URL (default the local server) and a key prefix of their own,
// so tests sharing one server never see each other's keys. The keys under
// the prefix are deleted when the test ends.
package redistest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when TEST_REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL is the server tests use.
func URL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// New returns a client and a fresh key prefix ("test:<random>:"). It fails
// tb when the server cannot be reached, and deletes the prefix's keys and
// closes the client when tb ends.
func New(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("redistest: TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		tb.Fatalf("redistest: ping %s (run `make services`): %v", opts.Addr, err)
	}
	prefix := "test:" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
		rdb.Close()
	})
	return rdb, prefix
}
