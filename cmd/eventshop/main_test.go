package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/esdbtest"
	"github.com/eventshop/eventshop/internal/pgtest"
)

// startRun runs the real program with env and returns the base URL it
// printed, and a func that stops it (as SIGTERM would) and returns run's error.
func startRun(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "health     "); ok {
				urls <- strings.TrimSuffix(u, "/healthz")
			}
		}
	}()
	select {
	case u := <-urls:
		return u, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("run ended before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("run did not print its URL within 30s")
	}
	return "", nil
}

func getJSON(t *testing.T, url string) (int, string, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: decode: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

func TestServeHealthAndReadiness(t *testing.T) {
	db := pgtest.NewDatabase(t)
	base, stop := startRun(t, map[string]string{"DATABASE_URL": db, "HTTP_ADDR": "127.0.0.1:0"})
	if code, _, body := getJSON(t, base+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/healthz: %d %v", code, body)
	}
	if code, _, body := getJSON(t, base+"/readyz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/readyz: %d %v", code, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestReadinessFailsWithoutEventStore(t *testing.T) {
	db := pgtest.NewDatabase(t)
	base, stop := startRun(t, map[string]string{"DATABASE_URL": db, "HTTP_ADDR": "127.0.0.1:0"})
	defer stop()
	// Take the database away under the running server.
	pgtest.Drop(t, db)
	code, ctype, body := getJSON(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || ctype != "application/problem+json" || body["status"] != float64(503) {
		t.Fatalf("/readyz without a database: %d %s %v", code, ctype, body)
	}
	if code, _, _ := getJSON(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz must stay up when a dependency is down: %d", code)
	}
}

// TestServeOnEventStoreDB: an esdb:// EVENTSTORE_URL selects the
// EventStoreDB adapter, and readiness follows the node.
func TestServeOnEventStoreDB(t *testing.T) {
	node := esdbtest.Start(t)
	base, stop := startRun(t, map[string]string{"EVENTSTORE_URL": node.URL(), "HTTP_ADDR": "127.0.0.1:0"})
	defer stop()
	if code, _, body := getJSON(t, base+"/readyz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/readyz on EventStoreDB: %d %v", code, body)
	}
	node.Stop()
	if code, _, _ := getJSON(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the node gone: %d, want 503", code)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, env := range []map[string]string{
		{"EVENTSTORE_URL": "mysql://x"},
		{"LOG_LEVEL": "loud"},
		{"SHUTDOWN_TIMEOUT": "soon"},
	} {
		err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("env %v: run succeeded, want a configuration error", env)
		}
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://user:s3cret@db:5432/x":                  "postgres://user:xxxxx@db:5432/x",
		"postgres://user@db/x?password=s3cret&sslmode=off":  "postgres://user@db/x?password=xxxxx&sslmode=off",
		"esdb://admin:s3cret@node:2113?tls=false":           "esdb://admin:xxxxx@node:2113?tls=false",
		"host=db user=u password=s3cret dbname=x":           "(not a URL)",
		"admin:s3cret@db:5432/x":                            "(not a URL)",
		"postgres://user@db/x?sslpassword=s3cret&tls=false": "postgres://user@db/x?sslpassword=xxxxx&tls=false",
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestConfigErrorsHideSecrets: a rejected URL is not echoed with its password.
func TestConfigErrorsHideSecrets(t *testing.T) {
	for _, v := range []string{"host=db password=s3cret", "mysql://u:s3cret@db/x", "u:s3cret@db:5432/x"} {
		env := map[string]string{"EVENTSTORE_URL": v}
		err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("EVENTSTORE_URL %q: error %v, want one without the password", v, err)
		}
	}
}
