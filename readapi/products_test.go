package readapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/projections"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// catalogModel is a catalogue read model the product routes can serve
// from, and how the log is applied to it.
type catalogModel struct {
	name    string
	reader  CatalogReader
	apply   func(ctx context.Context, batch []eventstore.Event) error
	project string // the projection, whose checkpoint X-Min-Position reads
}

// catalogModels are the PostgreSQL catalogue the routes are served from,
// and the MongoDB product documents, which answer the same.
func catalogModels() []func(t *testing.T) catalogModel {
	return []func(t *testing.T) catalogModel{pgCatalog, mongoCatalog}
}

// pgCatalog is the PostgreSQL catalogue in a database of its own.
func pgCatalog(t *testing.T) catalogModel {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p := pgread.ProductsProjection{}
	if err := projections.Setup(ctx, pool, p); err != nil {
		t.Fatal(err)
	}
	return catalogModel{name: "postgres", reader: pgread.NewCatalog(pool), project: p.Name(),
		apply: func(ctx context.Context, batch []eventstore.Event) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", p.Schema()); err != nil {
					return err
				}
				return p.Apply(ctx, tx, batch)
			})
		}}
}

// mongoCatalog is the MongoDB catalogue in a database of its own.
func mongoCatalog(t *testing.T) catalogModel {
	t.Helper()
	s := mongoread.New(mongotest.NewDatabase(t))
	return catalogModel{name: "mongodb", reader: s, project: mongoread.ProjectionName, apply: s.Projection().Apply}
}

// catalogStack is a testStack with a catalogue model. The projection is
// applied by hand (sync), and the checkpoint the read API sees is what
// sync last applied.
type catalogStack struct {
	*testStack
	model  catalogModel
	vendor commands.Actor

	mu         sync.Mutex
	applied    eventstore.Position
	checkNames []string
}

// newCatalogStack builds a catalogStack reading model; a zero model mounts
// no product routes. configure adds to the read API's Config.
func newCatalogStack(t *testing.T, model catalogModel, configure ...func(*Config)) *catalogStack {
	t.Helper()
	cs := &catalogStack{model: model, vendor: commands.Actor{ID: uuid.NewString(), Roles: []string{user.RoleVendor}}}
	cs.testStack = newTestStack(t, func(cfg *Config) {
		cfg.MaxWait, cfg.Poll = 300*time.Millisecond, 5*time.Millisecond
		cfg.Checkpoint = func(_ context.Context, name string) (eventstore.Position, error) {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			cs.checkNames = append(cs.checkNames, name)
			return cs.applied, nil
		}
		if model.reader != nil {
			cfg.Catalog = model.reader
		}
		for _, c := range configure {
			c(cfg)
		}
	})
	return cs
}

// sync applies the log to the catalogue and moves the checkpoint to its end.
func (cs *catalogStack) sync() {
	cs.t.Helper()
	ctx := context.Background()
	cs.mu.Lock()
	from := cs.applied
	cs.mu.Unlock()
	evs, err := cs.store.ReadAll(ctx, from, eventstore.MaxReadCount)
	if err != nil {
		cs.t.Fatal(err)
	}
	if len(evs) == 0 {
		return
	}
	f := cs.model.reader.Filter()
	batch := slices.DeleteFunc(slices.Clone(evs), func(e eventstore.Event) bool { return !f.Match(&e) })
	if err := cs.model.apply(ctx, batch); err != nil {
		cs.t.Fatal(err)
	}
	cs.mu.Lock()
	cs.applied = evs[len(evs)-1].Position
	cs.mu.Unlock()
}

func (cs *catalogStack) create(c commands.CreateProduct) (string, commands.Result) {
	cs.t.Helper()
	st, res, err := cs.cmd.Catalog.CreateProduct(context.Background(), cs.vendor, c)
	if err != nil {
		cs.t.Fatal(err)
	}
	return st.ID, res
}

// get sends an anonymous GET with the headers given as name, value pairs.
func (cs *catalogStack) get(path string, headers ...string) *httptest.ResponseRecorder {
	cs.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	cs.router.ServeHTTP(rec, req)
	return rec
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

type problemBody struct {
	Status int `json:"status"`
	Errors []struct {
		Field string `json:"field"`
	} `json:"errors"`
}

// TestProductRoutes: the product routes, served from each catalogue
// model alike.
func TestProductRoutes(t *testing.T) {
	for _, model := range catalogModels() {
		t.Run("", func(t *testing.T) { testProductRoutes(t, model(t)) })
	}
}

func testProductRoutes(t *testing.T, model catalogModel) {
	cs := newCatalogStack(t, model)
	lamp, _ := cs.create(commands.CreateProduct{SKU: "LAMP-1", Name: "Desk lamp", Description: "Bright.", Price: 1999, Category: "lighting", Quantity: 4})
	mug, _ := cs.create(commands.CreateProduct{SKU: "MUG-1", Name: "Mug", Description: "Holds tea.", Price: 850, Category: "kitchen", Quantity: 2})
	gone, _ := cs.create(commands.CreateProduct{SKU: "OLD-1", Name: "Old lamp", Price: 100, Category: "attic"})
	if _, _, err := cs.cmd.Catalog.DiscontinueProduct(context.Background(), cs.vendor, gone, commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	cs.sync()

	// An id is its canonical 36 characters: wrapped in braces it names
	// nothing, though uuid.Parse would take it.
	if rec := cs.get("/api/products/%7B" + lamp + "%7D"); rec.Code != http.StatusNotFound {
		t.Errorf("a braced id: %d %s, want 404", rec.Code, rec.Body)
	}

	// The list: public, newest first, discontinued products left out.
	rec := cs.get("/api/products")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/products: %d %s", rec.Code, rec.Body)
	}
	list := decodeBody[page[resource.Product]](t, rec)
	if list.Page != 1 || list.Limit != 10 || list.Total != 2 || len(list.Items) != 2 || list.Items[0].ID != mug || list.Items[1].ID != lamp {
		t.Errorf("list: %s", rec.Body)
	}
	var raw struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "sku", "name", "description", "price", "vendor_id", "category", "images", "inventory", "metadata", "created_at", "updated_at", "version"} {
		if _, ok := raw.Items[1][key]; !ok {
			t.Errorf("a listed product has no %q: %s", key, rec.Body)
		}
	}
	if p := string(raw.Items[1]["price"]); p != "19.99" {
		t.Errorf("price %s, want 19.99", p)
	}

	for query, want := range map[string][]string{
		"category=kitchen":                         {mug},
		"vendor_id=" + cs.vendor.ID:                {mug, lamp},
		"vendor_id=" + uuid.NewString():            {},
		"min_price=10&max_price=19.99":             {lamp},
		"max_price=8.5":                            {mug},
		"min_price=0&max_price=1e1":                {mug},
		"q=LAMP":                                   {lamp},
		"q=" + url.QueryEscape("tea."):             {mug},
		"sort=price":                               {mug, lamp},
		"sort=-price":                              {lamp, mug},
		"sort=name":                                {lamp, mug},
		"sort=-created_at&limit=1&page=2":          {lamp},
		"category=attic":                           {},
		"q=" + url.QueryEscape("lamp") + "&page=5": {},
	} {
		rec := cs.get("/api/products?" + query)
		if rec.Code != http.StatusOK {
			t.Errorf("?%s: %d %s", query, rec.Code, rec.Body)
			continue
		}
		got := []string{}
		for _, p := range decodeBody[page[resource.Product]](t, rec).Items {
			got = append(got, p.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("?%s: %v, want %v", query, got, want)
		}
	}

	// One product, with its version as ETag.
	rec = cs.get("/api/products/" + lamp)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") != `"0"` {
		t.Fatalf("GET lamp: %d, ETag %q, %s", rec.Code, rec.Header().Get("ETag"), rec.Body)
	}
	if p := decodeBody[resource.Product](t, rec); p.ID != lamp || p.SKU != "LAMP-1" || p.Inventory.Available != 4 || p.Price != 1999 {
		t.Errorf("lamp: %s", rec.Body)
	}
	if rec := cs.get("/api/products/"+lamp, "If-None-Match", `"0"`); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("If-None-Match the current version: %d %s", rec.Code, rec.Body)
	}
	if rec := cs.get("/api/products/"+lamp, "If-None-Match", `"7"`); rec.Code != http.StatusOK {
		t.Errorf("If-None-Match another version: %d", rec.Code)
	}
	for name, id := range map[string]string{"discontinued": gone, "unknown": uuid.NewString(), "malformed": "not-a-uuid"} {
		rec := cs.get("/api/products/" + id)
		if rec.Code != http.StatusNotFound || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s id: %d %s %s", name, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}

	// Categories of listed products only.
	rec = cs.get("/api/products/categories")
	if rec.Code != http.StatusOK {
		t.Fatalf("categories: %d %s", rec.Code, rec.Body)
	}
	if got, want := strings.TrimSpace(rec.Body.String()),
		`{"items":[{"name":"kitchen","product_count":1},{"name":"lighting","product_count":1}]}`; got != want {
		t.Errorf("categories: %s, want %s", got, want)
	}

	// The write routes on the same patterns still want a token, and the
	// write API's health route is still there.
	req := httptest.NewRequest(http.MethodPatch, "/api/products/"+lamp, strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	cs.router.ServeHTTP(w, req)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("PATCH without a token: %d, want 401", w.Code)
	}
	if rec := cs.get("/api/products/health"); rec.Code != http.StatusOK {
		t.Errorf("products health: %d", rec.Code)
	}
}

func TestProductParameters(t *testing.T) {
	cs := newCatalogStack(t, pgCatalog(t))
	braced := "{" + uuid.NewString() + "}" // uuid.Parse takes it; an id is 36 characters
	for query, fields := range map[string][]string{
		"limit=101":                            {"limit"},
		"limit=0&page=0":                       {"page", "limit"},
		"sort=cheapest":                        {"sort"},
		"sort=created_at":                      {"sort"},
		"min_price=abc":                        {"min_price"},
		"min_price=-1":                         {"min_price"},
		"max_price=1.234":                      {"max_price"},
		"min_price=20&max_price=10":            {"max_price"},
		"vendor_id=42":                         {"vendor_id"},
		"q=" + strings.Repeat("x", 101):        {"q"},
		"q=a%00b":                              {"q"},
		"q=%ff%fe":                             {"q"},
		"category=%ff":                         {"category"},
		"category=" + strings.Repeat("c", 101): {"category"},
		"limit=500&sort=x&vendor_id=y&min_price=z&max_price=-0.5": {"limit", "vendor_id", "min_price", "max_price", "sort"},
		// Sent twice: which one the client meant is not guessed.
		"page=1&page=2":                    {"page"},
		"sort=price&sort=-price&limit=5":   {"sort"},
		"max_price=5&max_price=6":          {"max_price"},
		"vendor_id=" + braced + "&limit=5": {"vendor_id"},
		"min_price=%201":                   {"min_price"},
	} {
		rec := cs.get("/api/products?" + query)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("?%.40s: %d %s, want 422", query, rec.Code, rec.Body)
			continue
		}
		var got []string
		for _, e := range decodeBody[problemBody](t, rec).Errors {
			got = append(got, e.Field)
		}
		if !slices.Equal(got, fields) {
			t.Errorf("?%.40s: bad fields %v, want %v", query, got, fields)
		}
	}
	for _, query := range []string{"min_price=0", "max_price=1e2", "min_price=5&max_price=5", "sort=-price&limit=100",
		"q=" + strings.Repeat("é", 100), "q=" + url.QueryEscape("a(b[c")} {
		if rec := cs.get("/api/products?" + query); rec.Code != http.StatusOK {
			t.Errorf("?%.40s: %d %s, want 200", query, rec.Code, rec.Body)
		}
	}
}

// TestProductFreshness: X-Min-Position waits for the projection of the
// catalogue model serving the routes to hold the token's event, and says
// X-Stale when it does not in time.
func TestProductFreshness(t *testing.T) {
	for _, model := range catalogModels() {
		t.Run("", func(t *testing.T) { testProductFreshness(t, model(t)) })
	}
}

func testProductFreshness(t *testing.T, model catalogModel) {
	cs := newCatalogStack(t, model)
	id, res := cs.create(commands.CreateProduct{SKU: "NEW-1", Name: "New", Price: 100})
	token := res.Position.String()

	if rec := cs.get("/api/products/"+id, "X-Min-Position", token); rec.Code != http.StatusNotFound || rec.Header().Get("X-Stale") != "true" {
		t.Errorf("before the projection applied it: %d, X-Stale %q", rec.Code, rec.Header().Get("X-Stale"))
	}
	cs.mu.Lock()
	names := slices.Compact(slices.Clone(cs.checkNames))
	cs.mu.Unlock()
	if !slices.Equal(names, []string{model.project}) {
		t.Errorf("waited on the checkpoints of %v, want %s", names, model.project)
	}

	// A request that is waiting when the projection applies the event.
	checks := func() int {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return len(cs.checkNames)
	}
	before := checks()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- cs.get("/api/products/"+id, "X-Min-Position", token) }()
	for deadline := time.Now().Add(5 * time.Second); checks() < before+2; {
		if time.Now().After(deadline) {
			t.Fatal("the request never looked at the checkpoint")
		}
		runtime.Gosched()
	}
	cs.sync()
	rec := <-done
	if rec.Code != http.StatusOK || rec.Header().Get("X-Stale") != "" {
		t.Errorf("once the projection applied it: %d, X-Stale %q, %s", rec.Code, rec.Header().Get("X-Stale"), rec.Body)
	}
	for _, path := range []string{"/api/products", "/api/products/categories"} {
		if rec := cs.get(path, "X-Min-Position", token); rec.Code != http.StatusOK || rec.Header().Get("X-Stale") != "" {
			t.Errorf("%s once applied: %d, X-Stale %q", path, rec.Code, rec.Header().Get("X-Stale"))
		}
	}
	if rec := cs.get("/api/products", "X-Min-Position", "yesterday"); rec.Code != http.StatusBadRequest {
		t.Errorf("a malformed token: %d, want 400", rec.Code)
	}
}

// TestNoCatalog: without a catalogue the product GET routes are not
// there; the write routes are.
func TestNoCatalog(t *testing.T) {
	cs := newCatalogStack(t, catalogModel{})
	for _, path := range []string{"/api/products", "/api/products/categories", "/api/products/" + uuid.NewString()} {
		rec := cs.get(path)
		if rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound {
			t.Errorf("GET %s without a catalogue: %d %s", path, rec.Code, rec.Body)
		}
		body, _ := io.ReadAll(rec.Body)
		if strings.Contains(string(body), `"items"`) {
			t.Errorf("GET %s without a catalogue answered a list", path)
		}
	}
}

// TestCatalogDown: when the catalogue's database does not answer, the
// product routes say 503, retry, and nothing of the failure.
func TestCatalogDown(t *testing.T) {
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").SetServerSelectionTimeout(100 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/eventshop?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	for _, reader := range []CatalogReader{pgread.NewCatalog(pool), mongoread.New(client.Database("eventshop"))} {
		catalogDown(t, newCatalogStack(t, catalogModel{reader: reader}))
	}
}

func catalogDown(t *testing.T, cs *catalogStack) {
	for _, path := range []string{"/api/products", "/api/products/categories", "/api/products/" + uuid.NewString()} {
		rec := cs.get(path)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), "127.0.0.1") {
			t.Errorf("GET %s with the catalogue down: %d, Retry-After %q, %s", path, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
}
