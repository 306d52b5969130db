package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

// TestWaitCatalogueWaitsForTheSeed: the window does not start while a
// catalogue projection reports no lag but has not got past the last
// product seeded: a runner deep in a long batch reports nothing new, so
// its last report says "no lag" while the product documents are still
// being written.
func TestWaitCatalogueWaitsForTheSeed(t *testing.T) {
	var polls atomic.Int64
	const caughtUpAt = 3 // the poll from which catalog.v1 is past the seed
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/admin/projections", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		at := "5.5" // what it last reported, with lag 0: before the seed's end
		if polls.Add(1) >= caughtUpAt {
			at = "9.9"
		}
		fmt.Fprintf(w, `[{"name":"products.v1","position":"9.9","lag":0,"status":"live"},
			{"name":"catalog.v1","position":%q,"lag":0,"status":"live"},
			{"name":"orders.v1","position":"1.1","lag":0,"status":"live"}]`, at)
	})
	mux.HandleFunc("GET /api/products", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"items":[],"total":120}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(srv.URL, 2, 10*time.Second)
	defer c.close()
	a := &admin{c: c, token: "t"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.waitCatalogue(ctx, a, 100, eventstore.Position{Commit: 9, Prepare: 9}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := polls.Load(); n < caughtUpAt {
		t.Errorf("the wait ended after %d polls, while catalog.v1 was still before the last product seeded (it gets past it at poll %d)", n, caughtUpAt)
	}
}
