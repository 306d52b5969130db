package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/notifications/dlq"
	"github.com/eventshop/eventshop/notifications/notifier"
)

const dlqUsage = `Usage: eventshop dlq replay [--group NAME] [--settle-timeout D]

Replays the notifier's dead letters (` + notifier.DefaultDLQTopic + `) once the
cause of their failure is fixed: each failed notification of the event is
made claimable again in the ledger (DATABASE_URL), and the message is
published to ` + notifier.DefaultRetryTopic + `, which the running notifier reads
and mails from, once. Only the dead letters present when the command
starts and not replayed before by the group are replayed; it exits when
they are done, printing how many.

Kafka is KAFKA_BROKERS, default the local run's broker on KAFKA_ADDR.

Flags:
`

// dlqCommand is the dlq subcommand; replay is its only subcommand.
func dlqCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "replay":
		return dlqReplay(ctx, cfg, log, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		newDLQFlags(stderr).fs.Usage()
		return nil
	case "":
		fmt.Fprint(stderr, "eventshop dlq: name a subcommand\n\n")
	default:
		fmt.Fprintf(stderr, "eventshop dlq: unknown subcommand %q\n\n", sub)
	}
	newDLQFlags(stderr).fs.Usage()
	return errUsage
}

// dlqFlags are the flags of dlq replay.
type dlqFlags struct {
	fs     *flag.FlagSet
	group  *string
	settle *time.Duration
}

func newDLQFlags(stderr io.Writer) dlqFlags {
	fs := flag.NewFlagSet("eventshop dlq replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), dlqUsage); fs.PrintDefaults() }
	return dlqFlags{
		fs: fs,
		group: fs.String("group", dlq.DefaultGroupID,
			"the consumer group `name` whose committed offsets say which dead letters were replayed"),
		settle: fs.Duration("settle-timeout", dlq.DefaultSettleTimeout,
			"how long a dead letter waits for an attempt in flight on its event before it is replayed anyway"),
	}
}

// dlqReplay is dlq replay.
func dlqReplay(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	f := newDLQFlags(stderr)
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage // the flag package has said what is wrong
	}
	var bad []string
	if f.fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected arguments %q", f.fs.Args()))
	}
	if strings.TrimSpace(*f.group) == "" {
		bad = append(bad, "--group: name a consumer group")
	}
	if *f.settle <= 0 {
		bad = append(bad, "--settle-timeout: want a positive duration")
	}
	if len(bad) > 0 {
		return fmt.Errorf("dlq replay: %s", strings.Join(bad, "; "))
	}
	brokers := cfg.KafkaBrokers
	if len(brokers) == 0 {
		brokers = []string{cfg.KafkaAddr} // the local run's embedded broker
	}
	log = log.With("brokers", strings.Join(brokers, ","))

	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	pcfg.MaxConns = 2 // one statement at a time, and a spare
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	defer pool.Close()
	a := &app{pool: pool} // the ledger alone: no event store, no broker of its own
	if err := a.ensureLedger(ctx, cfg); err != nil {
		return err
	}

	res, err := dlq.Replay(ctx, dlq.Config{
		Brokers: brokers, GroupID: *f.group, Ledger: a.ledger, SettleTimeout: *f.settle, Logger: log,
	})
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
