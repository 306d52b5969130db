package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/eventshop/eventshop/internal/platform/cli"
	"github.com/eventshop/eventshop/notifications/dlq"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// dlqCommand is the dlq subcommand; replay (notifications/dlq) is its
// only subcommand.
func dlqCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "replay" {
		return dlqReplay(ctx, cfg, log, args[1:], stdout, stderr)
	}
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, "eventshop dlq: name a subcommand\n\n")
	case args[0] == "-h" || args[0] == "--help" || args[0] == "help":
		_, _ = dlq.ParseArgs([]string{"-h"}, stderr)
		return nil
	default:
		fmt.Fprintf(stderr, "eventshop dlq: unknown subcommand %q\n\n", args[0])
	}
	_, _ = dlq.ParseArgs([]string{"-h"}, stderr)
	return cli.ErrUsage
}

// dlqReplay is dlq replay, with the ledger on DATABASE_URL and Kafka on
// KAFKA_BROKERS or the local run's broker.
func dlqReplay(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	dc, err := dlq.ParseArgs(args, stderr)
	if err != nil {
		return err
	}
	dc.Brokers = cfg.brokers()
	dc.Logger = log.With("brokers", strings.Join(dc.Brokers, ","))

	// The ledger alone (one statement at a time, and a spare): no event
	// store, no broker of its own.
	if dc.Ledger, err = ledger.Open(ctx, cfg.DatabaseURL, 2); err != nil {
		return fmt.Errorf("notification ledger on DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	defer dc.Ledger.Close()
	res, err := dlq.Replay(ctx, dc)
	// What was done is said even when the replay stopped early: it is
	// committed, and the next replay goes on from there.
	if err == nil || res != (dlq.Result{}) {
		fmt.Fprintln(stdout, res)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("dlq replay interrupted: %w", err)
	}
	return err // Replay's errors say "dlq: " and what failed
}
