package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// unmatched is the route label of a request no route matched (a 404 of
// the router), so that probes of random paths add no series.
const unmatched = "unmatched"

// Middleware counts and times every request by its method and chi route
// pattern (/api/orders/{id}, never the path itself, which would make a
// series per order), and counts each command by its outcome.
//
// A command is a POST, PUT, PATCH or DELETE on a route: that is every
// command of the write API, plus sign-in, refresh and sign-out. It is
// named by method and route ("POST /api/orders/{id}/pay") and its outcome
// is read off the status: ok for 2xx and 3xx, rejected for 4xx (refused
// by a rule, the caller's roles or the input), error for 5xx. Counting at
// the HTTP edge needs no hook in the command handler and counts exactly
// what clients asked for.
//
// Install it with Use on the chi router, not around it: the route pattern
// is read from the router's context once the handler has run.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)

		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = unmatched
		}
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK // nothing written: net/http answers 200
		}
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		if route != unmatched && isCommand(r.Method) {
			m.commands.WithLabelValues(method+" "+route, outcome(status)).Inc()
		}
	})
}

// methodLabel is the method as a label: one of the standard methods, else
// "other", so that made-up methods add no series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

func isCommand(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// outcome is a command's outcome by its status code.
func outcome(status int) string {
	switch {
	case status >= 500:
		return "error"
	case status >= 400:
		return "rejected"
	}
	return "ok"
}
