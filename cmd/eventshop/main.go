// Command eventshop is the eventshop backend: one binary whose subcommands
// run each part of the system. Configuration comes from the environment,
// read here and nowhere else.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventshop/eventshop/internal/platform/cli"
	"github.com/eventshop/eventshop/internal/platform/correlation"
	"github.com/eventshop/eventshop/internal/platform/environ"
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
		if !errors.Is(err, cli.ErrUsage) {
			fmt.Fprintln(os.Stderr, "eventshop:", err)
		}
		os.Exit(1)
	}
}

//go:embed usage/eventshop.txt
var usage string

// run is the whole program: main only wires the process to it, and tests
// call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	defer func() {
		if errors.Is(err, flag.ErrHelp) {
			err = nil // the usage asked for is printed
		}
	}()
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
	case "serve", "writeapi", "readapi", "projector", "notifier":
		return serve(ctx, cfg, log, stdout, modes[cmd])
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
		return cli.ErrUsage
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
	if err := a.cacheRoles(ctx, cfg); err != nil {
		return err
	}
	u, err := a.cmd.Users.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword, "Administrator")
	if err != nil {
		return fmt.Errorf("create-admin: %w", err)
	}
	fmt.Fprintf(stdout, "admin %s (%s) is ready\n", u.Email, u.ID)
	return nil
}

// redactURL shows a connection URL without its secrets.
var redactURL = environ.RedactURL
