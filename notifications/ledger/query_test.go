package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/notifications/ledger"
)

func TestList(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	ada, bob := uuid.New(), uuid.New()
	var all, ofAda []uuid.UUID // newest first
	for i := range 8 {
		user := ada
		if i%3 == 2 {
			user = bob
		}
		row := claim(t, l, email(user), time.Minute, ledger.Won)
		all = append([]uuid.UUID{row.ID}, all...)
		if user == ada {
			ofAda = append([]uuid.UUID{row.ID}, ofAda...)
		}
	}

	ids := func(ns []ledger.Notification) []uuid.UUID {
		out := make([]uuid.UUID, len(ns))
		for i, n := range ns {
			out[i] = n.ID
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		q         ledger.Query
		want      []uuid.UUID
		wantTotal int
	}{
		{"defaults", ledger.Query{}, all, 8},
		{"page 1", ledger.Query{Page: 1, Limit: 3}, all[:3], 8},
		{"page 3", ledger.Query{Page: 3, Limit: 3}, all[6:], 8},
		{"past the end", ledger.Query{Page: 4, Limit: 3}, []uuid.UUID{}, 8},
		{"page 0 is 1", ledger.Query{Page: 0, Limit: 2}, all[:2], 8},
		{"limit clamped", ledger.Query{Limit: 1000}, all, 8},
		{"one user", ledger.Query{UserID: &ada, Limit: 4}, ofAda[:4], len(ofAda)},
		{"one user, page 2", ledger.Query{UserID: &ada, Page: 2, Limit: 4}, ofAda[4:], len(ofAda)},
		{"unknown user", ledger.Query{UserID: new(uuid.New())}, []uuid.UUID{}, 0},
	} {
		got, total, err := l.List(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if total != tc.wantTotal || !equal(ids(got), tc.want) {
			t.Errorf("%s: ids %v total %d, want %v total %d", tc.name, ids(got), total, tc.want, tc.wantTotal)
		}
		for i := 1; i < len(got); i++ {
			if got[i].CreatedAt.After(got[i-1].CreatedAt) {
				t.Errorf("%s: not newest first at %d", tc.name, i)
			}
		}
	}

	if _, err := l.Get(ctx, uuid.New()); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Get unknown: %v, want ErrNotFound", err)
	}
}

func equal(a, b []uuid.UUID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMigrateConcurrentlyAndAgain(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if err := ledger.New(pool).Migrate(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	l := ledger.New(pool)
	if err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Each migration applied once, whoever got there first.
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var versions int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM notifications.schema_migrations").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != len(files) {
		t.Fatalf("schema_migrations has %d versions, want %d", versions, len(files))
	}
	claim(t, l, email(uuid.New()), time.Minute, ledger.Won)
}
