package load

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// action is one thing a shopper does on an arrival.
type action int

const (
	actList       action = iota // GET /api/products?page&limit=10, sometimes by category or sorted
	actProduct                  // GET /api/products/{id}
	actCategories               // GET /api/products/categories
	actOrders                   // GET /api/orders, signed in
	actMe                       // GET /api/auth/me
	actFlow                     // place an order, pay it, read it back with X-Min-Position
)

// MixEntry is one action of a mix and its weight.
type MixEntry struct {
	Action string
	Weight int
	do     action
}

// Mixes are the mixes a run can play, by name.
var Mixes = map[string][]MixEntry{
	// MixShoppers, in twentieths: 40% listing, 30% product, 5%
	// categories, 10% my orders, 5% me, 10% place + pay + read back.
	MixShoppers: {
		{"browse the listing", 8, actList}, {"view a product", 6, actProduct}, {"list categories", 1, actCategories},
		{"list my orders", 2, actOrders}, {"who am I", 1, actMe}, {"order, pay, read back", 2, actFlow},
	},
	// MixOrders is the write-heavy scenario: every arrival places an
	// order, pays it and reads it back.
	MixOrders: {{"order, pay, read back", 1, actFlow}},
}

// The mixes' names.
const (
	MixShoppers = "shoppers"
	MixOrders   = "orders"
)

// picker deals actions in a mix's proportions by smooth weighted round
// robin: every round of the weights' sum holds each action exactly its
// weight, spread out, so even a short run plays the whole mix.
type picker struct {
	mu      sync.Mutex
	mix     []MixEntry
	current []int
}

func (p *picker) next() action {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		p.current = make([]int, len(p.mix))
	}
	best, total := 0, 0
	for i, m := range p.mix {
		p.current[i] += m.Weight
		total += m.Weight
		if p.current[i] > p.current[best] {
			best = i
		}
	}
	p.current[best] -= total
	return p.mix[best].do
}

// sorts are the listing's sort orders of API.md.
var sorts = []string{"price", "-price", "name", "-created_at"}

// scenario plays the mix against a World, recording into stats (swapped
// between phases, never during one) and a timeline.
type scenario struct {
	c        *client
	w        *World
	pick     picker
	stats    *Stats
	timeline *Timeline
	maxPage  int
	card     map[string]any
	mails    *mailTally
}

func newScenario(c *client, w *World, mix []MixEntry, timeline *Timeline) *scenario {
	return &scenario{c: c, w: w, pick: picker{mix: mix}, timeline: timeline, stats: NewStats(), mails: newMailTally(),
		maxPage: max(min(50, (w.Total+9)/10), 1),
		card: map[string]any{"payment_method": map[string]any{"card_number": "4242424242424242",
			"exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123"}}}
}

// record adds a request of route that began at begin (its arrival's due
// time for the first request of an arrival) and ended now.
func (s *scenario) record(route string, due, begin time.Time, kind string) {
	end := time.Now()
	s.stats.Record(route, end.Sub(begin), kind)
	s.timeline.Record(route, due, end, end.Sub(begin), kind != "")
}

// arrive is one arrival: the next action of the mix, by a random shopper.
func (s *scenario) arrive(ctx context.Context, due time.Time) {
	sh := s.w.Shoppers[rand.IntN(len(s.w.Shoppers))]
	switch s.pick.next() {
	case actList:
		s.get(ctx, due, RouteList, "/api/products"+s.listQuery(), "")
	case actProduct:
		s.get(ctx, due, RouteProduct, "/api/products/"+pickOne(s.w.Products), "")
	case actCategories:
		s.get(ctx, due, RouteCategories, "/api/products/categories", "")
	case actOrders:
		s.get(ctx, due, RouteOrders, "/api/orders?page=1&limit=10", sh.Token)
	case actMe:
		s.get(ctx, due, RouteMe, "/api/auth/me", sh.Token)
	case actFlow:
		s.flow(ctx, due, sh)
	}
}

func (s *scenario) get(ctx context.Context, due time.Time, route, path, token string) {
	_, kind := s.c.do(ctx, request{method: "GET", path: path, token: token}, http.StatusOK)
	s.record(route, due, due, kind)
}

// listQuery is a listing page as shoppers ask for it: half the time the
// first page, mostly the first ten, sometimes deeper; 30% within a
// category, 30% sorted.
func (s *scenario) listQuery() string {
	var p int
	switch r := rand.IntN(10); {
	case r < 5:
		p = 1
	case r < 8:
		p = 1 + rand.IntN(min(s.maxPage, 10))
	default:
		p = 1 + rand.IntN(s.maxPage)
	}
	var cat, sort string
	if len(s.w.Categories) > 0 && rand.IntN(10) < 3 {
		cat = pickOne(s.w.Categories)
		p = 1 + rand.IntN(min(p, 3)) // categories hold fewer pages
	}
	if rand.IntN(10) < 3 {
		sort = pickOne(sorts)
	}
	return query("page", strconv.Itoa(p), "limit", "10", "category", cat, "sort", sort)
}

// flow places an order of one or two products, pays it and reads it back
// with the payment's position, recording each request and the whole.
func (s *scenario) flow(ctx context.Context, due time.Time, sh Shopper) {
	items := []map[string]any{{"product_id": pickOne(s.w.Orderable), "quantity": 1 + rand.IntN(3)}}
	if len(s.w.Orderable) > 1 && rand.IntN(2) == 0 {
		second := pickOne(s.w.Orderable)
		for second == items[0]["product_id"] {
			second = pickOne(s.w.Orderable)
		}
		items = append(items, map[string]any{"product_id": second, "quantity": 1})
	}
	fail := func(step, kind string) { s.record(RouteFlow, due, due, step+" "+kind) }

	placed, kind := s.c.do(ctx, request{method: "POST", path: "/api/orders", token: sh.Token,
		body: map[string]any{"items": items}, header: map[string]string{"Idempotency-Key": uuid.NewString()}}, http.StatusCreated)
	s.record(RoutePlace, due, due, kind)
	var order struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if kind != "" {
		fail("place", kind)
		return
	}
	if err := json.Unmarshal(placed.body, &order); err != nil || order.ID == "" {
		fail("place", "bad-body")
		return
	}
	s.mails.add(sh.Email) // the order's confirmation

	begin := time.Now()
	paid, kind := s.c.do(ctx, request{method: "POST", path: "/api/orders/" + order.ID + "/pay", token: sh.Token,
		body: s.card, header: map[string]string{"Idempotency-Key": uuid.NewString()}}, http.StatusOK)
	s.record(RoutePay, due, begin, kind)
	if kind != "" {
		fail("pay", kind)
		return
	}
	s.mails.add(sh.Email) // the receipt
	pos := paid.header.Get("X-Event-Position")

	begin = time.Now()
	read, kind := s.c.do(ctx, request{method: "GET", path: "/api/orders/" + order.ID, token: sh.Token,
		header: map[string]string{"X-Min-Position": pos}}, http.StatusOK)
	order.Status = ""
	switch stale := read.header.Get("X-Stale") == "true"; {
	case stale && kind != "":
		kind = "stale-" + kind // the model had not caught up within the wait, nor found the order
	case stale:
		kind = "stale"
	case kind != "":
	case json.Unmarshal(read.body, &order) != nil:
		kind = "bad-body"
	case order.Status != "paid":
		kind = "status-" + order.Status
	}
	s.record(RouteReadBack, due, begin, kind)
	if kind != "" {
		fail("read", kind)
		return
	}
	s.record(RouteFlow, due, due, "")
}

func pickOne(xs []string) string { return xs[rand.IntN(len(xs))] }
