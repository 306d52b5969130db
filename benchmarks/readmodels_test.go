package benchmarks_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/projections/catalogquery"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// readModel is one read model the benchmark builds from zero.
type readModel struct {
	name   string
	filter eventstore.Filter
	// runner returns a runner of a fresh instance of the model's projection.
	runner func() *projections.Runner
	// reset empties the model and deletes its checkpoint (and so any
	// rebuild request).
	reset func(tb testing.TB)
	// count is how many rows (documents) the model holds.
	count func(tb testing.TB) int64
	// want is how many it should hold after the simulated log.
	want int64

	last    eventstore.Position // the last event of the log the model takes
	applied int                 // how many events of the log it takes
	total   int                 // how many events the log holds
}

// logIndex is the position of every event of the log, in order.
type logIndex []eventstore.Position

// rebuildModels are the read models of e, with what they should hold
// after sh's log.
func rebuildModels(e *env, sh *shop) []*readModel {
	ctx := context.Background()
	pg := pgread.New(e.pool)
	var orders int64
	for _, o := range sh.orders {
		if o.state.Exists() {
			orders++
		}
	}
	// Every product of the simulated log is listed and kept.
	var products int64
	for i := range sh.events {
		if sh.events[i].Type == (product.Created{}).EventType() {
			products++
		}
	}
	var models []*readModel
	for _, p := range pg.Projections() {
		m := &readModel{
			name: p.Name(), filter: p.Filter(),
			runner: func() *projections.Runner { return projections.NewRunner(e.pool, e.store, p, runnerOptions()) },
			reset: func(tb testing.TB) {
				tables := p.Tables()
				for i := len(tables) - 1; i >= 0; i-- {
					if _, err := e.pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{p.Schema(), tables[i]}.Sanitize()+" CASCADE"); err != nil {
						tb.Fatal(err)
					}
				}
				if err := projections.Reset(ctx, e.pool, p.Name()); err != nil {
					tb.Fatal(err)
				}
			},
		}
		table := "readmodel.users"
		m.want = int64(1 + shopVendors + len(sh.customers))
		switch p.Name() {
		case pgread.OrdersProjection{}.Name():
			table, m.want = "readmodel.orders", orders
		case pgread.ProductsProjection{}.Name():
			table, m.want = "readmodel.products", products
		}
		m.count = func(tb testing.TB) int64 {
			var n int64
			if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				tb.Fatal(err)
			}
			return n
		}
		models = append(models, m)
	}
	// The catalogue: a Store of its own for each fresh start, as a new
	// process would have, since the projection caches the live collection.
	models = append(models, &readModel{
		name: mongoread.ProjectionName, filter: mongoread.New(e.mongo).Projection().Filter(), want: products,
		count: func(tb testing.TB) int64 {
			page, err := mongoread.New(e.mongo).Products(ctx, catalogquery.ProductQuery{Limit: 1})
			if err != nil {
				tb.Fatal(err)
			}
			return int64(page.Total)
		},
		runner: func() *projections.Runner {
			return projections.NewSinkRunner(e.pool, e.store, mongoread.New(e.mongo).Projection(), runnerOptions())
		},
		reset: func(tb testing.TB) {
			if err := e.mongo.Drop(ctx); err != nil {
				tb.Fatal(err)
			}
			if err := projections.Reset(ctx, e.pool, mongoread.ProjectionName); err != nil {
				tb.Fatal(err)
			}
		},
	})
	return models
}

// scanLog reads the whole log once, which also warms the cache, notes
// for each model the last event it takes and how many it takes, and
// returns the position of every event.
func scanLog(tb testing.TB, store *postgres.Store, models []*readModel) logIndex {
	tb.Helper()
	var log logIndex
	for pos := eventstore.Start; ; {
		page, err := store.ReadAll(context.Background(), pos, rawPage)
		if err != nil {
			tb.Fatal(err)
		}
		for i := range page {
			log = append(log, page[i].Position)
			for _, m := range models {
				if m.filter.Match(&page[i]) {
					m.last = page[i].Position
					m.applied++
				}
			}
		}
		if len(page) < rawPage {
			for _, m := range models {
				m.total = len(log)
			}
			return log
		}
		pos = page[len(page)-1].Position
	}
}

// rawReadAll reads the whole log through ReadAll in pages of rawPage and
// returns how long it took.
func rawReadAll(tb testing.TB, store *postgres.Store, total int) time.Duration {
	tb.Helper()
	began := time.Now()
	n := 0
	for pos := eventstore.Start; ; {
		page, err := store.ReadAll(context.Background(), pos, rawPage)
		if err != nil {
			tb.Fatal(err)
		}
		n += len(page)
		if len(page) < rawPage {
			break
		}
		pos = page[len(page)-1].Position
	}
	took := time.Since(began)
	if n != total {
		tb.Fatalf("raw ReadAll read %d events, want %d", n, total)
	}
	return took
}

// waitAll waits until each runner has applied the last event its model
// takes, and returns how long each took from the call.
func waitAll(tb testing.TB, runners []*running, models []*readModel) []time.Duration {
	tb.Helper()
	began := time.Now()
	took := make([]time.Duration, len(models))
	errs := make([]error, len(models))
	var wg sync.WaitGroup
	for i, m := range models {
		wg.Go(func() {
			errs[i] = waitApplied(runners[i].r, m.last, 15*time.Minute)
			took[i] = time.Since(began)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return took
}

// startCaughtUp starts a runner of m, caught up with the whole log, for a
// rebuild to be requested of. The runner stops when owner ends.
func startCaughtUp(tb, owner testing.TB, m *readModel) *running {
	tb.Helper()
	m.reset(tb)
	r := start(owner, m.runner())
	if err := waitApplied(r.r, m.last, 15*time.Minute); err != nil {
		tb.Fatal(err)
	}
	return r
}

// rebuildPath files a rebuild of m with its runner running (and caught
// up), waits until the model's report shows it rebuilt and swapped in,
// and returns how long that took from the request.
func rebuildPath(tb testing.TB, e *env, m *readModel) time.Duration {
	tb.Helper()
	ctx := context.Background()
	report := func() projections.Report {
		reps, err := projections.Reports(ctx, e.pool, []string{m.name})
		if err != nil {
			tb.Fatal(err)
		}
		return reps[0]
	}
	before := report().RebuiltAt
	began := time.Now()
	if err := projections.RequestRebuild(ctx, e.pool, m.name); err != nil {
		tb.Fatal(err)
	}
	deadline := began.Add(3 * time.Minute)
	for {
		rep := report()
		if rep.Rebuild == "" && rep.RebuiltAt.After(before) {
			return time.Since(began)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not rebuilt after 3 minutes: %+v", m.name, rep)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkModel fails tb unless m holds as many rows as the simulated
// history makes.
func checkModel(tb testing.TB, m *readModel) {
	tb.Helper()
	if n := m.count(tb); n != m.want {
		tb.Fatalf("%s holds %d rows, want %d", m.name, n, m.want)
	}
}
