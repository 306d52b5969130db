package gateway

import (
	"net/http"
	"sort"
	"strings"
)

// pathPolicy is a Content-Security-Policy for a path prefix.
type pathPolicy struct {
	prefix, policy string
}

// pathPolicies is m sorted longest prefix first, so the first match is the
// most specific. A trailing slash of a prefix is dropped: "/docs/" and
// "/docs" both cover /docs and /docs/....
func pathPolicies(m map[string]string) []pathPolicy {
	out := make([]pathPolicy, 0, len(m))
	for p, pol := range m {
		if p != "/" {
			p = strings.TrimSuffix(p, "/")
		}
		out = append(out, pathPolicy{prefix: p, policy: pol})
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
	return out
}

// secure sets the security headers of every response before the rest of
// the chain runs, so the gateway's own answers (413, 429, preflights) and
// every error carry them; a handler may still replace one for its own
// response.
func (g *Gateway) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", g.cspFor(r.URL.Path))
		if g.overTLS(r) {
			// Browsers ignore HSTS over plain HTTP, and sending it there
			// would only mislead.
			h.Set("Strict-Transport-Security", g.hsts)
		}
		next.ServeHTTP(w, r)
	})
}

// cspFor is the policy of path: the longest PathCSP prefix that covers it
// (the prefix itself, or the prefix and a slash), else CSP.
func (g *Gateway) cspFor(path string) string {
	for _, p := range g.pathCSP {
		if path == p.prefix || strings.HasPrefix(path, p.prefix+"/") || p.prefix == "/" {
			return p.policy
		}
	}
	return g.csp
}

// overTLS says whether r came over TLS: to this process, or, with
// TrustProxy, to the proxy in front, by the last X-Forwarded-Proto entry
// (the proxy's, as with X-Forwarded-For).
func (g *Gateway) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !g.trustProxy {
		return false
	}
	lines := r.Header.Values("X-Forwarded-Proto")
	if len(lines) == 0 {
		return false
	}
	entries := strings.Split(lines[len(lines)-1], ",")
	return strings.EqualFold(strings.TrimSpace(entries[len(entries)-1]), "https")
}
