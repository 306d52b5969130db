package edge_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge"
)

// TestMethodNotAllowedSaysWhatIs: a 405 names the methods the route takes
// in Allow (RFC 9110), also for a path with parameters; an unknown path is
// a 404 without it.
func TestMethodNotAllowedSaysWhatIs(t *testing.T) {
	r := edge.NewRouter(edge.RootConfig{})
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	r.Get("/api/things", ok)
	r.Post("/api/things", ok)
	r.Delete("/api/things/{id}", ok)
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPut, "/api/things", "GET, POST"},
		{http.MethodGet, "/api/things/42", "DELETE"},
		{http.MethodPost, "/healthz", "GET"},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, Allow %q", c.method, c.path, w.Code, w.Header().Get("Allow"), c.allow)
		}
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/nowhere", nil))
	if w.Code != http.StatusNotFound || w.Header().Get("Allow") != "" {
		t.Errorf("unknown path: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// TestServeShutsDownPastASlowBody: a client that sent its headers and
// part of its body, and then nothing, does not hold the shutdown beyond
// the drain, nor make it fail: its connection is cut and Serve returns
// nil.
func TestServeShutsDownPastASlowBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(reading)
		_, _ = io.ReadAll(r.Body)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const drain = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- edge.Serve(ctx, ln, h, drain, slog.New(slog.DiscardHandler)) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reading:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never started")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v, want a clean shutdown", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still waits for the slow client")
	}
}
