package mongo_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/projections/catalogquery"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
)

// catalogue lists products for the query tests, in this order (so
// created_at ascending), and applies the log. Gone is discontinued.
func catalogue(t *testing.T) (*env, map[string]string) {
	t.Helper()
	e := newEnv(t)
	ids := map[string]string{}
	for _, p := range []struct {
		key    string
		vendor commands.Actor
		c      commands.CreateProduct
	}{
		{"apple", e.vendor, commands.CreateProduct{SKU: "F-1", Name: "apple", Description: "Crisp and RED.", Price: 120, Category: "fruit"}},
		{"banana", e.vendor, commands.CreateProduct{SKU: "F-2", Name: "Banana", Description: "Yellow (ripe).", Price: 80, Category: "fruit"}},
		{"cherry", e.otherVendor, commands.CreateProduct{SKU: "F-3", Name: "cherry", Description: "Dark red.", Price: 120, Category: "fruit"}},
		{"kettle", e.otherVendor, commands.CreateProduct{SKU: "K-1", Name: "Kettle", Description: "Boils water.", Price: 2500, Category: "kitchen"}},
		{"gone", e.vendor, commands.CreateProduct{SKU: "G-1", Name: "Red gone", Description: "Discontinued.", Price: 100, Category: "attic"}},
		{"zebra", e.vendor, commands.CreateProduct{SKU: "T-1", Name: "Zebra toy", Description: "Stripes.", Price: 999}},
	} {
		ids[p.key] = e.create(t, p.vendor, p.c)
	}
	if _, _, err := e.h.Catalog.DiscontinueProduct(ctxT(t), e.vendor, ids["gone"], commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	applyIn(t, e.cat.Projection(), e.log(t), 500)
	return e, ids
}

func names(items []resource.Product) string {
	out := make([]string, len(items))
	for i, p := range items {
		out[i] = p.Name
	}
	return strings.Join(out, ",")
}

func cents(c domain.Cents) *domain.Cents { return &c }

func TestProducts(t *testing.T) {
	e, ids := catalogue(t)
	vendor, other := uuid.MustParse(e.vendor.ID), uuid.MustParse(e.otherVendor.ID)
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
		{"a vendor", catalogquery.ProductQuery{VendorID: &vendor, Sort: catalogquery.SortName}, "apple,Banana,Zebra toy", 3},
		{"another vendor", catalogquery.ProductQuery{VendorID: &other, Sort: catalogquery.SortName}, "cherry,Kettle", 2},
		{"a price range, bounds included", catalogquery.ProductQuery{MinPrice: cents(80), MaxPrice: cents(120), Sort: catalogquery.SortName}, "apple,Banana,cherry", 3},
		{"a minimum price", catalogquery.ProductQuery{MinPrice: cents(121), Sort: catalogquery.SortPrice}, "Zebra toy,Kettle", 2},
		{"a maximum price", catalogquery.ProductQuery{MaxPrice: cents(79)}, "", 0},
		{"q in names and descriptions, any case", catalogquery.ProductQuery{Q: "red", Sort: catalogquery.SortName}, "apple,cherry", 2},
		{"q is literal, not a pattern", catalogquery.ProductQuery{Q: "(ripe)."}, "Banana", 1},
		{"q that looks like a pattern matches nothing", catalogquery.ProductQuery{Q: ".*"}, "", 0},
		{"q and a filter", catalogquery.ProductQuery{Q: "R", VendorID: &other, Sort: catalogquery.SortName}, "cherry,Kettle", 2},
		{"everything at once", catalogquery.ProductQuery{Category: "fruit", VendorID: &vendor, MinPrice: cents(100), Q: "crisp"}, "apple", 1},
		{"a second page", catalogquery.ProductQuery{Sort: catalogquery.SortName, Page: 2, Limit: 2}, "cherry,Kettle", 5},
		{"the last page, part full", catalogquery.ProductQuery{Sort: catalogquery.SortName, Page: 3, Limit: 2}, "Zebra toy", 5},
		{"past the last page", catalogquery.ProductQuery{Sort: catalogquery.SortName, Page: 4, Limit: 2}, "", 5},
		{"a limit over the maximum is clamped", catalogquery.ProductQuery{Limit: 1000, Sort: catalogquery.SortName}, "apple,Banana,cherry,Kettle,Zebra toy", 5},
	} {
		items, total, err := list(ctxT(t), e.cat, c.q)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := names(items); got != c.want || total != c.total {
			t.Errorf("%s: %q of %d, want %q of %d", c.name, got, total, c.want, c.total)
		}
		if items == nil {
			t.Errorf("%s: nil items, want an empty list", c.name)
		}
	}

	// Paging through every order visits each product once.
	for _, sort := range catalogquery.Sorts {
		var seen []string
		for page := 1; page <= 3; page++ {
			items, _, err := list(ctxT(t), e.cat, catalogquery.ProductQuery{Sort: sort, Page: page, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range items {
				seen = append(seen, p.ID)
			}
		}
		slices.Sort(seen)
		if len(slices.Compact(seen)) != 5 {
			t.Errorf("sort %s: pages of 2 visit %v", sort, seen)
		}
	}

	for _, q := range []catalogquery.ProductQuery{{Sort: "price_desc"}, {Q: strings.Repeat("x", catalogquery.MaxQLength+1)}} {
		if _, _, err := list(ctxT(t), e.cat, q); !errors.Is(err, catalogquery.ErrInvalidQuery) {
			t.Errorf("%+v: %v, want ErrInvalidQuery", q, err)
		}
	}
	if _, _, err := list(ctxT(t), e.cat, catalogquery.ProductQuery{Q: strings.Repeat("é", catalogquery.MaxQLength)}); err != nil {
		t.Errorf("q of %d characters: %v", catalogquery.MaxQLength, err)
	}

	got, err := e.cat.Product(ctxT(t), uuid.MustParse(ids["kettle"]))
	if err != nil || got.Name != "Kettle" || got.Price != 2500 || got.VendorID != e.otherVendor.ID {
		t.Errorf("kettle: %s, %v", dump(got), err)
	}
	if _, err := e.cat.Product(ctxT(t), uuid.New()); !errors.Is(err, mongoread.ErrNotFound) {
		t.Errorf("unknown id: %v, want ErrNotFound", err)
	}
}

func TestCategories(t *testing.T) {
	e := newEnv(t)
	if got, err := e.cat.Categories(ctxT(t)); err != nil || len(got) != 0 {
		t.Errorf("before the projection ever ran: %v, %v; want none", got, err)
	}
	e, _ = catalogue(t)
	got, err := e.cat.Categories(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// The discontinued product's category is gone; an unnamed one is the
	// default.
	want := []catalogquery.Category{{Name: "fruit", ProductCount: 3}, {Name: "kitchen", ProductCount: 1}, {Name: "uncategorized", ProductCount: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("categories %v, want %v", got, want)
	}
	if err := e.cat.Ping(ctxT(t)); err != nil {
		t.Errorf("ping: %v", err)
	}
}
