package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/eventshop/eventshop/published/consume"
)

// consumeCommand is the consume subcommand: a downstream consumer of the
// event topics (published/consume) on KAFKA_BROKERS, or the local run's
// broker on KAFKA_ADDR.
func consumeCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	o, err := consume.ParseArgs(args, stderr)
	if err != nil {
		return err
	}
	o.Brokers = cfg.brokers()
	return consume.Run(ctx, o, stdout, log)
}
