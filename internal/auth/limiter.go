package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults applied by NewLoginLimiter to a zero (or negative) LoginLimits field.
const (
	DefaultLoginPerAccount = 5
	DefaultLoginPerIP      = 20
	DefaultLoginWindow     = 15 * time.Minute
)

// LoginLimits says how many failed logins are allowed per window before
// further attempts are refused (429).
type LoginLimits struct {
	PerAccount int           // failures per account; default DefaultLoginPerAccount
	PerIP      int           // failures per client IP; default DefaultLoginPerIP
	Window     time.Duration // default DefaultLoginWindow
}

// LoginLimiter counts failed logins per account and per client IP in fixed
// windows that start at the first failure.
//
// Redis keys (P is the key prefix; accounts and IPs are stored only as
// sha256 hex, never raw, since both are personal data):
//
//	P login:acct:<sha256(account)>  failures of the account; TTL = rest of window
//	P login:ip:<sha256(ip)>         failures from the IP; TTL = rest of window
//
// A LoginLimiter is safe for concurrent use.
type LoginLimiter struct {
	rdb    redis.UniversalClient
	prefix string
	limits LoginLimits
}

// NewLoginLimiter returns a limiter keeping its counters in rdb under
// keyPrefix, with limits' zero fields set to their defaults.
func NewLoginLimiter(rdb redis.UniversalClient, keyPrefix string, limits LoginLimits) *LoginLimiter {
	if limits.PerAccount <= 0 {
		limits.PerAccount = DefaultLoginPerAccount
	}
	if limits.PerIP <= 0 {
		limits.PerIP = DefaultLoginPerIP
	}
	if limits.Window <= 0 {
		limits.Window = DefaultLoginWindow
	}
	return &LoginLimiter{rdb: rdb, prefix: keyPrefix, limits: limits}
}

// Allow reports whether a login attempt for account (a normalised email)
// from ip may proceed. When it may not, retryAfter > 0 is the wait until
// the blocking window ends, rounded up to whole seconds for Retry-After.
// It does not count the attempt. It returns only wrapped Redis errors.
func (l *LoginLimiter) Allow(ctx context.Context, account, ip string) (retryAfter time.Duration, err error) {
	acct, addr := l.accountKey(account), l.ipKey(ip)
	var acctN, ipN *redis.StringCmd
	var acctTTL, ipTTL *redis.DurationCmd
	cmds, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		acctN, acctTTL = p.Get(ctx, acct), p.PTTL(ctx, acct)
		ipN, ipTTL = p.Get(ctx, addr), p.PTTL(ctx, addr)
		return nil
	})
	// A missing counter answers redis.Nil, which only means "no failures".
	// Every command is checked: err is only the first command's error.
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("auth: read login failure counts: %w", err)
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			return 0, fmt.Errorf("auth: read login failure counts: %w", e)
		}
	}
	wait := max(
		l.blockedFor(acctN, acctTTL, l.limits.PerAccount),
		l.blockedFor(ipN, ipTTL, l.limits.PerIP),
	)
	if wait <= 0 {
		return 0, nil
	}
	return (wait + time.Second - 1).Truncate(time.Second), nil
}

// blockedFor is how long a counter at limit still blocks, or 0.
func (l *LoginLimiter) blockedFor(count *redis.StringCmd, ttl *redis.DurationCmd, limit int) time.Duration {
	n, err := count.Int()
	if err != nil || n < limit {
		return 0
	}
	switch d := ttl.Val(); {
	case d > 0:
		return d
	case d == -1: // no expiry, which Failed never leaves: assume a full window
		return l.limits.Window
	default: // expired between GET and PTTL
		return 0
	}
}

// Failed counts a failed attempt against both the account and the ip. The
// first failure of a window starts it. It returns only wrapped Redis errors.
func (l *LoginLimiter) Failed(ctx context.Context, account, ip string) error {
	window := l.limits.Window.Milliseconds()
	_, err := l.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range []string{l.accountKey(account), l.ipKey(ip)} {
			p.Incr(ctx, key)
			// NX: later failures must not push the window's end further out.
			p.Do(ctx, "PEXPIRE", key, window, "NX")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: count login failure: %w", err)
	}
	return nil
}

// Succeeded clears the account's failure count. The IP's count is kept:
// otherwise one attacker-owned account would reset the IP limit at will.
// It returns only wrapped Redis errors.
func (l *LoginLimiter) Succeeded(ctx context.Context, account string) error {
	if err := l.rdb.Del(ctx, l.accountKey(account)).Err(); err != nil {
		return fmt.Errorf("auth: clear login failures: %w", err)
	}
	return nil
}

// accountKey normalises account once more (trim, lower case) so that case
// variants of one email cannot dodge its limit.
func (l *LoginLimiter) accountKey(account string) string {
	return l.prefix + "login:acct:" + sha256Hex(strings.ToLower(strings.TrimSpace(account)))
}

func (l *LoginLimiter) ipKey(ip string) string {
	return l.prefix + "login:ip:" + sha256Hex(ip)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
