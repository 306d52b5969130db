// Package gateway is the in-process HTTP gateway in front of every route of
// a process: security headers, CORS, a deadline for each request, a
// request rate limit per client IP kept in Redis, admission control (a
// bound on the requests served at once, beyond which the process answers
// 503 at once rather than queueing without end), and a request body size
// limit. It gives a process that runs without a reverse proxy (`eventshop
// serve`, or the write and read APIs alone) the guards that nginx gives a
// deployment, and stays as a second line behind nginx.
//
// The rate limit fails open: when Redis cannot be asked, the request is
// served without it and a warning is logged (at most one per
// failOpenLogEvery), because an outage of a guard must not become an outage
// of the shop; the routes that need Redis themselves (sign-in, tokens,
// idempotency) answer 503 on their own.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/cors"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultMaxBodyBytes is API.md's body limit (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultCSP suits an API that serves only JSON: nothing may load,
	// and no page may frame a response.
	DefaultCSP = "default-src 'none'; frame-ancestors 'none'"
	// DefaultHSTS is sent on requests that came over TLS. It leaves
	// subdomains alone: a deployment may have plain-HTTP siblings.
	DefaultHSTS = "max-age=31536000"
	// DefaultRedisTimeout bounds one rate limit check; beyond it the
	// request is served (fail open).
	DefaultRedisTimeout = 500 * time.Millisecond
)

// DocsCSP is a policy for an interactive API reference page served by the
// process itself: its own scripts, styles, images, fonts and fetches
// (the OpenAPI document) from the same origin, inline styles (which such
// pages set from script), data: images (inline icons), and still no
// framing, plugins, base-URI changes or form posts.
const DocsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// DefaultAuthRoutes are the routes under the stricter AuthPerMinute limit:
// the unauthenticated routes that check a password or a refresh token, or
// create an account.
var DefaultAuthRoutes = []string{"POST /api/auth/login", "POST /api/auth/register", "POST /api/auth/refresh"}

// DefaultExempt are the paths never rate limited: probes and scrapes come
// often, from few addresses, and must not be refused.
var DefaultExempt = []string{"/healthz", "/readyz", "/metrics"}

// CORS: what a browser on an allowed origin may send and read.
var (
	corsMethods = []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	corsHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "If-Match", "If-None-Match",
		"X-Correlation-ID", "X-Min-Position"}
	// Access-Control-Expose-Headers takes no wildcard but "*", so the
	// RateLimit headers are named one by one.
	corsExposed = []string{"ETag", "X-Event-Position", "X-Correlation-ID", "X-Stale", "Retry-After",
		"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
)

// corsMaxAge is how long, in seconds, a browser may cache a preflight.
const corsMaxAge = 600

// Config is what the gateway guards, and how. A zero Config gives the
// security headers and the 1 MiB body limit, and no rate limit or CORS.
type Config struct {
	// KeyPrefix goes before every Redis key (REDIS_KEY_PREFIX).
	KeyPrefix string
	// PerSecond is the general limit per client IP, in requests per second
	// (GCRA), with bursts of up to Burst requests; 0 disables it.
	PerSecond int
	Burst     int
	// AuthPerMinute is the stricter limit per client IP of AuthRoutes, one
	// budget shared by them, in requests per minute with bursts of as many;
	// 0 leaves those routes under the general limit.
	AuthPerMinute int
	// AuthRoutes are "METHOD /path" (exact path); nil is DefaultAuthRoutes.
	AuthRoutes []string
	// Exempt are paths (exact) never rate limited; nil is DefaultExempt.
	Exempt []string
	// TrustProxy takes the client IP from X-Forwarded-For and the scheme
	// from X-Forwarded-Proto, as auth.ClientIP describes; set it only
	// behind a proxy that sets them.
	TrustProxy bool
	// AllowedOrigins may call the API from a browser (CORS), each
	// "scheme://host[:port]" (see CheckOrigin); empty sends no CORS
	// headers at all.
	AllowedOrigins []string
	// MaxBodyBytes bounds every request body (413 beyond); 0 is
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// CSP is the Content-Security-Policy of every response; "" is
	// DefaultCSP.
	CSP string
	// PathCSP replaces CSP under a path prefix ("/docs" covers /docs and
	// /docs/..., not /docsx); the longest matching prefix wins.
	PathCSP map[string]string
	// HSTS is the Strict-Transport-Security of requests that came over
	// TLS; "" is DefaultHSTS.
	HSTS string
	// RedisTimeout bounds one rate limit check; 0 is DefaultRedisTimeout.
	RedisTimeout time.Duration

	// MaxInFlight bounds the requests served at once in each of the
	// classes ClassRead and ClassWrite, a budget each, so that a flood of
	// reads cannot starve the commands; reads that wait for X-Min-Position
	// (ClassFresh) and the Exempt paths (ClassOps) have budgets of their
	// own. 0 turns admission control off; DefaultMaxInFlight suits the
	// machine.
	MaxInFlight int
	// MaxQueue bounds the requests of one class waiting for a slot, each
	// for at most QueueWait (0 is DefaultQueueWait); beyond either, the
	// request is answered 503 problem+json with Retry-After: 1. 0 is no
	// queue: refused at once when the class is full.
	MaxQueue  int
	QueueWait time.Duration
	// RequestTimeout bounds each request from when the gateway sees it:
	// its context ends then, and its connection's read and write
	// deadlines follow soon after; 0 sets none.
	RequestTimeout time.Duration
	// Observe, when set, is told of each request refused a slot
	// (OutcomeOverloaded, OutcomeQueueFull, OutcomeQueueWait) or still
	// served at its deadline (OutcomeTimeout), with its class.
	Observe func(class, outcome string)
}

// Gateway is the configured middleware; see Middleware. It is safe for
// concurrent use.
type Gateway struct {
	log        *slog.Logger
	trustProxy bool
	maxBody    int64

	// Rate limits; limiter is nil when both are off.
	limiter   *redis_rate.Limiter
	prefix    string
	timeout   time.Duration
	general   *bucket
	auth      *bucket
	authRoute map[string]bool // "METHOD /path"
	exempt    map[string]bool
	lastWarn  atomic.Int64 // unix nanoseconds of the last fail-open warning

	cors *cors.Cors // nil without AllowedOrigins

	// Admission control: a pool per class, none when it is off.
	pools          map[string]*pool
	requestTimeout time.Duration
	onOutcome      func(class, outcome string)

	csp     string
	pathCSP []pathPolicy // longest prefix first
	hsts    string
}

// New builds a Gateway. rdb may be nil when both rate limits are off (a
// process without Redis). It returns an error naming the field for a
// negative limit, a zero Burst under a general limit, a limit without
// rdb, a malformed origin, or a negative MaxBodyBytes, MaxInFlight,
// MaxQueue, QueueWait or RequestTimeout.
func New(cfg Config, rdb redis.UniversalClient, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	switch {
	case cfg.PerSecond < 0 || cfg.AuthPerMinute < 0:
		errs = append(errs, errors.New("gateway: a rate limit is negative"))
	case cfg.PerSecond > 0 && cfg.Burst < 1:
		errs = append(errs, fmt.Errorf("gateway: burst %d under a limit of %d/s: want at least 1", cfg.Burst, cfg.PerSecond))
	case (cfg.PerSecond > 0 || cfg.AuthPerMinute > 0) && rdb == nil:
		errs = append(errs, errors.New("gateway: a rate limit needs Redis"))
	}
	if cfg.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("gateway: body limit %d: want a positive number of bytes", cfg.MaxBodyBytes))
	}
	if cfg.MaxInFlight < 0 || cfg.MaxQueue < 0 || cfg.QueueWait < 0 || cfg.RequestTimeout < 0 {
		errs = append(errs, errors.New("gateway: a bound of admission control or the request timeout is negative"))
	}
	for _, o := range cfg.AllowedOrigins {
		if err := CheckOrigin(o); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	g := &Gateway{
		log: log, trustProxy: cfg.TrustProxy, maxBody: cfg.MaxBodyBytes,
		prefix: cfg.KeyPrefix, timeout: cfg.RedisTimeout,
		csp: cfg.CSP, pathCSP: pathPolicies(cfg.PathCSP), hsts: cfg.HSTS,
		requestTimeout: cfg.RequestTimeout, onOutcome: cfg.Observe,
	}
	if g.maxBody == 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.csp == "" {
		g.csp = DefaultCSP
	}
	if g.hsts == "" {
		g.hsts = DefaultHSTS
	}
	if g.timeout <= 0 {
		g.timeout = DefaultRedisTimeout
	}
	if cfg.PerSecond > 0 {
		g.general = &bucket{name: "api", limit: redis_rate.Limit{Rate: cfg.PerSecond, Burst: cfg.Burst, Period: time.Second}}
	}
	if cfg.AuthPerMinute > 0 {
		g.auth = &bucket{name: "auth", limit: redis_rate.PerMinute(cfg.AuthPerMinute)}
	}
	if g.general != nil || g.auth != nil {
		g.limiter = redis_rate.NewLimiter(unprefixed{rdb})
	}
	if cfg.MaxInFlight > 0 {
		wait := cfg.QueueWait
		if wait == 0 {
			wait = DefaultQueueWait
		}
		g.pools = map[string]*pool{
			ClassRead:  {limit: cfg.MaxInFlight, maxQueue: cfg.MaxQueue, maxWait: wait},
			ClassFresh: {limit: freshPerSlot * cfg.MaxInFlight, maxQueue: cfg.MaxQueue, maxWait: wait},
			ClassWrite: {limit: cfg.MaxInFlight, maxQueue: cfg.MaxQueue, maxWait: wait},
			ClassOps:   {limit: opsInFlight, maxQueue: opsQueue, maxWait: wait},
		}
	}
	g.authRoute = set(cfg.AuthRoutes, DefaultAuthRoutes)
	g.exempt = set(cfg.Exempt, DefaultExempt)
	if len(cfg.AllowedOrigins) > 0 {
		g.cors = cors.New(cors.Options{
			AllowedOrigins: cfg.AllowedOrigins,
			AllowedMethods: corsMethods,
			AllowedHeaders: corsHeaders,
			ExposedHeaders: corsExposed,
			MaxAge:         corsMaxAge,
			// Tokens travel in the Authorization header, never in
			// cookies: a browser must not send credentials.
			AllowCredentials: false,
		})
	}
	return g, nil
}

// Middleware wraps next in the gateway, outermost first: security headers
// (so that every answer has them, the gateway's own included), CORS (so
// that a browser can read a 429 and a 503 too; preflights are answered
// here, not rate limited and not counted against a budget), the request's
// deadline (which the rest, a wait for a slot included, counts against),
// the rate limit (so one address's flood is refused per address before
// it takes slots others need), admission control, and the body limit.
func (g *Gateway) Middleware(next http.Handler) http.Handler {
	h := g.limitBody(next)
	if g.pools != nil {
		h = g.admit(h)
	}
	if g.limiter != nil {
		h = g.rateLimit(h)
	}
	if g.requestTimeout > 0 {
		h = g.deadline(h)
	}
	if g.cors != nil {
		h = g.cors.Handler(h)
	}
	return g.secure(h)
}

// CheckOrigin says whether origin can be an allowed CORS origin: "*" (any
// origin; safe only because no credentials are allowed), or
// "http(s)://host[:port]" with no path, query or trailing slash, where the
// host may hold one "*" ("https://*.example.com"). It returns an error
// naming the origin otherwise.
func CheckOrigin(origin string) error {
	if origin == "*" {
		return nil
	}
	bad := func(why string) error { return fmt.Errorf("gateway: origin %q: %s", origin, why) }
	if strings.Count(origin, "*") > 1 {
		return bad("at most one * is allowed")
	}
	u, err := url.Parse(strings.Replace(origin, "*", "x", 1))
	switch {
	case err != nil:
		return bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("want http:// or https://")
	case u.Host == "" || u.User != nil:
		return bad("want scheme://host[:port]")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(origin, "/"):
		return bad("an origin has no path, query or trailing slash")
	}
	return nil
}

// set is list, or def when list is nil, as a set.
func set(list, def []string) map[string]bool {
	if list == nil {
		list = def
	}
	m := make(map[string]bool, len(list))
	for _, s := range list {
		m[s] = true
	}
	return m
}
