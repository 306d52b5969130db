package readapi

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

// TestCatalogCache: the product routes serve a kept answer again, with
// the headers the handler set (not the request's own, such as its
// correlation id), until it expires; a read with X-Min-Position is
// answered from the model, as new as its token; and only 200s are kept.
func TestCatalogCache(t *testing.T) {
	ttl := time.Hour
	cs := newCatalogStack(t, pgCatalog(t), func(cfg *Config) { cfg.CatalogCacheTTL = ttl })
	id, _ := cs.create(commands.CreateProduct{SKU: "CACHE-1", Name: "Kept", Price: 100, Category: "cache"})
	cs.sync()
	paths := []string{"/api/products/" + id, "/api/products?category=cache", "/api/products/categories"}
	first := map[string]*struct{ body, etag, ctype string }{}
	for _, path := range paths {
		rec := cs.get(path, "X-Correlation-ID", "first-read")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		first[path] = &struct{ body, etag, ctype string }{rec.Body.String(), rec.Header().Get("ETag"), rec.Header().Get("Content-Type")}
	}

	price := domain.Cents(250)
	_, res, err := cs.cmd.Catalog.UpdateProduct(context.Background(), cs.vendor, id, commands.NoVersion, product.Update{Price: &price})
	if err != nil {
		t.Fatal(err)
	}
	cs.sync()
	for _, path := range paths {
		rec := cs.get(path, "X-Correlation-ID", "second-read")
		f := first[path]
		if rec.Code != http.StatusOK || rec.Body.String() != f.body || rec.Header().Get("ETag") != f.etag || rec.Header().Get("Content-Type") != f.ctype {
			t.Errorf("%s within the TTL: %d ETag %q %q, want the kept answer (ETag %q %q)", path, rec.Code,
				rec.Header().Get("ETag"), rec.Header().Get("Content-Type"), f.etag, f.ctype)
		}
		if got := rec.Header().Get("X-Correlation-ID"); got != "second-read" {
			t.Errorf("%s: X-Correlation-ID %q, want the request's own", path, got)
		}
	}
	// X-Min-Position reads the model.
	rec := cs.get("/api/products/"+id, "X-Min-Position", res.Position.String())
	if p := decodeBody[resource.Product](t, rec); rec.Code != http.StatusOK || p.Price != 250 {
		t.Errorf("with X-Min-Position: %d, price %d, want 250", rec.Code, p.Price)
	}
	if rec.Header().Get("ETag") == first[paths[0]].etag {
		t.Errorf("with X-Min-Position: the kept ETag %s", rec.Header().Get("ETag"))
	}
	// ... and a read after it without the header goes no further back.
	rec = cs.get("/api/products/" + id)
	if p := decodeBody[resource.Product](t, rec); rec.Code != http.StatusOK || p.Price != 250 {
		t.Errorf("after a read with X-Min-Position, one without: %d, price %d, want 250", rec.Code, p.Price)
	}

	// A 404 or a 422 is not kept.
	for _, path := range []string{"/api/products/" + uuid.NewString(), "/api/products?sort=nonsense"} {
		if rec := cs.get(path); rec.Code == http.StatusOK {
			t.Fatalf("%s: 200", path)
		}
		if u, _ := url.Parse(path); cs.reads.cache.lru.Contains(cacheKey(u)) {
			t.Errorf("%s: kept", path)
		}
	}
	if n := cs.reads.cache.lru.Len(); n != 1 {
		t.Errorf("%d answers kept, want 1 (the one read since the cache was emptied)", n)
	}
}

// TestCatalogCacheExpires: a kept answer goes after its TTL, and the next
// read sees the model as it is.
func TestCatalogCacheExpires(t *testing.T) {
	cs := newCatalogStack(t, pgCatalog(t), func(cfg *Config) { cfg.CatalogCacheTTL = 50 * time.Millisecond })
	id, _ := cs.create(commands.CreateProduct{SKU: "CACHE-2", Name: "Brief", Price: 100})
	cs.sync()
	if rec := cs.get("/api/products/" + id); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	price := domain.Cents(300)
	if _, _, err := cs.cmd.Catalog.UpdateProduct(context.Background(), cs.vendor, id, commands.NoVersion, product.Update{Price: &price}); err != nil {
		t.Fatal(err)
	}
	cs.sync()
	for deadline := time.Now().Add(10 * time.Second); ; {
		rec := cs.get("/api/products/" + id)
		if p := decodeBody[resource.Product](t, rec); p.Price == 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kept answer outlived its TTL of 50ms by 10s")
		}
		<-time.After(10 * time.Millisecond)
	}
}
