package gateway

import (
	"fmt"
	"net/http"

	"github.com/eventshop/eventshop/internal/edge/problem"
)

// limitBody is the outer guard on request bodies, for every route: a body
// declared larger than the limit (Content-Length) is answered 413 before
// any handler runs, and any other body is wrapped in http.MaxBytesReader,
// so a handler reading past the limit gets an *http.MaxBytesError (the
// write API's decoder, and the idempotency middleware, answer that with
// 413) and the connection is closed after the answer.
//
// The write API keeps its own 1 MiB MaxBytesReader as the inner guard, for
// when it is mounted without the gateway; with the default limit the two
// agree, and with a smaller one the gateway's trips first.
func (g *Gateway) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > g.maxBody {
			problem.Write(w, problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", g.maxBody)))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, g.maxBody)
		}
		next.ServeHTTP(w, r)
	})
}
