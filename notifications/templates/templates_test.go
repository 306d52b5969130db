package templates_test

import (
	"encoding/json"
	"errors"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

const (
	orderID = "0190f3a2-7b4c-7def-8abc-1234567890ab"
	ref     = "#567890AB" // its last 8 alphanumerics
	userID  = "0190f3a2-0000-7000-8000-00000000beef"
)

var ada = templates.Recipient{Email: "ada@example.com", Name: "Ada Lovelace"}

func newRenderer(t *testing.T) *templates.Renderer {
	t.Helper()
	r, err := templates.New(templates.Options{ShopName: "Test Shop", BaseURL: "https://shop.example/", Currency: "€"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// envelope is what the publisher would send for e, written to stream:
// the data is the JSON of the real domain struct.
func envelope(t *testing.T, stream string, e domain.Event) published.Envelope {
	t.Helper()
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return rawEnvelope(stream, e.EventType(), data)
}

func rawEnvelope(stream, eventType string, data []byte) published.Envelope {
	return published.NewEnvelope(&eventstore.Event{
		EventData: eventstore.EventData{
			ID:       uuid.Must(uuid.NewV7()),
			Type:     eventType,
			Data:     data,
			Metadata: eventstore.Metadata{CorrelationID: "c1", Timestamp: time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)},
		},
		StreamID: stream,
		Version:  1,
	})
}

func render(t *testing.T, r *templates.Renderer, env published.Envelope, to templates.Recipient) templates.Mail {
	t.Helper()
	m, ok, err := r.Render(env, to)
	if err != nil || !ok {
		t.Fatalf("Render(%s) = ok %v, %v; want a mail", env.Type, ok, err)
	}
	return m
}

var (
	tags   = regexp.MustCompile(`<[^>]*>`)
	spaces = regexp.MustCompile(`\s+`)
)

// visible is the text a reader of the HTML part sees, on one line.
func visible(h string) string {
	return strings.TrimSpace(spaces.ReplaceAllString(html.UnescapeString(tags.ReplaceAllString(h, " ")), " "))
}

// checkMail checks the template name and subject, and that both parts
// are non-empty and say each of wants (which the text part must hold as
// written; the HTML part may split a line into table cells).
func checkMail(t *testing.T, m templates.Mail, template, subject string, wants ...string) {
	t.Helper()
	if m.Template != template {
		t.Errorf("Template = %q, want %q", m.Template, template)
	}
	if m.Subject != subject {
		t.Errorf("Subject = %q, want %q", m.Subject, subject)
	}
	if strings.TrimSpace(m.Text) == "" || visible(m.HTML) == "" {
		t.Fatalf("empty part: text %q, html %q", m.Text, m.HTML)
	}
	text, seen := spaces.ReplaceAllString(m.Text, " "), visible(m.HTML)
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q:\n%s", w, m.Text)
		}
		if !strings.Contains(seen, w) {
			t.Errorf("html lacks %q:\n%s", w, seen)
		}
	}
	// Both parts share the greeting, the signature and the link.
	for _, w := range []string{"Hello Ada Lovelace,", "Test Shop", "https://shop.example", "sent to ada@example.com"} {
		if !strings.Contains(text, w) || !strings.Contains(seen+m.HTML, w) {
			t.Errorf("a part lacks %q:\ntext: %s\nhtml: %s", w, text, seen)
		}
	}
	if !strings.Contains(m.HTML, `<a href="https://shop.example"`) {
		t.Errorf("html does not link the shop:\n%s", m.HTML)
	}
	if !strings.Contains(m.HTML, "<title>"+html.EscapeString(subject)+"</title>") {
		t.Errorf("html title is not the subject:\n%s", m.HTML)
	}
}

func TestWelcome(t *testing.T) {
	r := newRenderer(t)
	reg := user.Registered{UserID: userID, Email: ada.Email, FullName: "Ada Lovelace", Roles: []string{user.RoleCustomer}}
	env := envelope(t, user.Stream(userID), reg)

	m := render(t, r, env, ada)
	checkMail(t, m, templates.TemplateWelcome, "Welcome to Test Shop",
		"Thank you for registering with Test Shop.", "sign in as ada@example.com")

	// Without a name from the caller, the event's full name greets.
	m = render(t, r, env, templates.Recipient{Email: ada.Email})
	if !strings.HasPrefix(m.Text, "Hello Ada Lovelace,\n") {
		t.Errorf("text greets %q", strings.SplitN(m.Text, "\n", 2)[0])
	}
}

func TestOrderConfirmation(t *testing.T) {
	r := newRenderer(t)
	created := order.Created{OrderID: orderID, UserID: userID, Total: 4249, Items: []order.Item{
		{ProductID: "p1", SKU: "MUG-1", Name: "Mug", Quantity: 3, Price: 1250},
		{ProductID: "p2", SKU: "TEA-9", Name: "Tea", Quantity: 1, Price: 499},
	}}
	m := render(t, r, envelope(t, order.Stream(orderID), created), ada)
	checkMail(t, m, templates.TemplateOrderConfirmation, "Test Shop: order "+ref+" confirmed",
		"Thank you for your order "+ref, "Mug", "MUG-1", "€12.50", "€37.50", "Tea", "TEA-9", "€4.99",
		"Total: €42.49", "Order id: "+orderID)
	for _, line := range []string{"- Mug (SKU MUG-1): 3 × €12.50 = €37.50\n", "- Tea (SKU TEA-9): 1 × €4.99 = €4.99\n"} {
		if !strings.Contains(m.Text, line) {
			t.Errorf("text lacks line %q:\n%s", line, m.Text)
		}
	}
	if got := visible(m.HTML); !strings.Contains(got, "Mug MUG-1 3 €12.50 €37.50") {
		t.Errorf("html row of Mug is wrong:\n%s", got)
	}
}

func TestReceipt(t *testing.T) {
	r := newRenderer(t)
	paid := order.Paid{OrderID: orderID, PaymentID: "pay_123", Amount: 4249, Last4: "4242"}
	m := render(t, r, envelope(t, order.Stream(orderID), paid), ada)
	checkMail(t, m, templates.TemplateReceipt, "Test Shop: receipt for order "+ref,
		"payment for order "+ref, "Amount paid: €42.49", "Card: ending in 4242", "Payment id: pay_123", "Order id: "+orderID)

	paid.Last4 = ""
	m = render(t, r, envelope(t, order.Stream(orderID), paid), ada)
	if strings.Contains(m.Text, "Card") || strings.Contains(m.HTML, "Card") {
		t.Errorf("a payment without last4 mentions a card:\n%s", m.Text)
	}
}

func TestOrderCompleted(t *testing.T) {
	r := newRenderer(t)
	m := render(t, r, envelope(t, order.Stream(orderID), order.Completed{OrderID: orderID}), ada)
	checkMail(t, m, templates.TemplateOrderCompleted, "Test Shop: order "+ref+" shipped",
		"your order "+ref+" is complete and has been shipped", "Order id: "+orderID)
}

func TestOrderCancelled(t *testing.T) {
	r := newRenderer(t)
	for _, tc := range []struct {
		reason   string
		refunded bool
		want     []string
	}{
		{order.ReasonPaymentTimeout, false, []string{"cancelled because it was not paid in time.", "nothing to refund"}},
		{"cancelled", true, []string{"has been cancelled on request.", "your payment is being refunded"}},
		{"Ordered the wrong size", true, []string{"Reason given: Ordered the wrong size", "your payment is being refunded"}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			e := order.Cancelled{OrderID: orderID, Reason: tc.reason, Refunded: tc.refunded}
			m := render(t, r, envelope(t, order.Stream(orderID), e), ada)
			checkMail(t, m, templates.TemplateOrderCancelled, "Test Shop: order "+ref+" cancelled",
				append(tc.want, "Your order "+ref+" has been cancelled", "Order id: "+orderID)...)
			if strings.Contains(m.Text, order.ReasonPaymentTimeout) {
				t.Errorf("text shows the reason code:\n%s", m.Text)
			}
		})
	}
}

func TestHTMLEscapesCustomerStrings(t *testing.T) {
	r := newRenderer(t)
	const evil = `<script>alert("x")</script>`
	to := templates.Recipient{Email: ada.Email, Name: evil}
	for _, env := range []published.Envelope{
		envelope(t, user.Stream(userID), user.Registered{UserID: userID, Email: ada.Email, FullName: evil}),
		envelope(t, order.Stream(orderID), order.Created{OrderID: orderID, UserID: userID, Total: 100,
			Items: []order.Item{{ProductID: "p1", SKU: "S<b>1", Name: evil, Quantity: 1, Price: 100}}}),
		envelope(t, order.Stream(orderID), order.Cancelled{OrderID: orderID, Reason: evil}),
	} {
		m := render(t, r, env, to)
		if strings.Contains(m.HTML, "<script") || strings.Contains(m.HTML, "<b>") {
			t.Errorf("%s: html holds unescaped markup:\n%s", env.Type, m.HTML)
		}
		if !strings.Contains(m.HTML, "&lt;script&gt;") {
			t.Errorf("%s: html lacks the escaped name:\n%s", env.Type, m.HTML)
		}
		if !strings.Contains(m.Text, evil) || !strings.Contains(visible(m.HTML), evil) {
			t.Errorf("%s: a part does not show the name as written", env.Type)
		}
	}
}

func TestSubjectIsOneLine(t *testing.T) {
	r, err := templates.New(templates.Options{ShopName: "Shop\r\nBcc: victim@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	m := render(t, r, envelope(t, order.Stream(orderID), order.Completed{OrderID: "x\r\nBcc: y"}), ada)
	if strings.ContainsAny(m.Subject, "\r\n") {
		t.Errorf("Subject = %q, spans lines", m.Subject)
	}
}

func TestDefaults(t *testing.T) {
	r, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	paid := order.Paid{OrderID: orderID, PaymentID: "pay_1", Amount: 1250}
	m := render(t, r, envelope(t, order.Stream(orderID), paid), templates.Recipient{})
	if m.Subject != templates.DefaultShopName+": receipt for order "+ref {
		t.Errorf("Subject = %q", m.Subject)
	}
	if !strings.Contains(m.Text, "Amount paid: 12.50\n") {
		t.Errorf("without a currency, amounts carry no symbol:\n%s", m.Text)
	}
	if !strings.HasPrefix(m.Text, "Hello,\n") || strings.Contains(m.Text, "sent to") || strings.Contains(m.HTML, "href") {
		t.Errorf("an empty recipient or base URL shows up:\n%s\n%s", m.Text, m.HTML)
	}
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"shop.example", "ftp://shop.example", "javascript:alert(1)", "https://"} {
		if _, err := templates.New(templates.Options{BaseURL: u}); err == nil {
			t.Errorf("New(BaseURL %q) = nil error", u)
		}
	}
}

func TestOtherTypesGetNoMail(t *testing.T) {
	r := newRenderer(t)
	for _, typ := range []string{"user.credentials_set", "user.role_granted", "order.refunded", "order.payment_voided",
		"product.created", "inventory.reserved", "order.created.v2", ""} {
		m, ok, err := r.Render(rawEnvelope("x-1", typ, []byte(`not even json`)), ada)
		if ok || err != nil || m != (templates.Mail{}) {
			t.Errorf("Render(%q) = %+v, %v, %v; want nothing", typ, m, ok, err)
		}
		if ok, err := r.Check(rawEnvelope("x-1", typ, []byte(`not even json`))); ok || err != nil {
			t.Errorf("Check(%q) = %v, %v; want nothing", typ, ok, err)
		}
	}
}

func TestMalformedDataIsAnError(t *testing.T) {
	r := newRenderer(t)
	for _, tc := range []struct{ typ, data string }{
		{"user.registered", `not json`},
		{"user.registered", `{"user_id": 5}`},
		{"user.registered", `null`},
		{"order.created", `{"order_id": "o1", "total": "12.50"}`},
		{"order.created", `{"order_id": "o1", "total": 1.005}`},
		{"order.paid", `[]`},
		{"order.completed", `{}`},
		{"order.cancelled", `{"order_id": "o1", "refunded": "yes"}`},
		{"order.cancelled", ``},
	} {
		m, ok, err := r.Render(rawEnvelope("order-o1", tc.typ, []byte(tc.data)), ada)
		if !errors.Is(err, templates.ErrInvalidData) || ok || m != (templates.Mail{}) {
			t.Errorf("Render(%s %s) = ok %v, %v; want ErrInvalidData", tc.typ, tc.data, ok, err)
		}
		if ok, err := r.Check(rawEnvelope("order-o1", tc.typ, []byte(tc.data))); !errors.Is(err, templates.ErrInvalidData) || ok {
			t.Errorf("Check(%s %s) = ok %v, %v; want ErrInvalidData", tc.typ, tc.data, ok, err)
		}
	}
}

// A stored order renders whatever amounts it holds: the order of issue 12
// (written before totals were bounded), and values whose product does not
// fit an int64, which no writer produced but which decode.
func TestRendersAnyStoredAmounts(t *testing.T) {
	r := newRenderer(t)
	for _, tc := range []struct {
		name, data string
		wants      []string
	}{
		{"issue 12", `{"order_id": "o1", "items": [{"sku": "A", "name": "Gold", "quantity": 10000, "price": 1000000000.00}], "total": 10000000000000.00}`,
			[]string{"- Gold (SKU A): 10000 × €1000000000.00 = €10000000000000.00\n", "Total: €10000000000000.00"}},
		{"beyond int64", `{"order_id": "o1", "items": [{"sku": "A", "name": "Gold", "quantity": 100000000000, "price": 92233720368547758.07}], "total": 1.00}`,
			[]string{"= €9223372036854775807000000000.00\n"}},
		{"a negative quantity", `{"order_id": "o1", "items": [{"sku": "A", "name": "Gold", "quantity": -1, "price": 0.01}], "total": -0.01}`,
			[]string{"-1 × €0.01 = -€0.01\n", "Total: -€0.01"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok, err := r.Render(rawEnvelope("order-o1", "order.created", []byte(tc.data)), ada)
			if err != nil || !ok {
				t.Fatalf("Render = ok %v, %v; want a mail", ok, err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(m.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, m.Text)
				}
			}
		})
	}
}

func TestToleratesUnknownFieldsAndNewerSchemas(t *testing.T) {
	r := newRenderer(t)
	created := order.Created{OrderID: orderID, UserID: userID, Total: 1250,
		Items: []order.Item{{ProductID: "p1", SKU: "MUG-1", Name: "Mug", Quantity: 1, Price: 1250}}}
	want := render(t, r, envelope(t, order.Stream(orderID), created), ada)

	var data map[string]any
	b, _ := json.Marshal(created)
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	data["gift_wrap"] = map[string]any{"paper": "red"}
	data["items"].([]any)[0].(map[string]any)["colour"] = "blue"
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	env := rawEnvelope(order.Stream(orderID), "order.created", b)
	env.SchemaVersion = 7
	if got := render(t, r, env, ada); got != want {
		t.Errorf("extra fields changed the mail:\n%s\nwant\n%s", got.Text, want.Text)
	}
}
