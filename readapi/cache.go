package readapi

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// The catalogue's answer cache: the product routes are public, so an
// answer is the same for every caller and can be kept for a moment and
// served again. Reads are eventually consistent anyway (a projection
// stands between a write and its read model); the cache adds at most its
// TTL to that, and a read with X-Min-Position never uses it. A read
// without the header in flight while such a read empties the cache may
// keep an answer from before the token for the TTL.
const (
	// cacheEntries bounds the answers kept; with cacheBodyMax, the
	// memory: a flood of distinct queries evicts, it does not grow.
	cacheEntries = 2048
	// cacheBodyMax is the largest body kept (a page of 100 products with
	// long descriptions is not).
	cacheBodyMax = 64 << 10
)

// cachedAnswer is a 200 answer as the handler wrote it: its body and the
// headers it set.
type cachedAnswer struct {
	header http.Header
	body   []byte
}

// answerCache keeps the catalogue's 200 answers by path and query for
// ttl.
type answerCache struct {
	lru *expirable.LRU[string, cachedAnswer]
}

func newAnswerCache(ttl time.Duration) *answerCache {
	return &answerCache{lru: expirable.NewLRU[string, cachedAnswer](cacheEntries, nil, ttl)}
}

// middleware answers a GET from the cache when it can, and otherwise
// keeps what next answers with 200. A request with X-Min-Position (it
// wants a read as new as its token) neither reads nor fills the cache,
// and, once the model has caught up to its token, empties it: a client
// that read its write then reads nothing older from this process.
func (c *answerCache) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		if strings.TrimSpace(r.Header.Get(minPositionHeader)) != "" {
			// The model has caught up to the token (fresh ran first):
			// what is kept may be older, and a later read without the
			// header must not go back behind this one.
			if w.Header().Get("X-Stale") == "" {
				c.lru.Purge()
			}
			next.ServeHTTP(w, r)
			return
		}
		key := cacheKey(r.URL)
		if a, ok := c.lru.Get(key); ok {
			h := w.Header()
			for k, v := range a.header {
				h[k] = slices.Clone(v)
			}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(a.body)
			return
		}
		before := w.Header().Clone()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusOK || rec.over {
			return
		}
		// Only what the handler set: the middleware around it sets the
		// rest (a correlation id, say) for each request anew.
		set := http.Header{}
		for k, v := range w.Header() {
			if !slices.Equal(before[k], v) {
				set[k] = slices.Clone(v)
			}
		}
		c.lru.Add(key, cachedAnswer{header: set, body: rec.body.Bytes()})
	})
}

// cacheKey is the key of u's answer: its path and query as sent.
func cacheKey(u *url.URL) string { return u.Path + "?" + u.RawQuery }

// recorder passes an answer on and keeps its status and, up to
// cacheBodyMax, its body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	over   bool // the body was longer than cacheBodyMax
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.over && r.status == http.StatusOK {
		if r.body.Len()+len(p) > cacheBodyMax {
			r.over = true
			r.body = bytes.Buffer{}
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
