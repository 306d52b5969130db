package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/eventshop/eventshop/published"
	"github.com/eventshop/eventshop/published/consume"
)

// consumeCommand is the consume subcommand: a downstream consumer of the
// event topics (published/consume) on KAFKA_BROKERS, or the local run's
// broker on KAFKA_ADDR.
func consumeCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	o, err := parseConsume(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	o.Brokers = cfg.KafkaBrokers
	if len(o.Brokers) == 0 {
		o.Brokers = []string{cfg.KafkaAddr} // the local run's embedded broker
	}
	return consume.Run(ctx, o, stdout, log)
}

func parseConsume(args []string, stderr io.Writer) (consume.Options, error) {
	fs := flag.NewFlagSet("eventshop consume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o consume.Options
	topics := fs.String("topics", strings.Join(published.Topics(), ","), "comma-separated `topics` to read")
	fs.StringVar(&o.Group, "group", "", "consume as consumer group `name`, committing after each printed message")
	fs.BoolVar(&o.FromBeginning, "from-beginning", false,
		"start at the first offset (with --group: where the group has no committed offset); otherwise at the end")
	fs.IntVar(&o.Max, "max", 0, "exit after `n` messages (0: no limit)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "exit after `duration` without a message (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, errUsage // the flag package has said what is wrong
	}
	var bad []string
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.Topics = append(o.Topics, t)
		}
	}
	if len(o.Topics) == 0 {
		bad = append(bad, "--topics: name at least one topic")
	}
	if o.Max < 0 {
		bad = append(bad, "--max: want 0 or more")
	}
	if o.Timeout < 0 {
		bad = append(bad, "--timeout: want 0 or a positive duration")
	}
	if len(bad) > 0 {
		return o, fmt.Errorf("consume: %s", strings.Join(bad, "; "))
	}
	return o, nil
}
