// Command eventshop is the eventshop backend: one binary whose subcommands
// run each part of the system. Configuration comes from the environment,
// read here and nowhere else.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/eventshop/eventshop/internal/platform/correlation"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal starts a graceful shutdown; a second one kills.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "eventshop:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `eventshop: an event-sourced e-commerce backend

Usage: eventshop <command>

Commands:
  serve         the local run: write API, read API, order process manager,
                projections, notifier and health on HTTP_ADDR, with the
                demo data seeded once, and embedded MongoDB- and
                Kafka-protocol servers and an SMTP sink on MONGO_ADDR,
                KAFKA_ADDR and SMTP_SINK_ADDR unless MONGO_URL,
                KAFKA_BROKERS and SMTP_ADDR name real ones (captured
                mail at /dev/mail)
  writeapi      the write API and order process manager alone, for a
                deployment (JWT_SECRET required, nothing seeded)
  readapi       the read API alone (every GET, from the read models on
                DATABASE_URL and MONGO_URL), for a deployment
  projector     the projections that build the read models on
                DATABASE_URL and MONGO_URL and publish the log to Kafka
                (KAFKA_BROKERS), with health and metrics on HTTP_ADDR
  notifier      the notifier alone: a Kafka consumer group on the user
                and order topics (KAFKA_BROKERS) that emails users over
                SMTP_ADDR, once per event, recorded in the ledger on
                DATABASE_URL, with health and metrics on HTTP_ADDR
  create-admin  register ADMIN_EMAIL with ADMIN_PASSWORD (or take the
                existing user) and make it an admin, then exit
  migrate       apply the event store's migrations and create the
                PostgreSQL schemas on DATABASE_URL (read models,
                checkpoints, notification ledger), then exit
  replay        bring projections up to date with the log, or with
                --from-scratch rebuild them into a shadow copy swapped
                in when caught up, with progress; exits when done
                (eventshop replay -h for the flags)
  consume       a downstream consumer: read the event topics from Kafka
                (KAFKA_BROKERS, default the local run's broker on
                KAFKA_ADDR) and print one JSON object per message:
                {"topic", "partition", "offset", "key", "timestamp",
                "headers": {name: value}, "event": <CloudEvents envelope>}
                (a value that is not an envelope: "event": null, with
                "value" and "error"). Flags:
                  --topics a,b      topics (default the three event topics)
                  --group NAME      consume as group NAME, committing each
                                    message after it is printed
                  --from-beginning  start at the first offset (with a
                                    group: where it has committed none);
                                    otherwise at the end
                  --max N           exit after N messages
                  --timeout D       exit after D without a message
  dlq replay    put the notifier's dead letters (ecommerce.notifications.dlq)
                back on ecommerce.notifications.retry once their cause is
                fixed: their failed notifications are made sendable again
                in the ledger (DATABASE_URL) and the running notifier mails
                each once. Replays the dead letters there when it starts,
                then exits printing how many (KAFKA_BROKERS, default the
                local run's broker on KAFKA_ADDR). Flags:
                  --group NAME        consumer group recording what was
                                      replayed (default eventshop-dlq-replay)
                  --settle-timeout D  how long to wait for an attempt in
                                      flight on an event (default 2m)
  healthcheck   ask the process on HTTP_ADDR for /readyz (or the path
                given, such as /healthz) and exit 0 on 200: the health
                check of the container image, which has no shell
  help          show this text

Configuration is read from the environment; see the README.
`

// run is the whole program: main only wires the process to it, and tests
// call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
		return serve(ctx, cfg, log, stdout, modeServe)
	case "writeapi":
		return serve(ctx, cfg, log, stdout, modeWriteAPI)
	case "readapi":
		return serve(ctx, cfg, log, stdout, modeReadAPI)
	case "projector":
		return serve(ctx, cfg, log, stdout, modeProjector)
	case "notifier":
		return serve(ctx, cfg, log, stdout, modeNotifier)
	case "replay":
		return replayCommand(ctx, cfg, log, args[1:], stdout, stderr)
	case "create-admin":
		return createAdmin(ctx, cfg, log, stdout)
	case "migrate":
		return migrate(ctx, cfg, log)
	case "consume":
		return consumeCommand(ctx, cfg, log, args[1:], stdout, stderr)
	case "dlq":
		return dlqCommand(ctx, cfg, log, args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, cfg, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "eventshop: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(correlation.Handler{Handler: h}).With("service", "eventshop")
}

// createAdmin is the operator's way to the first admin outside the local
// run: nothing is created by default.
func createAdmin(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	if cfg.AdminEmail == "" || cfg.AdminPassword == "" {
		return errors.New("create-admin: set ADMIN_EMAIL and ADMIN_PASSWORD")
	}
	a, err := buildApp(ctx, cfg, log, mode{})
	if err != nil {
		return err
	}
	defer a.Close()
	u, err := a.cmd.Users.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword, "Administrator")
	if err != nil {
		return fmt.Errorf("create-admin: %w", err)
	}
	fmt.Fprintf(stdout, "admin %s (%s) is ready\n", u.Email, u.ID)
	return nil
}

// redactURL shows a connection URL without its password, in the user
// part or as a parameter, for logs and errors; what does not parse as a
// URL with a scheme is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return "(not a URL)"
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		for _, secret := range []string{"password", "secret", "token", "authmechanismproperties"} {
			if strings.Contains(lk, secret) {
				q.Set(k, "xxxxx")
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}
