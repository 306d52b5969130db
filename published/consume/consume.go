// Package consume is a downstream consumer of the published event topics,
// the one `eventshop consume` runs: it reads the topics, by partition or
// as a member of a consumer group, and writes one JSON object per message
// (Line), checking each value against the published-event contract.
//
// It stands beside package published, which stays a leaf: the Kafka
// client is imported here, not there.
package consume

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/platform/cli"
	"github.com/eventshop/eventshop/published"
)

// Options say what Run reads and when it stops.
type Options struct {
	// Brokers is the Kafka bootstrap list; required.
	Brokers []string
	// Topics are read; at least one.
	Topics []string
	// Group, when set, consumes as that consumer group, committing each
	// message after its line is written; otherwise every partition is
	// read with no group and nothing is committed.
	Group string
	// FromBeginning starts at the first offset (with a group: where it
	// has committed none); otherwise at the end.
	FromBeginning bool
	// Max ends Run after that many messages; 0: no limit.
	Max int
	// Timeout ends Run after that long without a message; 0: never.
	Timeout time.Duration
}

// Line is what Run writes for each message, as one line of JSON.
type Line struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers"`
	// Event is the CloudEvents envelope as published (checked with
	// published.Decode, written as is so that attributes added later are
	// shown too); null when the value is not an envelope.
	Event json.RawMessage `json:"event"`
	// Value and Error are set only when the value is not an envelope.
	Value string `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
}

// Run consumes o.Topics and writes a Line to out for each message. With a
// group it commits each message's offset only after its line is written,
// so a consumer that stops never skips a message it did not write; it may
// write the last one again. A value that is not an envelope is written
// with its error, and logged. Run returns nil when ctx ends, after o.Max
// messages, or after o.Timeout without a message; its errors say
// "consume: " and what failed (a missing topic, a fetch, the output, a
// commit).
func Run(ctx context.Context, o Options, out io.Writer, log *slog.Logger) error {
	log = log.With("component", "consume", "brokers", strings.Join(o.Brokers, ","))
	var src source
	if o.Group != "" {
		src = newGroupSource(o, log)
	} else {
		var err error
		if src, err = newPartitionSource(ctx, o, log); err != nil {
			return err
		}
	}
	defer src.close()
	log.Debug("consuming", "topics", o.Topics, "group", o.Group, "from_beginning", o.FromBeginning)

	for n := 0; o.Max == 0 || n < o.Max; n++ {
		m, err := fetch(ctx, src, o.Timeout)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			log.Debug("idle; exiting", "timeout", o.Timeout.String(), "messages", n)
			return nil
		case err != nil:
			return fmt.Errorf("consume: %w", err)
		}
		line, err := render(m)
		if err != nil {
			log.Error("message is not an event envelope", "topic", m.Topic, "partition", m.Partition,
				"offset", m.Offset, "error", err)
		}
		if _, err := out.Write(line); err != nil {
			return fmt.Errorf("consume: write output: %w", err)
		}
		if err := commit(ctx, src, m); err != nil {
			return fmt.Errorf("consume: commit %s/%d offset %d: %w", m.Topic, m.Partition, m.Offset, err)
		}
	}
	return nil
}

// commit commits m even when ctx has just ended: its line is written, and
// a commit skipped now would write it again on the next run.
func commit(ctx context.Context, src source, m kafka.Message) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return src.commit(ctx, m)
}

// fetch waits for the next message, up to timeout when it is positive.
func fetch(ctx context.Context, src source, timeout time.Duration) (kafka.Message, error) {
	if timeout <= 0 {
		return src.fetch(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return src.fetch(ctx)
}

// render returns m's output line. When m's value is not an envelope it
// still returns the line, with the value and the error in it, and the
// error.
func render(m kafka.Message) ([]byte, error) {
	out := Line{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key),
		Timestamp: m.Time.UTC(), Headers: make(map[string]string, len(m.Headers)), Event: json.RawMessage("null")}
	for _, h := range m.Headers {
		out.Headers[h.Key] = string(h.Value)
	}
	_, derr := published.Decode(m.Value)
	var compact bytes.Buffer
	if derr == nil {
		derr = json.Compact(&compact, m.Value)
	}
	if derr == nil {
		out.Event = compact.Bytes()
	} else {
		out.Value, out.Error = string(m.Value), derr.Error()
	}
	line, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode output line: %w", err)
	}
	return append(line, '\n'), derr
}

// ParseArgs reads the flags of `eventshop consume` into Options, every
// one but Brokers. It returns flag.ErrHelp for -h and cli.ErrUsage for a
// flag it cannot parse, both with the usage printed on stderr.
func ParseArgs(args []string, stderr io.Writer) (Options, error) {
	fs := cli.NewFlags("eventshop consume", "Usage: eventshop consume [flags]\n\nFlags:\n", stderr)
	var o Options
	topics := fs.String("topics", strings.Join(published.Topics(), ","), "comma-separated `topics` to read")
	fs.StringVar(&o.Group, "group", "", "consume as consumer group `name`, committing after each printed message")
	fs.BoolVar(&o.FromBeginning, "from-beginning", false,
		"start at the first offset (with --group: where the group has no committed offset); otherwise at the end")
	fs.IntVar(&o.Max, "max", 0, "exit after `n` messages (0: no limit)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "exit after `duration` without a message (0: never)")
	if err := cli.Parse(fs, args); err != nil {
		return o, err
	}
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.Topics = append(o.Topics, t)
		}
	}
	p := cli.Check("consume", fs)
	p.If(len(o.Topics) == 0, "--topics: name at least one topic")
	p.If(o.Max < 0, "--max: want 0 or more")
	p.If(o.Timeout < 0, "--timeout: want 0 or a positive duration")
	return o, p.Err()
}
