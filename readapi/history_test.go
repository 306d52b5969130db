package readapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/eventshop/eventshop/writeapi"
)

// testStack is the binary's HTTP side in one process, as cmd/eventshop wires
// it: the write API and the read API on one router behind the write API's
// middleware, over an in-memory event store, with real tokens (Redis).
// The order history is read from the stack's own command handler and
// store. The read models are not there: the routes under test do not use
// them.
type testStack struct {
	t      *testing.T
	store  *memory.Store
	cmd    commands.Handlers
	tokens *auth.Service
	reads  *Server
	router http.Handler
}

// newTestStack builds a testStack; configure adds to the read API's Config.
func newTestStack(t *testing.T, configure func(*Config)) *testStack {
	t.Helper()
	rdb, prefix := redistest.New(t)
	tokens, err := auth.New(auth.Config{
		Secret: []byte("readapi-test-secret-0123456789-abcdefghij"), Issuer: "eventshop-test", Audience: "eventshop-test",
		KeyPrefix: prefix,
	}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	h := commands.New(commands.Config{Store: st, Payments: payment.NewTestProcessor()})
	authenticate := edge.Authenticate(tokens, h.Users)
	api := writeapi.New(writeapi.Config{
		Authenticate: authenticate, Users: h.Users, Catalog: h.Catalog, Orders: h.Orders, Auth: tokens,
		Logins:      auth.NewLoginLimiter(rdb, prefix, auth.LoginLimits{}),
		Idempotency: idempotency.New(rdb, idempotency.Config{KeyPrefix: prefix}),
	})
	cfg := Config{
		Log: st, Orders: h.Orders, Streams: st,
		Checkpoint: func(context.Context, string) (eventstore.Position, error) { return eventstore.Start, nil },
	}
	if configure != nil {
		configure(&cfg)
	}
	reads := New(cfg)
	r := chi.NewRouter()
	r.Use(edge.Middleware(nil))
	api.Routes(r)
	reads.Routes(r, authenticate)
	return &testStack{t: t, store: st, cmd: h, tokens: tokens, reads: reads, router: r}
}

// testCaller is a registered user with an access token.
type testCaller struct {
	id    string
	token string
}

// user registers a user holding roles besides customer and issues it an
// access token.
func (s *testStack) user(tag string, roles ...string) testCaller {
	s.t.Helper()
	ctx := context.Background()
	u, _, err := s.cmd.Users.RegisterUser(ctx, commands.RegisterUser{
		Email: tag + "-" + uuid.NewString()[:8] + "@example.org", Password: "correct horse battery", FullName: "Test " + tag,
	})
	if err != nil {
		s.t.Fatalf("register %s: %v", tag, err)
	}
	system := commands.Actor{ID: "system", Roles: []string{user.RoleAdmin}}
	for _, role := range roles {
		if _, _, err := s.cmd.Users.GrantRole(ctx, system, u.ID, role); err != nil {
			s.t.Fatalf("grant %s to %s: %v", role, tag, err)
		}
	}
	tok, err := s.tokens.Issue(ctx, u.ID, append([]string{user.RoleCustomer}, roles...))
	if err != nil {
		s.t.Fatal(err)
	}
	return testCaller{id: u.ID, token: tok.AccessToken}
}

// do sends a request through the router as a (when it has a token), with
// header name/value pairs; body, when not nil, is sent as JSON.
func (s *testStack) do(method, path string, a testCaller, body any, hdr ...string) *httptest.ResponseRecorder {
	s.t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			s.t.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, path, &buf)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.router.ServeHTTP(w, req)
	return w
}

// expectStatus fails the test unless w has status, and decodes its JSON body into
// v when v is not nil.
func expectStatus(t *testing.T, what string, w *httptest.ResponseRecorder, status int, v any) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("%s: %d %s, want %d", what, w.Code, w.Body, status)
	}
	if v != nil {
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("%s: %v: %s", what, err, w.Body)
		}
	}
}

// expectProblem fails the test unless w is a problem+json answer of status.
func expectProblem(t *testing.T, what string, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	expectStatus(t, what, w, status, &p)
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Errorf("%s: problem %s", what, w.Body)
	}
}

// product lists a product of vendor v with stock and returns its id.
func (s *testStack) product(v testCaller, price domain.Cents) string {
	s.t.Helper()
	p, _, err := s.cmd.Catalog.CreateProduct(context.Background(), commands.Actor{ID: v.id, Roles: []string{user.RoleVendor}}, commands.CreateProduct{
		SKU: "SKU-" + uuid.NewString()[:8], Name: "Kettle", Price: price, Category: "kitchen", Quantity: 10,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return p.ID
}

// order places an order of one unit of productID for c.
func (s *testStack) order(t *testing.T, c testCaller, productID string) order.State {
	t.Helper()
	o, _, err := s.cmd.Orders.PlaceOrder(context.Background(), commands.Actor{ID: c.id, Roles: []string{user.RoleCustomer}},
		[]order.Line{{ProductID: productID, Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// historyOf is the answer of GET /api/orders/{id}/history.
type historyOf struct {
	OrderID string `json:"order_id"`
	Events  []struct {
		Version       int64           `json:"version"`
		EventID       string          `json:"event_id"`
		EventType     string          `json:"event_type"`
		Timestamp     string          `json:"timestamp"`
		ActorID       string          `json:"actor_id"`
		CorrelationID string          `json:"correlation_id"`
		CausationID   string          `json:"causation_id"`
		Data          json.RawMessage `json:"data"`
	} `json:"events"`
	Truncated bool `json:"truncated"`
}

// TestOrderHistory: the events of an order's stream, in order, each with
// the actor and correlation id of the request that caused it and its
// data, for the owner, an admin and a vendor with items in it; anyone
// else, and ids of no order, get the same 404.
func TestOrderHistory(t *testing.T) {
	s := newTestStack(t, nil)
	admin := s.user("admin", user.RoleAdmin)
	v1, v2 := s.user("vendor1", user.RoleVendor), s.user("vendor2", user.RoleVendor)
	owner, other := s.user("owner"), s.user("other")
	p1 := s.product(v1, 1250)
	s.product(v2, 399) // v2 is a vendor, yet has nothing in the order

	var placed struct {
		ID string `json:"id"`
	}
	expectStatus(t, "place", s.do(http.MethodPost, "/api/orders", owner, map[string]any{
		"items": []map[string]any{{"product_id": p1, "quantity": 2}},
	}, "X-Correlation-ID", "corr-place"), http.StatusCreated, &placed)
	path := "/api/orders/" + placed.ID + "/history"
	expectStatus(t, "pay", s.do(http.MethodPost, "/api/orders/"+placed.ID+"/pay", owner, map[string]any{
		"payment_method": map[string]any{"card_number": payment.TestCardSuccess, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	}, "X-Correlation-ID", "corr-pay"), http.StatusOK, nil)
	expectStatus(t, "cancel", s.do(http.MethodPost, "/api/orders/"+placed.ID+"/cancel", admin, map[string]any{"reason": "out of stock"},
		"X-Correlation-ID", "corr-cancel"), http.StatusOK, nil)
	type step struct{ typ, actor, correlation string }
	wantSteps := []step{
		{"order.created", owner.id, "corr-place"},
		{"order.paid", owner.id, "corr-pay"},
		{"order.cancelled", admin.id, "corr-cancel"},
		// The refund follows the cancellation of a paid order, in the
		// same request.
		{"order.refunded", admin.id, "corr-cancel"},
	}
	var first string
	for _, who := range []struct {
		name string
		a    testCaller
	}{{"owner", owner}, {"admin", admin}, {"vendor with items", v1}} {
		w := s.do(http.MethodGet, path, who.a, nil)
		var h historyOf
		expectStatus(t, who.name, w, http.StatusOK, &h)
		if first == "" {
			first = w.Body.String()
		} else if w.Body.String() != first {
			t.Errorf("%s sees another history:\n%s\nwant\n%s", who.name, w.Body, first)
		}
		if h.OrderID != placed.ID || len(h.Events) != len(wantSteps) || h.Truncated {
			t.Fatalf("%s: %s", who.name, w.Body)
		}
		if etag := w.Header().Get("ETag"); etag != `"3"` {
			t.Errorf("%s: ETag %s, want the stream version \"3\"", who.name, etag)
		}
		ids := map[string]bool{}
		for i, e := range h.Events {
			got := step{e.EventType, e.ActorID, e.CorrelationID}
			if e.Version != int64(i) || got != wantSteps[i] {
				t.Errorf("%s: event %d is version %d %+v, want %+v", who.name, i, e.Version, got, wantSteps[i])
			}
			if ts, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil || !strings.HasSuffix(e.Timestamp, "Z") || time.Since(ts) > time.Minute {
				t.Errorf("%s: event %d timestamp %q, want a recent RFC 3339 UTC time", who.name, i, e.Timestamp)
			}
			if uuid.Validate(e.EventID) != nil || ids[e.EventID] {
				t.Errorf("%s: event %d id %q is not a fresh UUID", who.name, i, e.EventID)
			}
			ids[e.EventID] = true
		}
	}

	// The data is each event's, in the API's money format, and the card
	// number is nowhere but its last four digits.
	var h historyOf
	expectStatus(t, "owner", s.do(http.MethodGet, path, owner, nil), http.StatusOK, &h)
	var created order.Created
	if err := json.Unmarshal(h.Events[0].Data, &created); err != nil {
		t.Fatal(err)
	}
	if created.OrderID != placed.ID || created.UserID != owner.id || len(created.Items) != 1 ||
		created.Items[0].ProductID != p1 || created.Items[0].Quantity != 2 || created.Total != 2500 {
		t.Errorf("order.created data %s", h.Events[0].Data)
	}
	if !bytes.Contains(h.Events[0].Data, []byte(`"total":25.00`)) {
		t.Errorf("order.created data %s: total is not 25.00", h.Events[0].Data)
	}
	var paid order.Paid
	if err := json.Unmarshal(h.Events[1].Data, &paid); err != nil {
		t.Fatal(err)
	}
	if paid.PaymentID == "" || paid.Amount != 2500 || paid.Last4 != "4242" {
		t.Errorf("order.paid data %s", h.Events[1].Data)
	}
	var cancelled order.Cancelled
	if err := json.Unmarshal(h.Events[2].Data, &cancelled); err != nil {
		t.Fatal(err)
	}
	if cancelled.Reason != "out of stock" {
		t.Errorf("order.cancelled data %s", h.Events[2].Data)
	}
	if w := s.do(http.MethodGet, path, owner, nil); strings.Contains(w.Body.String(), payment.TestCardSuccess) {
		t.Errorf("the history shows the card number: %s", w.Body)
	}

	// Not yours reads exactly like does not exist.
	for _, c := range []struct {
		name string
		a    testCaller
		path string
	}{
		{"another customer", other, path},
		{"a vendor without items in it", v2, path},
		{"an unknown order", admin, "/api/orders/" + uuid.NewString() + "/history"},
		{"a malformed id", admin, "/api/orders/not-a-uuid/history"},
		{"an id in another form", admin, "/api/orders/{" + placed.ID + "}/history"},
	} {
		expectProblem(t, c.name, s.do(http.MethodGet, c.path, c.a, nil), http.StatusNotFound)
	}
	expectProblem(t, "no token", s.do(http.MethodGet, path, testCaller{}, nil), http.StatusUnauthorized)

	// If-None-Match with the ETag: nothing changed, nothing sent.
	if w := s.do(http.MethodGet, path, owner, nil, "If-None-Match", `"3"`); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match \"3\": %d %s, want 304 without a body", w.Code, w.Body)
	}
}

// TestOrderHistoryOfAbandonedPlacement: a stream holding only the fence of
// a placement that never finished is no order, for anyone.
func TestOrderHistoryOfAbandonedPlacement(t *testing.T) {
	s := newTestStack(t, nil)
	admin := s.user("admin", user.RoleAdmin)
	id := uuid.NewString()
	exists, err := s.cmd.Orders.AbandonPlacement(context.Background(), id, nil)
	if err != nil || exists {
		t.Fatalf("abandon placement: exists %v, err %v", exists, err)
	}
	evs, err := s.store.ReadStream(context.Background(), order.Stream(id), eventstore.Forwards, 0, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != "order.placement_abandoned" {
		t.Fatalf("the stream holds %v (%v), want one order.placement_abandoned", evs, err)
	}
	expectProblem(t, "abandoned placement", s.do(http.MethodGet, "/api/orders/"+id+"/history", admin, nil), http.StatusNotFound)
}

// TestOrderHistoryPages: a stream longer than one read is read page by
// page, in order; one longer than maxHistory is cut there and says so,
// with the stream's version as its ETag.
func TestOrderHistoryPages(t *testing.T) {
	s := newTestStack(t, nil)
	admin := s.user("admin", user.RoleAdmin)
	customer := s.user("customer")
	p := s.product(s.user("vendor", user.RoleVendor), 100)
	for _, c := range []struct {
		extra     int // events appended after order.created
		listed    int
		truncated bool
	}{
		{historyPage + historyPage/2 - 1, historyPage + historyPage/2, false},
		{maxHistory - 1, maxHistory, false},
		{maxHistory + 100, maxHistory, true},
	} {
		t.Run(fmt.Sprint(c.extra+1, " events"), func(t *testing.T) {
			o := s.order(t, customer, p)
			// Voided charges: events an order's stream may really hold,
			// any number of times.
			var batch []eventstore.EventData
			for i := range c.extra {
				data, _ := json.Marshal(order.PaymentVoided{OrderID: o.ID, ChargeID: fmt.Sprint("ch_", i), Amount: 100})
				batch = append(batch, eventstore.EventData{Type: "order.payment_voided", Data: data})
			}
			for len(batch) > 0 {
				n := min(len(batch), 500)
				if _, err := s.store.Append(context.Background(), order.Stream(o.ID), eventstore.StreamExists, batch[:n]...); err != nil {
					t.Fatal(err)
				}
				batch = batch[n:]
			}
			w := s.do(http.MethodGet, "/api/orders/"+o.ID+"/history", admin, nil)
			var h historyOf
			expectStatus(t, "history", w, http.StatusOK, &h)
			if len(h.Events) != c.listed || h.Truncated != c.truncated {
				t.Fatalf("%d events listed, truncated %v; want %d, %v", len(h.Events), h.Truncated, c.listed, c.truncated)
			}
			for i, e := range h.Events {
				if e.Version != int64(i) {
					t.Fatalf("event %d has version %d", i, e.Version)
				}
			}
			if last := h.Events[len(h.Events)-1]; last.EventType != "order.payment_voided" ||
				!bytes.Contains(last.Data, []byte(fmt.Sprintf(`"charge_id":"ch_%d"`, c.listed-2))) {
				t.Errorf("last event listed: %s %s", last.EventType, last.Data)
			}
			if etag, v := w.Header().Get("ETag"), fmt.Sprintf("%q", fmt.Sprint(c.extra)); etag != v {
				t.Errorf("ETag %s, want the stream version %s", etag, v)
			}
		})
	}
}

// failingStreams is an event store whose stream reads fail.
type failingStreams struct{}

func (failingStreams) ReadStream(context.Context, string, eventstore.Direction, int64, int) ([]eventstore.Event, error) {
	return nil, errors.New("connection refused by 10.0.0.7:5432")
}

// TestOrderHistoryStoreDown: a store that cannot be read is a 503 that
// names nothing of it.
func TestOrderHistoryStoreDown(t *testing.T) {
	s := newTestStack(t, func(c *Config) { c.Streams = failingStreams{} })
	owner := s.user("owner")
	p := s.product(s.user("vendor", user.RoleVendor), 100)
	o := s.order(t, owner, p)
	w := s.do(http.MethodGet, "/api/orders/"+o.ID+"/history", owner, nil)
	expectProblem(t, "store down", w, http.StatusServiceUnavailable)
	if strings.Contains(w.Body.String(), "10.0.0.7") {
		t.Errorf("the 503 shows internals: %s", w.Body)
	}
}

// TestHistoryRouteNeedsItsDependencies: without Orders and Streams the
// route is not there at all, rather than failing on a nil.
func TestHistoryRouteNeedsItsDependencies(t *testing.T) {
	s := newTestStack(t, func(c *Config) { c.Orders = nil })
	admin := s.user("admin", user.RoleAdmin)
	w := s.do(http.MethodGet, "/api/orders/"+uuid.NewString()+"/history", admin, nil)
	// chi's own 404 is plain text; every handler's is problem+json.
	if w.Code != http.StatusNotFound || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s %s, want chi's 404 of no such route", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}

// withBadEvent reads streams as they are and adds an event that does not
// decode to every page, as a store holding it past what the order's
// commands read would.
type withBadEvent struct {
	StreamReader
	id uuid.UUID
}

func (s withBadEvent) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error) {
	evs, err := s.StreamReader.ReadStream(ctx, stream, dir, from, count)
	if err != nil || len(evs) == 0 {
		return evs, err
	}
	bad := eventstore.Event{EventData: eventstore.EventData{ID: s.id, Type: "order.paid", SchemaVersion: 1,
		Data: json.RawMessage(`{"order_id": 5}`)}, StreamID: stream, Version: evs[len(evs)-1].Version + 1}
	return append(evs, bad), nil
}

// TestOrderHistoryUnreadable: an order stream holding an event that does
// not decode answers 409 stream_unreadable naming the stream and the
// event, whether the order's own read or the history's meets it first.
func TestOrderHistoryUnreadable(t *testing.T) {
	bad := uuid.Must(uuid.NewV7())
	for name, configure := range map[string]func(*Config){
		"in the store":                        nil,
		"past what the order's commands read": func(c *Config) { c.Streams = withBadEvent{StreamReader: c.Streams, id: bad} },
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestStack(t, configure)
			owner := s.user("owner")
			p := s.product(s.user("vendor", user.RoleVendor), 100)
			o := s.order(t, owner, p)
			if configure == nil {
				if _, err := s.store.Append(context.Background(), order.Stream(o.ID), eventstore.Exact(0), eventstore.EventData{
					ID: bad, Type: "order.paid", SchemaVersion: 1, Data: json.RawMessage(`{"order_id": 5}`),
					Metadata: eventstore.Metadata{Timestamp: time.Now()},
				}); err != nil {
					t.Fatal(err)
				}
			}
			w := s.do(http.MethodGet, "/api/orders/"+o.ID+"/history", owner, nil)
			expectProblem(t, "unreadable stream", w, http.StatusConflict)
			var p409 struct {
				Code    string `json:"code"`
				Stream  string `json:"stream"`
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(w.Body.Bytes(), &p409)
			if p409.Code != domain.ReasonStreamUnreadable || p409.Stream != order.Stream(o.ID) || p409.EventID != bad.String() {
				t.Errorf("409 %s, want code stream_unreadable naming %s and %s", w.Body, order.Stream(o.ID), bad)
			}
		})
	}
}
