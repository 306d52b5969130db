package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

// pairKey and knownKey are the counter of account from ip and the mark of
// ip as known to account.
func (l *LoginLimiter) pairKey(account, ip string) string  { return l.scriptKeys(account, ip)[0] }
func (l *LoginLimiter) knownKey(account, ip string) string { return l.scriptKeys(account, ip)[3] }

func newLimiter(t *testing.T, limits LoginLimits) (*LoginLimiter, string) {
	t.Helper()
	rdb, prefix := redistest.New(t)
	return NewLoginLimiter(rdb, prefix, limits), prefix
}

// admit makes an attempt that must be admitted.
func admit(t *testing.T, l *LoginLimiter, account, ip string) {
	t.Helper()
	wait, err := l.Attempt(context.Background(), account, ip)
	if err != nil {
		t.Fatalf("Attempt(%s, %s): %v", account, ip, err)
	}
	if wait != 0 {
		t.Fatalf("Attempt(%s, %s): refused for %v, want admitted", account, ip, wait)
	}
}

// refuse makes an attempt that must be refused with a Retry-After in
// whole seconds in (0, window]; it returns that wait.
func refuse(t *testing.T, l *LoginLimiter, account, ip string, window time.Duration) time.Duration {
	t.Helper()
	wait, err := l.Attempt(context.Background(), account, ip)
	if err != nil {
		t.Fatalf("Attempt(%s, %s): %v", account, ip, err)
	}
	if !validRetry(wait, window) {
		t.Fatalf("Attempt(%s, %s): retryAfter %v, want whole seconds in (0, %v]", account, ip, wait, window)
	}
	return wait
}

func validRetry(wait, window time.Duration) bool {
	return wait > 0 && wait <= window && wait%time.Second == 0
}

func succeed(t *testing.T, l *LoginLimiter, account, ip string) {
	t.Helper()
	if err := l.Succeeded(context.Background(), account, ip); err != nil {
		t.Fatalf("Succeeded(%s, %s): %v", account, ip, err)
	}
}

func TestLoginLimiterRefusesAccountOverLimit(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{})
	for range DefaultLoginPerAccount {
		admit(t, l, "alice@example.com", "10.0.0.1")
	}
	refuse(t, l, "alice@example.com", "10.0.0.1", DefaultLoginWindow)
	// Case variants of the account from that address too.
	refuse(t, l, " Alice@Example.COM", "10.0.0.1", DefaultLoginWindow)
	// The owner, from another address, is not locked out by them; nor is
	// another account from the first address.
	admit(t, l, "alice@example.com", "10.0.0.9")
	admit(t, l, "bob@example.com", "10.0.0.1")
}

// Failures spread over many addresses are bounded by the account's
// total; then the account is refused from every address, a fresh one
// included.
func TestLoginLimiterRefusesAccountAcrossAddresses(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{PerAccount: 2, PerAccountTotal: 7, Window: time.Minute})
	for i := range 7 {
		admit(t, l, "alice@example.com", fmt.Sprintf("10.0.0.%d", i/2))
	}
	refuse(t, l, "alice@example.com", "10.0.0.3", time.Minute)
	refuse(t, l, "alice@example.com", "10.9.9.9", time.Minute)
	admit(t, l, "bob@example.com", "10.9.9.9")
}

// An address the account signed in from is not held by the account's
// total: failures from many other addresses lock the account there, not
// on its owner's usual address, where the per-address limit still holds.
// The address stays known for KnownFor.
func TestLoginLimiterKnownAddressOutlivesTheTotal(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{PerAccount: 2, PerAccountTotal: 6, Window: time.Minute, KnownFor: time.Hour})
	admit(t, l, "alice@example.com", "10.0.0.1")
	succeed(t, l, "alice@example.com", "10.0.0.1") // her usual address
	for i := range 6 {
		admit(t, l, "alice@example.com", fmt.Sprintf("10.9.0.%d", i/2))
	}
	refuse(t, l, "alice@example.com", "10.9.9.9", time.Minute) // any other address
	refuse(t, l, " ALICE@example.com", "10.9.9.9", time.Minute)
	admit(t, l, "Alice@Example.com", "10.0.0.1")
	succeed(t, l, "alice@example.com", "10.0.0.1")
	// Her own address still has only PerAccount failures.
	admit(t, l, "alice@example.com", "10.0.0.1")
	admit(t, l, "alice@example.com", "10.0.0.1")
	refuse(t, l, "alice@example.com", "10.0.0.1", time.Minute)
	// Knowing an address is per account.
	admit(t, l, "bob@example.com", "10.0.0.1")

	if ttl := rdb.PTTL(ctx, l.knownKey("alice@example.com", "10.0.0.1")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("the known address is kept %v, want KnownFor (1h) from the last sign-in", ttl)
	}
	if err := rdb.Del(ctx, l.knownKey("alice@example.com", "10.0.0.1")).Err(); err != nil {
		t.Fatal(err)
	}
	// Forgotten (KnownFor passed), the address is held by the total again;
	// Alice's own count there was cleared by her last sign-in.
	if err := rdb.Del(ctx, l.pairKey("alice@example.com", "10.0.0.1")).Err(); err != nil {
		t.Fatal(err)
	}
	refuse(t, l, "alice@example.com", "10.0.0.1", time.Minute)
}

func TestLoginLimiterRefusesIPAcrossAccounts(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{})
	for i := range DefaultLoginPerIP {
		admit(t, l, fmt.Sprintf("user%d@example.com", i), "10.0.0.1")
	}
	refuse(t, l, "fresh@example.com", "10.0.0.1", DefaultLoginWindow)
	admit(t, l, "fresh@example.com", "10.0.0.2")
}

// Retry-After is the end of the window that blocks, rounded up to whole
// seconds; a counter that is within its limit does not lengthen it.
func TestLoginLimiterRetryAfterIsBlockingWindowsEnd(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{PerAccount: 1, PerIP: 10, Window: time.Minute})
	admit(t, l, "alice@example.com", "10.0.0.1")
	// The IP's window ends late but it is far from its limit; the
	// account's ends in 4.1s. The margins leave 900ms for the calls.
	if err := rdb.PExpire(ctx, l.ipKey("10.0.0.1"), 50*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.PExpire(ctx, l.pairKey("alice@example.com", "10.0.0.1"), 4100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if wait := refuse(t, l, "alice@example.com", "10.0.0.1", time.Minute); wait != 5*time.Second {
		t.Errorf("retryAfter = %v, want 5s: the account's 4.1s rounded up", wait)
	}
}

func TestLoginLimiterSucceededResetsAccountAndRefundsIP(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{PerAccount: 3, PerIP: 5, Window: time.Minute})
	// Two failures, then the right password: alice's count is cleared and
	// 10.0.0.1 keeps only the two failures.
	admit(t, l, "alice@example.com", "10.0.0.1")
	admit(t, l, "alice@example.com", "10.0.0.1")
	admit(t, l, "alice@example.com", "10.0.0.1")
	succeed(t, l, "alice@example.com", "10.0.0.1")
	// alice has her full PerAccount again, from elsewhere.
	for range 3 {
		admit(t, l, "alice@example.com", "10.0.0.2")
	}
	refuse(t, l, "alice@example.com", "10.0.0.2", time.Minute)
	// 10.0.0.1 has 5 - 2 left: the success did not use any up.
	for range 3 {
		admit(t, l, "carol@example.com", "10.0.0.1")
	}
	refuse(t, l, "dave@example.com", "10.0.0.1", time.Minute)
}

// Many people signing in from one address (an office behind NAT) never
// use up its budget, which still stops the failures that follow.
func TestLoginLimiterSuccessesNeverUseUpIP(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{PerIP: 3, Window: time.Minute})
	for i := range 10 {
		account := fmt.Sprintf("user%d@example.com", i%2)
		admit(t, l, account, "10.0.0.1")
		succeed(t, l, account, "10.0.0.1")
	}
	for i := range 3 {
		admit(t, l, fmt.Sprintf("guess%d@example.com", i), "10.0.0.1")
	}
	refuse(t, l, "guess3@example.com", "10.0.0.1", time.Minute)
}

// Succeeded never takes the IP's count below 0, nor creates a counter
// (one created by DECR would have no expiry).
func TestLoginLimiterSucceededNeverBelowZero(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{PerIP: 2, Window: time.Minute})
	succeed(t, l, "alice@example.com", "10.0.0.9")
	if n := rdb.Exists(ctx, l.ipKey("10.0.0.9")).Val(); n != 0 {
		t.Errorf("Succeeded with no attempt created the IP's counter")
	}
	admit(t, l, "alice@example.com", "10.0.0.1")
	succeed(t, l, "alice@example.com", "10.0.0.1")
	succeed(t, l, "alice@example.com", "10.0.0.1")
	if got := rdb.Get(ctx, l.ipKey("10.0.0.1")).Val(); got != "0" {
		t.Errorf("IP count after one attempt and two successes = %q, want 0", got)
	}
	admit(t, l, "bob@example.com", "10.0.0.1")
	admit(t, l, "carol@example.com", "10.0.0.1")
	refuse(t, l, "dave@example.com", "10.0.0.1", time.Minute)
}

func TestLoginLimiterWindowStartsAtFirstAttempt(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{PerAccount: 2, PerIP: 2, Window: time.Minute})
	admit(t, l, "alice@example.com", "10.0.0.1")
	keys := l.keys("alice@example.com", "10.0.0.1")
	for _, key := range keys {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
			t.Fatalf("TTL of %s after the first attempt = %v, want in (0, 1m]", key, ttl)
		}
		// Let the window run down a little: later attempts must not reset it.
		if err := rdb.PExpire(ctx, key, 30*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
	}
	admit(t, l, "alice@example.com", "10.0.0.1")
	refuse(t, l, "alice@example.com", "10.0.0.1", 30*time.Second)
	for _, key := range keys {
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > 30*time.Second {
			t.Errorf("later attempts moved the end of %s's window to %v from now", key, ttl)
		}
	}
}

func TestLoginLimiterKeysHideAccountAndIP(t *testing.T) {
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{})
	admit(t, l, "alice@example.com", "192.0.2.7")
	keys := keysMatching(t, rdb, prefix+"*")
	if len(keys) != 3 {
		t.Fatalf("keys = %v, want one per account and IP, per IP and per account", keys)
	}
	for _, k := range keys {
		if strings.Contains(k, "alice") || strings.Contains(k, "example.com") || strings.Contains(k, "192.0.2.7") {
			t.Errorf("key %q holds the raw account or IP", k)
		}
	}
	for _, want := range []string{
		prefix + "login:acct:" + sha256Hex("alice@example.com"),
		prefix + "login:ip:" + sha256Hex("192.0.2.7"),
		prefix + "login:acctip:" + sha256Hex("alice@example.com\x00192.0.2.7"),
	} {
		if n := rdb.Exists(context.Background(), want).Val(); n != 1 {
			t.Errorf("key %s missing; have %v", want, keys)
		}
	}
	assertPrefixed(t, keysMatching(t, rdb, "*"+sha256Hex("alice@example.com")+"*"), prefix)
	if raw := keysMatching(t, rdb, "*alice@example.com*"); len(raw) != 0 {
		t.Errorf("keys with the raw email: %v", raw)
	}
}

func TestLoginLimiterRedisDown(t *testing.T) {
	l := NewLoginLimiter(downClient(t), "p:", LoginLimits{})
	ctx := context.Background()
	if _, err := l.Attempt(ctx, "a@example.com", "10.0.0.1"); err == nil {
		t.Error("Attempt: no error with Redis down")
	}
	if err := l.Succeeded(ctx, "a@example.com", "10.0.0.1"); err == nil {
		t.Error("Succeeded: no error with Redis down")
	}
}

// attemptConcurrently makes n attempts at once, the i-th for account(i)
// from ip(i), and counts those admitted and refused.
func attemptConcurrently(t *testing.T, l *LoginLimiter, n int, account, ip func(int) string) (admitted, refused int) {
	t.Helper()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			wait, err := l.Attempt(context.Background(), account(i), ip(i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("Attempt(%s, %s): %v", account(i), ip(i), err)
			case wait == 0:
				admitted++
			case validRetry(wait, l.limits.Window):
				refused++
			default:
				t.Errorf("Attempt(%s, %s): retryAfter %v, want whole seconds in (0, %v]", account(i), ip(i), wait, l.limits.Window)
			}
		})
	}
	close(start)
	wg.Wait()
	return admitted, refused
}

// Wrong passwords sent all at once must not all get past the check before
// any is counted, from one address or from many.
func TestLoginLimiterConcurrentAttemptsOnOneAccount(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{PerAccount: 5, PerIP: 1000, Window: time.Minute})
	admitted, refused := attemptConcurrently(t, l, 40,
		func(int) string { return "alice@example.com" },
		func(int) string { return "10.0.1.1" })
	if admitted != 5 || refused != 35 {
		t.Errorf("40 concurrent attempts on one account from one address: %d admitted, %d refused; want 5 and 35", admitted, refused)
	}
	l, _ = newLimiter(t, LoginLimits{PerAccount: 5, PerIP: 1000, PerAccountTotal: 5, Window: time.Minute})
	admitted, refused = attemptConcurrently(t, l, 40,
		func(int) string { return "alice@example.com" },
		func(i int) string { return fmt.Sprintf("10.0.1.%d", i) })
	if admitted != 5 || refused != 35 {
		t.Errorf("40 concurrent attempts on one account from 40 addresses: %d admitted, %d refused; want 5 and 35", admitted, refused)
	}
}

func TestLoginLimiterConcurrentAttemptsFromOneIP(t *testing.T) {
	l, _ := newLimiter(t, LoginLimits{PerAccount: 1000, PerIP: 7, Window: time.Minute})
	admitted, refused := attemptConcurrently(t, l, 40,
		func(i int) string { return fmt.Sprintf("user%d@example.com", i) },
		func(int) string { return "10.0.0.1" })
	if admitted != 7 || refused != 33 {
		t.Errorf("40 concurrent attempts from one IP: %d admitted, %d refused; want 7 and 33", admitted, refused)
	}
}

// An attempt whose password was never checked is taken back from both
// counts, so the service's own failures never lock a user out.
func TestLoginLimiterUncheckedTakesBack(t *testing.T) {
	rdb, prefix := redistest.New(t)
	l := NewLoginLimiter(rdb, prefix, LoginLimits{PerAccount: 2, PerIP: 2, Window: time.Minute})
	ctx := context.Background()
	for range 10 {
		wait, err := l.Attempt(ctx, "a@example.com", "10.0.0.1")
		if err != nil || wait != 0 {
			t.Fatalf("Attempt: %v, refused for %v; unchecked attempts must not count", err, wait)
		}
		if err := l.Unchecked(ctx, "a@example.com", "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		wait, err := l.Attempt(ctx, "a@example.com", "10.0.0.1")
		if err != nil || (wait > 0) != (i == 2) {
			t.Fatalf("attempt %d after the unchecked ones: wait %v, err %v; want the third refused", i+1, wait, err)
		}
	}
}
