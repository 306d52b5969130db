package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/testsupport/esdbtest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/eventshop/eventshop/internal/testsupport/syncbuf"
)

// startRun runs the real program with env and args (default "serve") and
// returns the base URL it printed, and a func that stops it (as SIGTERM
// would) and returns run's error. The program is also stopped when t ends;
// its log is shown when t failed.
func startRun(t *testing.T, env map[string]string, args ...string) (string, func() error) {
	t.Helper()
	if len(args) == 0 {
		args = []string{"serve"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, pw, logs)
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
	var (
		once    sync.Once
		stopErr error
	)
	stop := func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("log of eventshop %s (last 16 KiB):\n%s", args[0], tail(logs.String(), 16<<10))
		}
	})
	select {
	case u := <-urls:
		return u, stop
	case err := <-done:
		cancel()
		once.Do(func() { stopErr = err }) // stop must not wait for done again
		t.Fatalf("run ended before listening: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("run did not print its URL within 30s")
	}
	return "", nil
}

// isolated adds to env what keeps a run of the program to itself: a data
// directory of its own (the local run keeps its JWT secret there; the
// default, .data, is in the source tree) and a Redis key prefix of its own.
func isolated(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	_, prefix := redistest.New(t)
	env["DATA_DIR"] = t.TempDir()
	env["REDIS_KEY_PREFIX"] = prefix
	// The embedded MongoDB- and Kafka-protocol servers and the SMTP sink
	// on free ports.
	env["MONGO_ADDR"] = "127.0.0.1:0"
	env["KAFKA_ADDR"] = "127.0.0.1:0"
	env["SMTP_SINK_ADDR"] = "127.0.0.1:0"
	return env
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
	base, stop := startRun(t, isolated(t, map[string]string{"DATABASE_URL": db, "HTTP_ADDR": "127.0.0.1:0"}))
	if code, _, body := getJSON(t, base+"/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/healthz: %d %v", code, body)
	}
	code, _, body := getJSON(t, base+"/readyz")
	if code != 200 || body["status"] != "ok" {
		t.Fatalf("/readyz: %d %v", code, body)
	}
	checks, _ := body["checks"].(map[string]any)
	for _, dep := range []string{"eventstore", "redis", "readmodels", "mongodb", "kafka", "smtp"} {
		if checks[dep] != "ok" {
			t.Errorf("/readyz checks %s: %v", dep, checks[dep])
		}
	}
	// `eventshop healthcheck`, the container's health check, asks the
	// same process (a wildcard HTTP_ADDR is asked on loopback).
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	probe := func(args ...string) error {
		env := map[string]string{"HTTP_ADDR": "0.0.0.0:" + port}
		return run(context.Background(), append([]string{"healthcheck"}, args...), func(k string) string { return env[k] }, io.Discard, io.Discard)
	}
	if err := probe(); err != nil {
		t.Errorf("healthcheck of a ready server: %v", err)
	}
	if err := probe("/no-such-path"); err == nil {
		t.Error("healthcheck of a path answering 404 succeeded")
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
	if err := probe("/healthz"); err == nil {
		t.Error("healthcheck of a stopped server succeeded")
	}
}

func TestReadinessFailsWithoutEventStore(t *testing.T) {
	db := pgtest.NewDatabase(t)
	base, stop := startRun(t, isolated(t, map[string]string{"DATABASE_URL": db, "HTTP_ADDR": "127.0.0.1:0"}))
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
	// The read models stay on PostgreSQL whatever the event store.
	base, stop := startRun(t, isolated(t, map[string]string{"EVENTSTORE_URL": node.URL(), "HTTP_ADDR": "127.0.0.1:0",
		"DATABASE_URL": pgtest.NewDatabase(t)}))
	defer stop()
	if code, _, body := getJSON(t, base+"/readyz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/readyz on EventStoreDB: %d %v", code, body)
	}
	node.Stop()
	if code, _, _ := getJSON(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the node gone: %d, want 503", code)
	}
	// The node comes back, and the process is ready again. (The client
	// may wait for its connection without watching a context while the
	// node is gone, so the process is stopped with the node up.)
	node.Resume(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, _ := getJSON(t, base+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz with the node back: %d, want 200", code)
		}
		time.Sleep(50 * time.Millisecond) // poll readiness
	}
}

func TestConfigErrors(t *testing.T) {
	for _, env := range []map[string]string{
		{"EVENTSTORE_URL": "mysql://x"},
		{"LOG_LEVEL": "loud"},
		{"SHUTDOWN_TIMEOUT": "soon"},
	} {
		env = isolated(t, env)
		err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("env %v: run succeeded, want a configuration error", env)
		}
	}
	if err := run(context.Background(), []string{"bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
}

// TestConfigErrorsHideSecrets: a rejected URL is not echoed with its password.
func TestConfigErrorsHideSecrets(t *testing.T) {
	for _, v := range []string{"host=db password=s3cret", "mysql://u:s3cret@db/x", "u:s3cret@db:5432/x"} {
		env := isolated(t, map[string]string{"EVENTSTORE_URL": v})
		err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("EVENTSTORE_URL %q: error %v, want one without the password", v, err)
		}
	}
}

// TestConfigFromFiles: the configuration takes NAME_FILE
// (internal/platform/environ) for its secrets.
func TestConfigFromFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt")
	secret := strings.Repeat("s3cret-", 6)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(func(k string) string {
		return map[string]string{"JWT_SECRET_FILE": path, "SMTP_TIMEOUT": "3s"}[k]
	})
	if err != nil || cfg.JWTSecret != secret || cfg.SMTP.Timeout != 3*time.Second {
		t.Fatalf("JWT_SECRET_FILE: secret %q, err %v", cfg.JWTSecret, err)
	}
}

// TestMigrate: `eventshop migrate` leaves a fresh database with every
// schema the processes use, and running it again changes nothing.
func TestMigrate(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db}
	getenv := func(k string) string { return env[k] }
	for range 2 {
		if err := run(context.Background(), []string{"migrate"}, getenv, io.Discard, io.Discard); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, table := range []string{"readmodel.users", "readmodel.orders", "readmodel.order_items",
		"projections.checkpoints", "notifications.ledger"} {
		var found *string
		if err := conn.QueryRow(context.Background(), "SELECT to_regclass($1)::text", table).Scan(&found); err != nil || found == nil {
			t.Errorf("after migrate, %s is missing (%v)", table, err)
		}
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// TestConsumeRejectsBadArguments: bad flags are refused before any broker
// is asked; -h shows them.
func TestConsumeRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"--max", "-1"}, {"--timeout", "-1s"}, {"--topics", " , "}, {"--bogus"}, {"extra"}, {"--max", "x"},
	} {
		err := run(context.Background(), append([]string{"consume"}, args...), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("consume %v succeeded", args)
		}
	}
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"consume", "-h"}, func(string) string { return "" }, io.Discard, &stderr); err != nil ||
		!strings.Contains(stderr.String(), "-from-beginning") {
		t.Errorf("consume -h: %v, help %q", err, stderr.String())
	}
}
