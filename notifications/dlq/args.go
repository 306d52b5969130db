package dlq

import (
	"io"
	"strings"

	"github.com/eventshop/eventshop/internal/platform/cli"
	"github.com/eventshop/eventshop/notifications/notifier"
)

// Usage is the usage of `eventshop dlq`, before its flags.
const Usage = `Usage: eventshop dlq replay [--group NAME] [--settle-timeout D]

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

// ParseArgs reads the flags of `eventshop dlq replay` into a Config's
// GroupID and SettleTimeout. It returns flag.ErrHelp for -h and
// cli.ErrUsage for a flag it cannot parse, both with the usage printed on
// stderr.
func ParseArgs(args []string, stderr io.Writer) (Config, error) {
	fs := cli.NewFlags("eventshop dlq replay", Usage, stderr)
	var c Config
	fs.StringVar(&c.GroupID, "group", DefaultGroupID,
		"the consumer group `name` whose committed offsets say which dead letters were replayed")
	fs.DurationVar(&c.SettleTimeout, "settle-timeout", DefaultSettleTimeout,
		"how long a dead letter waits for an attempt in flight on its event before it is replayed anyway")
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	p := cli.Check("dlq replay", fs)
	p.If(strings.TrimSpace(c.GroupID) == "", "--group: name a consumer group")
	p.If(c.SettleTimeout <= 0, "--settle-timeout: want a positive duration")
	return c, p.Err()
}
