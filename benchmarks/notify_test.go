package benchmarks_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/internal/testsupport/benchutil"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

const (
	// notifyEvents is the simulated log the notifier mails about: the
	// shop's opening (about 3,000 welcome mails) and some 4,000 orders.
	notifyEvents = 30_000
	// notifyGoal is the rate the notifier should reach into the local sink.
	notifyGoal = 2_000.0
	// notifyWithin bounds one case.
	notifyWithin = 5 * time.Minute
)

// mailedTypes are the event types that get a mail (see
// notifications/templates).
var mailedTypes = []string{user.Registered{}.EventType(), order.Created{}.EventType(), order.Paid{}.EventType(),
	order.Completed{}.EventType(), order.Cancelled{}.EventType()}

// BenchmarkNotifier measures how fast the notifier works through a
// backlog: a simulated log of notifyEvents events, published to the
// embedded Kafka-protocol broker by the Kafka publisher and projected
// into the user and order read models (where the notifier looks
// addresses and owners up), is mailed from its first message to its last
// by a notifier with 2 lanes (the default, as in `serve`) and with 8 (a
// notifier in processes of its own), through the PostgreSQL ledger, to
// the embedded SMTP sink the local run uses. The rate counts from the
// first mail recorded sent to the last, so the consumer group's join is
// left out.
//
// The raw baselines, in the same run and at the same concurrency: the same
// number of mails sent straight to the sink over kept connections (what
// SMTP and the sink cost), and the ledger's claim and mark of as many
// rows, one mail at a time (what the ledger's protocol costs unbatched).
func BenchmarkNotifier(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, false)
	sh := newShop(3, notifyEvents)
	writeLog(b, e.store.Pool(), sh.events)
	mails := 0
	for i := range sh.events {
		if slices.Contains(mailedTypes, sh.events[i].Type) {
			mails++
		}
	}

	broker := kafkatest.Start(b)
	pub, err := kafkapub.New(kafkapub.Config{Brokers: broker.Addrs(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	var models []*readModel
	var runners []*projections.Runner
	for _, p := range pgread.New(e.pool).Projections() {
		if p.Name() == (pgread.UsersProjection{}).Name() || p.Name() == (pgread.OrdersProjection{}).Name() {
			models = append(models, &readModel{name: p.Name(), filter: p.Filter()})
			runners = append(runners, projections.NewRunner(e.pool, e.store, p, runnerOptions()))
		}
	}
	models = append(models, &readModel{name: pub.Name(), filter: pub.Filter()})
	runners = append(runners, projections.NewSinkRunner(e.pool, e.store, pub, runnerOptions()))
	scanLog(b, e.store, models)
	for i, r := range runners {
		start(b, r)
		if err := waitApplied(r, models[i].last, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}

	sink, err := smtpsink.Start(smtpsink.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	led := ledger.New(e.pool)
	if err := led.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	render, err := templates.New(templates.Options{})
	if err != nil {
		b.Fatal(err)
	}
	nb := &notifyBench{e: e, sink: sink, ledger: led, render: render, brokers: broker.Addrs(), mails: mails}
	for _, lanes := range []int{notifier.DefaultLanes, 8} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) { nb.run(b, lanes) })
	}
	note("notifier: %d mails for a simulated log of %d events (%s); the raw baselines at the same concurrency: "+
		"the mails sent straight to the sink over kept connections, and the ledger's claim and mark of one mail at a time",
		mails, len(sh.events), sh.mix())
}

type notifyBench struct {
	e       *env
	sink    *smtpsink.Sink
	ledger  *ledger.Ledger
	render  *templates.Renderer
	brokers []string
	mails   int
}

// run mails the whole backlog b.N times, each time in a new consumer
// group on an empty ledger.
func (nb *notifyBench) run(b *testing.B, lanes int) {
	b.StopTimer()
	var rate, send, claim float64
	for range b.N {
		if _, err := nb.e.pool.Exec(context.Background(), "TRUNCATE notifications.ledger"); err != nil {
			b.Fatal(err)
		}
		took := nb.backlog(b, lanes)
		rate = float64(nb.mails-1) / took.Seconds()
		send = float64(nb.mails) / nb.rawSend(b, lanes).Seconds()
		claim = float64(nb.mails) / nb.rawLedger(b, lanes).Seconds()
	}
	b.ReportMetric(rate, "mails/s")
	b.ReportMetric(send, "raw_smtp_mails/s")
	b.ReportMetric(claim, "raw_ledger_rows/s")
	what := fmt.Sprintf("%d mails, %d lanes", nb.mails, lanes)
	record(line{group: "notifier", what: what + ", next to sending alone",
		measured: thousands(rate) + " mails/s", raw: thousands(send) + " mails/s", ratio: fmt.Sprintf("%.2f", rate/send),
		goal: fmt.Sprintf("≥ %s mails/s: %s", thousands(notifyGoal), verdict(rate >= notifyGoal))})
	record(line{group: "notifier", what: what + ", next to the ledger one mail at a time",
		measured: thousands(rate) + " mails/s", raw: thousands(claim) + " rows/s", ratio: fmt.Sprintf("%.2f", rate/claim)})
}

// backlog runs a notifier over the whole backlog and returns the time
// from its first mail recorded sent to its last.
func (nb *notifyBench) backlog(b *testing.B, lanes int) time.Duration {
	b.Helper()
	sender := nb.sender(b)
	defer sender.Close()
	var (
		sent, other atomic.Int64
		mu          sync.Mutex
		first, last time.Time
	)
	cfg := notifier.Config{
		Brokers: nb.brokers, GroupID: "bench-notifier-" + uuid.NewString(), Ledger: nb.ledger, Renderer: nb.render,
		Sender: sender, Lanes: lanes, Logger: quietLogger(),
		Observe: func(_, outcome string) {
			if outcome != notifier.OutcomeSent {
				other.Add(1)
				return
			}
			now := time.Now()
			mu.Lock()
			if first.IsZero() {
				first = now
			}
			last = now
			mu.Unlock()
			sent.Add(1)
		},
	}
	cfg.LookIn(pgread.New(nb.e.pool))
	n, err := notifier.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	before := nb.received()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	deadline := time.Now().Add(notifyWithin)
	tick := time.NewTicker(20 * time.Millisecond)
	for sent.Load() < int64(nb.mails) && other.Load() == 0 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			cancel()
			b.Fatalf("the notifier stopped after %d of %d mails: %v", sent.Load(), nb.mails, err)
		case <-tick.C:
		}
	}
	tick.Stop()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	switch {
	case other.Load() != 0:
		b.Fatalf("%d mails were not simply sent (retried, dead-lettered or duplicate)", other.Load())
	case sent.Load() != int64(nb.mails):
		b.Fatalf("%d of %d mails sent within %s", sent.Load(), nb.mails, notifyWithin)
	case nb.received()-before != nb.mails:
		b.Fatalf("the sink received %d mails, want %d", nb.received()-before, nb.mails)
	}
	return last.Sub(first)
}

// sender is a mail sender to the sink, as the notifier's, with the
// connections it keeps.
func (nb *notifyBench) sender(b *testing.B) *mail.Sender {
	s, err := mail.New(mail.Config{Addr: nb.sink.Addr(), From: "eventshop <no-reply@eventshop.test>"})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// received is how many mails the sink has received since it started (the
// id of the newest: it keeps only the newest thousand).
func (nb *notifyBench) received() int {
	msgs := nb.sink.Messages()
	if len(msgs) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(msgs[len(msgs)-1].ID)
	return n
}

// rawSend sends nb.mails mails like the notifier's (a confirmation, text
// and HTML) from lanes goroutines over one sender's kept connections.
func (nb *notifyBench) rawSend(b *testing.B, lanes int) time.Duration {
	b.Helper()
	sender := nb.sender(b)
	defer sender.Close()
	msg := mail.Message{To: "Ada <ada@example.com>", Subject: "Your order is confirmed",
		Text: "Thank you for your order.\n\n2 × Mug  12.50\nTotal 25.00\n",
		HTML: "<p>Thank you for your order.</p><table><tr><td>2 × Mug</td><td>12.50</td></tr></table><p>Total 25.00</p>"}
	var seq atomic.Int64
	return benchutil.Concurrently(b, lanes, nb.mails, func(int) error {
		m := msg
		m.MessageID = sender.MessageID("raw-" + strconv.FormatInt(seq.Add(1), 10))
		return sender.Send(context.Background(), m)
	})
}

// rawLedger claims and marks sent nb.mails new rows from lanes
// goroutines, in a ledger of their own kept in the same table.
func (nb *notifyBench) rawLedger(b *testing.B, lanes int) time.Duration {
	b.Helper()
	ctx := context.Background()
	user := uuid.New()
	return benchutil.Concurrently(b, lanes, nb.mails, func(int) error {
		n := ledger.Notification{UserID: user, EventID: uuid.New(), EventType: "order.created", Template: "order_confirmation",
			Recipient: "ada@example.com", Subject: "Your order", MessageID: "raw@eventshop.test"}
		c, err := nb.ledger.Claim(ctx, n, time.Minute)
		if err != nil {
			return err
		}
		if c.Outcome != ledger.Won {
			return fmt.Errorf("claim of a new row: %s", c.Outcome)
		}
		_, err = nb.ledger.MarkSent(ctx, c.Row.ID, c.Row.Attempts)
		return err
	})
}
