package main

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/commands/demo"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/eventstore"
)

// The catalogue's end-to-end tests: products written through the write
// API and read, without a token, through GET /api/products, which the
// MongoDB read model answers.

// afterSeed registers a throwaway user and returns the answer: its
// X-Event-Position lies after the seeded demo data, so a read sent with it
// (s.fresh) sees the whole seed.
func (s *server) afterSeed() *response {
	s.t.Helper()
	return want(s.t, s.post("/api/auth/register", "", map[string]any{
		"email": uniqueEmail("sync"), "password": testPassword, "full_name": "Sync"}), http.StatusCreated)
}

// items returns a page's items as objects.
func items(t *testing.T, r *response) []map[string]any {
	t.Helper()
	list, ok := r.body["items"].([]any)
	if !ok {
		t.Fatalf("%s: items is not an array", r)
	}
	out := make([]map[string]any, len(list))
	for i, it := range list {
		out[i] = obj(t, it, "item")
	}
	return out
}

// skus lists the SKUs of products, in order.
func skus(products []map[string]any) []string {
	out := make([]string, len(products))
	for i, p := range products {
		out[i] = str(p, "sku")
	}
	return out
}

// cents reads a price member as integer cents.
func cents(t *testing.T, v any) domain.Cents {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("price %v (%T) is not a JSON number", v, v)
	}
	c, err := domain.ParseCents(n.String())
	if err != nil {
		t.Fatalf("price %s: %v", n, err)
	}
	return c
}

// seededSKUs lists the SKUs of the demo products whose entry keep accepts.
func seededSKUs(keep func(demo.Product) bool) []string {
	var out []string
	for _, p := range demo.Catalogue {
		if keep(p) {
			out = append(out, p.SKU)
		}
	}
	slices.Sort(out)
	return out
}

// sorted returns a sorted copy of list.
func sorted(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return out
}

// categoryCounts is GET /api/products/categories as name → product_count,
// and the names in the order given.
func categoryCounts(t *testing.T, r *response) (map[string]int, []string) {
	t.Helper()
	want(t, r, http.StatusOK)
	counts := map[string]int{}
	var names []string
	for _, it := range items(t, r) {
		name := str(it, "name")
		counts[name] = int(num(t, it["product_count"]))
		names = append(names, name)
	}
	return counts, names
}

// TestE2ECatalogListing: the seeded catalogue through GET /api/products,
// without a token: pages, every filter, every sort with its order checked,
// the categories, and the 422s of bad parameters.
func TestE2ECatalogListing(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	synced := s.afterSeed()
	demoVendor := s.signIn(demo.VendorEmail, demo.VendorPassword)
	n := len(demo.Catalogue)

	// Everything, on one page. The default order is newest first, and the
	// seed lists the products in demo.Catalogue's order.
	all := s.fresh("/api/products?limit=100", "", synced)
	wantPage(t, all, 1, 100, n)
	if ct := all.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	listing := items(t, all)
	var newestFirst []string
	for i := n - 1; i >= 0; i-- {
		newestFirst = append(newestFirst, demo.Catalogue[i].SKU)
	}
	if got := skus(listing); !slices.Equal(got, newestFirst) {
		t.Errorf("default order %v, want newest first %v", got, newestFirst)
	}
	bySKU := map[string]map[string]any{}
	for _, p := range listing {
		bySKU[str(p, "sku")] = p
	}
	for _, d := range demo.Catalogue {
		p, ok := bySKU[d.SKU]
		if !ok {
			t.Errorf("%s is not listed", d.SKU)
			continue
		}
		wantUUID(t, d.SKU+" id", str(p, "id"))
		if str(p, "name") != d.Name || str(p, "description") != d.Description || str(p, "category") != d.Category {
			t.Errorf("%s: name %q description %q category %q, want %q %q %q", d.SKU,
				str(p, "name"), str(p, "description"), str(p, "category"), d.Name, d.Description, d.Category)
		}
		wantMoney(t, d.SKU+" price", p["price"], d.Price.String())
		if str(p, "vendor_id") != demoVendor.id {
			t.Errorf("%s: vendor_id %q, want the demo vendor %s", d.SKU, str(p, "vendor_id"), demoVendor.id)
		}
		inv := obj(t, p["inventory"], d.SKU+" inventory")
		if num(t, inv["quantity"]) != float64(d.Quantity) || num(t, inv["reserved"]) != 0 || num(t, inv["available"]) != float64(d.Quantity) {
			t.Errorf("%s: inventory %v, want quantity = available = %d, reserved 0", d.SKU, inv, d.Quantity)
		}
		if meta := obj(t, p["metadata"], d.SKU+" metadata"); !reflect.DeepEqual(meta, map[string]any{"demo": true}) {
			t.Errorf("%s: metadata %v, want {demo: true}", d.SKU, meta)
		}
		if imgs, ok := p["images"].([]any); !ok || len(imgs) != 0 {
			t.Errorf("%s: images %v, want []", d.SKU, p["images"])
		}
	}

	// The default page is 10; pages of 7 split the same order.
	first := s.get("/api/products", "")
	wantPage(t, first, 1, 10, n)
	if got := skus(items(t, first)); !slices.Equal(got, newestFirst[:10]) {
		t.Errorf("default page %v, want %v", got, newestFirst[:10])
	}
	var paged []string
	for pg := 1; pg <= 3; pg++ {
		r := s.get("/api/products?limit=7&page="+strconv.Itoa(pg), "")
		wantPage(t, r, pg, 7, n)
		paged = append(paged, skus(items(t, r))...)
	}
	if !slices.Equal(paged, newestFirst) {
		t.Errorf("pages of 7 list %v, want %v", paged, newestFirst)
	}
	beyond := s.get("/api/products?limit=7&page=4", "")
	wantPage(t, beyond, 4, 7, n)
	if got := items(t, beyond); len(got) != 0 {
		t.Errorf("page 4 of 7 lists %v, want none", skus(got))
	}

	// Each sort, checked against the listing sorted here; every order ends
	// with the id, ascending (newest first: descending).
	type entry struct {
		sku, id, nameKey string
		price            domain.Cents
		created          time.Time
	}
	var entries []entry
	for _, p := range listing {
		created, err := time.Parse(time.RFC3339Nano, str(p, "created_at"))
		if err != nil {
			t.Fatalf("%s: created_at %q: %v", str(p, "sku"), str(p, "created_at"), err)
		}
		entries = append(entries, entry{str(p, "sku"), str(p, "id"), strings.ToLower(str(p, "name")), cents(t, p["price"]), created})
	}
	for _, c := range []struct {
		sort string
		cmp  func(a, b entry) int
	}{
		{"price", func(a, b entry) int { return cmp.Or(cmp.Compare(a.price, b.price), strings.Compare(a.id, b.id)) }},
		{"-price", func(a, b entry) int { return cmp.Or(cmp.Compare(b.price, a.price), strings.Compare(a.id, b.id)) }},
		{"name", func(a, b entry) int {
			return cmp.Or(strings.Compare(a.nameKey, b.nameKey), strings.Compare(a.id, b.id))
		}},
		{"-created_at", func(a, b entry) int { return cmp.Or(b.created.Compare(a.created), strings.Compare(b.id, a.id)) }},
	} {
		exp := slices.Clone(entries)
		slices.SortStableFunc(exp, c.cmp)
		var wantOrder []string
		for _, e := range exp {
			wantOrder = append(wantOrder, e.sku)
		}
		r := s.get("/api/products?limit=100&sort="+url.QueryEscape(c.sort), "")
		wantPage(t, r, 1, 100, n)
		if got := skus(items(t, r)); !slices.Equal(got, wantOrder) {
			t.Errorf("sort=%s lists %v, want %v", c.sort, got, wantOrder)
		}
		// The sort holds across pages too.
		r = s.get("/api/products?limit=5&page=2&sort="+url.QueryEscape(c.sort), "")
		wantPage(t, r, 2, 5, n)
		if got := skus(items(t, r)); !slices.Equal(got, wantOrder[5:10]) {
			t.Errorf("sort=%s page 2 of 5 lists %v, want %v", c.sort, got, wantOrder[5:10])
		}
	}
	// Cheapest first, concretely: the mug at 12.00, then the novel.
	if r := s.get("/api/products?sort=price&limit=2", ""); !slices.Equal(skus(items(t, r)), []string{"DEMO-MUG", "DEMO-NOVEL"}) {
		t.Errorf("sort=price starts with %v, want [DEMO-MUG DEMO-NOVEL]", skus(items(t, r)))
	}
	if r := s.get("/api/products?sort=-price&limit=1", ""); !slices.Equal(skus(items(t, r)), []string{"DEMO-LAPTOP-13"}) {
		t.Errorf("sort=-price starts with %v, want [DEMO-LAPTOP-13]", skus(items(t, r)))
	}

	// Filters, each checked against the seed; the total counts all matches,
	// beyond the page.
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"category=books", seededSKUs(func(p demo.Product) bool { return p.Category == "books" })},
		{"category=electronics&limit=3", seededSKUs(func(p demo.Product) bool { return p.Category == "electronics" })},
		{"category=Books", nil}, // a category matches exactly
		{"category=garden", nil},
		{"vendor_id=" + demoVendor.id, seededSKUs(func(demo.Product) bool { return true })},
		{"vendor_id=" + uuid.NewString(), nil},
		{"q=MUG", []string{"DEMO-MUG"}},                                                 // the name, whatever the case
		{"q=" + url.QueryEscape("usb-c"), []string{"DEMO-KEYBOARD", "DEMO-MONITOR-27"}}, // the description
		{"q=" + url.QueryEscape("(novel)"), []string{"DEMO-NOVEL"}},                     // taken literally, not as a pattern
		{"q=" + url.QueryEscape("append-only"), []string{"DEMO-NOVEL"}},
		{"q=" + url.QueryEscape(".*"), nil},
		{"q=zzz-no-such-thing", nil},
		{"min_price=100&max_price=300", seededSKUs(func(p demo.Product) bool { return p.Price >= 10000 && p.Price <= 30000 })},
		{"min_price=249&max_price=249.00", []string{"DEMO-HEADPHONES"}}, // bounds are inclusive
		{"max_price=14.99", []string{"DEMO-MUG", "DEMO-NOVEL"}},
		{"max_price=14.98", []string{"DEMO-MUG"}},
		{"min_price=1299.00", []string{"DEMO-LAPTOP-13"}},
		{"min_price=1299.01", nil},
		{"min_price=0", seededSKUs(func(demo.Product) bool { return true })},
		{"category=sports&max_price=30&sort=price", []string{"DEMO-BOTTLE", "DEMO-YOGA-MAT"}},
		{"category=electronics&q=" + url.QueryEscape("usb-c") + "&min_price=300", []string{"DEMO-MONITOR-27"}},
	} {
		r := s.get("/api/products?"+c.query, "")
		want(t, r, http.StatusOK)
		limit := 10
		if q, _ := url.ParseQuery(c.query); q.Get("limit") != "" {
			limit, _ = strconv.Atoi(q.Get("limit"))
		}
		wantPage(t, r, 1, limit, len(c.want))
		got := skus(items(t, r))
		if len(c.want) > limit {
			// Only a page of them: each one of the expected.
			for _, sku := range got {
				if !slices.Contains(c.want, sku) {
					t.Errorf("%s lists %s, want only %v", c.query, sku, c.want)
				}
			}
			if len(got) != limit {
				t.Errorf("%s lists %d, want a full page of %d", c.query, len(got), limit)
			}
			continue
		}
		if strings.Contains(c.query, "sort=") {
			if !slices.Equal(got, c.want) {
				t.Errorf("%s lists %v, want %v in that order", c.query, got, c.want)
			}
		} else if !slices.Equal(sorted(got), sorted(c.want)) {
			t.Errorf("%s lists %v, want %v", c.query, got, c.want)
		}
	}

	// The categories, by name, each counting what its listing holds.
	counts, names := categoryCounts(t, s.fresh("/api/products/categories", "", synced))
	wantCounts := map[string]int{}
	for _, p := range demo.Catalogue {
		wantCounts[p.Category]++
	}
	if !reflect.DeepEqual(counts, wantCounts) {
		t.Errorf("categories %v, want %v", counts, wantCounts)
	}
	if !slices.IsSorted(names) {
		t.Errorf("categories in the order %v, want by name", names)
	}
	sum := 0
	for name, count := range counts {
		wantPage(t, s.get("/api/products?limit=100&category="+url.QueryEscape(name), ""), 1, 100, count)
		sum += count
	}
	if sum != n {
		t.Errorf("the categories count %d products, the listing %d", sum, n)
	}

	// Bad parameters: one 422 naming each.
	for query, fields := range map[string][]string{
		"limit=101":                           {"limit"},
		"limit=0":                             {"limit"},
		"page=0":                              {"page"},
		"limit=many":                          {"limit"},
		"sort=cheapest":                       {"sort"},
		"sort=-name":                          {"sort"},
		"sort=PRICE":                          {"sort"},
		"min_price=abc":                       {"min_price"},
		"max_price=-1":                        {"max_price"},
		"min_price=1.234":                     {"min_price"},
		"min_price=50&max_price=10":           {"max_price"},
		"vendor_id=vendor-1":                  {"vendor_id"},
		"vendor_id=1234":                      {"vendor_id"},
		"limit=500&sort=x&min_price=a&page=0": {"limit", "sort", "min_price", "page"},
		"q=" + strings.Repeat("x", 101):       {"q"},
	} {
		wantFieldErrors(t, s.get("/api/products?"+query, ""), fields...)
	}

	// Another vendor's product: vendor_id tells the two apart.
	admin := s.admin()
	other := s.newUser(admin, "listing-vendor", "vendor")
	created := want(t, s.post("/api/products", other.token, map[string]any{
		"sku": "LISTING-HUB-1", "name": "USB-C Hub", "description": "Seven ports", "price": json.Number("49.00"),
		"category": "electronics", "quantity": 4,
	}), http.StatusCreated)
	r := s.fresh("/api/products?vendor_id="+other.id, "", created)
	wantPage(t, r, 1, 10, 1)
	if got := skus(items(t, r)); !slices.Equal(got, []string{"LISTING-HUB-1"}) {
		t.Errorf("vendor_id of the new vendor lists %v", got)
	}
	wantPage(t, s.fresh("/api/products?vendor_id="+demoVendor.id, "", created), 1, 10, n)
	r = s.fresh("/api/products", "", created)
	wantPage(t, r, 1, 10, n+1)
	if got := skus(items(t, r)); len(got) == 0 || got[0] != "LISTING-HUB-1" {
		t.Errorf("newest first starts with %v, want the new product", got)
	}
	if got := skus(items(t, s.get("/api/products?q=usb-c&sort=name", ""))); !slices.Equal(got, []string{"DEMO-MONITOR-27", "DEMO-KEYBOARD", "LISTING-HUB-1"}) {
		t.Errorf("q=usb-c&sort=name lists %v, want the monitor, the keyboard and the hub", got)
	}
	counts, _ = categoryCounts(t, s.fresh("/api/products/categories", "", created))
	if counts["electronics"] != wantCounts["electronics"]+1 {
		t.Errorf("electronics counts %d after a new one, want %d", counts["electronics"], wantCounts["electronics"]+1)
	}

	// sort=name ignores case: a lower-case name sorts among the others,
	// not after every capital.
	lower := want(t, s.post("/api/products", other.token, map[string]any{
		"sku": "LISTING-AARDVARK", "name": "aardvark lamp", "price": json.Number("5.00"), "category": "home", "quantity": 1,
	}), http.StatusCreated)
	r = s.fresh("/api/products?sort=name&limit=3", "", lower)
	wantPage(t, r, 1, 3, n+2)
	if got := skus(items(t, r)); !slices.Equal(got, []string{"DEMO-MONITOR-27", "LISTING-AARDVARK", "DEMO-DUMBBELLS"}) {
		t.Errorf("sort=name starts with %v, want [DEMO-MONITOR-27 LISTING-AARDVARK DEMO-DUMBBELLS] (27\", aardvark, Adjustable)", got)
	}

	// A position token that does not parse is a 400, here as elsewhere.
	wantProblem(t, s.get("/api/products", "", "X-Min-Position", "abc"), http.StatusBadRequest)
	wantProblem(t, s.get("/api/products/categories", "", "X-Min-Position", "1"), http.StatusBadRequest)
}

// productKeys are the members of the product shape in API.md.
var productKeys = []string{"id", "sku", "name", "description", "price", "vendor_id", "category", "images",
	"inventory", "metadata", "created_at", "updated_at", "version"}

// wantProductShape checks p has every member of API.md's product shape,
// each of its type.
func wantProductShape(t *testing.T, what string, p map[string]any) {
	t.Helper()
	for _, k := range productKeys {
		if _, ok := p[k]; !ok {
			t.Errorf("%s: no %q member in %v", what, k, p)
		}
	}
	for _, k := range []string{"id", "sku", "name", "description", "vendor_id", "category"} {
		if _, ok := p[k].(string); !ok {
			t.Errorf("%s: %s %v is not a string", what, k, p[k])
		}
	}
	wantUUID(t, what+" id", str(p, "id"))
	wantUUID(t, what+" vendor_id", str(p, "vendor_id"))
	if n, ok := p["price"].(json.Number); !ok || !moneyPattern.MatchString(n.String()) {
		t.Errorf("%s: price %v is not a number with two decimals", what, p["price"])
	}
	if _, ok := p["images"].([]any); !ok {
		t.Errorf("%s: images %v is not an array", what, p["images"])
	}
	if _, ok := p["metadata"].(map[string]any); !ok {
		t.Errorf("%s: metadata %v is not an object", what, p["metadata"])
	}
	inv := obj(t, p["inventory"], what+" inventory")
	for _, k := range []string{"quantity", "reserved", "available"} {
		if n, ok := inv[k].(json.Number); !ok {
			t.Errorf("%s: inventory.%s %v is not a number", what, k, inv[k])
		} else if _, err := n.Int64(); err != nil {
			t.Errorf("%s: inventory.%s %v is not a whole number", what, k, n)
		}
	}
	if _, ok := inv["warehouse"].(string); !ok {
		t.Errorf("%s: inventory.warehouse %v is not a string", what, inv["warehouse"])
	}
	wantTime(t, what+" created_at", p["created_at"])
	wantTime(t, what+" updated_at", p["updated_at"])
	if v, ok := p["version"].(json.Number); !ok {
		t.Errorf("%s: version %v is not a number", what, p["version"])
	} else if _, err := v.Int64(); err != nil {
		t.Errorf("%s: version %v is not a whole number", what, v)
	}
}

// inventoryOf reads a product answer's inventory.
func inventoryOf(t *testing.T, p map[string]any) stock {
	t.Helper()
	inv := obj(t, p["inventory"], "inventory")
	return stock{int64(num(t, inv["quantity"])), int64(num(t, inv["reserved"])), int64(num(t, inv["available"]))}
}

// etagOf is the ETag a product answer must carry: its version, quoted.
func etagOf(t *testing.T, p map[string]any) string {
	t.Helper()
	return strconv.Quote(strconv.FormatInt(int64(num(t, p["version"])), 10))
}

// waitCatalog waits until the write side holds product id at stock
// expect (s.waitStock, as u, its vendor or an admin), then polls GET
// /api/products/{id} until it shows that stock at the write side's
// version, or fails after within. For stock moved after a command's
// X-Event-Position (see TestE2ECatalogStockReadYourWrites); the version
// tells apart equal stock at different points of the stream.
func (s *server) waitCatalog(u *account, id string, expect stock, within time.Duration) {
	s.t.Helper()
	s.waitStock(u, id, expect, within)
	w := want(s.t, s.do(http.MethodPatch, "/api/products/"+id, u.token, map[string]any{}), http.StatusOK)
	version := num(s.t, w.body["version"])
	deadline := time.Now().Add(within)
	for {
		r := s.get("/api/products/"+id, "")
		if r.status == http.StatusOK && inventoryOf(s.t, r.body) == expect && num(s.t, r.body["version"]) == version {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("catalogue: %s after %s, want inventory %+v at version %v", r, within, expect, version)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// TestE2ECatalogProduct: one product through its life, each write read
// back through GET /api/products/{id} with X-Min-Position: listed, patched,
// restocked, reserved by an order, released, discontinued.
func TestE2ECatalogProduct(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "catalog-vendor", "vendor")
	customer := s.newUser(admin, "catalog-customer")
	catA, catB := "cat-"+uuid.NewString()[:8], "cat-"+uuid.NewString()[:8]

	created := want(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": "CAT-LAMP-" + strings.ToUpper(uuid.NewString()[:6]), "name": "Paper Lamp", "description": "Folded by hand",
		"price": json.Number("24.5"), "category": catA, "images": []string{"https://img.example/lamp.png"},
		"metadata": map[string]any{"color": "white", "size": map[string]any{"cm": 30}}, "quantity": 10, "warehouse": "eu-2",
	}), http.StatusCreated)
	id := str(created.body, "id")

	// Visible at once with X-Min-Position, without a token, in the shape
	// the command answered with.
	got := want(t, s.fresh("/api/products/"+id, "", created), http.StatusOK)
	wantProductShape(t, "GET product", got.body)
	if !reflect.DeepEqual(got.body, created.body) {
		t.Errorf("GET after create:\n got %s\nwant %s", got.raw, created.raw)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	wantMoney(t, "price", got.body["price"], "24.50")
	if str(got.body, "vendor_id") != vendor.id {
		t.Errorf("vendor_id %q, want the vendor %s", str(got.body, "vendor_id"), vendor.id)
	}
	if inv := obj(t, got.body["inventory"], "inventory"); inventoryOf(t, got.body) != (stock{10, 0, 10}) || str(inv, "warehouse") != "eu-2" {
		t.Errorf("inventory %v, want quantity 10, reserved 0, available 10, warehouse eu-2", inv)
	}
	if imgs, _ := got.body["images"].([]any); !slices.Equal(imgs, []any{"https://img.example/lamp.png"}) {
		t.Errorf("images %v", got.body["images"])
	}
	if meta := obj(t, got.body["metadata"], "metadata"); !reflect.DeepEqual(meta, map[string]any{"color": "white", "size": map[string]any{"cm": json.Number("30")}}) {
		t.Errorf("metadata %v", meta)
	}

	// The ETag is the version; a client holding it gets 304.
	etag := got.header.Get("ETag")
	if etag != etagOf(t, got.body) || etag != created.header.Get("ETag") {
		t.Errorf("ETag %q, want the version %s, as the command said (%q)", etag, etagOf(t, got.body), created.header.Get("ETag"))
	}
	if r := s.get("/api/products/"+id, "", "If-None-Match", etag); r.status != http.StatusNotModified || len(r.raw) != 0 {
		t.Errorf("If-None-Match %s: %s, want 304 without a body", etag, r)
	} else if r.header.Get("ETag") != etag {
		t.Errorf("304 with ETag %q, want %q", r.header.Get("ETag"), etag)
	}
	if r := s.get("/api/products/"+id, "", "If-None-Match", `"999"`); r.status != http.StatusOK {
		t.Errorf("If-None-Match of another version: %s, want 200", r)
	}

	// Listed, and counted in its category.
	r := s.fresh("/api/products?category="+catA, "", created)
	wantPage(t, r, 1, 10, 1)
	if l := items(t, r); len(l) != 1 || !reflect.DeepEqual(l[0], got.body) {
		t.Errorf("the listing of %s holds %v, want the product as GET shows it", catA, r.raw)
	}
	if counts, _ := categoryCounts(t, s.fresh("/api/products/categories", "", created)); counts[catA] != 1 {
		t.Errorf("categories %v, want %s: 1", counts, catA)
	}

	// A PATCH shows up: the fields, a new version, the listing found by the
	// new name and in the new category only.
	patched := want(t, s.do(http.MethodPatch, "/api/products/"+id, vendor.token, map[string]any{
		"name": "Rice Paper Lamp", "description": "Folded by hand in Kyoto", "price": json.Number("31.00"), "category": catB,
	}), http.StatusOK)
	got = want(t, s.fresh("/api/products/"+id, "", patched, "If-None-Match", etag), http.StatusOK)
	if !reflect.DeepEqual(got.body, patched.body) {
		t.Errorf("GET after PATCH:\n got %s\nwant %s", got.raw, patched.raw)
	}
	if str(got.body, "name") != "Rice Paper Lamp" || str(got.body, "description") != "Folded by hand in Kyoto" || str(got.body, "category") != catB {
		t.Errorf("after PATCH: %s", got.raw)
	}
	wantMoney(t, "price after PATCH", got.body["price"], "31.00")
	if num(t, got.body["version"]) <= num(t, created.body["version"]) || got.header.Get("ETag") == etag {
		t.Errorf("after PATCH: version %v, ETag %q; before: %v, %q", got.body["version"], got.header.Get("ETag"), created.body["version"], etag)
	}
	if str(got.body, "created_at") != str(created.body, "created_at") || str(got.body, "updated_at") == str(created.body, "updated_at") {
		t.Errorf("after PATCH: created_at %s updated_at %s; at creation %s %s", str(got.body, "created_at"), str(got.body, "updated_at"),
			str(created.body, "created_at"), str(created.body, "updated_at"))
	}
	if got := ids(t, s.fresh("/api/products?q=rice+PAPER", "", patched)); !slices.Equal(got, []string{id}) {
		t.Errorf("q=rice PAPER lists %v, want [%s]", got, id)
	}
	if got := ids(t, s.get("/api/products?q="+url.QueryEscape("kyoto"), "")); !slices.Equal(got, []string{id}) {
		t.Errorf("q=kyoto (the new description) lists %v, want [%s]", got, id)
	}
	wantPage(t, s.get("/api/products?category="+catA, ""), 1, 10, 0)
	wantPage(t, s.get("/api/products?category="+catB+"&min_price=31&max_price=31", ""), 1, 10, 1)
	wantPage(t, s.get("/api/products?category="+catB+"&max_price=30.99", ""), 1, 10, 0)
	counts, _ := categoryCounts(t, s.fresh("/api/products/categories", "", patched))
	if _, ok := counts[catA]; ok || counts[catB] != 1 {
		t.Errorf("categories after the move %v, want %s: 1 and no %s", counts, catB, catA)
	}

	// Restocking.
	restocked := want(t, s.post("/api/products/"+id+"/inventory", vendor.token, map[string]any{"adjustment": 5, "reason": "delivery"}), http.StatusOK)
	got = want(t, s.fresh("/api/products/"+id, "", restocked), http.StatusOK)
	if inventoryOf(t, got.body) != (stock{15, 0, 15}) {
		t.Errorf("after +5: inventory %v, want 15/0/15", got.body["inventory"])
	}
	if !reflect.DeepEqual(got.body, restocked.body) {
		t.Errorf("GET after the adjustment:\n got %s\nwant %s", got.raw, restocked.raw)
	}
	shrunk := want(t, s.post("/api/products/"+id+"/inventory", admin.token, map[string]any{"adjustment": -3, "reason": "breakage"}), http.StatusOK)
	if got := want(t, s.fresh("/api/products/"+id, "", shrunk), http.StatusOK); inventoryOf(t, got.body) != (stock{12, 0, 12}) {
		t.Errorf("after −3: inventory %v, want 12/0/12", got.body["inventory"])
	}

	// An order reserves stock; its answer's position covers the
	// reservation.
	placed := want(t, s.placeOrder(customer, line{id, 4}), http.StatusCreated)
	got = want(t, s.fresh("/api/products/"+id, "", placed), http.StatusOK)
	if inventoryOf(t, got.body) != (stock{12, 4, 8}) {
		t.Errorf("after ordering 4: inventory %v, want quantity 12, reserved 4, available 8", got.body["inventory"])
	}
	r = s.fresh("/api/products?category="+catB, "", placed)
	if l := items(t, r); len(l) != 1 || inventoryOf(t, l[0]) != (stock{12, 4, 8}) {
		t.Errorf("listing after ordering 4: %s, want inventory 12/4/8", r.raw)
	}
	if num(t, got.body["version"]) <= num(t, shrunk.body["version"]) {
		t.Errorf("the reservation left the version at %v", got.body["version"])
	}
	// Cancelling gives it back, completing deducts it. Both are waited
	// for by polling: their X-Event-Position does not cover the stock
	// (TestE2ECatalogStockReadYourWrites).
	want(t, s.cancel(customer, str(placed.body, "id"), map[string]any{"reason": "changed my mind"}), http.StatusOK)
	s.waitCatalog(vendor, id, stock{12, 0, 12}, 10*time.Second)
	second := s.order(customer, line{id, 2})
	want(t, s.pay(customer, second, goodCard), http.StatusOK)
	want(t, s.complete(admin, second), http.StatusOK)
	s.waitCatalog(vendor, id, stock{10, 0, 10}, 10*time.Second)

	// Discontinued: gone from the product route, the listing and the
	// categories.
	before := want(t, s.get("/api/products/"+id, ""), http.StatusOK)
	gone := want(t, s.do(http.MethodDelete, "/api/products/"+id, vendor.token, nil), http.StatusNoContent)
	wantPosition(t, gone)
	wantProblem(t, s.fresh("/api/products/"+id, "", gone), http.StatusNotFound)
	wantProblem(t, s.get("/api/products/"+id, "", "If-None-Match", before.header.Get("ETag")), http.StatusNotFound)
	wantPage(t, s.fresh("/api/products?category="+catB, "", gone), 1, 10, 0)
	wantPage(t, s.fresh("/api/products?vendor_id="+vendor.id, "", gone), 1, 10, 0)
	if got := ids(t, s.fresh("/api/products?q=kyoto", "", gone)); len(got) != 0 {
		t.Errorf("q=kyoto lists %v after the discontinuation", got)
	}
	wantPage(t, s.fresh("/api/products", "", gone), 1, 10, len(demo.Catalogue))
	counts, _ = categoryCounts(t, s.fresh("/api/products/categories", "", gone))
	if _, ok := counts[catB]; ok {
		t.Errorf("categories %v still count %s after its one product was discontinued", counts, catB)
	}

	// A product listed without images or metadata has [] and {}.
	plain := want(t, s.post("/api/products", vendor.token, map[string]any{
		"sku": "CAT-PLAIN-" + strings.ToUpper(uuid.NewString()[:6]), "name": "Plain", "price": json.Number("1"), "quantity": 0,
	}), http.StatusCreated)
	got = want(t, s.fresh("/api/products/"+str(plain.body, "id"), "", plain), http.StatusOK)
	wantProductShape(t, "plain product", got.body)
	if imgs, ok := got.body["images"].([]any); !ok || len(imgs) != 0 {
		t.Errorf("images of a product listed without any: %v, want []", got.body["images"])
	}
	if meta, ok := got.body["metadata"].(map[string]any); !ok || len(meta) != 0 {
		t.Errorf("metadata of a product listed without any: %v, want {}", got.body["metadata"])
	}
	if inventoryOf(t, got.body) != (stock{}) {
		t.Errorf("inventory of a product of quantity 0: %v", got.body["inventory"])
	}

	// Unknown ids are 404 problems.
	for _, unknown := range []string{uuid.NewString(), "not-a-uuid"} {
		wantProblem(t, s.get("/api/products/"+unknown, ""), http.StatusNotFound)
	}
}

// positionedEvent is a stored event with its position in the global log.
type positionedEvent struct {
	typ   string
	order string // data.order_id, for the inventory events
	pos   eventstore.Position
}

// productLog reads the events of product id's stream with their
// positions, straight from the event table (see s.events for why).
func (s *server) productLog(id string) []positionedEvent {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(ctx)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT type, coalesce(data->>'order_id', ''), tx_id, id FROM eventstore.events
		WHERE stream_id = $1 ORDER BY version`, "product-"+id)
	if err != nil {
		s.t.Fatalf("read the event store: %v", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (positionedEvent, error) {
		var e positionedEvent
		var tx, seq int64
		err := row.Scan(&e.typ, &e.order, &tx, &seq)
		e.pos = eventstore.Position{Commit: uint64(tx), Prepare: uint64(seq)}
		return e, err
	})
	if err != nil {
		s.t.Fatalf("read the event store: %v", err)
	}
	return evs
}

// TestE2ECatalogStockReadYourWrites: the stock a command moves is part of
// what it wrote, so its X-Event-Position must cover those writes too: a
// client reading the product with X-Min-Position right after cancelling or
// completing an order sees the stock released or deducted, or gets
// X-Stale. Placing and cancelling a paid order do; cancelling a pending
// order and completing one do not (see the report).
func TestE2ECatalogStockReadYourWrites(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "ryw-vendor", "vendor")
	customer := s.newUser(admin, "ryw-customer")
	id := s.product(vendor, 20, "4.00")

	// covered checks that the stock event typ the command answered by r
	// made for order lies at or before r's X-Event-Position, and that the
	// catalogue read with that position shows expect.
	covered := func(what string, r *response, order, typ string, expect stock) {
		t.Helper()
		token, err := eventstore.ParsePosition(r.header.Get("X-Event-Position"))
		if err != nil {
			t.Fatalf("%s: X-Event-Position %q: %v", what, r.header.Get("X-Event-Position"), err)
		}
		var found bool
		for _, e := range s.productLog(id) {
			if e.typ != typ || e.order != order {
				continue
			}
			found = true
			if token.Less(e.pos) {
				t.Errorf("%s answered X-Event-Position %s, before its own %s at %s: X-Min-Position does not wait for it",
					what, token, typ, e.pos)
			}
		}
		if !found {
			t.Fatalf("%s: no %s for order %s on the product's stream", what, typ, order)
		}
		got := s.fresh("/api/products/"+id, "", r)
		if inv := inventoryOf(t, want(t, got, http.StatusOK).body); inv != expect {
			t.Errorf("%s: GET /api/products/{id} with its X-Min-Position shows %+v, want %+v (and no X-Stale)", what, inv, expect)
		}
	}

	placed := want(t, s.placeOrder(customer, line{id, 3}), http.StatusCreated)
	pending := str(placed.body, "id")
	covered("POST /api/orders", placed, pending, "inventory.reserved", stock{20, 3, 17})
	covered("POST /api/orders/{id}/cancel of a pending order",
		want(t, s.cancel(customer, pending, nil), http.StatusOK), pending, "inventory.released", stock{20, 0, 20})

	paid := s.order(customer, line{id, 2})
	want(t, s.pay(customer, paid, goodCard), http.StatusOK)
	covered("POST /api/orders/{id}/cancel of a paid order",
		want(t, s.cancel(customer, paid, nil), http.StatusOK), paid, "inventory.released", stock{20, 0, 20})

	done := s.order(customer, line{id, 5})
	want(t, s.pay(customer, done, goodCard), http.StatusOK)
	covered("POST /api/orders/{id}/complete",
		want(t, s.complete(admin, done), http.StatusOK), done, "inventory.deducted", stock{15, 0, 15})
}
