package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	"github.com/eventshop/eventshop/projections/replay"
)

const replayUsage = `Usage: eventshop replay [--projection NAME]... [--from-scratch]

Brings projections up to date with the event log, or with --from-scratch
rebuilds them from the first event, and exits when they have caught up.

A rebuild builds a shadow copy of each read model and swaps it in once it
has caught up, so a system that is serving keeps answering from the old
model meanwhile. When another process runs a projection, that process
carries out the rebuild and this command follows its progress.

Without --projection every read model is replayed (users.v1, orders.v1,
catalog.v1); the Kafka publisher (kafka.v1) is replayed only when named,
and --projection kafka.v1 --from-scratch publishes every event again.

Progress is a bar on a terminal and a line every few seconds otherwise.

MongoDB and Kafka are MONGO_URL and KAFKA_BROKERS; when they are not set,
the local run's embedded servers on MONGO_ADDR and KAFKA_ADDR are used if
they are up. With --embedded, stand-ins are started as the local run does
when they are not (its data: DATABASE_URL and DATA_DIR); without it, a
replay never writes to a stand-in by mistake.

Flags:
`

// replayCommand is the replay subcommand: it builds the projector's
// runners (with the Kafka publisher only when it is named) and hands them
// to projections/replay.
func replayCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	var names []string
	fs.Func("projection", "a projection to replay (repeat, or separate with commas)", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		return nil
	})
	fromScratch := fs.Bool("from-scratch", false, "rebuild from the first event into a shadow copy, then swap it in")
	embedded := fs.Bool("embedded", false, "start the local run's embedded MongoDB and Kafka stand-ins when they are not up")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	// Without names, every runner built is replayed: the read models,
	// since the publisher is built only when named.
	publish := slices.Contains(names, kafkapub.Name)
	// The local run's embedded servers are used when they are up.
	cfg = attachLocal(cfg, publish)
	a, err := buildApp(ctx, cfg, log, mode{local: *embedded, project: true, noPublish: !publish})
	if err != nil {
		return err
	}
	defer a.Close()
	runners := make([]replay.Runner, len(a.runners))
	for i, r := range a.runners {
		runners[i] = r
	}
	return replay.Run(ctx, replay.Config{
		Pool: a.pool, Store: a.store, Runners: runners, Names: names, All: a.projectionNames(),
		FromScratch: *fromScratch, Out: stdout,
	})
}

// attachLocal points the configuration at the local run's embedded
// servers when they are up and nothing else is configured, so a replay
// next to `make run` shares them instead of starting its own.
func attachLocal(cfg config, publish bool) config {
	up := func(addr string) bool {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if cfg.MongoURL == "" && up(cfg.MongoAddr) {
		cfg.MongoURL = "mongodb://" + cfg.MongoAddr + "/"
	}
	if publish && len(cfg.KafkaBrokers) == 0 && up(cfg.KafkaAddr) {
		cfg.KafkaBrokers = []string{cfg.KafkaAddr}
	}
	return cfg
}
