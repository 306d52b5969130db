package postgres_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/projections"
	"github.com/eventshop/eventshop/projections/catalogquery"
	"github.com/eventshop/eventshop/projections/postgres"
)

// catalogEnv is an env whose command handler's clock moves a second per
// reading, so every product has its own created_at, with the catalogue's
// tables set up.
type catalogEnv struct {
	*env
	cat            *postgres.Catalog
	vendor, other  commands.Actor
	admin, shopper commands.Actor
}

func newCatalogEnv(t *testing.T) *catalogEnv {
	t.Helper()
	e := newEnv(t)
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	)
	e.h = commands.New(commands.Config{Store: e.store, Payments: e.payments, Log: quiet(), Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}})
	if err := projections.Setup(context.Background(), e.pool, postgres.ProductsProjection{}); err != nil {
		t.Fatal(err)
	}
	actor := func(roles ...string) commands.Actor { return commands.Actor{ID: uuid.NewString(), Roles: roles} }
	return &catalogEnv{env: e, cat: postgres.NewCatalog(e.pool), vendor: actor(user.RoleVendor), other: actor(user.RoleVendor),
		admin: actor(user.RoleAdmin), shopper: actor(user.RoleCustomer)}
}

// sync applies the whole log to the catalogue in one transaction, as a
// runner catching up would: what it applied before changes nothing.
func (e *catalogEnv) sync(t *testing.T) {
	t.Helper()
	p := postgres.ProductsProjection{}
	tx := beginIn(t, e.env, postgres.Schema)
	if err := p.Apply(context.Background(), tx, readLog(t, e.env, p.Filter())); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *catalogEnv) create(t *testing.T, vendor commands.Actor, c commands.CreateProduct) string {
	t.Helper()
	p, _, err := e.h.Catalog.CreateProduct(context.Background(), vendor, c)
	if err != nil {
		t.Fatalf("create %s: %v", c.SKU, err)
	}
	return p.ID
}

// list answers q, failing t on an error.
func (e *catalogEnv) list(t *testing.T, q catalogquery.ProductQuery) catalogquery.Page {
	t.Helper()
	page, err := e.cat.Products(context.Background(), q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	if page.Items == nil {
		t.Errorf("%+v: nil items, want an empty list", q)
	}
	return page
}

func productNames(items []resource.Product) string {
	out := make([]string, len(items))
	for i, p := range items {
		out[i] = p.Name
	}
	return strings.Join(out, ",")
}

func cents(c domain.Cents) *domain.Cents { return &c }

// TestCatalogQueries: every sort and filter of API.md, pages, totals,
// categories and products, on the catalogue of projections/mongo's query
// tests (which hold the documents to the same answers).
func TestCatalogQueries(t *testing.T) {
	e := newCatalogEnv(t)
	ctx := context.Background()
	if got, err := e.cat.Categories(ctx); err != nil || len(got) != 0 {
		t.Errorf("categories before any product: %v, %v", got, err)
	}
	ids := map[string]string{}
	for _, p := range []struct {
		key    string
		vendor commands.Actor
		c      commands.CreateProduct
	}{
		{"apple", e.vendor, commands.CreateProduct{SKU: "F-1", Name: "apple", Description: "Crisp and RED.", Price: 120, Category: "fruit"}},
		{"banana", e.vendor, commands.CreateProduct{SKU: "F-2", Name: "Banana", Description: "Yellow (ripe).", Price: 80, Category: "fruit"}},
		{"cherry", e.other, commands.CreateProduct{SKU: "F-3", Name: "cherry", Description: "Dark red.", Price: 120, Category: "fruit"}},
		{"kettle", e.other, commands.CreateProduct{SKU: "K-1", Name: "Kettle", Description: "Boils water.", Price: 2500, Category: "kitchen"}},
		{"gone", e.vendor, commands.CreateProduct{SKU: "G-1", Name: "Red gone", Description: "Discontinued.", Price: 100, Category: "attic"}},
		{"zebra", e.vendor, commands.CreateProduct{SKU: "T-1", Name: "Zebra toy", Description: "Stripes.", Price: 999}},
	} {
		ids[p.key] = e.create(t, p.vendor, p.c)
	}
	if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, e.vendor, ids["gone"], commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	e.sync(t)

	vendor, other := uuid.MustParse(e.vendor.ID), uuid.MustParse(e.other.ID)
	// apple and cherry share a price: the tie is broken by id, and UUIDv7
	// ids follow creation, so apple comes first.
	for _, c := range []struct {
		name  string
		q     catalogquery.ProductQuery
		want  string
		total int
	}{
		{"newest first by default", catalogquery.ProductQuery{}, "Zebra toy,Kettle,cherry,Banana,apple", 5},
		{"newest first", catalogquery.ProductQuery{Sort: catalogquery.SortNewest}, "Zebra toy,Kettle,cherry,Banana,apple", 5},
		{"cheapest first, ties by id", catalogquery.ProductQuery{Sort: catalogquery.SortPrice}, "Banana,apple,cherry,Zebra toy,Kettle", 5},
		{"dearest first, ties by id", catalogquery.ProductQuery{Sort: catalogquery.SortPriceDesc}, "Kettle,Zebra toy,apple,cherry,Banana", 5},
		{"by name, ignoring case", catalogquery.ProductQuery{Sort: catalogquery.SortName}, "apple,Banana,cherry,Kettle,Zebra toy", 5},
		{"a category", catalogquery.ProductQuery{Category: "fruit", Sort: catalogquery.SortName}, "apple,Banana,cherry", 3},
		{"a discontinued product's category", catalogquery.ProductQuery{Category: "attic"}, "", 0},
		{"a category nobody uses", catalogquery.ProductQuery{Category: "Fruit"}, "", 0},
		{"a vendor", catalogquery.ProductQuery{VendorID: &vendor, Sort: catalogquery.SortName}, "apple,Banana,Zebra toy", 3},
		{"another vendor", catalogquery.ProductQuery{VendorID: &other, Sort: catalogquery.SortName}, "cherry,Kettle", 2},
		{"a vendor in a category", catalogquery.ProductQuery{VendorID: &other, Category: "fruit"}, "cherry", 1},
		{"a price range, bounds included", catalogquery.ProductQuery{MinPrice: cents(80), MaxPrice: cents(120), Sort: catalogquery.SortName}, "apple,Banana,cherry", 3},
		{"a minimum price", catalogquery.ProductQuery{MinPrice: cents(121), Sort: catalogquery.SortPrice}, "Zebra toy,Kettle", 2},
		{"a maximum price", catalogquery.ProductQuery{MaxPrice: cents(79)}, "", 0},
		{"everything at once", catalogquery.ProductQuery{Category: "fruit", VendorID: &vendor, MinPrice: cents(100), Q: "crisp"}, "apple", 1},
		{"a second page", catalogquery.ProductQuery{Sort: catalogquery.SortName, Page: 2, Limit: 2}, "cherry,Kettle", 5},
		{"the last page, part full", catalogquery.ProductQuery{Sort: catalogquery.SortName, Page: 3, Limit: 2}, "Zebra toy", 5},
		{"past the last page", catalogquery.ProductQuery{Sort: catalogquery.SortName, Page: 4, Limit: 2}, "", 5},
		{"past the last page of a price range", catalogquery.ProductQuery{MinPrice: cents(100), Page: 9}, "", 4},
		{"past the last page of a category", catalogquery.ProductQuery{Category: "kitchen", Page: 2, Limit: 1}, "", 1},
		{"a limit over the maximum is clamped", catalogquery.ProductQuery{Limit: 1000, Sort: catalogquery.SortName}, "apple,Banana,cherry,Kettle,Zebra toy", 5},
	} {
		page := e.list(t, c.q)
		if got := productNames(page.Items); got != c.want || page.Total != c.total || page.Capped {
			t.Errorf("%s: %q of %d (capped %v), want %q of %d", c.name, got, page.Total, page.Capped, c.want, c.total)
		}
	}

	// Paging through every order visits each product once.
	for _, sort := range catalogquery.Sorts {
		var seen []string
		for page := 1; page <= 3; page++ {
			for _, p := range e.list(t, catalogquery.ProductQuery{Sort: sort, Page: page, Limit: 2}).Items {
				seen = append(seen, p.ID)
			}
		}
		slices.Sort(seen)
		if len(slices.Compact(seen)) != 5 {
			t.Errorf("sort %s: pages of 2 visit %v", sort, seen)
		}
	}

	for _, q := range []catalogquery.ProductQuery{{Sort: "price_desc"}, {Q: strings.Repeat("x", catalogquery.MaxQLength+1)}} {
		if _, err := e.cat.Products(ctx, q); !errors.Is(err, catalogquery.ErrInvalidQuery) {
			t.Errorf("%+v: %v, want ErrInvalidQuery", q, err)
		}
	}

	got, err := e.cat.Product(ctx, uuid.MustParse(ids["kettle"]))
	if err != nil || got.Name != "Kettle" || got.Price != 2500 || got.VendorID != e.other.ID || got.Description != "Boils water." {
		t.Errorf("kettle: %s, %v", dump(got), err)
	}
	for _, id := range []string{ids["gone"], uuid.NewString()} {
		if _, err := e.cat.Product(ctx, uuid.MustParse(id)); !errors.Is(err, catalogquery.ErrNotFound) {
			t.Errorf("product %s: %v, want ErrNotFound", id, err)
		}
	}
	// The discontinued product's category is gone; an unnamed one is the
	// default.
	cats, err := e.cat.Categories(ctx)
	want := []catalogquery.Category{{Name: "fruit", ProductCount: 3}, {Name: "kitchen", ProductCount: 1}, {Name: "uncategorized", ProductCount: 1}}
	if err != nil || !slices.Equal(cats, want) {
		t.Errorf("categories %v, %v; want %v", cats, err, want)
	}
}

// TestCatalogSearch: q finds products by the words of their name and
// description, stemmed, in any order, any case and accents, the last word
// also as a prefix, best matches first; and nothing else.
func TestCatalogSearch(t *testing.T) {
	e := newCatalogEnv(t)
	ctx := context.Background()
	for i, p := range []commands.CreateProduct{
		{Name: "Run Shoe", Description: "Light and quick.", Category: "shoes"},
		{Name: "Running Jacket", Description: "Keeps the rain out.", Category: "clothes"},
		{Name: "Café Crème mug", Description: "Holds 300 ml.", Category: "kitchen"},
		{Name: "Espresso cup", Description: "For a strong café noir.", Category: "kitchen"},
		{Name: "Wireless Headphones", Description: "Noise cancelling.", Category: "audio"},
		{Name: "Old Headphones", Description: "Discontinued.", Category: "audio"},
		{Name: "Light bulb", Description: "Screw fitting.", Category: "lighting"},
		{Name: "Torch", Description: "A bright light for dark nights.", Category: "lighting"},
		{Name: "Shovel", Description: "For the garden.", Category: "garden"},
		{Name: "Desk lamp", Description: "Bright; e-mail ready.", Category: "lighting"},
	} {
		p.SKU, p.Price = fmt.Sprintf("S-%d", i), domain.Cents(100*(i+1))
		id := e.create(t, e.vendor, p)
		if p.Name == "Old Headphones" {
			if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, e.vendor, id, commands.NoVersion); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.sync(t)
	for _, c := range []struct {
		q    catalogquery.ProductQuery
		want string // in order
	}{
		// Stemming: "running shoes" and "Run Shoe" share their stems; the
		// jacket runs but is no shoe.
		{catalogquery.ProductQuery{Q: "running shoes"}, "Run Shoe"},
		{catalogquery.ProductQuery{Q: "shoes running"}, "Run Shoe"},
		{catalogquery.ProductQuery{Q: "RUN", Sort: catalogquery.SortName}, "Run Shoe,Running Jacket"},
		// Accents and case, either way round, in names and descriptions.
		{catalogquery.ProductQuery{Q: "cafe", Sort: catalogquery.SortName}, "Café Crème mug,Espresso cup"},
		{catalogquery.ProductQuery{Q: "CAFÉ CREME"}, "Café Crème mug"},
		{catalogquery.ProductQuery{Q: "noir café"}, "Espresso cup"},
		// The last word as a prefix; the discontinued pair is never found.
		{catalogquery.ProductQuery{Q: "headph"}, "Wireless Headphones"},
		{catalogquery.ProductQuery{Q: "wireless headphone"}, "Wireless Headphones"},
		{catalogquery.ProductQuery{Q: "wire headphones"}, ""}, // only the last word is a prefix
		{catalogquery.ProductQuery{Q: "sho"}, "Run Shoe,Shovel"},
		{catalogquery.ProductQuery{Q: "shoes"}, "Run Shoe"},
		{catalogquery.ProductQuery{Q: "e-mail"}, "Desk lamp"},
		// Best matches first: the bulb's name says light, the shoe's and
		// the torch's descriptions (equal matches in the order of their
		// ids); with a sort, the sort's order.
		{catalogquery.ProductQuery{Q: "light"}, "Light bulb,Run Shoe,Torch"},
		{catalogquery.ProductQuery{Q: "light", Sort: catalogquery.SortPriceDesc}, "Torch,Light bulb,Run Shoe"},
		{catalogquery.ProductQuery{Q: "bright", Category: "lighting", MaxPrice: cents(800)}, "Torch"},
		// Nothing else: words no product has, operators as plain text,
		// stop words, punctuation.
		{catalogquery.ProductQuery{Q: "umbrella"}, ""},
		{catalogquery.ProductQuery{Q: "lamp | mug"}, ""},
		{catalogquery.ProductQuery{Q: "!lamp"}, "Desk lamp"},
		{catalogquery.ProductQuery{Q: "the"}, ""},
		{catalogquery.ProductQuery{Q: "..."}, ""},
	} {
		page := e.list(t, c.q)
		if got := productNames(page.Items); got != c.want || page.Total != len(page.Items) || page.Capped {
			t.Errorf("%+v: %q of %d, want %q", c.q, got, page.Total, c.want)
		}
	}
	// Text that to_tsquery would take for syntax is searched for as
	// words, never an error.
	for _, q := range []string{`'`, `\`, `'\'`, `a:*`, `x & y`, `(`, `)`, `<->`, `<1>`, `!`, `&|`, `:`, `"`, `*`, `''a''`, `é'`, "tab\tsep"} {
		if _, err := e.cat.Products(ctx, catalogquery.ProductQuery{Q: q}); err != nil {
			t.Errorf("q %q: %v", q, err)
		}
	}
}

// widget is a product seedWidgets made, as the sorts see it.
type widget struct {
	id, nameKey string
	price       int
	created     time.Time
}

// seedWidgets applies n products of vendor, category widgets, straight
// through products.v1; prices and creation times repeat.
func seedWidgets(t *testing.T, e *catalogEnv, n int, vendor string) []widget {
	t.Helper()
	ctx := context.Background()
	batch := make([]eventstore.Event, n)
	at := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([]widget, n)
	for i := range batch {
		id := uuid.NewString()
		rows[i] = widget{id: id, nameKey: fmt.Sprintf("widget %d", i), price: 100 + i%700, created: at.Add(time.Duration(i%900) * time.Microsecond)}
		data, err := json.Marshal(product.Created{ProductID: id, SKU: fmt.Sprintf("W-%d", i), Name: fmt.Sprintf("Widget %d", i),
			Price: domain.Cents(rows[i].price), Category: "widgets", VendorID: vendor, Metadata: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		batch[i] = eventstore.Event{StreamID: product.Stream(id), Version: 0,
			EventData: eventstore.EventData{ID: uuid.New(), Type: product.Created{}.EventType(), SchemaVersion: 1, Data: data,
				Metadata: eventstore.Metadata{Timestamp: rows[i].created}}}
	}
	tx := beginIn(t, e.env, postgres.Schema)
	if err := (postgres.ProductsProjection{}).Apply(ctx, tx, batch); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestCatalogLargeListing: pages deep in a listing (read by their ids
// first) hold what a sort of every product puts there; a price range or
// a search counts its matches up to CountCap past the page's offset and
// says when it stopped there; the totals product_counts holds are exact
// however many match.
func TestCatalogLargeListing(t *testing.T) {
	e := newCatalogEnv(t)
	n := postgres.CountCap + 50
	vendor := uuid.NewString()
	rows := seedWidgets(t, e, n, vendor)
	for _, c := range []struct {
		q      catalogquery.ProductQuery
		total  int
		capped bool
	}{
		{catalogquery.ProductQuery{}, n, false},
		{catalogquery.ProductQuery{Category: "widgets", Page: 3}, n, false},
		{catalogquery.ProductQuery{Q: "widget"}, postgres.CountCap, true},
		{catalogquery.ProductQuery{MinPrice: cents(0)}, postgres.CountCap, true},
		{catalogquery.ProductQuery{MinPrice: cents(0), Page: 2, Limit: 100}, n, false}, // 100 + CountCap ≥ n
		{catalogquery.ProductQuery{Q: "widget", Page: 60}, n, false},                   // past the end: counted from there
		{catalogquery.ProductQuery{MaxPrice: cents(149)}, 100, false},
	} {
		page := e.list(t, c.q)
		if page.Total != c.total || page.Capped != c.capped {
			t.Errorf("%+v: total %d (capped %v), want %d (capped %v)", c.q, page.Total, page.Capped, c.total, c.capped)
		}
	}

	// Every sort, its pages near the top and deep down, alone and after
	// a filter, against the order of a sort here; prices and creation
	// times repeat, so the ties fall to the ids.
	orders := map[string]func(a, b widget) int{
		catalogquery.SortNewest: func(a, b widget) int {
			return cmp.Or(b.created.Compare(a.created), strings.Compare(b.id, a.id))
		},
		catalogquery.SortPrice:     func(a, b widget) int { return cmp.Or(cmp.Compare(a.price, b.price), strings.Compare(a.id, b.id)) },
		catalogquery.SortPriceDesc: func(a, b widget) int { return cmp.Or(cmp.Compare(b.price, a.price), strings.Compare(a.id, b.id)) },
		catalogquery.SortName: func(a, b widget) int {
			return cmp.Or(strings.Compare(a.nameKey, b.nameKey), strings.Compare(a.id, b.id))
		},
	}
	vid := uuid.MustParse(vendor)
	for sort, by := range orders {
		want := slices.Clone(rows)
		slices.SortFunc(want, by)
		for _, q := range []catalogquery.ProductQuery{
			{Sort: sort, Page: 1}, {Sort: sort, Page: 5}, {Sort: sort, Page: 6}, {Sort: sort, Page: 60},
			{Sort: sort, Page: 11, Limit: 100}, {Sort: sort, Page: 3, Limit: 7, Category: "widgets"},
			{Sort: sort, Page: 80, Category: "widgets", VendorID: &vid}, {Sort: sort, Page: 90, Limit: 11, VendorID: &vid},
		} {
			page := e.list(t, q)
			limit, offset := q.Window()
			var got, expect []string
			for _, p := range page.Items {
				got = append(got, p.ID)
			}
			for _, r := range want[min(int(offset), n):min(int(offset)+limit, n)] {
				expect = append(expect, r.id)
			}
			if !slices.Equal(got, expect) || page.Total != n {
				t.Errorf("%+v: %d of %d, not the products a sort puts there", q, len(got), page.Total)
			}
		}
	}
}

// TestCatalogCounts: after any sequence of writes (creations, changes of
// category, price and name, stock moves, orders, discontinuations), every
// total the catalogue keeps equals a count of its rows, and every listing
// lists exactly the products the command side holds on sale.
func TestCatalogCounts(t *testing.T) {
	e := newCatalogEnv(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(14, 2))
	vendors := []commands.Actor{e.vendor, e.other}
	categories := []string{"a", "b", "c"}
	var ids []string
	owner := map[string]commands.Actor{}
	onSale := func() []string {
		return slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
			s, _, err := e.h.Catalog.Product(ctx, id)
			return err != nil || s.Discontinued
		})
	}
	for step := range 60 {
		live := onSale()
		switch k := rng.IntN(6); {
		case k <= 1 || len(live) == 0:
			v := vendors[rng.IntN(2)]
			id := e.create(t, v, commands.CreateProduct{SKU: fmt.Sprintf("P-%d", step), Name: fmt.Sprintf("Thing %d", step),
				Price: domain.Cents(100 + rng.IntN(900)), Category: categories[rng.IntN(3)], Quantity: 50})
			ids, owner[id] = append(ids, id), v
		case k == 2:
			id := live[rng.IntN(len(live))]
			cat, price := categories[rng.IntN(3)], domain.Cents(100+rng.IntN(900))
			if _, _, err := e.h.Catalog.UpdateProduct(ctx, owner[id], id, commands.NoVersion, product.Update{Category: &cat, Price: &price}); err != nil {
				t.Fatal(err)
			}
		case k == 3:
			id := live[rng.IntN(len(live))]
			o, _, err := e.h.Orders.PlaceOrder(ctx, e.shopper, []order.Line{{ProductID: id, Quantity: 2}})
			if err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2) == 0 {
				if _, _, err := e.h.Orders.CancelOrder(ctx, e.shopper, o.ID, commands.NoVersion, ""); err != nil {
					t.Fatal(err)
				}
			}
		case k == 4:
			id := live[rng.IntN(len(live))]
			if _, _, err := e.h.Catalog.AdjustInventory(ctx, owner[id], id, commands.NoVersion, product.AdjustInventory{Adjustment: 3, Reason: "count"}); err != nil {
				t.Fatal(err)
			}
		default:
			id := live[rng.IntN(len(live))]
			if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, owner[id], id, commands.NoVersion); err != nil {
				t.Fatal(err)
			}
		}
		if step%7 != 6 {
			continue
		}
		e.sync(t)
		// What the command side holds on sale, per category and vendor.
		want := map[string][]string{}
		for _, id := range onSale() {
			s, _, err := e.h.Catalog.Product(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"", "c=" + s.Category, "v=" + s.VendorID, "c=" + s.Category + "&v=" + s.VendorID} {
				want[key] = append(want[key], id)
			}
		}
		var cats []catalogquery.Category
		for _, c := range categories {
			if n := len(want["c="+c]); n > 0 {
				cats = append(cats, catalogquery.Category{Name: c, ProductCount: n})
			}
		}
		if got, err := e.cat.Categories(ctx); err != nil || !slices.Equal(got, cats) {
			t.Fatalf("step %d: categories %v, %v; want %v", step, got, err, cats)
		}
		for _, c := range append([]string{""}, categories...) {
			for _, v := range append([]*commands.Actor{nil}, &vendors[0], &vendors[1]) {
				q, key := catalogquery.ProductQuery{Category: c, Limit: 100}, ""
				if c != "" {
					key = "c=" + c
				}
				if v != nil {
					id := uuid.MustParse(v.ID)
					q.VendorID = &id
					key = strings.TrimPrefix(key+"&v="+v.ID, "&")
				}
				page := e.list(t, q)
				var got []string
				for _, p := range page.Items {
					got = append(got, p.ID)
				}
				slices.Sort(got)
				slices.Sort(want[key])
				if page.Total != len(want[key]) || !slices.Equal(got, want[key]) {
					t.Fatalf("step %d, %q: %d listed, total %d; want %d", step, key, len(got), page.Total, len(want[key]))
				}
			}
		}
	}
	// The kept counts are those of the rows.
	var drift int
	if err := e.pool.QueryRow(ctx, `WITH listed AS (SELECT * FROM readmodel.products WHERE NOT discontinued),
		rows AS (
			SELECT 'all' AS kind, '' AS category, '' AS vendor_id, count(*) AS n FROM listed HAVING count(*) > 0
			UNION ALL SELECT 'category', category, '', count(*) FROM listed GROUP BY category
			UNION ALL SELECT 'vendor', '', vendor_id, count(*) FROM listed GROUP BY vendor_id
			UNION ALL SELECT 'vendor_category', category, vendor_id, count(*) FROM listed GROUP BY category, vendor_id),
		kept AS (SELECT kind, category, vendor_id, n FROM readmodel.product_counts)
		SELECT (SELECT count(*) FROM (SELECT * FROM rows EXCEPT SELECT * FROM kept) a) +
			(SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM rows) b)`).Scan(&drift); err != nil {
		t.Fatal(err)
	}
	if drift != 0 {
		t.Errorf("product_counts differs from the rows in %d entries", drift)
	}
}

// TestCatalogReusesListingPlans: a listing's page near the top is
// planned once per connection, not per request, however large the
// catalogue. A plan for a LIMIT or OFFSET parameter is costed as reading
// a tenth of the matches, so past a few hundred products PostgreSQL
// planned each request again, which cost more than running it.
func TestCatalogReusesListingPlans(t *testing.T) {
	e := newCatalogEnv(t)
	ctx := context.Background()
	seedWidgets(t, e, 5_000, uuid.NewString())
	if _, err := e.pool.Exec(ctx, "ANALYZE readmodel.products"); err != nil {
		t.Fatal(err)
	}
	cfg := e.pool.Config()
	cfg.MinConns, cfg.MaxConns = 1, 1
	one, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	cat := postgres.NewCatalog(one)
	const requests = 12
	for _, q := range []catalogquery.ProductQuery{
		{Sort: catalogquery.SortNewest}, {Sort: catalogquery.SortPrice, Page: 3}, {Sort: catalogquery.SortPriceDesc},
		{Sort: catalogquery.SortName, Limit: 20}, {Category: "widgets", Page: 2},
	} {
		for range requests {
			if _, err := cat.Products(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows, err := one.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '%FROM readmodel.products p WHERE%ORDER BY%' AND statement NOT LIKE '%pg_prepared_statements%'`)
	if err != nil {
		t.Fatal(err)
	}
	type plans struct{ generic, custom int64 }
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (p plans, err error) {
		var stmt string
		err = r.Scan(&stmt, &p.generic, &p.custom)
		return p, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("%d prepared listings, want one per query (5): %+v", len(got), got)
	}
	for _, p := range got {
		// PostgreSQL plans a statement's first five executions for their
		// values, then keeps a plan made for any values if it is no
		// dearer.
		if p.custom > 5 || p.generic != requests-p.custom {
			t.Errorf("a listing of %d requests was planned for its values %d times (generic plan used %d times), want at most 5",
				requests, p.custom, p.generic)
		}
	}
}
