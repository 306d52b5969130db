package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// client talks JSON to eventshop and counts every status it gets.
type client struct {
	base string
	http *http.Client

	mu       sync.Mutex
	statuses map[int]int
	errors   int      // no answer at all (connection refused or reset, timeout)
	fives    []string // the 500s (never expected), with their bodies
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 20 * time.Second}, statuses: map[int]int{}}
}

// answer is one response, read whole.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (a answer) str(key string) string {
	s, _ := a.body[key].(string)
	return s
}

// do sends one request; hdr is name/value pairs. A transport error is
// returned as status 0 with the error.
func (c *client) do(ctx context.Context, method, path, token string, body any, hdr ...string) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{}, err
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
	resp, err := c.http.Do(req)
	if err != nil {
		c.mu.Lock()
		c.errors++
		c.mu.Unlock()
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	c.mu.Lock()
	c.statuses[resp.StatusCode]++
	if resp.StatusCode == http.StatusInternalServerError {
		c.fives = append(c.fives, fmt.Sprintf("%s %s: %s", method, path, bytes.TrimSpace(raw)))
	}
	c.mu.Unlock()
	return a, err
}

// must is do for set-up steps: anything but want is an error.
func (c *client) must(ctx context.Context, want int, method, path, token string, body any) (answer, error) {
	a, err := c.do(ctx, method, path, token, body)
	if err == nil && a.status != want {
		err = fmt.Errorf("%s %s: %d, want %d: %s", method, path, a.status, want, bytes.TrimSpace(a.raw))
	}
	return a, err
}

// account is a signed-in user.
type account struct {
	id, email, token string
}

const password = "Chaos-Passw0rd!"

func (c *client) signIn(ctx context.Context, email, pass string) (*account, error) {
	tok, err := c.must(ctx, http.StatusOK, "POST", "/api/auth/login", "", map[string]any{"email": email, "password": pass})
	if err != nil {
		return nil, err
	}
	a := &account{email: email, token: tok.str("access_token")}
	me, err := c.must(ctx, http.StatusOK, "GET", "/api/auth/me", a.token, nil)
	if err != nil {
		return nil, err
	}
	a.id = me.str("id")
	return a, nil
}

func (c *client) register(ctx context.Context, admin *account, tag string, roles ...string) (*account, error) {
	email := fmt.Sprintf("%s-%s@chaos.example", tag, uuid.NewString()[:8])
	if _, err := c.must(ctx, http.StatusCreated, "POST", "/api/auth/register", "",
		map[string]any{"email": email, "password": password, "full_name": "Chaos " + tag}); err != nil {
		return nil, err
	}
	a, err := c.signIn(ctx, email, password)
	if err != nil {
		return nil, err
	}
	for _, role := range roles {
		if _, err := c.must(ctx, http.StatusOK, "POST", "/api/users/"+a.id+"/roles", admin.token, map[string]any{"role": role}); err != nil {
			return nil, err
		}
	}
	if len(roles) > 0 {
		return c.signIn(ctx, email, password)
	}
	return a, nil
}

// shop is the cast and the catalogue every scenario shares.
type shop struct {
	c        *client
	admin    *account
	vendor   *account
	shoppers []*account
	products []string
	units    int64            // stock added to each product at each scenario's start
	quantity map[string]int64 // each product's units on hand, as the last restock answered
	// impatient makes every client give up on a payment that got no
	// answer, so that a crash after a charge leaves it unrecorded.
	impatient atomic.Bool
}

// restock adds s.units to every product, so that each scenario races for
// stock of its own, and notes what each product then has on hand.
func (s *shop) restock(ctx context.Context) error {
	for _, p := range s.products {
		a, err := s.c.must(ctx, http.StatusOK, "POST", "/api/products/"+p+"/inventory", s.vendor.token,
			map[string]any{"adjustment": s.units, "reason": "chaos restock"})
		if err != nil {
			return err
		}
		var body struct {
			Inventory inventory `json:"inventory"`
		}
		if err := json.Unmarshal(a.raw, &body); err != nil {
			return err
		}
		s.quantity[p] = body.Inventory.Quantity
	}
	return nil
}

func setUp(ctx context.Context, c *client, adminEmail, adminPassword string, shoppers, products int, units int64) (*shop, error) {
	s := &shop{c: c, units: units, quantity: map[string]int64{}}
	var err error
	if s.admin, err = c.signIn(ctx, adminEmail, adminPassword); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if s.vendor, err = c.register(ctx, s.admin, "vendor", "vendor"); err != nil {
		return nil, err
	}
	for range shoppers {
		a, err := c.register(ctx, s.admin, "shopper")
		if err != nil {
			return nil, err
		}
		s.shoppers = append(s.shoppers, a)
	}
	for i := range products {
		p, err := c.must(ctx, http.StatusCreated, "POST", "/api/products", s.vendor.token, map[string]any{
			"sku": fmt.Sprintf("CHAOS-%d-%s", i, uuid.NewString()[:6]), "name": fmt.Sprintf("Chaos item %d", i),
			"price": json.Number("9.99")})
		if err != nil {
			return nil, err
		}
		s.products = append(s.products, p.str("id"))
	}
	return s, nil
}

// flow is what one shopper's attempt did, as the client saw it.
type flow struct {
	shopper    *account
	orderKey   string
	payKey     string
	lines      []map[string]any
	order      string         // the order its acknowledged placement answered with
	answers    map[string]int // key → the ids (order id, or "paid") of its 2xx answers, counted
	paidAck    bool           // a 200 to the payment
	placeTries int
	patient    bool // sends a payment that got no answer again; others give up on it
}

// run drives flows at rate a second until ctx ends: each places an order
// with an Idempotency-Key (most with a scarce product), and pays most of
// them with another. A request that gets no answer, a 503 or a 409 "in
// progress" is sent again with the same key until it is answered or
// settle ends; so is one cut off by the fault.
func (s *shop) run(ctx, settle context.Context, rate int, r *rand.Rand) []*flow {
	var mu sync.Mutex
	var flows []*flow
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return flows
		case <-tick.C:
		}
		f := &flow{shopper: s.shoppers[i%len(s.shoppers)], orderKey: uuid.NewString(), payKey: uuid.NewString(), answers: map[string]int{}}
		n := 1 + r.IntN(2)
		for _, j := range r.Perm(len(s.products))[:n] {
			f.lines = append(f.lines, map[string]any{"product_id": s.products[j], "quantity": 1 + r.IntN(3)})
		}
		pay := r.IntN(10) < 7
		f.patient = r.IntN(2) == 0
		mu.Lock()
		flows = append(flows, f)
		mu.Unlock()
		wg.Go(func() { s.flow(settle, f, pay) })
	}
}

// retryable says whether an answer (or its absence) means "send it again
// with the same key".
func retryable(a answer, err error) bool {
	return err != nil || a.status == http.StatusServiceUnavailable || a.status == http.StatusTooManyRequests ||
		(a.status == http.StatusConflict && a.header.Get("Retry-After") != "") || a.status >= 500
}

func (s *shop) flow(ctx context.Context, f *flow, pay bool) {
	body := map[string]any{"items": f.lines}
	for {
		f.placeTries++
		a, err := s.c.do(ctx, "POST", "/api/orders", f.shopper.token, body, "Idempotency-Key", f.orderKey)
		if a.status == http.StatusCreated {
			f.answers["place:"+a.str("id")]++
			f.order = a.str("id")
			break
		}
		if !retryable(a, err) || !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
	if !pay {
		return
	}
	card := map[string]any{"payment_method": map[string]any{"card_number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}}
	for {
		a, err := s.c.do(ctx, "POST", "/api/orders/"+f.order+"/pay", f.shopper.token, card, "Idempotency-Key", f.payKey)
		if a.status == http.StatusOK {
			f.answers["pay:"+a.str("status")]++
			f.paidAck = true
			return
		}
		if (err != nil && (!f.patient || s.impatient.Load())) || !retryable(a, err) || !sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// sleep waits d, false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d): // a client's pause before it retries
		return true
	}
}

// orderView is an order as GET /api/orders lists it.
type orderView struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	Items     []struct {
		ProductID string `json:"product_id"`
		Quantity  int64  `json:"quantity"`
	} `json:"items"`
	Payment *struct {
		ID string `json:"id"`
	} `json:"payment"`
}

// orders lists every order, as an admin.
func (s *shop) orders(ctx context.Context) ([]orderView, error) {
	var all []orderView
	for page := 1; ; page++ {
		a, err := s.c.must(ctx, http.StatusOK, "GET", "/api/orders?limit=100&page="+strconv.Itoa(page), s.admin.token, nil)
		if err != nil {
			return nil, err
		}
		var p struct {
			Items []orderView `json:"items"`
			Total int         `json:"total"`
		}
		if err := json.Unmarshal(a.raw, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if len(p.Items) == 0 || len(all) >= p.Total {
			return all, nil
		}
	}
}

// inventory is a product's stock as its vendor sees it.
type inventory struct {
	Quantity, Reserved, Available int64
}

func (s *shop) inventory(ctx context.Context, id string) (inventory, error) {
	a, err := s.c.must(ctx, http.StatusOK, "GET", "/api/products/"+id, s.vendor.token, nil)
	if err != nil {
		return inventory{}, err
	}
	var p struct {
		Inventory inventory `json:"inventory"`
	}
	err = json.Unmarshal(a.raw, &p)
	return p.Inventory, err
}

var errNotYet = errors.New("not yet")

// eventually runs check until it passes or ctx ends; the read models
// trail the log by a little, more so after a fault.
func eventually(ctx context.Context, check func() error) error {
	for {
		err := check()
		if err == nil || !errors.Is(err, errNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(500 * time.Millisecond): // poll the read models
		}
	}
}

func join(items []string, max int) string {
	if len(items) > max {
		return strings.Join(items[:max], "; ") + fmt.Sprintf("; and %d more", len(items)-max)
	}
	return strings.Join(items, "; ")
}
