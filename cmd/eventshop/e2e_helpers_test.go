package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

// The end-to-end tests drive the real program (run, through startRun)
// over HTTP, against a PostgreSQL database and a Redis key prefix of their
// own, so they can run in parallel.

// e2eSecret is the JWT_SECRET of every e2e run, so tests can forge tokens.
const e2eSecret = "e2e-jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz"

// Demo accounts seeded by `eventshop serve`.
const (
	adminEmail    = "admin@example.com"
	adminPassword = "Admin123!"
)

// e2eEnv is the environment of one isolated run: its own database, Redis
// prefix and data directory, a known JWT secret, and any extra key/value
// pairs.
func e2eEnv(t *testing.T, kv ...string) map[string]string {
	t.Helper()
	_, prefix := redistest.New(t)
	env := map[string]string{
		// A small pool per process: tests run two programs at a time (or
		// four, with the split deployment), and the server takes 100.
		"DATABASE_URL":      pgtest.NewDatabase(t) + "&pool_max_conns=6",
		"HTTP_ADDR":         "127.0.0.1:0",
		"DATA_DIR":          t.TempDir(),
		"REDIS_KEY_PREFIX":  prefix,
		"JWT_SECRET":        e2eSecret,
		"PAYMENT_PROCESSOR": "test",
		"LOG_LEVEL":         "warn",
		"MONGO_ADDR":        "127.0.0.1:0",
		"KAFKA_ADDR":        "127.0.0.1:0",
		"SMTP_SINK_ADDR":    "127.0.0.1:0",
		"NOTIFY_RETRY_MIN":  "20ms",
		"NOTIFY_RETRY_MAX":  "200ms",
		// Tests race up to 20 requests at once, under -race, to check
		// what the API decides; how much a 2-core machine serves at once
		// is TestE2EOverload's.
		"MAX_IN_FLIGHT": "64",
		// The waits poll every testwait.Interval (100 requests/s), beyond
		// the default per-address limit; TestE2EGateway and the nginx
		// tests set the limits they check.
		"RATE_LIMIT_PER_SECOND": "1000",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// server is a running program and an HTTP client for it.
type server struct {
	t    *testing.T
	base string
	env  map[string]string
	mode string // the subcommand: serve, writeapi, readapi, projector
	http *http.Client
	stop func() error // stops the program early (it is stopped when t ends anyway)
}

// startServer runs the program with env and args (default "serve") until
// t ends.
func startServer(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	base, stop := startRun(t, env, args...)
	mode := "serve"
	if len(args) > 0 {
		mode = args[0]
	}
	return &server{t: t, base: base, env: env, mode: mode, http: &http.Client{Timeout: 60 * time.Second}, stop: stop}
}

// newE2E starts `eventshop serve` (demo data seeded) with e2eEnv(kv...).
func newE2E(t *testing.T, kv ...string) *server {
	t.Helper()
	return startServer(t, e2eEnv(t, kv...))
}

// response is one HTTP answer, read in full.
type response struct {
	method, path string
	status       int
	header       http.Header
	raw          []byte
	body         map[string]any // the JSON object, numbers as json.Number; nil otherwise
}

func (r *response) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.method, r.path, r.status, bytes.TrimSpace(r.raw))
}

// rawBody is a request body sent as is.
type rawBody []byte

// do sends a request. body is nil (no body), rawBody (sent as is) or a
// value sent as JSON; a body goes with Content-Type: application/json
// unless hdr names another. token, when set, is sent as a Bearer token.
// hdr is header name/value pairs. The request and its answer are checked
// against docs/openapi.yaml (checkContract): an answer the document does
// not describe fails the test.
func (s *server) do(method, path, token string, body any, hdr ...string) *response {
	s.t.Helper()
	var rd io.Reader
	var sent []byte
	switch b := body.(type) {
	case nil:
	case rawBody:
		sent = b
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			s.t.Fatalf("encode %s %s body: %v", method, path, err)
		}
		sent = buf
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := &response{method: method, path: path, status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 && raw[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&r.body); err != nil {
			s.t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
		}
	}
	s.checkContract(req, sent, r)
	return r
}

func (s *server) post(path, token string, body any, hdr ...string) *response {
	s.t.Helper()
	return s.do(http.MethodPost, path, token, body, hdr...)
}

// want fails the test unless r has status.
func want(t *testing.T, r *response, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s, want %d", r, status)
	}
	return r
}

// wantProblem checks r is an RFC 9457 problem of status: content type
// application/problem+json and members type, title, status and detail.
func wantProblem(t *testing.T, r *response, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s, want %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s: Content-Type %q, want application/problem+json", r.method, r.path, ct)
	}
	if r.body == nil {
		t.Fatalf("%s: problem body is not a JSON object", r)
	}
	if typ, _ := r.body["type"].(string); typ == "" {
		t.Errorf("%s: problem has no type", r)
	}
	if title, _ := r.body["title"].(string); title != http.StatusText(status) {
		t.Errorf("%s: problem title %q, want %q", r, title, http.StatusText(status))
	}
	if got := num(t, r.body["status"]); got != float64(status) {
		t.Errorf("%s: problem status member %v, want %d", r, got, status)
	}
	if detail, _ := r.body["detail"].(string); detail == "" {
		t.Errorf("%s: problem has no detail", r)
	}
	return r
}

// wantFieldErrors checks r is a 422 problem whose errors list names every
// one of fields, each with a message.
func wantFieldErrors(t *testing.T, r *response, fields ...string) {
	t.Helper()
	wantProblem(t, r, http.StatusUnprocessableEntity)
	list, ok := r.body["errors"].([]any)
	if !ok || len(list) == 0 {
		t.Fatalf("%s: 422 without errors: [{field, message}]", r)
	}
	var got []string
	for _, e := range list {
		fe, _ := e.(map[string]any)
		f, _ := fe["field"].(string)
		m, _ := fe["message"].(string)
		if f == "" || m == "" {
			t.Errorf("%s: field error %v lacks field or message", r, e)
		}
		got = append(got, f)
	}
	for _, f := range fields {
		if !slices.Contains(got, f) {
			t.Errorf("%s: errors name %v, want %q among them", r, got, f)
		}
	}
}

// num reads a JSON number.
func num(t *testing.T, v any) float64 {
	t.Helper()
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		if err != nil {
			t.Fatalf("number %q: %v", n, err)
		}
		return f
	case float64:
		return n
	}
	t.Fatalf("%v (%T) is not a JSON number", v, v)
	return 0
}

var moneyPattern = regexp.MustCompile(`^-?[0-9]+\.[0-9]{2}$`)

// wantMoney checks v is a JSON number written with two decimals, equal to
// text (such as "19.90").
func wantMoney(t *testing.T, what string, v any, text string) {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Errorf("%s: %v (%T) is not a JSON number", what, v, v)
		return
	}
	if !moneyPattern.MatchString(n.String()) || n.String() != text {
		t.Errorf("%s: %s, want %s (a number with two decimals)", what, n, text)
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %v (%T) is not an object", what, v, v)
	}
	return m
}

func wantUUID(t *testing.T, what, s string) {
	t.Helper()
	if len(s) != 36 || uuid.Validate(s) != nil {
		t.Errorf("%s: %q is not a UUID", what, s)
	}
}

func wantTime(t *testing.T, what string, v any) {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("%s: %q is not an RFC 3339 time", what, s)
		return
	}
	if _, off := ts.Zone(); off != 0 || !strings.HasSuffix(s, "Z") {
		t.Errorf("%s: %q is not UTC", what, s)
	}
}

// wantPosition checks a successful command answered with X-Event-Position.
func wantPosition(t *testing.T, r *response) {
	t.Helper()
	if r.header.Get("X-Event-Position") == "" {
		t.Errorf("%s %s → %d: no X-Event-Position", r.method, r.path, r.status)
	}
}

// account is a signed-in user.
type account struct {
	id, email, password string
	token, refresh      string
}

// uniqueEmail returns an address no other test uses.
func uniqueEmail(tag string) string {
	return tag + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "@example.org"
}

const testPassword = "correct horse battery"

// register signs up email and returns the user's id.
func (s *server) register(email, password, name string) string {
	s.t.Helper()
	r := want(s.t, s.post("/api/auth/register", "", map[string]any{"email": email, "password": password, "full_name": name}), http.StatusCreated)
	return str(r.body, "id")
}

// login signs in and returns the tokens body.
func (s *server) login(email, password string) map[string]any {
	s.t.Helper()
	r := want(s.t, s.post("/api/auth/login", "", map[string]any{"email": email, "password": password}), http.StatusOK)
	return r.body
}

// signIn logs in an existing account.
func (s *server) signIn(email, password string) *account {
	s.t.Helper()
	tok := s.login(email, password)
	u := &account{email: email, password: password, token: str(tok, "access_token"), refresh: str(tok, "refresh_token")}
	me := want(s.t, s.do(http.MethodGet, "/api/auth/me", u.token, nil), http.StatusOK)
	u.id = str(me.body, "id")
	return u
}

// admin signs in the seeded admin.
func (s *server) admin() *account {
	s.t.Helper()
	return s.signIn(adminEmail, adminPassword)
}

// newUser registers a fresh customer, has admin grant it roles, and signs
// it in.
func (s *server) newUser(admin *account, tag string, roles ...string) *account {
	s.t.Helper()
	email := uniqueEmail(tag)
	id := s.register(email, testPassword, "Test "+tag)
	for _, role := range roles {
		s.grant(admin, id, role)
	}
	u := s.signIn(email, testPassword)
	if u.id != id {
		s.t.Fatalf("/api/auth/me says %s, registered %s", u.id, id)
	}
	return u
}

// cast signs in the seeded admin and makes a vendor and a customer of
// the test's own, tagged tag: who most tests need.
func (s *server) cast(tag string) (admin, vendor, customer *account) {
	s.t.Helper()
	admin = s.admin()
	return admin, s.newUser(admin, tag+"-vendor", "vendor"), s.newUser(admin, tag+"-customer")
}

// grant has admin give userID role.
func (s *server) grant(admin *account, userID, role string) *response {
	s.t.Helper()
	return want(s.t, s.post("/api/users/"+userID+"/roles", admin.token, map[string]any{"role": role}), http.StatusOK)
}

// createProduct lists a product as u with the given fields over defaults
// (a unique SKU, a name, price 10.00, quantity 10).
func (s *server) createProduct(u *account, fields map[string]any) map[string]any {
	s.t.Helper()
	body := map[string]any{
		"sku": "SKU-" + strings.ToUpper(strings.ReplaceAll(uuid.NewString(), "-", "")[:10]), "name": "Test product",
		"description": "made by a test", "price": json.Number("10.00"), "category": "tests", "quantity": 10,
	}
	for k, v := range fields {
		body[k] = v
	}
	r := want(s.t, s.post("/api/products", u.token, body), http.StatusCreated)
	return r.body
}

// product lists a product of quantity units at price (such as "10.00")
// and returns its id.
func (s *server) product(u *account, quantity int, price string) string {
	s.t.Helper()
	return str(s.createProduct(u, map[string]any{"quantity": quantity, "price": json.Number(price)}), "id")
}

// stock is a product's inventory.
type stock struct{ quantity, reserved, available int64 }

// stockOf reads a product's inventory as u (its vendor or an admin) by a
// PATCH that changes nothing: the write API answers with the product.
func (s *server) stockOf(u *account, productID string) stock {
	s.t.Helper()
	r := want(s.t, s.do(http.MethodPatch, "/api/products/"+productID, u.token, map[string]any{}), http.StatusOK)
	inv := obj(s.t, r.body["inventory"], "inventory")
	return stock{int64(num(s.t, inv["quantity"])), int64(num(s.t, inv["reserved"])), int64(num(s.t, inv["available"]))}
}

// waitStock polls a product's inventory until it is want, or fails after
// a deadline.
func (s *server) waitStock(u *account, productID string, want stock, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := s.stockOf(u, productID)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("product %s: stock %+v after %s, want %+v", productID, got, within, want)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// line is one order line.
type line struct {
	product  string
	quantity int
}

func orderBody(lines ...line) map[string]any {
	items := make([]any, len(lines))
	for i, l := range lines {
		items[i] = map[string]any{"product_id": l.product, "quantity": l.quantity}
	}
	return map[string]any{"items": items}
}

// placeOrder places an order as u; it does not check the answer.
func (s *server) placeOrder(u *account, lines ...line) *response {
	s.t.Helper()
	return s.post("/api/orders", u.token, orderBody(lines...))
}

// order places an order as u, expects 201 and returns its id.
func (s *server) order(u *account, lines ...line) string {
	s.t.Helper()
	return str(want(s.t, s.placeOrder(u, lines...), http.StatusCreated).body, "id")
}

// card is a payment_method body with a valid expiry and CVC.
func card(number string) map[string]any {
	return map[string]any{"payment_method": map[string]any{
		"card_number": number, "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123",
	}}
}

const (
	goodCard     = "4242424242424242"
	declinedCard = "4000000000000002"
)

func (s *server) pay(u *account, orderID, number string) *response {
	s.t.Helper()
	return s.post("/api/orders/"+orderID+"/pay", u.token, card(number))
}

func (s *server) cancel(u *account, orderID string, body any) *response {
	s.t.Helper()
	return s.post("/api/orders/"+orderID+"/cancel", u.token, body)
}

func (s *server) complete(u *account, orderID string) *response {
	s.t.Helper()
	return s.post("/api/orders/"+orderID+"/complete", u.token, nil)
}

// loggedEvent is one stored event, as the tests look at it.
type loggedEvent struct {
	Stream, Type, Correlation string
	Version                   int64
	Data                      []byte
}

// events reads every committed event of the run's database, in insertion
// order, to check what the write API cannot show (it has no order reads).
// It reads the table directly: the store's ReadAll holds back events
// younger than any transaction still open on the server, which in a
// parallel test run may belong to another test's database.
func (s *server) events() []loggedEvent {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(ctx)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT stream_id, type, correlation_id, version, data::text FROM eventstore.events ORDER BY id`)
	if err != nil {
		s.t.Fatalf("read the event store: %v", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (loggedEvent, error) {
		var e loggedEvent
		var data string
		err := row.Scan(&e.Stream, &e.Type, &e.Correlation, &e.Version, &data)
		e.Data = []byte(data)
		return e, err
	})
	if err != nil {
		s.t.Fatalf("read the event store: %v", err)
	}
	return evs
}

// streamEvents is the events of one stream, in order.
func (s *server) streamEvents(stream string) []loggedEvent {
	s.t.Helper()
	var out []loggedEvent
	for _, e := range s.events() {
		if e.Stream == stream {
			out = append(out, e)
		}
	}
	return out
}

func countType(evs []loggedEvent, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// connect opens a connection of its own to the run's database.
func (s *server) connect(ctx context.Context) *pgx.Conn {
	s.t.Helper()
	cfg, err := pgxpool.ParseConfig(s.env["DATABASE_URL"]) // takes the pool_max_conns a plain connection refuses
	if err != nil {
		s.t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		s.t.Fatalf("connect to the event store: %v", err)
	}
	return conn
}
