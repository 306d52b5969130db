package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/docs"
	"github.com/eventshop/eventshop/internal/edge/problem"
)

// Check is one dependency /readyz asks: Ping fails when Name is not ready.
type Check struct {
	Name string
	Ping func(context.Context) error
}

// RootConfig is what the root router serves besides the route sets.
type RootConfig struct {
	// Metrics serves GET /metrics; Measure wraps every route to count it.
	Metrics http.Handler
	Measure func(http.Handler) http.Handler
	// Checks are /readyz's dependencies, reported in its answer by name.
	Checks []Check
	// Docs serves the OpenAPI document and the API reference.
	Docs bool
	// Log receives why a readiness check failed.
	Log *slog.Logger
}

// readyTimeout bounds the readiness checks of one /readyz.
const readyTimeout = 2 * time.Second

// NewRouter is the root router every process serves, on which the route
// sets mount theirs: 404 and 405 as problems, GET /healthz (the process
// runs), GET /readyz (every check passes; 503 naming the checks
// otherwise), GET /metrics, and the docs when cfg.Docs.
func NewRouter(cfg RootConfig) chi.Router {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := chi.NewRouter()
	if cfg.Measure != nil {
		r.Use(cfg.Measure)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r, req), ", "))
		problem.Write(w, problem.New(http.StatusMethodNotAllowed, "this route does not take "+req.Method))
	})
	if cfg.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", cfg.Metrics)
	}
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", ready(cfg.Checks, log))
	if cfg.Docs {
		docs.Routes(r) // GET /openapi.json, GET /docs, GET /docs/{file}
	}
	return r
}

// ready is GET /readyz: every check, each under one deadline.
func ready(checks []Check, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		states, ok := map[string]string{}, true
		for _, c := range checks {
			states[c.Name] = "ok"
			if err := c.Ping(ctx); err != nil {
				log.WarnContext(ctx, "readiness: "+c.Name, "err", err)
				states[c.Name], ok = "unreachable", false
			}
		}
		if !ok {
			p := problem.New(http.StatusServiceUnavailable, "a dependency is not ready")
			p.Extra = map[string]any{"checks": states}
			problem.Write(w, p)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "checks": states})
	}
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it
// stops accepting, lets the requests in flight finish within drain,
// closes the connections still open after it (a client sending its body
// slowly), and returns nil. Its server's timeouts bound what one slow
// client can hold.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, drain time.Duration, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("http shutdown: %w", err)
		}
		// A client still sending its body slowly, or a request that
		// outlived the drain: the budget is spent, so its connection is
		// cut and the shutdown goes on. That is the drain's purpose, not
		// a failure of the process.
		log.Warn("shutdown: connections still open after the drain; closing them", "drain", drain)
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Probe asks the process listening on addr for path and succeeds on 200:
// a health check for an image with no shell or curl. A wildcard listen
// address (0.0.0.0, ::) is asked on loopback.
func Probe(ctx context.Context, addr, path string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", path, resp.Status)
	}
	return nil
}

// allowed lists the methods mux serves on req's path, for the Allow header
// of a 405 (RFC 9110, section 15.5.6).
func allowed(mux *chi.Mux, req *http.Request) []string {
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if mux.Match(chi.NewRouteContext(), m, path) {
			out = append(out, m)
		}
	}
	return out
}
