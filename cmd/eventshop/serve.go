package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/internal/problem"
	"github.com/eventshop/eventshop/writeapi"
)

// serve runs the HTTP server, and the order process manager, until ctx
// ends, then drains it. local is the local run (`eventshop serve`): it
// seeds the demo data once and may make its own JWT secret.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer, local bool) error {
	a, err := buildApp(ctx, cfg, log, local)
	if err != nil {
		return err
	}
	defer a.Close()
	if local {
		if err := seed(ctx, a.cmd, cfg, log); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           routes(a, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "eventshop is up:\n  api        %s/api\n  health     %s/healthz\n  readiness  %s/readyz\n", base, base, base)
	log.Info("listening", "addr", ln.Addr().String(), "eventstore", redactURL(cfg.EventStoreURL))

	pmCtx, stopPM := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { runProcessManager(pmCtx, a, log) })
	defer func() { stopPM(); wg.Wait() }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// runProcessManager keeps the order process manager running, starting it
// again with backoff when its subscription fails (the store went away).
func runProcessManager(ctx context.Context, a *app, log *slog.Logger) {
	wait := time.Second
	for ctx.Err() == nil {
		err := a.pm.Run(ctx)
		if ctx.Err() != nil {
			return
		}
		log.Error("order process manager stopped; restarting", "err", err, "in", wait.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func routes(a *app, log *slog.Logger) http.Handler {
	r := chi.NewRouter()
	r.Use(writeapi.Middleware(log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusMethodNotAllowed, "this route does not take "+r.Method))
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks, ok := map[string]string{"eventstore": "ok", "redis": "ok"}, true
		if err := a.store.Ping(ctx); err != nil {
			log.WarnContext(ctx, "readiness: event store", "err", err)
			checks["eventstore"], ok = "unreachable", false
		}
		if err := a.redis.Ping(ctx).Err(); err != nil {
			log.WarnContext(ctx, "readiness: redis", "err", err)
			checks["redis"], ok = "unreachable", false
		}
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{
				"type": "about:blank", "title": "Service Unavailable", "status": http.StatusServiceUnavailable,
				"detail": "a dependency is not ready", "checks": checks,
			})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "checks": checks})
	})
	a.api.Routes(r)
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
