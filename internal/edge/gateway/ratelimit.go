package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/internal/edge/problem"
	"github.com/eventshop/eventshop/internal/services/auth"
)

// failOpenLogEvery spaces the warnings of a Redis outage: every request
// fails open, one line says so.
const failOpenLogEvery = 10 * time.Second

// bucket is one rate limit, counted per client IP.
type bucket struct {
	name  string // in the Redis key
	limit redis_rate.Limit
}

// rateLimit counts each request against its client IP's bucket, GCRA in
// Redis (shared by every replica), and answers 429 beyond it.
//
// Every limited answer carries RateLimit-Limit (the burst: the most
// requests that can be made at once), RateLimit-Remaining (how many can be
// made now) and RateLimit-Reset (seconds until the whole burst is
// available again); a 429 adds Retry-After (seconds until one more
// request is admitted, rounded up). Exempt paths carry none.
//
// Redis keys (P is Config.KeyPrefix; the IP is stored only as sha256 hex,
// as the login throttling does, since it is personal data; IPv6 addresses
// are counted by their /64, which one host commonly holds whole):
//
//	P ratelimit:api:<sha256(ip)>   general limit; TTL = time to full reset
//	P ratelimit:auth:<sha256(ip)>  AuthRoutes' limit; TTL likewise
func (g *Gateway) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := g.bucketFor(r)
		if b == nil {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
		res, err := g.limiter.Allow(ctx, g.key(b, auth.ClientIP(r, g.trustProxy)), b.limit)
		cancel()
		if err != nil {
			if r.Context().Err() == nil {
				g.failedOpen(r.Context(), err)
			}
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(b.limit.Burst))
		h.Set("RateLimit-Remaining", strconv.Itoa(max(res.Remaining, 0)))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
		if res.Allowed == 0 {
			retry := max(ceilSeconds(res.RetryAfter), 1)
			h.Set("Retry-After", strconv.Itoa(retry))
			problem.Write(w, problem.New(http.StatusTooManyRequests,
				fmt.Sprintf("too many requests from your address; retry in %d s", retry)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bucketFor is the limit r counts against, or nil: exempt paths and, with
// both limits off, everything are not limited. AuthRoutes count against
// the auth limit only (it is the stricter), or the general one when the
// auth limit is off.
func (g *Gateway) bucketFor(r *http.Request) *bucket {
	if g.exempt[r.URL.Path] {
		return nil
	}
	if g.auth != nil && g.authRoute[r.Method+" "+r.URL.Path] {
		return g.auth
	}
	return g.general
}

// key is the Redis key of ip's bucket b.
func (g *Gateway) key(b *bucket, ip string) string {
	sum := sha256.Sum256([]byte(clientKey(ip)))
	return g.prefix + "ratelimit:" + b.name + ":" + hex.EncodeToString(sum[:])
}

// clientKey is what a client IP is counted as: an IPv4 address (IPv4-mapped
// IPv6 included) as itself, an IPv6 address by its /64, anything else (a
// malformed forwarded address) as it is.
func clientKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	return netip.PrefixFrom(addr.WithZone(""), 64).Masked().String()
}

// failedOpen logs that a request is served without its rate limit, at most
// once per failOpenLogEvery.
func (g *Gateway) failedOpen(ctx context.Context, err error) {
	now := time.Now().UnixNano()
	last := g.lastWarn.Load()
	if now-last < int64(failOpenLogEvery) || !g.lastWarn.CompareAndSwap(last, now) {
		return
	}
	g.log.WarnContext(ctx, "rate limit unavailable: serving requests without it", "err", err,
		"next_warning_in", failOpenLogEvery.String())
}

// ceilSeconds is d in whole seconds, rounded up; 0 for d <= 0.
func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// redisRatePrefix is what redis_rate puts before every key it is given.
const redisRatePrefix = "rate:"

// unprefixed is the Redis client redis_rate gets: it takes off the fixed
// prefix redis_rate adds, so the limiter's keys live under
// Config.KeyPrefix like every other key of the system (where an ACL on the
// prefix, and test clean-ups, find them).
type unprefixed struct{ rdb redis.UniversalClient }

func (u unprefixed) keys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, redisRatePrefix)
	}
	return out
}

func (u unprefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return u.rdb.Eval(ctx, script, u.keys(keys), args...)
}

func (u unprefixed) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return u.rdb.EvalSha(ctx, sha1, u.keys(keys), args...)
}

func (u unprefixed) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return u.rdb.EvalRO(ctx, script, u.keys(keys), args...)
}

func (u unprefixed) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return u.rdb.EvalShaRO(ctx, sha1, u.keys(keys), args...)
}

func (u unprefixed) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return u.rdb.ScriptExists(ctx, hashes...)
}

func (u unprefixed) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return u.rdb.ScriptLoad(ctx, script)
}

func (u unprefixed) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return u.rdb.Del(ctx, u.keys(keys)...)
}
