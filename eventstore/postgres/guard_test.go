package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// reopen closes s and opens the database again, returning Open's error.
func reopen(t *testing.T, db string, s *postgres.Store, change string) error {
	t.Helper()
	if _, err := s.Pool().Exec(eventstoretest.Ctx(t), change); err != nil {
		t.Fatal(err)
	}
	s.Close()
	again, err := postgres.Open(context.Background(), db, postgres.Options{})
	if err == nil {
		again.Close()
	}
	return err
}

func TestRefusesWithoutConcurrencyGuard(t *testing.T) {
	db := pgtest.NewDatabase(t)
	s, err := postgres.Open(context.Background(), db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = reopen(t, db, s, "ALTER TABLE eventstore.events DROP CONSTRAINT events_stream_version_key, "+
		"ADD CONSTRAINT events_stream_version_key UNIQUE (stream_id)")
	if err == nil || !strings.Contains(err.Error(), "UNIQUE (stream_id, version)") {
		t.Fatalf("Open with a look-alike constraint: %v, want a refusal naming the guard", err)
	}
}

// TestRefusesRestoredTransactionIDs: events whose transaction ids lie
// ahead of the server (as after a restore into another server) would be
// unreadable; the store says so instead of starting.
func TestRefusesRestoredTransactionIDs(t *testing.T) {
	db := pgtest.NewDatabase(t)
	s, err := postgres.Open(context.Background(), db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.MustAppend(t, s, eventstoretest.Prefix(t)+"a", eventstore.NoStream, eventstoretest.Ev("x.a", 1))
	err = reopen(t, db, s, "UPDATE eventstore.events SET tx_id = tx_id + 1000000000000")
	if err == nil || !strings.Contains(err.Error(), "restored") {
		t.Fatalf("Open with transaction ids ahead of the server: %v, want a refusal", err)
	}
}

func TestRejectsBadSchema(t *testing.T) {
	db := pgtest.NewDatabase(t)
	for _, schema := range []string{"Events", "a-b", "x;drop", strings.Repeat("s", 53)} {
		if s, err := postgres.Open(context.Background(), db, postgres.Options{Schema: schema}); err == nil {
			s.Close()
			t.Errorf("schema %q accepted", schema)
		}
	}
	s, err := postgres.Open(context.Background(), db, postgres.Options{Schema: strings.Repeat("s", 52)})
	if err != nil {
		t.Fatalf("52-byte schema: %v", err)
	}
	s.Close()
}

func TestCloseEndsSubscriptions(t *testing.T) {
	s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.ClosingEndsSubscriptions(t, s, s.Close)
}
