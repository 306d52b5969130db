package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/internal/testsupport/kafkatest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
	"github.com/eventshop/eventshop/notifications/notifier"
)

// capturedMail is one message of GET /dev/mail, the local run's SMTP sink.
type capturedMail struct {
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Text      string    `json:"text"`
	HTML      string    `json:"html"`
	Received  time.Time `json:"received_at"`
}

// mailTo returns the mail the sink holds for address, oldest first.
func (s *server) mailTo(address string) []capturedMail {
	s.t.Helper()
	r := want(s.t, s.do(http.MethodGet, "/dev/mail", "", nil), http.StatusOK)
	var list struct {
		Items []capturedMail `json:"items"`
	}
	if err := json.Unmarshal(r.raw, &list); err != nil {
		s.t.Fatalf("/dev/mail: %v", err)
	}
	var out []capturedMail
	for _, m := range list.Items { // newest first
		if slices.Contains(m.To, address) {
			out = append(out, m)
		}
	}
	slices.Reverse(out)
	return out
}

// waitMailTo waits until address has n mails and returns them, oldest
// first.
func (s *server) waitMailTo(address string, n int) []capturedMail {
	s.t.Helper()
	var got []capturedMail
	testwait.Until(s.t, 30*time.Second, func() string {
		if got = s.mailTo(address); len(got) >= n {
			return ""
		}
		return fmt.Sprintf("%s has %d mails, want %d: %v", address, len(got), n, subjects(got))
	})
	return got
}

func subjects(ms []capturedMail) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Subject
	}
	return out
}

// notificationItem is one entry of GET /api/notifications.
type notificationItem struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	EventID   string     `json:"event_id"`
	EventType string     `json:"event_type"`
	Channel   string     `json:"channel"`
	To        string     `json:"to"`
	Subject   string     `json:"subject"`
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

// notifications reads GET /api/notifications with query as token's user.
func (s *server) notifications(token, query string) (items []notificationItem, total int) {
	s.t.Helper()
	r := want(s.t, s.do(http.MethodGet, "/api/notifications"+query, token, nil), http.StatusOK)
	var p struct {
		Items []notificationItem `json:"items"`
		Total int                `json:"total"`
	}
	if err := json.Unmarshal(r.raw, &p); err != nil {
		s.t.Fatalf("notifications: %v", err)
	}
	return p.Items, p.Total
}

// TestE2ENotifications: the local run mails a user about each event of
// API.md — welcome, confirmation, receipt, shipped, cancellation — in the
// order they happened, once each, to the address of the user read model,
// and lists them in GET /api/notifications.
func TestE2ENotifications(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "vendor", "vendor")
	p := s.product(vendor, 20, "12.50")

	ada := s.newUser(admin, "ada")
	welcome := s.waitMailTo(ada.email, 1)[0]
	if welcome.Subject != "Welcome to eventshop" || !strings.Contains(welcome.Text, "Test ada") {
		t.Errorf("welcome mail: %q\n%s", welcome.Subject, welcome.Text)
	}

	// One order placed, paid and completed; one placed, paid and
	// cancelled with a reason.
	shipped := s.order(ada, line{p, 2})
	want(t, s.pay(ada, shipped, goodCard), http.StatusOK)
	want(t, s.complete(admin, shipped), http.StatusOK)
	s.waitMailTo(ada.email, 4)
	cancelled := s.order(ada, line{p, 1})
	want(t, s.pay(ada, cancelled, goodCard), http.StatusOK)
	want(t, s.cancel(ada, cancelled, map[string]any{"reason": "found it cheaper"}), http.StatusOK)
	mails := s.waitMailTo(ada.email, 7)

	// An order's reference in mail is the last 8 characters of its id.
	ref := func(id string) string { return "#" + strings.ToUpper(id[len(id)-8:]) }
	wantSubjects := []string{
		"Welcome to eventshop",
		"eventshop: order " + ref(shipped) + " confirmed",
		"eventshop: receipt for order " + ref(shipped),
		"eventshop: order " + ref(shipped) + " shipped",
		"eventshop: order " + ref(cancelled) + " confirmed",
		"eventshop: receipt for order " + ref(cancelled),
		"eventshop: order " + ref(cancelled) + " cancelled",
	}
	if got := subjects(mails); !slices.Equal(got, wantSubjects) {
		t.Fatalf("mails to %s:\n got %q\nwant %q", ada.email, got, wantSubjects)
	}
	if m := mails[1]; !strings.Contains(m.Text, "25.00") || !strings.Contains(m.Text, "Test product") {
		t.Errorf("confirmation lacks the items and total:\n%s", m.Text)
	}
	if m := mails[6]; !strings.Contains(m.Text, "found it cheaper") || !strings.Contains(m.Text, "refunded") {
		t.Errorf("cancellation lacks the reason or the refund:\n%s", m.Text)
	}
	ids := map[string]bool{}
	for _, m := range mails {
		if ids[m.MessageID] {
			t.Errorf("Message-ID %s sent twice", m.MessageID)
		}
		ids[m.MessageID] = true
		if m.HTML == "" || m.Text == "" {
			t.Errorf("%q is not multipart text and HTML", m.Subject)
		}
	}

	// The history: ada's own, newest first, every one sent. The sink has
	// a mail before the notifier records it sent (an attempt in flight
	// lists as "retrying"), so the history is read once all are.
	var items []notificationItem
	var total int
	testwait.Until(t, 10*time.Second, func() string {
		items, total = s.notifications(ada.token, "?limit=100")
		for _, n := range items {
			if n.Status != "sent" {
				return fmt.Sprintf("%s to %s is %s", n.EventType, n.To, n.Status)
			}
		}
		return ""
	})
	if total != 7 || len(items) != 7 {
		t.Fatalf("ada's notifications: %d of %d, want 7", len(items), total)
	}
	wantTypes := []string{"order.cancelled", "order.paid", "order.created", "order.completed", "order.paid", "order.created", "user.registered"}
	for i, n := range items {
		if n.EventType != wantTypes[i] || n.Status != "sent" || n.SentAt == nil || n.UserID != ada.id ||
			n.To != ada.email || n.Channel != "email" || n.Subject != wantSubjects[6-i] || n.Attempts != 1 {
			t.Errorf("notification %d: %+v, want a sent %s to %s", i, n, wantTypes[i], ada.email)
		}
	}
	// Nobody else's history shows them; an admin's does, by user.
	bob := s.newUser(admin, "bob")
	s.waitMailTo(bob.email, 1)
	if items, _ := s.notifications(bob.token, ""); len(items) != 1 || items[0].UserID != bob.id {
		t.Errorf("bob sees %+v, want his welcome alone", items)
	}
	wantProblem(t, s.do(http.MethodGet, "/api/notifications?user_id="+ada.id, bob.token, nil), http.StatusForbidden)
	if _, total := s.notifications(admin.token, "?user_id="+ada.id); total != 7 {
		t.Errorf("admin filtering ada: total %d, want 7", total)
	}
	if _, total := s.notifications(admin.token, ""); total < 7+1+3 {
		t.Errorf("admin sees %d notifications, want at least ada's, bob's and the seed's", total)
	}

	// Every mail sent, the notifier's consumer group has committed every
	// message: /metrics shows no lag on any partition of its topics.
	testwait.Until(t, 30*time.Second, func() string {
		_, samples := s.scrape()
		if v, _ := find(samples, "eventshop_consumer_lag_success", "group", notifier.DefaultGroupID); v != 1 {
			return "the notifier's lag is not measured"
		}
		parts := 0
		for _, sm := range samples {
			if sm.name != "eventshop_consumer_lag" || sm.labels["group"] != notifier.DefaultGroupID {
				continue
			}
			parts++
			if sm.value != 0 {
				return fmt.Sprintf("%s/%s is %v behind", sm.labels["topic"], sm.labels["partition"], sm.value)
			}
		}
		if parts == 0 {
			return "no partition's lag"
		}
		return ""
	})
}

// notificationOf waits until userID has a notification for which ok holds
// (read as admin) and returns it.
func (s *server) notificationOf(admin *account, userID string, what string, ok func(notificationItem) bool) notificationItem {
	s.t.Helper()
	var last []notificationItem
	var found notificationItem
	testwait.Until(s.t, 30*time.Second, func() string {
		last, _ = s.notifications(admin.token, "?user_id="+userID)
		for _, n := range last {
			if ok(n) {
				found = n
				return ""
			}
		}
		return fmt.Sprintf("no notification of %s is %s: %+v", userID, what, last)
	})
	return found
}

// sinkMailTo returns the messages sink holds for address.
func sinkMailTo(sink *smtpsink.Sink, address string) []smtpsink.Message {
	var out []smtpsink.Message
	for _, m := range sink.Messages() {
		if slices.Contains(m.To, address) {
			out = append(out, m)
		}
	}
	return out
}

// TestE2ENotifierFailures: with a real SMTP server (SMTP_ADDR) and Kafka
// broker (KAFKA_BROKERS) of the test's own: an SMTP server down for a while
// delays a mail, which is then sent once; a permanent refusal dead-letters
// the message with its reason and records the notification failed, and
// the topic keeps flowing; a message Kafka delivers again sends nothing;
// `eventshop dlq replay` sends the dead-lettered mail once the server
// takes it.
func TestE2ENotifierFailures(t *testing.T) {
	t.Parallel()
	sink, err := smtpsink.Start(smtpsink.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	brokers := kafkatest.Start(t).Addrs()
	env := e2eEnv(t, "SMTP_ADDR", sink.Addr(), "KAFKA_BROKERS", strings.Join(brokers, ","),
		// Retries slow enough to bring the server back before they run out.
		"NOTIFY_MAX_ATTEMPTS", "4", "NOTIFY_RETRY_MIN", "500ms", "NOTIFY_RETRY_MAX", "2s")
	s := startServer(t, env)
	admin := s.admin()
	// The seed's three welcome mails first.
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if _, err := sink.Wait(wctx, func(m []smtpsink.Message) bool { return len(m) >= 3 }); err != nil {
		t.Fatalf("the seed's welcome mails: %v", err)
	}

	// Down for a while: retried, then sent once.
	if err := sink.SetDown(true); err != nil {
		t.Fatal(err)
	}
	late := s.newUser(admin, "late")
	// Two attempts failed: counted once each has been recorded (the
	// history lists a notification whose attempt is in flight as
	// retrying too, so it cannot tell).
	testwait.Until(t, 30*time.Second, func() string {
		_, samples := s.scrape()
		if n, _ := find(samples, "eventshop_notifications_total", "template", "welcome", "outcome", "retrying"); n < 2 {
			return fmt.Sprintf("%v failed attempts of the welcome mail", n)
		}
		return ""
	})
	if err := sink.SetDown(false); err != nil {
		t.Fatal(err)
	}
	sent := s.notificationOf(admin, late.id, "sent", func(n notificationItem) bool { return n.Status == "sent" })
	if sent.Attempts < 3 || sent.SentAt == nil {
		t.Errorf("after the outage: %+v, want sent at the third attempt or later", sent)
	}
	if got := sinkMailTo(sink, late.email); len(got) != 1 {
		t.Errorf("%d welcome mails to %s after the outage, want 1", len(got), late.email)
	}

	// Refused for good: dead-lettered at once, recorded failed.
	sink.FailNext(1, 550, "5.1.1 mailbox unavailable")
	refused := s.newUser(admin, "refused")
	failed := s.notificationOf(admin, refused.id, "failed", func(n notificationItem) bool { return n.Status == "failed" })
	if failed.Attempts != 1 || failed.SentAt != nil {
		t.Errorf("refused: %+v, want failed at the first attempt, never sent", failed)
	}
	var dead kafkatest.Record
	testwait.Until(t, 20*time.Second, func() string {
		for _, r := range kafkatest.ReadAll(t, brokers, "ecommerce.notifications.dlq") {
			if r.Key == refused.id {
				dead = r
				return ""
			}
		}
		return "no dead letter keyed " + refused.id
	})
	if !strings.Contains(dead.Headers["dlq_reason"], "550") || dead.Headers["dlq_attempts"] != "1" ||
		dead.Headers["dlq_topic"] != "ecommerce.user.events" || dead.Headers["dlq_partition"] == "" ||
		dead.Headers["dlq_offset"] == "" || dead.Headers["ce_type"] != "user.registered" {
		t.Errorf("dead letter headers: %v", dead.Headers)
	}

	// The topic keeps flowing.
	next := s.newUser(admin, "next")
	s.notificationOf(admin, next.id, "sent", func(n notificationItem) bool { return n.Status == "sent" })

	// Kafka delivers next's registration again: once the group has
	// committed past the copy, still one mail.
	var orig kafkatest.Record
	for _, r := range kafkatest.ReadAll(t, brokers, "ecommerce.user.events") {
		if r.Key == next.id && r.Headers["ce_type"] == "user.registered" {
			orig = r
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Topic: orig.Topic, Key: []byte(orig.Key), Value: orig.Value, Headers: orig.HeaderList}); err != nil {
		t.Fatal(err)
	}
	var copyOffset int64 = -1
	for _, r := range kafkatest.ReadAll(t, brokers, orig.Topic) {
		if r.Key == next.id && r.Partition == orig.Partition && r.Offset > orig.Offset {
			copyOffset = r.Offset
		}
	}
	if copyOffset < 0 {
		t.Fatal("the copy is not in the topic")
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	testwait.Until(t, 20*time.Second, func() string {
		resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "eventshop-notifier",
			Topics: map[string][]int{orig.Topic: {orig.Partition}}})
		if err != nil {
			return err.Error()
		}
		for _, p := range resp.Topics[orig.Topic] {
			if p.CommittedOffset > copyOffset {
				return ""
			}
		}
		return fmt.Sprintf("the group has not committed past offset %d: %+v", copyOffset, resp.Topics)
	})
	if got := sinkMailTo(sink, next.email); len(got) != 1 {
		t.Errorf("%d mails to %s after a redelivery, want 1", len(got), next.email)
	}

	// The cause fixed (the sink takes mail again), `eventshop dlq replay`
	// puts the dead letter back: the refused welcome is sent, once; a
	// second replay has nothing left to do.
	if got := sinkMailTo(sink, refused.email); len(got) != 0 {
		t.Fatalf("%d mails to %s before the replay", len(got), refused.email)
	}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(ctx, []string{"dlq", "replay"}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("dlq replay: %v", err)
	}
	if !strings.HasPrefix(out.String(), "replayed 1 dead letter") {
		t.Errorf("dlq replay printed %q, want one dead letter replayed", out.String())
	}
	resent := s.notificationOf(admin, refused.id, "sent", func(n notificationItem) bool { return n.Status == "sent" })
	if resent.ID != failed.ID || resent.SentAt == nil {
		t.Errorf("after the replay: %+v, want the failed notification %s sent", resent, failed.ID)
	}
	out.Reset()
	if err := run(ctx, []string{"dlq", "replay"}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("second dlq replay: %v", err)
	}
	if !strings.HasPrefix(out.String(), "replayed 0 dead letters") {
		t.Errorf("second dlq replay printed %q, want nothing replayed", out.String())
	}
	if got := sinkMailTo(sink, refused.email); len(got) != 1 {
		t.Errorf("%d mails to %s after the replays, want 1", len(got), refused.email)
	}

	// Each outcome was counted.
	metrics := string(want(t, s.do(http.MethodGet, "/metrics", "", nil), http.StatusOK).raw)
	for _, outcome := range []string{"sent", "retrying", "dead_lettered", "duplicate"} {
		series := `eventshop_notifications_total{outcome="` + outcome + `",template="welcome"} `
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}
