package auth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/redistest"
)

func newLimiter(t *testing.T, limits LoginLimits) (*LoginLimiter, string) {
	t.Helper()
	rdb, prefix := redistest.New(t)
	return NewLoginLimiter(rdb, prefix, limits), prefix
}

func mustAllow(t *testing.T, l *LoginLimiter, account, ip string) {
	t.Helper()
	wait, err := l.Allow(context.Background(), account, ip)
	if err != nil {
		t.Fatalf("Allow(%s, %s): %v", account, ip, err)
	}
	if wait != 0 {
		t.Fatalf("Allow(%s, %s): blocked for %v, want allowed", account, ip, wait)
	}
}

func mustBlock(t *testing.T, l *LoginLimiter, account, ip string, window time.Duration) {
	t.Helper()
	wait, err := l.Allow(context.Background(), account, ip)
	if err != nil {
		t.Fatalf("Allow(%s, %s): %v", account, ip, err)
	}
	if wait <= 0 || wait > window || wait%time.Second != 0 {
		t.Fatalf("Allow(%s, %s): retryAfter %v, want whole seconds in (0, %v]", account, ip, wait, window)
	}
}

func fail(t *testing.T, l *LoginLimiter, account, ip string) {
	t.Helper()
	if err := l.Failed(context.Background(), account, ip); err != nil {
		t.Fatalf("Failed(%s, %s): %v", account, ip, err)
	}
}

func TestLoginLimiterBlocksAccountAfterFailures(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{})
	for range DefaultLoginPerAccount {
		mustAllow(t, l, "alice@example.com", "10.0.0.1")
		fail(t, l, "alice@example.com", "10.0.0.1")
	}
	mustBlock(t, l, "alice@example.com", "10.0.0.1", DefaultLoginWindow)
	// The account is blocked from any address, and case variants of it too.
	mustBlock(t, l, "alice@example.com", "10.0.0.9", DefaultLoginWindow)
	mustBlock(t, l, " Alice@Example.COM", "10.0.0.9", DefaultLoginWindow)
	// Another account from another address is not.
	mustAllow(t, l, "bob@example.com", "10.0.0.2")
}

func TestLoginLimiterBlocksIPAcrossAccounts(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{})
	for i := range DefaultLoginPerIP {
		fail(t, l, fmt.Sprintf("user%d@example.com", i), "10.0.0.1")
	}
	mustBlock(t, l, "fresh@example.com", "10.0.0.1", DefaultLoginWindow)
	mustAllow(t, l, "fresh@example.com", "10.0.0.2")
}

func TestLoginLimiterSucceededResetsAccountOnly(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, LoginLimits{PerAccount: 3, PerIP: 5, Window: time.Minute})
	for range 3 {
		fail(t, l, "alice@example.com", "10.0.0.1")
	}
	mustBlock(t, l, "alice@example.com", "10.0.0.2", time.Minute)
	if err := l.Succeeded(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	mustAllow(t, l, "alice@example.com", "10.0.0.2")
	// The address keeps its count: 3 so far, 2 more block it.
	fail(t, l, "alice@example.com", "10.0.0.1")
	mustAllow(t, l, "alice@example.com", "10.0.0.1")
	fail(t, l, "alice@example.com", "10.0.0.1")
	mustBlock(t, l, "carol@example.com", "10.0.0.1", time.Minute)
}

func TestLoginLimiterWindowStartsAtFirstFailure(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{PerAccount: 2, Window: time.Minute})
	fail(t, l, "alice@example.com", "10.0.0.1")
	key := l.accountKey("alice@example.com")
	first := rdb.PTTL(ctx, key).Val()
	if first <= 0 || first > time.Minute {
		t.Fatalf("TTL after first failure = %v, want in (0, 1m]", first)
	}
	// Keep the TTL ticking down a little, then fail again: it must not reset.
	if err := rdb.PExpire(ctx, key, 30*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	fail(t, l, "alice@example.com", "10.0.0.1")
	if ttl := rdb.PTTL(ctx, key).Val(); ttl > 30*time.Second {
		t.Errorf("a later failure extended the window to %v", ttl)
	}
	mustBlock(t, l, "alice@example.com", "10.0.0.1", 30*time.Second)
}

func TestLoginLimiterKeysHideAccountAndIP(t *testing.T) {
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{})
	fail(t, l, "alice@example.com", "192.0.2.7")
	keys := keysMatching(t, rdb, prefix+"*")
	if len(keys) != 2 {
		t.Fatalf("keys = %v, want one per account and per IP", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "alice") || strings.Contains(k, "example.com") || strings.Contains(k, "192.0.2.7") {
			t.Errorf("key %q holds the raw account or IP", k)
		}
	}
	want := prefix + "login:acct:" + sha256Hex("alice@example.com")
	if n := rdb.Exists(context.Background(), want).Val(); n != 1 {
		t.Errorf("key %s missing; have %v", want, keys)
	}
	assertPrefixed(t, keysMatching(t, rdb, "*"+sha256Hex("alice@example.com")+"*"), prefix)
	if raw := keysMatching(t, rdb, "*alice@example.com*"); len(raw) != 0 {
		t.Errorf("keys with the raw email: %v", raw)
	}
}

func TestLoginLimiterRedisDown(t *testing.T) {
	l := NewLoginLimiter(downClient(t), "p:", LoginLimits{})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "a@example.com", "10.0.0.1"); err == nil {
		t.Error("Allow: no error with Redis down")
	}
	if err := l.Failed(ctx, "a@example.com", "10.0.0.1"); err == nil {
		t.Error("Failed: no error with Redis down")
	}
	if err := l.Succeeded(ctx, "a@example.com"); err == nil {
		t.Error("Succeeded: no error with Redis down")
	}
}
