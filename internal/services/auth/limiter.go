package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults applied by NewLoginLimiter to a zero (or negative) LoginLimits field.
const (
	DefaultLoginPerAccount      = 5
	DefaultLoginPerIP           = 20
	DefaultLoginPerAccountTotal = 50
	DefaultLoginWindow          = 15 * time.Minute
	DefaultLoginKnownFor        = 30 * 24 * time.Hour
)

// LoginLimits says how many sign-in attempts a window admits before further
// attempts are refused (429). An admitted attempt counts from the moment it
// is made, before its password is checked; a refused one does not count,
// and one whose password was right is taken back (see
// LoginLimiter.Succeeded), so in effect only failed attempts use up a
// limit.
type LoginLimits struct {
	// PerAccount is how many attempts on one account from one client IP a
	// window admits, counting the admitted attempts since the window
	// started or since the account's last successful sign-in from that
	// IP, whichever is later; default DefaultLoginPerAccount. It is per
	// IP so that someone else's wrong passwords do not lock the owner
	// out.
	PerAccount int
	// PerIP is how many attempts from one client IP, on any accounts, a
	// window admits, counting the admitted attempts since the window
	// started except the successful ones; default DefaultLoginPerIP.
	PerIP int
	// PerAccountTotal is how many attempts on one account from all IPs
	// together a window admits, except the successful ones; default
	// DefaultLoginPerAccountTotal. It bounds guessing spread over many
	// addresses. It does not apply from an address the account signed in
	// from within KnownFor: someone holding PerAccountTotal/PerAccount
	// addresses can lock the account on every other address, but not on
	// its owner's usual ones, where PerAccount and PerIP still hold.
	PerAccountTotal int
	Window          time.Duration // from the first attempt counted; default DefaultLoginWindow
	// KnownFor is how long after a successful sign-in from an address
	// the address stays known for the account; default
	// DefaultLoginKnownFor.
	KnownFor time.Duration
}

// LoginLimiter counts sign-in attempts per account and client IP, per
// client IP and per account in fixed windows that start at the first
// attempt counted, and refuses the attempts that go over a limit. Counting and deciding is one atomic step,
// so concurrent attempts cannot all slip under a limit.
//
// Redis keys (P is the key prefix; accounts and IPs are stored only as
// sha256 hex, never raw, since both are personal data):
//
//	P login:acctip:<sha256(account NUL ip)>  attempts on the account from the IP; TTL = rest of window
//	P login:ip:<sha256(ip)>                  attempts from the IP
//	P login:acct:<sha256(account)>           attempts on the account from any IP
//	P login:known:<sha256(account NUL ip)>   the account signed in from the IP; TTL = KnownFor
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
	if limits.PerAccountTotal <= 0 {
		limits.PerAccountTotal = DefaultLoginPerAccountTotal
	}
	if limits.Window <= 0 {
		limits.Window = DefaultLoginWindow
	}
	if limits.KnownFor <= 0 {
		limits.KnownFor = DefaultLoginKnownFor
	}
	return &LoginLimiter{rdb: rdb, prefix: keyPrefix, limits: limits}
}

// attemptScript counts one attempt against each of KEYS[1..3] (the
// account from the IP, the IP, the account) in a window of ARGV[1] ms and
// returns each count and TTL, and last whether KEYS[4] (the account's
// known address) exists; when a count goes over its limit (ARGV[2],
// ARGV[3], ARGV[4]; the account's not on a known address) the attempt is
// refused and taken back from every key, so refusals never use up a
// budget. NX: only the first attempt of a window sets its end; later ones
// must not push it further out. Redis runs a script alone and with its
// clock frozen, so no other attempt and no expiry falls between the
// increments and the reads.
var attemptScript = redis.NewScript(`
local out = {}
local over = false
local known = redis.call('EXISTS', KEYS[4])
for i = 1, 3 do
	local n = redis.call('INCR', KEYS[i])
	redis.call('PEXPIRE', KEYS[i], ARGV[1], 'NX')
	out[2*i-1] = n
	out[2*i] = redis.call('PTTL', KEYS[i])
	if n > tonumber(ARGV[i+1]) and not (i == 3 and known == 1) then over = true end
end
if over then
	for i = 1, 3 do redis.call('DECR', KEYS[i]) end
end
out[7] = known
return out
`)

// Attempt counts a sign-in attempt for account (a normalised email) from ip
// before the password is checked, atomically for every counter, so
// concurrent attempts cannot all slip under the limits. The first attempt
// of a window starts it; later attempts never push the window's end. If,
// counting this attempt, the account's count from ip is above PerAccount,
// the IP's above PerIP or the account's from all IPs above
// PerAccountTotal (unless the account signed in from ip within KnownFor),
// the attempt is refused: retryAfter > 0 is the time
// until the blocking window ends (the latest, if several block), rounded
// up to whole seconds for Retry-After. A refused attempt is not counted:
// the counts are of attempts whose password was checked. It returns only
// wrapped Redis errors.
func (l *LoginLimiter) Attempt(ctx context.Context, account, ip string) (retryAfter time.Duration, err error) {
	limits := []int{l.limits.PerAccount, l.limits.PerIP, l.limits.PerAccountTotal}
	res, err := attemptScript.Run(ctx, l.rdb, l.scriptKeys(account, ip),
		l.limits.Window.Milliseconds(), limits[0], limits[1], limits[2]).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("auth: count login attempt: %w", err)
	}
	if len(res) != 2*len(limits)+1 {
		return 0, fmt.Errorf("auth: count login attempt: script answered %v, want %d integers", res, 2*len(limits)+1)
	}
	if res[len(res)-1] == 1 {
		limits = limits[:2] // a known address: the account's total does not apply
	}
	var wait time.Duration
	blocked := false
	for i, limit := range limits {
		if w, over := blocking(res[2*i], res[2*i+1], limit); over {
			wait, blocked = max(wait, w), true
		}
	}
	if !blocked {
		return 0, nil
	}
	// At least a second, so that a refusal is never mistaken for admission
	// even if the counter expired on the very millisecond.
	return max((wait + time.Second - 1).Truncate(time.Second), time.Second), nil
}

// blocking reports whether count is over limit and, if so, for how long
// according to ttlMS, the counter's PTTL.
func blocking(count, ttlMS int64, limit int) (time.Duration, bool) {
	if count <= int64(limit) {
		return 0, false
	}
	return time.Duration(ttlMS) * time.Millisecond, true
}

// takeBackScript takes one attempt back from each of KEYS[1..3]; when
// ARGV[1] is "clear" it clears the first key instead, and marks KEYS[4]
// (the account's known address) for ARGV[2] ms. It only decrements an
// existing, positive count: DECR on a missing key would create one at -1
// with no expiry, a free attempt for ever; DECR keeps the key's TTL, so
// the window is unchanged.
var takeBackScript = redis.NewScript(`
local clear = ARGV[1] == 'clear'
for i = 1, 3 do
	if i == 1 and clear then
		redis.call('DEL', KEYS[i])
	else
		local n = tonumber(redis.call('GET', KEYS[i]))
		if n and n > 0 then
			redis.call('DECR', KEYS[i])
		end
	end
end
if clear then
	redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
end
return 0
`)

// Succeeded says that an attempt admitted by Attempt had the right
// password: it clears the account's count from ip and takes this one
// attempt back from the IP's and the account's total counts (never below
// 0), so signing in successfully never uses up a budget, while failures
// still do; others' failures on the account stay counted in its total.
// It also makes ip known for the account for KnownFor (from now). Call it
// at most once per admitted attempt. It returns only wrapped Redis errors.
func (l *LoginLimiter) Succeeded(ctx context.Context, account, ip string) error {
	if err := takeBackScript.Run(ctx, l.rdb, l.scriptKeys(account, ip), "clear", l.limits.KnownFor.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("auth: record successful login: %w", err)
	}
	return nil
}

// Unchecked says that an attempt admitted by Attempt ended before its
// password was checked (a store or Redis failure, or the caller gave up):
// it takes the attempt back from every count, so failures of the service
// never lock a user out. It returns only wrapped Redis errors.
func (l *LoginLimiter) Unchecked(ctx context.Context, account, ip string) error {
	if err := takeBackScript.Run(ctx, l.rdb, l.scriptKeys(account, ip), "", 0).Err(); err != nil {
		return fmt.Errorf("auth: take back login attempt: %w", err)
	}
	return nil
}

// keys are the counters of an attempt on account from ip, in the order of
// the limits: the account from the IP, the IP, the account.
func (l *LoginLimiter) keys(account, ip string) []string {
	return l.scriptKeys(account, ip)[:3]
}

// scriptKeys are the scripts' KEYS: the counters (keys), then the mark of
// ip as known to account. The pair's digest is computed once for both.
func (l *LoginLimiter) scriptKeys(account, ip string) []string {
	pair := sha256Hex(normalAccount(account) + "\x00" + ip)
	return []string{l.prefix + "login:acctip:" + pair, l.ipKey(ip), l.accountKey(account), l.prefix + "login:known:" + pair}
}

// accountKey normalises account once more (trim, lower case) so that case
// variants of one email cannot dodge its limit.
func (l *LoginLimiter) accountKey(account string) string {
	return l.prefix + "login:acct:" + sha256Hex(normalAccount(account))
}

func normalAccount(account string) string { return strings.ToLower(strings.TrimSpace(account)) }

func (l *LoginLimiter) ipKey(ip string) string {
	return l.prefix + "login:ip:" + sha256Hex(ip)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
