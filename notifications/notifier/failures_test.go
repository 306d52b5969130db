package notifier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

// parkingSender is one group member's sender. Once park says so, it
// stops before sending: it reports the mail on parked and waits for its
// member to be stopped, as a member stopped mid-message would. It waits on
// stopped rather than on the context of Send, which may be one the
// notifier does not cancel when it stops.
type parkingSender struct {
	notifier.Sender
	member  int
	sent    atomic.Int64
	park    func(s *parkingSender) bool
	parked  chan<- parkedMail
	stopped <-chan struct{}
}

// parkedMail is the mail a member was about to send when it parked.
type parkedMail struct {
	member int
	msg    mail.Message
}

func (s *parkingSender) Send(ctx context.Context, m mail.Message) error {
	if s.park(s) {
		s.parked <- parkedMail{member: s.member, msg: m}
		<-s.stopped
		return fmt.Errorf("%w: the member stopped before sending", mail.ErrTemporary)
	}
	err := s.Sender.Send(ctx, m)
	if err == nil {
		s.sent.Add(1)
	}
	return err
}

// waitGroup waits until group is stable with members members, each
// owning partitions of the user topic.
func (e *env) waitGroup(group string, members int) {
	e.t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 5 * time.Second}
	testwait.Until(e.t, 30*time.Second, func() string {
		resp, err := c.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil {
			return err.Error()
		}
		g := resp.Groups[0]
		if g.Error != nil || g.GroupState != "Stable" || len(g.Members) != members {
			return fmt.Sprintf("group %s: %v, state %s, %d members", group, g.Error, g.GroupState, len(g.Members))
		}
		for _, m := range g.Members {
			owns := false
			for _, tp := range m.MemberAssignments.Topics {
				owns = owns || tp.Topic == published.TopicUsers && len(tp.Partitions) > 0
			}
			if !owns {
				return fmt.Sprintf("member %s owns no partition of %s", m.MemberID, published.TopicUsers)
			}
		}
		return ""
	})
}

// TestTwoMembersSendEachMailOnce runs two notifiers in one group over
// topics of three partitions, with every message delivered twice, and
// stops one member in the middle of a message: the rebalance hands its
// partitions, and its claimed row, to the other, and still every (event,
// template) gets exactly one mail.
func TestTwoMembersSendEachMailOnce(t *testing.T) {
	t.Parallel()
	e := newEnvPartitions(t, 3)
	var total atomic.Int64
	var once atomic.Bool
	parked := make(chan parkedMail, 1)
	park := func(s *parkingSender) bool {
		// The first member to send after a third of the mails, once it
		// has sent one itself, parks: both members have had work by then.
		n := total.Add(1)
		return n > 15 && s.sent.Load() > 0 && once.CompareAndSwap(false, true)
	}
	var senders [2]*parkingSender
	var stops [2]func()
	for i := range senders {
		ctx, cancel := context.WithCancel(context.Background())
		s := &parkingSender{member: i, park: park, parked: parked, stopped: ctx.Done()}
		senders[i] = s
		stop := e.startCtx(ctx, func(c *notifier.Config) {
			s.Sender, c.Sender = c.Sender, s
			// Shorter than the default: the survivor takes the parked
			// member's row over once its lease ran out.
			c.Lease = 2 * time.Second
		})
		t.Cleanup(cancel) // before stop, which waits for the parked Send
		stops[i] = func() { cancel(); stop() }
	}
	e.waitGroup("test-notifier", 2)

	keys := e.publishShop("First", 15, 15, true) // 45 mails, each message twice
	var inFlight parkedMail
	select {
	case inFlight = <-parked:
	case <-time.After(60 * time.Second):
		t.Fatalf("no member parked; mails sent %d and %d", senders[0].sent.Load(), senders[1].sent.Load())
	}
	stops[inFlight.member]()
	keys = append(keys, e.publishShop("Second", 5, 0, true)...)

	rows := e.waitAllSent(keys, 60*time.Second)
	stops[1-inFlight.member]()
	msgs := e.sink.Messages()
	counts := countByMessageID(msgs)
	for _, key := range keys {
		if id := e.messageID(key); counts[id] != 1 {
			t.Errorf("%s (%s): %d mails, want 1", key, id, counts[id])
		}
	}
	if len(msgs) != len(keys) {
		t.Errorf("%d mails, want %d", len(msgs), len(keys))
	}
	if n := senders[0].sent.Load() + senders[1].sent.Load(); n != int64(len(keys)) {
		t.Errorf("members sent %d mails, want %d", n, len(keys))
	}
	for i, s := range senders {
		if s.sent.Load() == 0 {
			t.Errorf("member %d sent nothing", i)
		}
	}
	// The parked mail went out once, from the survivor, which took its
	// row over after the lease: attempt 2.
	for _, r := range rows {
		if r.MessageID == inFlight.msg.MessageID && r.Attempts != 2 {
			t.Errorf("row %s of the parked mail at attempt %d, want 2 (taken over)", r.Key, r.Attempts)
		} else if r.MessageID != inFlight.msg.MessageID && r.Attempts != 1 {
			t.Errorf("row %s at attempt %d, want 1", r.Key, r.Attempts)
		}
	}
}

// TestSMTPDownIsRetriedUntilItIsBack takes the SMTP server down: the
// notification waits in 'retrying' and, once the server is back, goes out
// exactly once.
func TestSMTPDownIsRetriedUntilItIsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.sink.SetDown(true); err != nil {
		t.Fatal(err)
	}
	stop := e.startWith(func(c *notifier.Config) {
		// Enough attempts that the outage never exhausts them.
		c.MaxAttempts, c.RetryMin, c.RetryMax = 1000, 5*time.Millisecond, 50*time.Millisecond
	})
	ada, reg := e.newUser("Ada")
	testwait.Until(t, 30*time.Second, func() string {
		rows, _, err := e.ledger.List(context.Background(), ledger.Query{UserID: &ada})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Status != ledger.StatusRetrying || rows[0].Attempts < 2 || rows[0].LastError == "" {
			return fmt.Sprintf("rows of Ada %+v, want one retrying with attempts >= 2", rows)
		}
		return ""
	})
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d mails while the server is down", n)
	}
	if err := e.sink.SetDown(false); err != nil {
		t.Fatal(err)
	}
	_, regBob := e.newUser("Bob")
	e.waitAllSent([]string{e.keyOf(reg), e.keyOf(regBob)}, 30*time.Second)
	stop() // nothing of Ada's can still be coming: her row is sent

	msgs := e.sink.Messages()
	id := e.messageID(e.keyOf(reg))
	to := map[string]int{}
	adas := 0
	for _, m := range msgs {
		to[m.To[0]]++
		if m.MessageID == id {
			adas++
		}
	}
	// Bob's lane may send before Ada's next retry: the order is free.
	if len(msgs) != 2 || adas != 1 || to["ada@example.com"] != 1 || to["bob@example.com"] != 1 {
		t.Fatalf("mails %v, want Ada's (%s) once and Bob's once", summary(msgs), id)
	}
	r := e.row(t, ada)
	if r.Status != ledger.StatusSent || r.Attempts < 3 || r.LastError != "" || r.SentAt == nil {
		t.Fatalf("row of Ada: status %s attempts %d last error %q sent at %v, want sent after >= 2 failed attempts",
			r.Status, r.Attempts, r.LastError, r.SentAt)
	}
}

// TestExhaustedAttemptsAreDeadLettered makes the server refuse with a
// temporary error more often than MaxAttempts allows: the message goes to
// the dead-letter topic with what happened and where it came from, the
// partition keeps flowing, and a redelivery of the message sends nothing
// and adds no second dead letter.
func TestExhaustedAttemptsAreDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sink.FailNext(4, 451, "mailbox busy, try later") // Ada's 3 attempts, then Bob's first
	// One lane, so the refusals fall in that order.
	stop := e.startWith(func(c *notifier.Config) { c.MaxAttempts = 3; oneLane(c) })
	headers := []kafka.Header{
		{Key: "correlation_id", Value: []byte("corr-ada")},
		{Key: "causation_id", Value: []byte("cause-ada")},
	}
	ada, reg := e.newUser("Ada", headers...)
	bob, _ := e.newUser("Bob") // the same partition: it must not be blocked
	if r := e.waitRow(bob, ledger.StatusSent); r.Attempts != 2 {
		t.Fatalf("row of Bob sent at attempt %d, want 2 (after the 4th refusal)", r.Attempts)
	}
	if msgs := e.sink.Messages(); len(msgs) != 1 || msgs[0].To[0] != "bob@example.com" {
		t.Fatalf("mails %v, want Bob's only", summary(msgs))
	}
	r := e.row(t, ada)
	if r.Status != ledger.StatusFailed || r.Attempts != 3 || !strings.Contains(r.LastError, "451") {
		t.Fatalf("row of Ada: %s at attempt %d, error %q; want failed at 3 with the 451", r.Status, r.Attempts, r.LastError)
	}

	// Run created the retry topic (and the dead-letter one) itself.
	if n := kafkatest.Partitions(t, e.brokers, notifier.DefaultRetryTopic); n != 3 {
		t.Errorf("%s has %d partitions, want Setup's default 3", notifier.DefaultRetryTopic, n)
	}
	var orig kafkatest.Record
	for _, rec := range kafkatest.ReadAll(t, e.brokers, published.TopicUsers) {
		if bytes.Equal(rec.Value, reg) {
			orig = rec
			break
		}
	}
	dl := kafkatest.ReadAll(t, e.brokers, dlqTopic)
	if len(dl) != 1 || !bytes.Equal(dl[0].Value, reg) || dl[0].Key != ada.String() {
		t.Fatalf("dead letters %+v, want Ada's registration", dl)
	}
	h := dl[0].Headers
	if reason := h[notifier.HeaderDLQReason]; !strings.Contains(reason, "451") || !strings.Contains(reason, "mailbox busy") {
		t.Errorf("dead letter reason %q, want the SMTP error", reason)
	}
	if h[notifier.HeaderDLQAttempts] != "3" || h[notifier.HeaderDLQTopic] != orig.Topic ||
		h[notifier.HeaderDLQPartition] != fmt.Sprint(orig.Partition) || h[notifier.HeaderDLQOffset] != fmt.Sprint(orig.Offset) {
		t.Errorf("dead letter headers %v, want attempts 3 and the origin %s/%d@%d", h, orig.Topic, orig.Partition, orig.Offset)
	}
	for _, want := range headers {
		if h[want.Key] != string(want.Value) {
			t.Errorf("dead letter header %s = %q, want the original's %q", want.Key, h[want.Key], want.Value)
		}
	}

	// The message again: its row is failed, so nothing is sent or
	// dead-lettered. Cy's mail, after it on the partition, says it was
	// handled.
	e.write(user.StreamPrefix+ada.String(), reg, headers...)
	cy, _ := e.newUser("Cy")
	e.waitRow(cy, ledger.StatusSent)
	stop()
	if msgs := e.sink.Messages(); len(msgs) != 2 || msgs[1].To[0] != "cy@example.com" {
		t.Fatalf("mails %v, want Bob's and Cy's only", summary(msgs))
	}
	if dl := kafkatest.ReadAll(t, e.brokers, dlqTopic); len(dl) != 1 {
		t.Fatalf("%d dead letters after the redelivery, want 1", len(dl))
	}
	if r := e.row(t, ada); r.Status != ledger.StatusFailed || r.Attempts != 3 {
		t.Fatalf("row of Ada after the redelivery: %s at attempt %d, want failed at 3", r.Status, r.Attempts)
	}
}

// TestLookupsFailingThenSucceeding makes the order owner and the
// recipient lookups fail at first: the notifier asks again and mails once,
// without a dead letter.
func TestLookupsFailingThenSucceeding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ownerCalls, recipientCalls atomic.Int64
	stop := e.startWith(func(c *notifier.Config) {
		owner, recipients := c.Owner, c.Recipients
		c.Owner = func(ctx context.Context, env published.Envelope) (uuid.UUID, error) {
			if ownerCalls.Add(1) <= 2 {
				return uuid.Nil, errors.New("order read model unavailable")
			}
			return owner(ctx, env)
		}
		c.Recipients = func(ctx context.Context, id uuid.UUID) (templates.Recipient, error) {
			if recipientCalls.Add(1) <= 1 {
				return templates.Recipient{}, errors.New("user read model unavailable")
			}
			return recipients(ctx, id)
		}
	})
	ada := uuid.Must(uuid.NewV7())
	e.users.Store(ada, templates.Recipient{Email: "ada@example.com", Name: "Ada"})
	oid := e.newOrderID(ada)
	// order.paid has no user_id: it needs both lookups.
	paid := e.publish(order.StreamPrefix+oid, order.Paid{OrderID: oid, PaymentID: "p1", Amount: 1250, Last4: "4242"})
	e.waitAllSent([]string{e.keyOf(paid)}, 30*time.Second)
	stop()

	msgs := e.sink.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "ada@example.com" || msgs[0].MessageID != e.messageID(e.keyOf(paid)) ||
		msgs[0].Subject != subjectOf(t, e.render, paid) {
		t.Fatalf("mails %v, want the receipt to Ada once", summary(msgs))
	}
	if o, r := ownerCalls.Load(), recipientCalls.Load(); o < 3 || r < 2 {
		t.Fatalf("owner looked up %d times, recipient %d: the failures were not retried", o, r)
	}
	if dl := kafkatest.ReadAll(t, e.brokers, dlqTopic); len(dl) != 0 {
		t.Fatalf("dead letters %+v, want none", dl)
	}
	if r := e.row(t, ada); r.Status != ledger.StatusSent || r.Attempts != 1 {
		t.Fatalf("row: %s at attempt %d, want sent at 1 (lookups are not send attempts)", r.Status, r.Attempts)
	}
}

// summary lists who each mail went to and its Message-ID, for failures.
func summary(msgs []smtpsink.Message) []string {
	var s []string
	for _, m := range msgs {
		s = append(s, strings.Join(m.To, ",")+" "+m.MessageID)
	}
	return s
}

// TestStopAfterServerAcceptedRecordsSent stops the notifier after the SMTP
// server accepted a mail but before its reply reached the notifier: the
// mail must be recorded as sent, so that the next member of the group does
// not send it again. A graceful stop (a deploy, a scale-down) is not a
// crash, and the ledger's at-least-once window should not widen to it.
//
// The send that has started is therefore not tied to Run's context:
// mail.Sender aborts an exchange when its context ends, even while waiting
// for the reply to the message's data.
func TestStopAfterServerAcceptedRecordsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := startReplyHolder(t, e.sink.Addr())
	sendCtxs := make(chan context.Context, 1)
	ctx, cancel := context.WithCancel(context.Background())
	stop := e.startCtx(ctx, func(c *notifier.Config) {
		s, err := newSender(p.addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Sender, c.Lease = &ctxSender{Sender: s, ctxs: sendCtxs}, 100*time.Millisecond
	})
	t.Cleanup(cancel)
	ada, reg := e.newUser("Ada")
	e.waitMails(1) // the server has it; its reply is held
	cancel()
	if sendCtx := <-sendCtxs; sendCtx.Err() == nil {
		// The send was not tied to Run's context: it goes on, so let the
		// reply through. (Tied to it, the sender closes the connection and
		// the reply will never be read.)
		p.releaseReplies()
	}
	stop()
	if r := e.row(t, ada); r.Status != ledger.StatusSent {
		t.Errorf("row of Ada after the stop: %s at attempt %d, want sent", r.Status, r.Attempts)
	}
	p.releaseReplies()

	stop = e.start()
	_, bob := e.newUser("Bob")
	e.waitAllSent([]string{e.keyOf(reg), e.keyOf(bob)}, 30*time.Second)
	stop()
	if n := countByMessageID(e.sink.Messages())[e.messageID(e.keyOf(reg))]; n != 1 {
		t.Errorf("Ada's mail sent %d times, want 1", n)
	}
}

// ctxSender hands the context of each Send to ctxs, when there is room.
type ctxSender struct {
	notifier.Sender
	ctxs chan<- context.Context
}

func (s *ctxSender) Send(ctx context.Context, m mail.Message) error {
	select {
	case s.ctxs <- ctx:
	default:
	}
	return s.Sender.Send(ctx, m)
}

// replyHolder is a TCP proxy to an SMTP server that, once a client has
// sent the end of a message's data, holds every reply of the server back
// until releaseReplies: the server has the mail, the client does not know
// yet.
type replyHolder struct {
	ln      net.Listener
	target  string
	held    chan struct{} // closed when the first end of data went through
	holdOne sync.Once
	release chan struct{}
	relOne  sync.Once
}

func startReplyHolder(t *testing.T, target string) *replyHolder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyHolder{ln: ln, target: target, held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() {
		p.releaseReplies()
		_ = ln.Close()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *replyHolder) addr() string { return p.ln.Addr().String() }

func (p *replyHolder) releaseReplies() { p.relOne.Do(func() { close(p.release) }) }

func (p *replyHolder) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		defer server.Close()
		defer client.Close()
		buf, tail := make([]byte, 32<<10), []byte(nil)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				seen := append(tail, buf[:n]...)
				if bytes.Contains(seen, []byte("\r\n.\r\n")) {
					// Before the server can see it, so before it replies.
					p.holdOne.Do(func() { close(p.held) })
				}
				tail = append([]byte(nil), seen[max(0, len(seen)-4):]...)
				if _, err := server.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			select {
			case <-p.held:
				<-p.release
			default:
			}
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestLookupWaitDoesNotHoldBackItsBatch: a lane behind on three orders,
// the second of whose customer the read model does not have yet, sends the
// first order's mail at once rather than holding it in the batch while the
// lookup waits; the second and third follow, in the lane's order, once the
// customer is there.
func TestLookupWaitDoesNotHoldBackItsBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada, zed := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	e.users.Store(ada, templates.Recipient{Email: "ada@example.com", Name: "Ada"})
	e.users.Store(zed, templates.Recipient{Email: "zed@example.com", Name: "Zed"})
	var zedKnown atomic.Bool
	var keys []string
	for _, who := range []uuid.UUID{ada, zed, ada} {
		oid := e.newOrderID(who)
		keys = append(keys, e.keyOf(e.publish(order.StreamPrefix+oid, created(oid, who))))
	}
	stop := e.startWith(func(c *notifier.Config) {
		oneLane(c)
		recipients := c.Recipients
		c.Recipients = func(ctx context.Context, id uuid.UUID) (templates.Recipient, error) {
			if id == zed && !zedKnown.Load() {
				return templates.Recipient{}, errors.New("user read model behind")
			}
			return recipients(ctx, id)
		}
	})
	defer stop()
	first := e.waitMails(1)
	zedKnown.Store(true)
	if first[0].MessageID != e.messageID(keys[0]) {
		t.Fatalf("first mail %v, want Ada's first confirmation", summary(first))
	}
	e.waitAllSent(keys, 30*time.Second)
	msgs := e.sink.Messages()
	if len(msgs) != 3 || msgs[1].MessageID != e.messageID(keys[1]) || msgs[2].MessageID != e.messageID(keys[2]) {
		t.Fatalf("mails %v, want Ada's, Zed's, Ada's, in the lane's order", summary(msgs))
	}
}

// slowSender takes d over each send, as a slow SMTP server would.
type slowSender struct {
	notifier.Sender
	d time.Duration
}

func (s slowSender) Send(ctx context.Context, m mail.Message) error {
	time.Sleep(s.d)
	return s.Sender.Send(ctx, m)
}

// TestSlowBatchRecordsWhileItsClaimsLive: a batch whose sends outlast its
// claims' lease records what it sent, and gives back what it has not
// tried, once the claims are half their lease old; every mail is then
// recorded sent while its claim was live, so no other member could have
// taken it over and sent it again.
func TestSlowBatchRecordsWhileItsClaimsLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var keys []string
	for i := range 2 * notifier.DefaultBatch {
		_, reg := e.newUser(fmt.Sprintf("Slow%02d", i))
		keys = append(keys, e.keyOf(reg))
	}
	// 16 sends of 40 ms outlast a lease of 400 ms.
	stop := e.startWith(func(c *notifier.Config) {
		oneLane(c)
		c.Sender, c.Lease = slowSender{Sender: c.Sender, d: 40 * time.Millisecond}, 400*time.Millisecond
	})
	defer stop()
	rows := e.waitAllSent(keys, 60*time.Second)
	for _, r := range rows {
		if r.Attempts != 1 || r.SentAt == nil || r.SentAt.After(r.LeaseUntil) {
			t.Errorf("%s: attempt %d, sent at %v, lease until %v; want recorded at attempt 1 within its lease", r.Key, r.Attempts, r.SentAt, r.LeaseUntil)
		}
	}
	if n := len(e.sink.Messages()); n != len(keys) {
		t.Errorf("%d mails, want %d", n, len(keys))
	}
}
