package nginxtest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Upstream stands in for an address nginx proxies to: a reverse proxy to
// the real server that records every request it passes on, so a test can
// see which upstream nginx chose when several lead to one server.
type Upstream struct {
	// Addr is host:port, for a GATEWAY_* upstream variable.
	Addr string

	mu   sync.Mutex
	seen []string // "METHOD /path"
}

// NewUpstream starts an Upstream in front of target (http://host:port)
// until t ends. nginx's forwarding headers (X-Forwarded-For, -Proto,
// -Host) and Host reach target as nginx sent them.
func NewUpstream(t testing.TB, target string) *Upstream {
	t.Helper()
	to, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(to)
		r.Out.Host = r.In.Host
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
			r.Out.Header[h] = r.In.Header[h]
		}
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Method+" "+r.URL.Path)
		u.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.Addr = srv.Listener.Addr().String()
	return u
}

// Count is how many requests of "METHOD /path" the upstream passed on.
func (u *Upstream) Count(req string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, s := range u.seen {
		if s == req {
			n++
		}
	}
	return n
}

// Total is how many requests the upstream passed on.
func (u *Upstream) Total() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}
