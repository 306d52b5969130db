package benchmarks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/projections"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
)

// Goals of issue 14 for every catalogue read, single client: p99 at most
// catalogP99Goal; at least catalogRawGoal of the raw driver's rate; and
// the cost at the largest catalogue at most catalogFlatGoal times the
// cost at the smallest.
const (
	catalogP99Goal  = 20 * time.Millisecond
	catalogRawGoal  = 0.5
	catalogFlatGoal = 2.0
	catalogRounds   = 8   // rounds, each of route and raw at every size
	catalogRequests = 400 // per side, case and size, over the rounds
)

// catalogSizes are the catalogue sizes of the benchmark; CATALOG_SIZES
// (comma-separated) picks others.
func catalogSizes(tb testing.TB) []int {
	raw := os.Getenv("CATALOG_SIZES")
	if raw == "" {
		return []int{100, 10_000, 100_000}
	}
	var sizes []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			tb.Fatalf("CATALOG_SIZES: %q is not a size", f)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// BenchmarkCatalog reads the catalogue at each size through the read
// API's HTTP handler (chi, edge.Middleware, the read API's product
// routes, served from products.v1), one request at a time, next to the
// same query sent straight with pgx: pages 1 and 50 under each sort, a
// category, a price range, the categories, a product, and two selective
// searches (one finding ten products at every size, one finding one
// product in a thousand). At the sizes up to CATALOG_MONGO_MAX (default
// 100) the product is also read from the MongoDB documents (the route
// served from them, and a bare FindOne by _id), which is how the route's
// model was chosen.
//
// Every size is seeded first; then each case runs in rounds, each round
// the route and then the raw query at every size in turn, so that the
// load of a shared machine, which drifts, weighs on sizes and sides
// alike.
//
// The catalogue is seeded by the fast path: product.created events made
// up here are applied straight through the projections (products.v1 in
// transactions of 2,000, the MongoDB documents through a rebuild's
// shadow), not appended to a log and followed; each is what a command
// would have written.
func BenchmarkCatalog(b *testing.B) {
	sizes := catalogSizes(b)
	mongoMax := 100
	if v := os.Getenv("CATALOG_MONGO_MAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("CATALOG_MONGO_MAX: %q is not a size", v)
		}
		mongoMax = n
	}
	runs := make([]*catalogRun, len(sizes))
	for i, size := range sizes {
		runs[i] = newCatalogRun(b, size, size <= mongoMax)
	}
	b.ResetTimer()
	for _, name := range runs[0].order {
		type sides struct{ route, raw measured }
		got := make([]*sides, len(runs))
		for i, r := range runs {
			if c := r.cases[name]; c != nil {
				got[i] = &sides{}
				// Warm up: connections, statement caches, the search
				// dictionaries.
				sequential(b, 50, c.route)
				sequential(b, 50, c.raw)
			}
		}
		for range catalogRounds {
			for i, r := range runs {
				if c := r.cases[name]; c != nil {
					got[i].route.add(sequential(b, catalogRequests/catalogRounds, c.route))
					got[i].raw.add(sequential(b, catalogRequests/catalogRounds, c.raw))
				}
			}
		}
		for i, r := range runs {
			if got[i] == nil {
				continue
			}
			route, raw := &got[i].route, &got[i].raw
			ratio, p99 := route.rate()/raw.rate(), route.p(99)
			record(line{
				group: "catalog", what: fmt.Sprintf("%s at %s", name, thousands(float64(r.size))),
				measured: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %s req/s", millis(route.p(50)), millis(p99), thousands(route.rate())),
				raw:      fmt.Sprintf("%s: p50 %.2f ms, %s req/s", r.cases[name].rawName, millis(raw.p(50)), thousands(raw.rate())),
				ratio:    fmt.Sprintf("%.2f", ratio),
				goal: fmt.Sprintf("p99 ≤ %s %s, ≥ %.1f× raw %s", catalogP99Goal, verdict(p99 <= catalogP99Goal),
					catalogRawGoal, verdict(ratio >= catalogRawGoal)),
			})
		}
		first, last := got[0], got[len(got)-1]
		if len(runs) > 1 && first != nil && last != nil {
			r := float64(last.route.p(50)) / float64(first.route.p(50))
			record(line{group: "catalog", what: fmt.Sprintf("%s: p50 at %s / at %s", name,
				thousands(float64(sizes[len(sizes)-1])), thousands(float64(sizes[0]))),
				measured: fmt.Sprintf("%.2f ms / %.2f ms", millis(last.route.p(50)), millis(first.route.p(50))),
				raw:      fmt.Sprintf("raw %.2f ms / %.2f ms", millis(last.raw.p(50)), millis(first.raw.p(50))),
				ratio:    fmt.Sprintf("%.2f", r), goal: fmt.Sprintf("≤ %.0f× %s", catalogFlatGoal, verdict(r <= catalogFlatGoal))})
		}
	}
	note("catalog: one client, requests one after another through the read API's handler in the benchmark's process (no network), "+
		"%d per side, case and size, in %d rounds alternating sizes and sides; raw is the same SQL through pgx, scanned into plain "+
		"values (or a FindOne by _id); seeded by the fast path (product.created applied straight through the projections); "+
		"at 100 products page 50 is past the end", catalogRequests, catalogRounds)
}

// catalogRun is one size of BenchmarkCatalog: its seeded catalogue and
// its cases, by name.
type catalogRun struct {
	size  int
	cases map[string]*catalogCase
	order []string // the names of the cases, in order
}

// catalogCase is a request through the handler and the same query
// through the driver; each takes the request's number.
type catalogCase struct {
	route, raw func(i int) error
	rawName    string
}

func newCatalogRun(b *testing.B, size int, withMongo bool) *catalogRun {
	ctx := context.Background()
	e := newEnv(b, withMongo)
	cat := newCatalogue(size)
	seedCatalogue(b, e, cat)
	served := catalogHandler(e, pgread.NewCatalog(e.pool))
	run := &catalogRun{size: size, cases: map[string]*catalogCase{}}
	get := func(h http.Handler, path func(i int) string) func(i int) error {
		return func(i int) error {
			req := httptest.NewRequest(http.MethodGet, path(i), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				return fmt.Errorf("%s: %d %s", path(i), rec.Code, rec.Body)
			}
			return nil
		}
	}
	add := func(name string, h http.Handler, path func(i int) string, raw func(i int) error, rawName string) {
		run.cases[name] = &catalogCase{route: get(h, path), raw: raw, rawName: rawName}
		run.order = append(run.order, name)
	}
	list := func(query string, page int, l listQuery) {
		path := "/api/products?" + query
		if page > 1 {
			path += "&page=" + strconv.Itoa(page)
		}
		l.offset = int64(page-1) * 10
		add("GET "+path, served, func(int) string { return path }, func(int) error { return l.run(ctx, e) }, "pgx, same query")
	}

	rng := rand.New(rand.NewPCG(uint64(size), 14))
	sample := make([]*product.Created, 200)
	for i := range sample {
		sample[i] = &cat.products[rng.IntN(len(cat.products))]
	}
	newest := sortKeys{"p.created_at DESC, p.id DESC", "created_at", "created_at DESC, id DESC"}
	price := sortKeys{"p.price_cents, p.id", "price_cents", "price_cents, id"}
	for _, s := range []struct {
		sort string
		keys sortKeys
	}{
		{"-created_at", newest}, {"price", price},
		{"-price", sortKeys{"p.price_cents DESC, p.id", "price_cents", "price_cents DESC, id"}},
		{"name", sortKeys{"p.name_key, p.id", "name_key", "name_key, id"}},
	} {
		for _, page := range []int{1, 50} {
			list("sort="+s.sort, page, listQuery{sortKeys: s.keys, kind: "all"})
		}
	}
	cat3 := catalogCategories[3]
	rank := sortKeys{direct: "ts_rank(p.search, query) DESC, p.id"}
	list("category="+cat3, 1, listQuery{sortKeys: newest, kind: "category", category: cat3})
	list("category="+cat3+"&sort=price", 50, listQuery{sortKeys: price, kind: "category", category: cat3})
	list("min_price=20&max_price=40", 1, listQuery{sortKeys: newest, min: 2000, max: 4000})
	checkSearch(b, served, "kestrel", "Kestrel", 10)
	list("q=kestrel", 1, listQuery{sortKeys: rank, search: `'kestrel':*`})
	checkSearch(b, served, "falcon", "Falcon", (size+992)/1000)
	list("q=falcon", 1, listQuery{sortKeys: rank, search: `'falcon':*`})
	add("GET /api/products/categories", served, func(int) string { return "/api/products/categories" },
		func(int) error { return rawCategories(ctx, e) }, "pgx, same query")
	productPath := func(i int) string { return "/api/products/" + sample[i%len(sample)].ProductID }
	add("GET /api/products/{id}", served, productPath,
		func(i int) error { return rawProduct(ctx, e, sample[i%len(sample)].ProductID) }, "pgx, same query")
	if e.mongo != nil {
		live := liveCatalogue(b, e.mongo)
		add("GET /api/products/{id} from MongoDB", catalogHandler(e, mongoread.New(e.mongo)), productPath, func(i int) error {
			_, err := live.FindOne(ctx, bson.D{{Key: "_id", Value: sample[i%len(sample)].ProductID}}).Raw()
			return err
		}, "FindOne by _id")
	}
	return run
}

// sequential runs n calls of op one after another.
func sequential(tb testing.TB, n int, op func(i int) error) measured {
	lat := make([]time.Duration, 0, n)
	began := time.Now()
	for i := range n {
		t := time.Now()
		if err := op(i); err != nil {
			tb.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	return measured{n: n, took: time.Since(began), lat: lat}
}

// catalogHandler serves catalog's product routes as cmd/eventshop does.
func catalogHandler(e *env, catalog readapi.CatalogReader) http.Handler {
	reads := readapi.New(readapi.Config{Reads: pgread.New(e.pool), Catalog: catalog, Log: e.store,
		Checkpoint: func(ctx context.Context, name string) (eventstore.Position, error) {
			return projections.Checkpoint(ctx, e.pool, name)
		}})
	r := chi.NewRouter()
	r.Use(edge.Middleware(nil))
	reads.Routes(r, func(next http.Handler) http.Handler { return next })
	return r
}

// checkSearch fails tb unless q finds the want products planted with
// brand in their names, and only them.
func checkSearch(tb testing.TB, h http.Handler, q, brand string, want int) {
	req := httptest.NewRequest(http.MethodGet, "/api/products?limit=100&q="+q, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var page struct {
		Items []struct{ Name string } `json:"items"`
		Total int                     `json:"total"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		tb.Fatal(err)
	}
	if page.Total != want {
		tb.Fatalf("q=%s found %d products, want %d", q, page.Total, want)
	}
	for _, p := range page.Items {
		if !strings.Contains(p.Name, brand) {
			tb.Fatalf("q=%s found %q", q, p.Name)
		}
	}
}

// A made-up catalogue: names of a brand, an adjective and a kind of
// thing, some with accents; ten products of the brand "Kestrel" whatever
// the size, and one in a thousand of the brand "Falcon", which the
// selective searches look for; descriptions of
// twenty-odd words; twenty categories, fifty vendors, prices from 1.00 to
// 500.00.
var (
	catalogCategories = []string{"kitchen", "garden", "books", "toys", "outdoor", "office", "audio", "bath", "lighting",
		"pets", "tools", "games", "sports", "shoes", "clothes", "beauty", "music", "travel", "baby", "café"}
	catalogAdjectives = []string{"Wireless", "Leather", "Steel", "Wooden", "Running", "Compact", "Vintage", "Smart", "Crème",
		"Waterproof", "Folding", "Electric", "Classic", "Portable", "Organic", "Ceramic"}
	catalogThings = []string{"Headphones", "Shoe", "Lamp", "Mug", "Chair", "Jacket", "Kettle", "Backpack", "Speaker",
		"Notebook", "Blender", "Tent", "Watch", "Café set", "Umbrella", "Drill", "Bottle", "Sofa", "Camera", "Scarf"}
	catalogWords = strings.Fields("made from durable materials for everyday use with a comfortable grip easy to clean " +
		"designed in small batches and tested for years of reliable service light enough to carry anywhere " +
		"comes with a two year warranty and free returns perfect gift for friends family colleagues")
)

type catalogue struct {
	products []product.Created
	at       []time.Time
}

func newCatalogue(size int) *catalogue {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	c := &catalogue{}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vendors := make([]string, 50)
	for i := range vendors {
		vendors[i] = uuid.NewString()
	}
	for i := range size {
		brand := fmt.Sprintf("Brand%03d", rng.IntN(997))
		switch {
		case i%1000 == 7:
			brand = "Falcon"
		case i%max(size/10, 1) == 3:
			brand = "Kestrel"
		}
		words := make([]string, 18+rng.IntN(12))
		for j := range words {
			words[j] = catalogWords[rng.IntN(len(catalogWords))]
		}
		at := start.Add(time.Duration(i) * time.Second)
		id := uuid.Must(uuid.NewV7()).String()
		c.products = append(c.products, product.Created{
			ProductID: id, SKU: fmt.Sprintf("SKU-%07d", i),
			Name:        brand + " " + catalogAdjectives[rng.IntN(len(catalogAdjectives))] + " " + catalogThings[rng.IntN(len(catalogThings))],
			Description: strings.Join(words, " ") + ".",
			Price:       domain.Cents(100 + rng.IntN(49_900)), Category: catalogCategories[rng.IntN(len(catalogCategories))],
			VendorID: vendors[rng.IntN(len(vendors))], Images: []string{"https://img.example.com/" + id + ".jpg"},
			Metadata: json.RawMessage(`{"weight_g": ` + strconv.Itoa(100+rng.IntN(5000)) + `}`), Quantity: int64(rng.IntN(500)),
			Warehouse: "main",
		})
		c.at = append(c.at, at)
	}
	return c
}

// events are the catalogue's product.created events, as the command
// side writes them (each validated first).
func (c *catalogue) events(tb testing.TB) []eventstore.Event {
	out := make([]eventstore.Event, len(c.products))
	for i := range c.products {
		p := &c.products[i]
		if err := p.Validate(); err != nil {
			tb.Fatalf("made-up product %d: %v", i, err)
		}
		data, err := json.Marshal(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = eventstore.Event{StreamID: product.Stream(p.ProductID), EventData: eventstore.EventData{
			ID: uuid.Must(uuid.NewV7()), Type: p.EventType(), SchemaVersion: 1, Data: data,
			Metadata: eventstore.Metadata{Timestamp: c.at[i], ActorID: p.VendorID}}}
	}
	return out
}

// seedCatalogue applies the catalogue through products.v1, and through
// the MongoDB documents' rebuild when e has MongoDB.
func seedCatalogue(tb testing.TB, e *env, c *catalogue) {
	tb.Helper()
	ctx := context.Background()
	p := pgread.ProductsProjection{}
	if err := projections.Setup(ctx, e.pool, p); err != nil {
		tb.Fatal(err)
	}
	events := c.events(tb)
	began := time.Now()
	for i := 0; i < len(events); i += 2_000 {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('search_path', 'readmodel', true)"); err != nil {
				return err
			}
			return p.Apply(ctx, tx, events[i:min(i+2_000, len(events))])
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := e.pool.Exec(ctx, "VACUUM ANALYZE readmodel.products, readmodel.product_counts"); err != nil {
		tb.Fatal(err)
	}
	note("catalog: seeding products.v1 through its Apply took %s for %s products (%s products/s)",
		time.Since(began).Round(time.Millisecond), thousands(float64(len(events))), thousands(float64(len(events))/time.Since(began).Seconds()))
	if e.mongo == nil {
		return
	}
	docs := mongoread.New(e.mongo).Projection()
	if err := docs.Setup(ctx); err != nil {
		tb.Fatal(err)
	}
	shadow, err := docs.Shadow(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := shadow.Setup(ctx); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < len(events); i += 2_000 {
		if err := shadow.Apply(ctx, events[i:min(i+2_000, len(events))]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := docs.Swap(ctx); err != nil {
		tb.Fatal(err)
	}
}

// sortKeys is a page's order: as a page near the top reads it (direct),
// and as a deep page reads its ids first (key, the order's column, and
// order, naming it unqualified); no key for an order that is not read
// that way.
type sortKeys struct{ direct, key, order string }

// listQuery is a listing as products.v1's Catalog sends it.
type listQuery struct {
	sortKeys
	kind, category string // the counted total's key; "" kind: counted up to the cap
	min, max       int64  // a price range, when max > 0
	search         string // a to_tsquery text
	offset         int64
}

const catalogColumns = `p.id::text, p.sku, p.name, p.name_key, p.description, p.price_cents, p.vendor_id, p.category,
	p.images, p.metadata, p.quantity, p.reserved, p.warehouse, p.discontinued, p.created_at, p.updated_at, p.version`

// sql is l's query of a page of 10 (each row led by the total), or when
// not withPage of the total alone, with its arguments.
func (l listQuery) sql(withPage bool) (string, []any) {
	var (
		args  []any
		where = "NOT p.discontinued"
		from  = "readmodel.products p"
		total string
	)
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if l.kind != "" {
		total = "coalesce((SELECT n FROM readmodel.product_counts WHERE kind = " + arg(l.kind) + " AND category = " +
			arg(l.category) + " AND vendor_id = " + arg("") + "), 0)"
		if !withPage {
			return "SELECT " + total, args
		}
	}
	if l.category != "" {
		where += " AND p.category = " + arg(l.category)
	}
	if l.max > 0 {
		where += " AND p.price_cents >= " + arg(l.min) + " AND p.price_cents <= " + arg(l.max)
	}
	if l.search != "" {
		from += ", to_tsquery('projections.product_search', " + arg(l.search) + "::text) query"
		where += " AND p.search @@ query"
	}
	if l.kind == "" {
		total = "(SELECT count(*) FROM (SELECT FROM " + from + " WHERE " + where + " LIMIT " + arg(l.offset+pgread.CountCap+1) + ") matches)"
	}
	sql := "SELECT " + total
	if withPage {
		if l.key == "" || l.offset < 50 {
			sql += ", " + catalogColumns + " FROM " + from + " WHERE " + where + " ORDER BY " + l.direct +
				" LIMIT 10 OFFSET " + strconv.FormatInt(l.offset, 10)
		} else {
			window := " LIMIT " + arg(int64(10)) + " OFFSET " + arg(l.offset)
			terms := strings.Split(l.order, ", ")
			for i := range terms {
				terms[i] = "page." + terms[i]
			}
			sql += ", " + catalogColumns + " FROM (SELECT p.id, p." + l.key + " FROM " + from + " WHERE " + where +
				" ORDER BY " + l.order + window + ") page JOIN readmodel.products p ON p.id = page.id ORDER BY " + strings.Join(terms, ", ")
		}
	}
	if l.kind == "" {
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	return sql, args
}

// run sends l with pgx and scans every row into plain values; past the
// last page it asks for the total on its own, as the Catalog does.
func (l listQuery) run(ctx context.Context, e *env) error {
	sql, args := l.sql(true)
	rows, err := e.pool.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	var (
		r rawProductRow
		n int
	)
	for rows.Next() {
		if err := r.scan(rows, &r.total); err != nil {
			rows.Close()
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil || n > 0 || l.offset == 0 {
		return err
	}
	sql, args = l.sql(false)
	return e.pool.QueryRow(ctx, sql, args...).Scan(&r.total)
}

// rawProductRow holds a scanned row of readmodel.products.
type rawProductRow struct {
	total                                                           int64
	id, sku, name, nameKey, desc, vendor, category, meta, warehouse string
	price, quantity, reserved, version                              int64
	images                                                          []string
	discontinued                                                    bool
	created, updated                                                time.Time
}

func (r *rawProductRow) scan(row pgx.Row, lead ...any) error {
	return row.Scan(append(lead, &r.id, &r.sku, &r.name, &r.nameKey, &r.desc, &r.price, &r.vendor, &r.category, &r.images,
		&r.meta, &r.quantity, &r.reserved, &r.warehouse, &r.discontinued, &r.created, &r.updated, &r.version)...)
}

func rawProduct(ctx context.Context, e *env, id string) error {
	var r rawProductRow
	return r.scan(e.pool.QueryRow(ctx, "SELECT "+catalogColumns+" FROM readmodel.products p WHERE p.id = $1 AND NOT p.discontinued", id))
}

func rawCategories(ctx context.Context, e *env) error {
	rows, err := e.pool.Query(ctx, "SELECT category, n FROM readmodel.product_counts WHERE kind = 'category' ORDER BY category")
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		name string
		n    int64
	)
	for rows.Next() {
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
	}
	return rows.Err()
}
