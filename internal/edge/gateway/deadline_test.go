package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// TestRequestTimeout: a request still served at RequestTimeout has its
// context ended, so the PostgreSQL query it waits on ends, and it answers
// 503 problem+json with Retry-After (not 500); the gateway counts it.
func TestRequestTimeout(t *testing.T) {
	seen := &outcomes{}
	handlerErr := make(chan error, 1)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := pgx.Connect(context.Background(), pgtest.AdminURL())
		if err != nil {
			handlerErr <- fmt.Errorf("connect: %w", err)
			http.Error(w, "no database", http.StatusTeapot)
			return
		}
		defer conn.Close(context.Background())
		_, err = conn.Exec(r.Context(), "SELECT pg_sleep(30)")
		handlerErr <- context.Cause(r.Context())
		edge.WriteError(w, r, fmt.Errorf("read the catalogue: %w", err))
	})
	g, err := gateway.New(gateway.Config{RequestTimeout: 200 * time.Millisecond, MaxInFlight: 4, MaxQueue: 4, Observe: seen.observe}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(edge.Middleware(nil)(g.Middleware(slow)))
	defer srv.Close()

	wantBusy(t, "a request past its deadline", do(srv, http.MethodGet, "/api/products"))
	if err := <-handlerErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the handler's context ended with %v, want its deadline", err)
	}
	if got := seen.count("read timeout"); got != 1 {
		t.Errorf("timeout observed %d times, want 1", got)
	}
	if in, _ := g.Occupancy(gateway.ClassRead); in != 0 {
		t.Errorf("%d reads still in flight after the answer", in)
	}
}

// TestSlowBodyEndsAtDeadline: a client that sends part of its body and
// stalls holds its request (its slot, and a graceful shutdown) only until
// the request's deadline, not for the server's ReadTimeout: a server with
// a 1-minute ReadTimeout shuts down cleanly within a 10 s budget while
// such a client stalls.
func TestSlowBodyEndsAtDeadline(t *testing.T) {
	readErr, reading := make(chan error, 1), make(chan struct{})
	g, err := gateway.New(gateway.Config{RequestTimeout: 100 * time.Millisecond, MaxInFlight: 4}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		Handler: g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(reading)
			_, err := io.ReadAll(r.Body)
			readErr <- err
		})),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"items\":"); err != nil {
		t.Fatal(err)
	}
	<-reading

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown with a stalled client: %v, want a clean drain", err)
	}
	select {
	case err := <-readErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("the handler's body read: %v, want a timeout", err)
		}
	default:
		t.Error("the handler never saw its body read end")
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}
