package main

import (
	"context"
	_ "embed"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/eventshop/eventshop/internal/platform/cli"
	"github.com/eventshop/eventshop/internal/standins"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	"github.com/eventshop/eventshop/projections/replay"
)

//go:embed usage/replay.txt
var replayUsage string

// replayCommand is the replay subcommand: it builds the projector's
// runners (with the Kafka publisher only when it is named) and hands them
// to projections/replay.
func replayCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("replay", replayUsage, stderr)
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
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := cli.Check("replay", fs).Err(); err != nil {
		return err
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
	if cfg.MongoURL == "" && standins.Up(cfg.MongoAddr) {
		cfg.MongoURL = "mongodb://" + cfg.MongoAddr + "/"
	}
	if publish && len(cfg.KafkaBrokers) == 0 && standins.Up(cfg.KafkaAddr) {
		cfg.KafkaBrokers = []string{cfg.KafkaAddr}
	}
	return cfg
}
