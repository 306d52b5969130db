package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Record states.
const (
	statePending = "pending"
	stateDone    = "done"
)

// errCorrupt marks a record that is not ours to read; it is a bug or a
// foreign writer, not an outage.
var errCorrupt = errors.New("idempotency: corrupt record")

// releaseScript deletes the key only while it still holds our claim, so a
// slow request whose claim expired cannot delete someone else's.
const releaseScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`

// renewScript extends our claim's lifetime while it is still ours.
const renewScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`

// completeScript stores the response if the key still holds our claim, or
// is empty because the claim expired and nobody else took it. It refuses to
// overwrite another request's claim or response.
const completeScript = `
local v = redis.call("GET", KEYS[1])
if v == ARGV[1] or v == false then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
  return 1
end
return 0`

// record is the JSON value stored at an idempotency key.
type record struct {
	State       string      `json:"state"`
	Token       string      `json:"token,omitempty"` // makes each claim unique
	Fingerprint string      `json:"fp"`
	Status      int         `json:"status,omitempty"`
	Header      http.Header `json:"header,omitempty"`
	Body        []byte      `json:"body,omitempty"`
}

func (r *record) encode() (string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode idempotency record: %w", err)
	}
	return string(b), nil
}

// claim takes e for this request with one atomic SET NX GET. It returns
// the claim value (needed to release or complete it) when the key was free,
// or the record already there. Errors are Redis failures, or errCorrupt.
func (s *Store) claim(ctx context.Context, e entry) (claim string, prev *record, err error) {
	claim, err = (&record{State: statePending, Token: uuid.NewString(), Fingerprint: e.fingerprint}).encode()
	if err != nil {
		return "", nil, err
	}
	old, err := s.rdb.SetArgs(ctx, e.redisKey, claim, redis.SetArgs{Mode: "NX", TTL: s.cfg.LockTTL, Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return claim, nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	prev = new(record)
	if err := json.Unmarshal([]byte(old), prev); err != nil {
		return "", nil, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	if prev.State != statePending && prev.State != stateDone {
		return "", nil, fmt.Errorf("%w: unknown state", errCorrupt)
	}
	return "", prev, nil
}

// replay writes a stored response, marked as replayed.
func (r *record) replay(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.Header {
		h[k] = slices.Clone(v)
	}
	h.Set(HeaderReplayed, "true")
	w.WriteHeader(r.Status)
	w.Write(r.Body)
}

// recorder buffers a handler's response so that it can be stored before the
// client sees it. It deliberately has no Unwrap or Flush: reaching the real
// writer would bypass the buffer.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

// newRecorder starts from a copy of the real writer's headers, so the
// handler sees what outer middleware has set.
func newRecorder(h http.Header) *recorder {
	return &recorder{header: h.Clone()}
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status != 0 || code < 200 {
		return // already written, or 1xx informational
	}
	r.status = code
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.body = append(r.body, p...)
	return len(p), nil
}

// record returns the completed response to store.
func (r *recorder) record(fp string) *record {
	rec := &record{State: stateDone, Fingerprint: fp, Status: r.statusOrOK(), Body: r.body, Header: http.Header{}}
	// Only these are replayed; others (dates, correlation ids) belong to
	// the request that carries them.
	for _, name := range []string{"Content-Type", "Location", "X-Event-Position", "ETag"} {
		if v := r.header.Values(name); len(v) > 0 {
			rec.Header[http.CanonicalHeaderKey(name)] = slices.Clone(v)
		}
	}
	return rec
}

func (r *recorder) statusOrOK() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// writeTo sends the buffered response to the client.
func (r *recorder) writeTo(w http.ResponseWriter) {
	h := w.Header()
	clear(h)
	for k, v := range r.header {
		h[k] = v
	}
	w.WriteHeader(r.statusOrOK())
	w.Write(r.body)
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// writeProblem answers with an application/problem+json body.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}
