package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/storetest"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/projections/postgres"
)

// env is one database holding the event store, the checkpoints and the
// read models, with a command handler writing to it.
type env struct {
	pool     *pgxpool.Pool
	store    eventstore.Store
	payments payment.Processor
	h        commands.Handlers
	rm       *postgres.Store
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, s := storetest.Postgres(t)
	e := &env{pool: pool, store: s, payments: payment.NewTestProcessor(), rm: postgres.New(pool)}
	e.h = e.handler()
	return e
}

// handler returns a new command handler on the store, with an empty cache.
func (e *env) handler() commands.Handlers {
	return commands.New(commands.Config{Store: e.store, Payments: e.payments, Log: quiet()})
}

// runProjections runs every projection of the read models until t ends or
// the returned stop is called.
func (e *env) runProjections(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var dones []chan error
	for _, p := range e.rm.Projections() {
		r := projections.NewRunner(e.pool, e.store, p, projections.Options{LockPoll: 50 * time.Millisecond,
			RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond, Logger: quiet()})
		done := make(chan error, 1)
		dones = append(dones, done)
		go func() { done <- r.Run(ctx) }()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for _, d := range dones {
			select {
			case err := <-d:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("a runner did not stop within 10s")
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// sameOrder returns "" when got equals want field by field, times
// compared with Equal; otherwise what differs.
func sameOrder(got, want resource.Order) string {
	return sameApart("order "+want.ID, got, want, func(o *resource.Order) []*time.Time { return []*time.Time{&o.CreatedAt, &o.UpdatedAt} })
}

// sameProduct is sameOrder for products.
func sameProduct(got, want resource.Product) string {
	return sameApart("product "+want.ID, got, want, func(p *resource.Product) []*time.Time { return []*time.Time{&p.CreatedAt, &p.UpdatedAt} })
}

func sameUser(got, want resource.User) string {
	return sameApart("user "+want.ID, got, want, func(u *resource.User) []*time.Time { return []*time.Time{&u.CreatedAt} })
}

// sameApart returns "" when got equals want field by field, the times
// that times points to compared with Equal (a location or a monotonic
// reading is no difference); otherwise what differs, about what.
func sameApart[T any](what string, got, want T, times func(*T) []*time.Time) string {
	g, w := times(&got), times(&want)
	for i := range g {
		if !g[i].Equal(*w[i]) {
			return fmt.Sprintf("%s: times differ: got %v, want %v", what, *g[i], *w[i])
		}
		*g[i], *w[i] = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(got, want) {
		return what + ": got " + dump(got) + ", want " + dump(want)
	}
	return ""
}

func dump(v any) string { b, _ := json.Marshal(v); return string(b) }

// tableHash is a content hash of every read model table, each row in full,
// in a fixed order.
func tableHash(t *testing.T, ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) string {
	t.Helper()
	var parts []string
	for _, table := range []string{"users", "orders", "order_items", "product_vendors", "products", "product_counts"} {
		var h string
		err := q.QueryRow(ctx, `SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, E'\n' ORDER BY r::text), ''))
			FROM readmodel.`+table+` r`).Scan(&h)
		if err != nil {
			t.Fatalf("hash %s: %v", table, err)
		}
		parts = append(parts, table+"="+h)
	}
	return strings.Join(parts, " ")
}

// orderIDs lists the ids of orders.
func orderIDs(orders []resource.Order) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

// newestFirst sorts orders as the read model lists them.
func newestFirst(orders []resource.Order) []string {
	s := slices.Clone(orders)
	slices.SortFunc(s, func(a, b resource.Order) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return orderIDs(s)
}
