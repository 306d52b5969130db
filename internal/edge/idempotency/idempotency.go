// Package idempotency makes HTTP command routes safe to retry. A client
// sends an Idempotency-Key header; the first request with that key runs the
// handler and its response is kept in Redis, and every later request with
// the same key and the same body gets that response back without the
// handler running again.
//
// Redis layout: one string per key, at
//
//	<KeyPrefix>idem:<hex sha256(scope + "\x00" + method + " " + path + "\x00" + key)>
//
// holding a JSON record. While the handler runs the record is a claim
// ({"state":"pending","token":…,"fp":…}) that expires after Config.LockTTL
// unless the request renews it (every third of LockTTL while the handler
// runs), so a crashed process blocks the key for LockTTL at most. When the handler
// answers, the claim is replaced by the response
// ({"state":"done","fp":…,"status":…,"header":…,"body":…}) that expires
// after Config.TTL, or deleted when the answer was one the client should
// retry (5xx, 429, a 409 with Retry-After, or a panic). "fp" is the hex
// sha256 fingerprint of method, path and body. The raw key is hashed before
// it reaches Redis and is never logged.
//
// A record can be lost while its effects stay: the process dies after the
// handler's write and before the response is stored, or Redis loses the
// key. Handlers whose effects must still happen once take the request's
// key from its context (RequestKey) and make their writes from it (the
// order placed for a key has an id derived from it), so a retry finds
// what the first attempt did instead of doing it again.
//
// The claim uses SET … NX GET, so Redis 7.0 or later is required.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
)

// Header names used by the middleware.
const (
	// HeaderKey is the request header that carries the client's key.
	HeaderKey = "Idempotency-Key"
	// HeaderReplayed is set to "true" on a response replayed from the store.
	HeaderReplayed = "Idempotent-Replayed"
)

// Defaults applied by New to zero (or negative) Config fields.
const (
	DefaultTTL          = 24 * time.Hour
	DefaultLockTTL      = 10 * time.Second
	DefaultMaxKeyLength = 255
)

// finishTimeout bounds the Redis writes made after the handler returned.
// They run detached from the request context: the handler's side effects
// have happened, so the result must be recorded even if the client left.
const finishTimeout = 5 * time.Second

// Config configures a Store. The zero value of every duration and length
// field means its default.
type Config struct {
	KeyPrefix    string        // prefix of every Redis key
	TTL          time.Duration // how long a completed response is kept; default 24h
	LockTTL      time.Duration // how long an in-flight claim lives if the process dies; default 10s
	MaxKeyLength int           // default 255; longer keys → 400 problem
	// Logger receives Redis failures (never keys or bodies); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Store keeps idempotency records in Redis. It is safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	cfg      Config
	log      *slog.Logger
	release  *redis.Script
	complete *redis.Script
	renew    *redis.Script
}

// New returns a Store writing keys under cfg.KeyPrefix with the defaults
// applied. It does not contact Redis and returns no error: an unreachable
// Redis shows up per request as a 503.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.MaxKeyLength <= 0 {
		cfg.MaxKeyLength = DefaultMaxKeyLength
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Store{
		rdb:      rdb,
		cfg:      cfg,
		log:      log.With("component", "idempotency"),
		release:  redis.NewScript(releaseScript),
		complete: redis.NewScript(completeScript),
		renew:    redis.NewScript(renewScript),
	}
}

// Middleware returns middleware for routes that accept an Idempotency-Key
// header. scope(r) names who the key belongs to (the caller's user id); it
// must run after authentication. Keys of different scopes, methods or paths
// never collide.
//
// Without the header the request passes through untouched. With it the
// middleware answers, without calling the handler:
//   - 400 for an empty, repeated, non-printable or over-long key, or an
//     unreadable body; 413 when the body exceeds an outer http.MaxBytesReader;
//   - the stored response plus "Idempotent-Replayed: true" when the key was
//     completed with the same method, path and body;
//   - 422 when the key was used (completed or in flight) with another body;
//   - 409 with "Retry-After: 1" while the same request is still in flight;
//   - 503 when Redis cannot be reached (exactly-once cannot be promised);
//   - 500 when the stored record cannot be decoded.
//
// Otherwise it runs the handler once with a buffered response writer and
// keeps the status, body and headers Content-Type, Location,
// X-Event-Position and ETag for Config.TTL, unless the status is retryable
// (5xx, 429, 409 with Retry-After) or the handler panicked: then the claim
// is released so the client can retry. The response is buffered, so the
// handler cannot stream or flush.
func (s *Store) Middleware(scope func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			values := r.Header.Values(HeaderKey)
			if len(values) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			key, detail := s.checkKey(values)
			if detail != "" {
				writeProblem(w, http.StatusBadRequest, detail)
				return
			}
			body, status, detail := readBody(r)
			if detail != "" {
				writeProblem(w, status, detail)
				return
			}
			digest := digest(scope(r), r.Method, r.URL.Path, key)
			s.serve(w, r, next, entry{
				redisKey:    s.cfg.KeyPrefix + "idem:" + digest,
				digest:      digest,
				fingerprint: fingerprint(r.Method, r.URL.Path, body),
			})
		})
	}
}

// entry identifies one idempotent request in the store.
type entry struct {
	redisKey    string
	digest      string
	fingerprint string
}

type requestKey struct{}

// RequestKey returns the identity of the idempotent request ctx belongs
// to: a hex digest of its caller, method, path and Idempotency-Key, the
// same for every retry of it and for no other request. It is "" for a
// request without a key. The digest does not reveal the key.
func RequestKey(ctx context.Context) string {
	k, _ := ctx.Value(requestKey{}).(string)
	return k
}

// checkKey returns the key, or a problem detail saying why it is unusable.
// The detail never quotes the key.
func (s *Store) checkKey(values []string) (key, detail string) {
	if len(values) > 1 {
		return "", "send a single Idempotency-Key header"
	}
	key = values[0]
	switch {
	case key == "":
		return "", "Idempotency-Key must not be empty"
	case len(key) > s.cfg.MaxKeyLength:
		return "", "Idempotency-Key is longer than the allowed maximum"
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return "", "Idempotency-Key must be printable ASCII"
		}
	}
	return key, ""
}

// readBody reads the whole body and puts it back for the next handler. On
// failure it returns the status and problem detail to answer with.
func readBody(r *http.Request) (body []byte, status int, detail string) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, ""
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge, "request body is too large"
		}
		return nil, http.StatusBadRequest, "request body could not be read"
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, 0, ""
}

// digest hashes scope, route and client key so that keys of different
// callers or routes never collide and the raw key never reaches Redis.
func digest(scope, method, path, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + method + " " + path + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// fingerprint identifies the request a key was first used with.
func fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	io.WriteString(h, method+"\x00"+path+"\x00")
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// serve claims e, or answers from what another request left there.
func (s *Store) serve(w http.ResponseWriter, r *http.Request, next http.Handler, e entry) {
	ctx := r.Context()
	claim, prev, err := s.claim(ctx, e)
	switch {
	case errors.Is(err, errCorrupt):
		s.log.ErrorContext(ctx, "idempotency record unreadable", "err", err)
		writeProblem(w, http.StatusInternalServerError, "internal error")
		return
	case err != nil:
		s.log.ErrorContext(ctx, "idempotency store unavailable", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "idempotency store unavailable, retry later")
		return
	case prev != nil && prev.Fingerprint != e.fingerprint:
		writeProblem(w, http.StatusUnprocessableEntity, "Idempotency-Key reused with a different request")
		return
	case prev != nil && prev.State == statePending:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusConflict, "a request with this Idempotency-Key is in progress")
		return
	case prev != nil:
		prev.replay(w)
		return
	}

	rec := newRecorder(w.Header())
	stop := s.keep(ctx, e, claim)
	finished := false
	defer func() {
		stop()
		// Only reached without finished on a panic: free the key so the
		// client can retry, and let the panic carry on up.
		if !finished {
			s.finish(ctx, e, claim, nil)
		}
	}()
	next.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, requestKey{}, e.digest)))
	finished = true
	stop()

	if retryable(rec.statusOrOK(), rec.header) {
		s.finish(ctx, e, claim, nil)
	} else {
		s.finish(ctx, e, claim, rec.record(e.fingerprint))
	}
	rec.writeTo(w)
}

// keep renews the claim every third of LockTTL until the returned stop is
// called (stop may be called more than once). A renewal that fails is
// logged and tried again at the next tick; if the claim expires meanwhile
// a retry may run the handler beside this one, which the handler's
// RequestKey-derived writes make harmless.
func (s *Store) keep(ctx context.Context, e entry, claim string) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				rctx, rcancel := context.WithTimeout(ctx, s.cfg.LockTTL/3)
				err := s.renew.Run(rctx, s.rdb, []string{e.redisKey}, claim, s.cfg.LockTTL.Milliseconds()).Err()
				rcancel()
				if err != nil && ctx.Err() == nil {
					s.log.WarnContext(ctx, "renew idempotency claim", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// retryable reports whether a response is one the client is expected to
// retry with the same key, so it must not be stored.
func retryable(status int, h http.Header) bool {
	switch {
	case status >= 500, status == http.StatusTooManyRequests:
		return true
	case status == http.StatusConflict && h.Get("Retry-After") != "":
		return true // "in progress" from a nested idempotent call
	}
	return false
}

// finish replaces our claim with done, or deletes it when done is nil. A
// failure is logged, not returned: the handler has already run, and the
// client gets its response either way.
func (s *Store) finish(ctx context.Context, e entry, claim string, done *record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if done == nil {
		if err := s.release.Run(ctx, s.rdb, []string{e.redisKey}, claim).Err(); err != nil {
			s.log.ErrorContext(ctx, "release idempotency claim", "err", err)
		}
		return
	}
	val, err := done.encode()
	if err == nil {
		var stored int64
		stored, err = s.complete.Run(ctx, s.rdb, []string{e.redisKey},
			claim, val, s.cfg.TTL.Milliseconds()).Int64()
		if err == nil && stored == 0 {
			s.log.WarnContext(ctx, "idempotency claim expired before the handler answered; response not stored",
				"lock_ttl", s.cfg.LockTTL)
		}
	}
	if err != nil {
		s.log.ErrorContext(ctx, "store idempotent response", "err", err)
	}
}
