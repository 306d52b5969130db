package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands/demo"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/published"
	"github.com/eventshop/eventshop/published/consume"
)

// consumedLine is an output line of consume, decoded.
type consumedLine struct {
	consume.Line
	env published.Envelope
}

// consumeFrom runs `eventshop consume args...` against brokers, as a
// downstream consumer would, and returns its lines, each decoded. It
// fails t when consume fails or takes over a minute.
func consumeFrom(t *testing.T, brokers string, args ...string) []consumedLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"KAFKA_BROKERS": brokers}
	err := run(ctx, append([]string{"consume"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("consume %v still running after a minute; stderr:\n%s", args, stderr.String())
	}
	if err != nil {
		t.Fatalf("consume %v: %v; stderr:\n%s", args, err, stderr.String())
	}
	var out []consumedLine
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l consumedLine
		if err := json.Unmarshal(sc.Bytes(), &l.Line); err != nil {
			t.Fatalf("consume output line %q: %v", sc.Text(), err)
		}
		env, err := published.Decode(l.Event)
		if err != nil {
			t.Fatalf("consume output line %q: not an event envelope: %v", sc.Text(), err)
		}
		l.env = env
		out = append(out, l)
	}
	return out
}

// TestE2EKafka: what `eventshop serve` publishes to its embedded broker,
// read back with `eventshop consume`: every public event of the log once,
// on its aggregate's topic under its id, as a CloudEvents envelope with
// the correlation id of the request that caused it; never a password
// hash.
func TestE2EKafka(t *testing.T) {
	t.Parallel()
	broker := freeAddr(t)
	s := newE2E(t, "KAFKA_ADDR", broker)
	admin := s.admin()
	vendor := s.signIn(demo.VendorEmail, demo.VendorPassword)

	regCorr, orderCorr := "kafka-reg-"+uuid.NewString()[:8], "kafka-order-"+uuid.NewString()[:8]
	email := uniqueEmail("Kafka.User")
	reg := want(t, s.post("/api/auth/register", "", map[string]any{"email": email, "password": testPassword, "full_name": "Kafka User"},
		"X-Correlation-ID", regCorr), http.StatusCreated)
	userID := str(reg.body, "id")
	customer := s.signIn(email, testPassword)
	productID := s.product(vendor, 5, "8.00")
	placed := want(t, s.post("/api/orders", customer.token, orderBody(line{productID, 2}), "X-Correlation-ID", orderCorr), http.StatusCreated)
	orderID := str(placed.body, "id")

	// Everything up to the order is on the broker once the publisher's
	// checkpoint, moved only after the broker's acknowledgement, covers it.
	s.waitProjections(admin, "published", 30*time.Second, func(reps map[string]projectionReport) bool {
		return covers(t, reps["kafka.v1"], placed)
	})

	// What should be there: every event of the public streams but the
	// secret ones, each once.
	type key struct {
		subject  string
		sequence int64
	}
	expected := map[key]loggedEvent{}
	secrets := 0
	for _, e := range s.events() {
		if _, _, ok := published.Route(e.Stream); !ok {
			continue
		}
		if user.IsSecret(e.Type) {
			secrets++
			continue
		}
		expected[key{e.Stream, e.Version}] = e
	}
	if secrets == 0 {
		t.Fatal("the log holds no secret event, so their absence from Kafka shows nothing")
	}
	lines := consumeFrom(t, broker, "--from-beginning", "--max", strconv.Itoa(len(expected)), "--timeout", "10s")
	if len(lines) != len(expected) {
		t.Errorf("consumed %d messages, want the %d public events of the log", len(lines), len(expected))
	}

	seen := map[key]bool{}
	last := map[string]int64{}
	var registered, created *consumedLine
	reserved := 0
	for i := range lines {
		l := &lines[i]
		k := key{l.env.Subject, l.env.Sequence}
		e, ok := expected[k]
		switch {
		case user.IsSecret(l.env.Type):
			t.Errorf("%s of %s was published: %s", l.env.Type, l.env.Subject, l.Event)
			continue
		case !ok:
			t.Errorf("message %s %s seq %d is no event of the log", l.env.Type, l.env.Subject, l.env.Sequence)
			continue
		case seen[k]:
			t.Errorf("%s %s seq %d consumed twice", l.env.Type, l.env.Subject, l.env.Sequence)
		}
		seen[k] = true
		topic, id, _ := published.Route(l.env.Subject)
		if l.Topic != topic || l.Key != id {
			t.Errorf("%s of %s on %s with key %q, want %s and key %s", l.env.Type, l.env.Subject, l.Topic, l.Key, topic, id)
		}
		if l.env.Type != e.Type || l.env.CorrelationID != e.Correlation {
			t.Errorf("%s seq %d: type %s correlationid %q, the log says %s %q", l.env.Subject, l.env.Sequence, l.env.Type, l.env.CorrelationID, e.Type, e.Correlation)
		}
		if l.env.SpecVersion != "1.0" || l.env.Source != "eventshop" || l.env.DataContentType != "application/json" || l.env.Time.IsZero() {
			t.Errorf("%s %s: envelope %s", l.env.Type, l.env.Subject, l.Event)
		}
		wantUUID(t, "envelope id", l.env.ID)
		if l.Headers["ce_id"] != l.env.ID || l.Headers["ce_type"] != l.env.Type || l.Headers["correlation_id"] != l.env.CorrelationID {
			t.Errorf("%s %s: headers %v do not repeat the envelope", l.env.Type, l.env.Subject, l.Headers)
		}
		if prev, ok := last[l.Key]; ok && l.env.Sequence <= prev {
			t.Errorf("key %s: sequence %d consumed after %d", l.Key, l.env.Sequence, prev)
		}
		last[l.Key] = l.env.Sequence
		switch {
		case l.env.Type == "user.registered" && l.Key == userID:
			registered = l
		case l.env.Type == "order.created" && l.Key == orderID:
			created = l
		case l.env.Type == "inventory.reserved" && l.Key == productID:
			reserved++
			if l.env.CorrelationID != orderCorr {
				t.Errorf("inventory.reserved for the order: correlationid %q, want %q", l.env.CorrelationID, orderCorr)
			}
		}
	}
	for k, e := range expected {
		if !seen[k] {
			t.Errorf("%s of %s (version %d) was not consumed", e.Type, e.Stream, e.Version)
		}
	}

	if registered == nil {
		t.Fatalf("no user.registered keyed %s consumed", userID)
	}
	if registered.Topic != published.TopicUsers || registered.env.CorrelationID != regCorr || registered.env.Subject != "user-"+userID {
		t.Errorf("user.registered: topic %s subject %s correlationid %q, want %s, user-%s, %q",
			registered.Topic, registered.env.Subject, registered.env.CorrelationID, published.TopicUsers, userID, regCorr)
	}
	var regData map[string]any
	if err := json.Unmarshal(registered.env.Data, &regData); err != nil {
		t.Fatal(err)
	}
	if regData["user_id"] != userID || regData["email"] != str(reg.body, "email") || regData["full_name"] != "Kafka User" ||
		!reflect.DeepEqual(regData["roles"], []any{"customer"}) {
		t.Errorf("user.registered data %s, want user_id, email, full_name and roles [customer]", registered.env.Data)
	}
	for _, secret := range []string{"password", "password_hash"} {
		if bytes.Contains(registered.Event, []byte(secret)) || bytes.Contains(registered.Event, []byte(testPassword)) {
			t.Errorf("user.registered carries %s: %s", secret, registered.Event)
		}
	}

	if created == nil {
		t.Fatalf("no order.created keyed %s consumed", orderID)
	}
	if created.Topic != published.TopicOrders || created.env.CorrelationID != orderCorr || created.env.ActorID != customer.id || created.env.Sequence != 0 {
		t.Errorf("order.created: topic %s correlationid %q actorid %q sequence %d, want %s, %q, %s, 0",
			created.Topic, created.env.CorrelationID, created.env.ActorID, created.env.Sequence, published.TopicOrders, orderCorr, customer.id)
	}
	var orderData struct {
		OrderID string          `json:"order_id"`
		UserID  string          `json:"user_id"`
		Items   []any           `json:"items"`
		Total   json.RawMessage `json:"total"`
	}
	if err := json.Unmarshal(created.env.Data, &orderData); err != nil {
		t.Fatal(err)
	}
	if orderData.OrderID != orderID || orderData.UserID != customer.id || len(orderData.Items) != 1 || string(orderData.Total) != "16.00" {
		t.Errorf("order.created data %s, want order_id %s, user_id %s, one item, total 16.00", created.env.Data, orderID, customer.id)
	}
	if reserved != 1 {
		t.Errorf("%d inventory.reserved messages for the order's product, want 1", reserved)
	}
	if t.Failed() {
		for _, l := range lines {
			t.Logf("%s/%d %s key %s: %s", l.Topic, l.Partition, l.env.Type, l.Key, l.Event)
		}
	}
}
