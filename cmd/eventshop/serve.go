package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/commands/demo"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/edge/problem"
	"github.com/eventshop/eventshop/internal/platform/retry"
	"github.com/eventshop/eventshop/projections"
)

// mode is what one process runs; each subcommand that serves is one.
type mode struct {
	// local is the local run: it seeds the demo data once and may make
	// its own JWT secret.
	local bool
	// write serves the write API and runs the order process manager.
	write bool
	// read serves the read API.
	read bool
	// project runs the projection runners and the Kafka publisher.
	project bool
	// noPublish leaves the Kafka publisher out of project.
	noPublish bool
	// notify runs the notifier: the consumer group that mails users
	// about their events.
	notify bool
}

// modes is the mode of each subcommand that serves.
var modes = map[string]mode{
	"serve":     {local: true, write: true, read: true, project: true, notify: true},
	"writeapi":  {write: true},
	"readapi":   {read: true},
	"projector": {project: true},
	"notifier":  {notify: true},
}

// serve runs the HTTP server, and the workers of m (the order process
// manager, the projection runners, the notifier), until ctx ends; then it
// drains the server first and stops the workers after, so no request in
// flight loses them. Every mode serves /healthz and /readyz.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer, m mode) error {
	a, err := buildApp(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer a.Close()
	if m.local {
		if err := demo.Seed(ctx, a.cmd.Users, a.cmd.Catalog, cfg.AdminEmail, cfg.AdminPassword, log); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
	}

	gw, err := newGateway(a, cfg, log)
	if err != nil {
		return err
	}

	if cfg.PprofAddr != "" {
		if err := edge.ServeProfiles(ctx, cfg.PprofAddr, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	a.banner(stdout, "http://"+ln.Addr().String(), m)
	log.Info("listening", "addr", ln.Addr().String(), "eventstore", redactURL(cfg.EventStoreURL),
		"write", m.write, "read", m.read, "project", m.project, "notify", m.notify)

	// The workers outlive ctx until the server has drained (the deferred
	// stop runs after Serve returns).
	defer a.startWorkers(ctx, log, m)()
	if err := edge.Serve(ctx, ln, routes(a, gw, log, m), cfg.ShutdownTimeout, log); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// banner is the start banner: where each part of m answers on base, and
// what the process connects to.
func (a *app) banner(stdout io.Writer, base string, m mode) {
	fmt.Fprintln(stdout, "eventshop is up:")
	if m.write || m.read {
		fmt.Fprintf(stdout, "  api        %s/api\n", base)
		fmt.Fprintf(stdout, "  docs       %s/docs (OpenAPI: %s/openapi.json)\n", base, base)
	}
	if m.read {
		fmt.Fprintf(stdout, "  admin      %s/api/admin/projections\n", base)
	}
	fmt.Fprintf(stdout, "  metrics    %s/metrics\n", base)
	fmt.Fprintf(stdout, "  health     %s/healthz\n  readiness  %s/readyz\n", base, base)
	if a.mongoURI != "" {
		fmt.Fprintf(stdout, "  mongodb    %s%s\n", redactURL(a.mongoURI), a.local.Mark("mongodb"))
	}
	if len(a.kafkaBrokers) > 0 {
		fmt.Fprintf(stdout, "  kafka      %s%s\n", strings.Join(a.kafkaBrokers, ","), a.local.Mark("kafka"))
	}
	if a.smtpAddr != "" {
		fmt.Fprintf(stdout, "  smtp       %s%s\n", a.smtpAddr, a.local.Mark("smtp"))
	}
	if a.local.Mail() != nil {
		fmt.Fprintf(stdout, "  mail       %s/dev/mail (what the SMTP sink received)\n", base)
	}
}

// startWorkers starts the workers of m on a context that ctx ending does
// not end, and returns what stops them and waits for them. The order
// process manager and the notifier start again, after 1 s doubling to
// 30 s, whenever they end early.
func (a *app) startWorkers(ctx context.Context, log *slog.Logger, m mode) (stop func()) {
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if m.write {
		// One process at a time runs the order process manager
		// (projections.Exclusive: the others wait to take over); its
		// subscription failing, or the lock lost, starts it again.
		wg.Go(func() {
			retry.Forever(wctx, log, "order process manager", time.Second, 30*time.Second, func(ctx context.Context) error {
				return projections.Exclusive(ctx, a.pool, commands.ProcessManagerLock, time.Second, log, a.pm.Run)
			})
		})
	}
	if m.notify {
		// The notifiers share the partitions of one consumer group.
		wg.Go(func() { retry.Forever(wctx, log, "notifier", time.Second, 30*time.Second, a.notifier.Run) })
	}
	if m.project {
		for _, rn := range a.runners {
			wg.Go(func() {
				if err := rn.Run(wctx); err != nil {
					log.Error("projection runner ended", "projection", rn.Status().Name, "err", err)
				}
			})
		}
	}
	return func() { stopWorkers(); wg.Wait() }
}

// newGateway is the gateway in front of every route (internal/edge/gateway),
// its admission control shown in /metrics; where an API is served (and so
// Redis is at hand), with the rate limits per client IP and CORS.
func newGateway(a *app, cfg config, log *slog.Logger) (g *gateway.Gateway, err error) {
	gc := cfg.Gateway
	// The interactive API reference loads its own scripts and styles.
	gc.PathCSP, gc.Observe = map[string]string{"/docs": gateway.DocsCSP}, a.metrics.Overload
	if a.redis == nil {
		gc.PerSecond, gc.Burst, gc.AuthPerMinute, gc.AllowedOrigins = 0, 0, 0, nil
		g, err = gateway.New(gc, nil, log)
	} else {
		g, err = gateway.New(gc, a.redis, log)
	}
	if err == nil {
		a.metrics.WatchAdmission(gateway.Classes, g.Occupancy)
	}
	return g, err
}

// routes is every route m serves, on one router (read and write routes
// share patterns: GET and POST /api/orders), behind the gateway.
func routes(a *app, gw *gateway.Gateway, log *slog.Logger, m mode) http.Handler {
	r := edge.NewRouter(edge.RootConfig{
		Metrics: a.metrics.Handler(), Measure: a.metrics.Middleware,
		Checks: a.readiness(), Docs: m.write || m.read, Log: log,
	})
	if mail := a.local.Mail(); mail != nil {
		// The local run's captured mail (only it starts the sink), to
		// this machine only: it holds every user's mail.
		r.Method(http.MethodGet, "/dev/mail", loopbackOnly(mail))
	}
	if m.write {
		a.api.Routes(r)
	}
	if m.read {
		a.reads.Routes(r, a.authenticate)
	}
	// The correlation id and panic recovery go outermost, so the
	// gateway's own answers (413, 429, 503) carry an X-Correlation-ID too.
	return edge.Middleware(log)(gw.Middleware(r))
}

// readiness is what /readyz checks: the event store, and each dependency
// this process was built with.
func (a *app) readiness() []edge.Check {
	checks := []edge.Check{{Name: "eventstore", Ping: a.store.Ping}}
	if a.redis != nil {
		checks = append(checks, edge.Check{Name: "redis", Ping: func(ctx context.Context) error { return a.redis.Ping(ctx).Err() }})
	}
	if a.pool != nil {
		checks = append(checks, edge.Check{Name: "readmodels", Ping: a.pool.Ping})
	}
	if a.catalog != nil {
		checks = append(checks, edge.Check{Name: "mongodb", Ping: a.catalog.Ping})
	}
	switch {
	case a.pub != nil:
		checks = append(checks, edge.Check{Name: "kafka", Ping: a.pub.Ping})
	case a.notifier != nil:
		checks = append(checks, edge.Check{Name: "kafka", Ping: a.notifier.Ping})
	}
	if a.sender != nil {
		checks = append(checks, edge.Check{Name: "smtp", Ping: a.sender.Ping})
	}
	return checks
}

// loopbackOnly serves h to clients connected from this machine (a
// loopback address, whatever forwarding headers say) and answers 404 to
// every other, as if the route were not there: a `serve` whose port is
// published (a container's default command) does not show its captured
// mail to the network.
func loopbackOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip, perr := netip.ParseAddr(host); err != nil || perr != nil || !ip.Unmap().IsLoopback() {
			problem.Write(w, problem.New(http.StatusNotFound, "no such route"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
