package gateway_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/edge/problem"
)

// reader is a handler that reads the whole body, as the write API's
// decoder does: a *http.MaxBytesError is answered 413, anything else 200
// with the body echoed. It records the read error.
type reader struct {
	calls int
	err   error
}

func (h *reader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.calls++
	b, err := io.ReadAll(r.Body)
	h.err = err
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		problem.Write(w, problem.New(http.StatusRequestEntityTooLarge, "too large"))
		return
	}
	_, _ = w.Write(b)
}

func post(h http.Handler, body string, chunked bool) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/orders", strings.NewReader(body))
	if chunked {
		r.ContentLength = -1 // as net/http sets it for Transfer-Encoding: chunked
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestBodyLimitByContentLength: a body declared too large is refused
// before any handler runs.
func TestBodyLimitByContentLength(t *testing.T) {
	h := &reader{}
	g := build(t, gateway.Config{MaxBodyBytes: 16}, nil, nil, h)
	wantProblem(t, post(g, strings.Repeat("x", 17), false), http.StatusRequestEntityTooLarge)
	if h.calls != 0 {
		t.Errorf("the handler ran %d times for a body declared too large", h.calls)
	}
	if w := post(g, strings.Repeat("x", 16), false); w.Code != http.StatusOK || w.Body.Len() != 16 {
		t.Errorf("a body of exactly the limit: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// TestBodyLimitChunked: a body of unknown length is cut at the limit: the
// handler's read fails with *http.MaxBytesError.
func TestBodyLimitChunked(t *testing.T) {
	h := &reader{}
	g := build(t, gateway.Config{MaxBodyBytes: 16}, nil, nil, h)
	wantProblem(t, post(g, strings.Repeat("x", 1000), true), http.StatusRequestEntityTooLarge)
	var mbe *http.MaxBytesError
	if !errors.As(h.err, &mbe) || mbe.Limit != 16 {
		t.Errorf("handler read error %v, want *http.MaxBytesError with limit 16", h.err)
	}
	if w := post(g, strings.Repeat("x", 16), true); w.Code != http.StatusOK || w.Body.Len() != 16 {
		t.Errorf("a chunked body of exactly the limit: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// TestBodyLimitDefault: the default is API.md's 1 MiB.
func TestBodyLimitDefault(t *testing.T) {
	g := build(t, gateway.Config{}, nil, nil, &reader{})
	if w := post(g, strings.Repeat("x", gateway.DefaultMaxBodyBytes), false); w.Code != http.StatusOK {
		t.Errorf("1 MiB: %d, want 200", w.Code)
	}
	wantProblem(t, post(g, strings.Repeat("x", gateway.DefaultMaxBodyBytes+1), false), http.StatusRequestEntityTooLarge)
	wantProblem(t, post(g, strings.Repeat("x", gateway.DefaultMaxBodyBytes+1), true), http.StatusRequestEntityTooLarge)
}
