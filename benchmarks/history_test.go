package benchmarks_test

import (
	"container/heap"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
)

// shop simulates a shop over a made-up timeline: customers register,
// vendors list products and restock them, customers place orders that
// are paid and completed, cancelled, or left to expire. Every step runs
// the domain's decide and evolve functions and records the events as the
// command layer appends them: a claim stream before each user and
// product, reservations on the product streams before the order, stock
// released or deducted after the order ends, one correlation id per
// request (also its causation id), the acting user as actor ("system" for
// the process manager, which names the event it reacts to as causation),
// UUIDv7 event ids and microsecond UTC timestamps. Events come out in
// the order of the timeline, so streams interleave as they do in a live
// log.
type shop struct {
	rng      *rand.Rand
	now      time.Time
	events   []eventstore.Event // StreamID, Version and EventData set; no Position
	versions map[string]int64

	admin     string
	admins    user.Admins
	vendors   []string
	customers []string
	products  []*product.State
	byID      map[string]*product.State
	orders    map[string]*shopOrder
	due       dueQueue
	counts    map[string]int
	seq       int
	// opened is how many events the shop's opening wrote (its admin,
	// vendors, catalogue and first customers) before the first order.
	opened int
}

// shopOrder is an order of the simulation and what the process manager
// would name when it expires the order.
type shopOrder struct {
	state       order.State
	correlation string
	createdID   string // the id of its order.created event
}

// Shape of the simulated shop. An order averages about 6 events: its
// reservations (1.8 lines), order.created, and for most of them
// order.paid, order.completed and a deduction per line.
const (
	shopVendors       = 40
	shopCustomers     = 3_000 // registered before the first order; more join over time
	shopProducts      = 1_000
	shopStock         = 5_000 // units per product, restocked by as many when short
	shopPaymentWindow = 15 * time.Minute
)

var shopCategories = []string{"kitchen", "garden", "books", "toys", "outdoor", "office", "audio", "bath", "lighting", "pets", "tools", "games"}

// newShop simulates a shop until it has written at least events events.
func newShop(seed uint64, events int) *shop {
	s := &shop{
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Now().UTC().Add(-60 * 24 * time.Hour),
		versions: map[string]int64{}, byID: map[string]*product.State{}, orders: map[string]*shopOrder{},
		counts: map[string]int{}, admins: user.NewAdmins(), events: make([]eventstore.Event, 0, events+64),
	}
	s.admin = s.register(user.RoleAdmin)
	for range shopVendors {
		s.tick(time.Minute)
		s.vendors = append(s.vendors, s.register(user.RoleVendor))
	}
	for range shopProducts {
		s.tick(20 * time.Second)
		s.createProduct()
	}
	for range shopCustomers {
		s.tick(20 * time.Second)
		s.customers = append(s.customers, s.register())
	}
	s.opened = len(s.events)
	for len(s.events) < events {
		s.tick(15 * time.Second)
		switch x := s.rng.Float64(); {
		case x < 0.03:
			s.customers = append(s.customers, s.register())
		case x < 0.033:
			s.createProduct()
		case x < 0.04:
			s.reprice(s.products[s.rng.IntN(len(s.products))])
		default:
			s.placeOrder(s.customers[s.rng.IntN(len(s.customers))])
		}
	}
	return s
}

// tick moves the clock on by an exponential gap of mean mean and runs
// the follow-ups that fell due meanwhile, each at its own time.
func (s *shop) tick(mean time.Duration) {
	next := s.now.Add(time.Duration(s.rng.ExpFloat64() * float64(mean)))
	for len(s.due) > 0 && !s.due[0].at.After(next) {
		d := heap.Pop(&s.due).(dueAction)
		s.now = d.at
		d.do()
	}
	s.now = next
}

func (s *shop) after(d time.Duration, do func()) {
	heap.Push(&s.due, dueAction{at: s.now.Add(d), do: do})
}

// between is a uniformly random duration in [lo, hi).
func (s *shop) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// request is the metadata of one API request by actor.
type request struct{ correlation, causation, actor string }

func (s *shop) request(actor string) request {
	id := uuid.NewString()
	return request{correlation: id, causation: id, actor: actor}
}

// write records events as appended to stream by r at the current time
// and folds each into the caller's state with fold (nil: none).
func (s *shop) write(stream string, r request, events []domain.Event, fold func(domain.Recorded)) {
	v, ok := s.versions[stream]
	if !ok {
		v = -1
	}
	at := s.now.Truncate(time.Microsecond)
	for _, e := range events {
		v++
		data, err := json.Marshal(e)
		if err != nil {
			panic(err)
		}
		s.events = append(s.events, eventstore.Event{StreamID: stream, Version: v, EventData: eventstore.EventData{
			ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), SchemaVersion: 1, Data: data,
			Metadata: eventstore.Metadata{CorrelationID: r.correlation, CausationID: r.causation, ActorID: r.actor, Timestamp: at},
		}})
		s.counts[e.EventType()]++
		if fold != nil {
			fold(domain.Recorded{Event: e, Version: v, At: at, ActorID: r.actor})
		}
	}
	s.versions[stream] = v
}

// must returns the events of a decision the simulation knows is valid.
func must(events []domain.Event, err error) []domain.Event {
	if err != nil {
		panic(fmt.Sprintf("shop simulation: %v", err))
	}
	return events
}

var firstNames = []string{"ada", "alan", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances", "edsger", "radia", "donald"}
var lastNames = []string{"lovelace", "turing", "hopper", "torvalds", "liskov", "thompson", "hamilton", "ritchie", "allen", "dijkstra", "perlman", "knuth"}

// register signs a user up (claim, registration and credentials in one
// request, with no actor: the caller is not signed in yet) and has the
// admin grant roles, each in a request of its own.
func (s *shop) register(roles ...string) string {
	id := uuid.Must(uuid.NewV7()).String()
	s.seq++
	first, last := firstNames[s.rng.IntN(len(firstNames))], lastNames[s.rng.IntN(len(lastNames))]
	email, err := user.NormaliseEmail(fmt.Sprintf("%s.%s.%d@example.org", first, last, s.seq))
	if err != nil {
		panic(err)
	}
	r := s.request("")
	s.write(user.EmailStream(email), r, must(unique.DecideClaim(unique.New(), email, id, "email_taken", false, false, s.now, time.Minute)), nil)
	u := user.New()
	fold := func(rec domain.Recorded) { u = user.Evolve(u, rec) }
	s.write(user.Stream(id), r, must(user.DecideRegister(u, user.Register{
		UserID: id, Email: email, FullName: strings.ToUpper(first[:1]) + first[1:] + " " + strings.ToUpper(last[:1]) + last[1:],
		PasswordHash: s.passwordHash(),
	})), fold)
	for _, role := range roles {
		s.now = s.now.Add(s.between(time.Second, time.Minute))
		granter := s.admin
		if granter == "" {
			granter = "system" // the first admin is made by the seed
		}
		g := s.request(granter)
		s.write(user.Stream(id), g, must(user.DecideGrantRole(u, role)), fold)
		if role == user.RoleAdmin {
			s.write(user.AdminsStream, g, user.DecideAdminAdded(s.admins, id), func(rec domain.Recorded) {
				s.admins = user.EvolveAdmins(s.admins, rec)
			})
		}
	}
	return id
}

// passwordHash is an argon2id PHC string of the real shape and length;
// hashing for real would cost 19 MiB and tens of milliseconds a user.
func (s *shop) passwordHash() string {
	salt, sum := make([]byte, 16), make([]byte, 32)
	for i := range salt {
		salt[i] = byte(s.rng.Uint32())
	}
	for i := range sum {
		sum[i] = byte(s.rng.Uint32())
	}
	enc := base64.RawStdEncoding
	return "$argon2id$v=19$m=19456,t=2,p=1$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(sum)
}

func foldProduct(p *product.State) func(domain.Recorded) {
	return func(r domain.Recorded) { *p = product.Evolve(*p, r) }
}

// createProduct lists a product of a random vendor: the SKU claim, then
// the product, in one request.
func (s *shop) createProduct() {
	vendor := s.vendors[s.rng.IntN(len(s.vendors))]
	id := uuid.Must(uuid.NewV7()).String()
	cat := shopCategories[s.rng.IntN(len(shopCategories))]
	n := len(s.products) + 1
	sku := fmt.Sprintf("%s-%05d", strings.ToUpper(cat[:3]), n)
	c := product.Create{
		ProductID: id, SKU: sku, VendorID: vendor, Category: cat, Warehouse: "main", Quantity: shopStock,
		Name:        fmt.Sprintf("%s %s no. %d", strings.ToUpper(cat[:1])+cat[1:], []string{"mug", "lamp", "kit", "set", "box", "pack"}[n%6], n),
		Description: "A sturdy, well-made item for everyday use, shipped in recyclable packaging. Dishwasher safe where it applies.",
		Price:       domain.Cents(299 + s.rng.IntN(25_000)),
		Images:      []string{fmt.Sprintf("https://cdn.example.org/p/%s/1.jpg", id), fmt.Sprintf("https://cdn.example.org/p/%s/2.jpg", id)},
		Metadata:    json.RawMessage(fmt.Sprintf(`{"color":%q,"weight_g":%d}`, []string{"red", "blue", "green", "black"}[n%4], 100+n%900)),
	}
	r := s.request(vendor)
	norm := product.NormaliseSKU(sku)
	s.write(unique.Stream(product.SKUStreamPrefix, norm), r, must(unique.DecideClaim(unique.New(), norm, id, "sku_taken", false, false, s.now, time.Minute)), nil)
	p := new(product.State)
	*p = product.New()
	s.write(product.Stream(id), r, must(product.DecideCreate(*p, c)), foldProduct(p))
	s.products = append(s.products, p)
	s.byID[id] = p
}

// reprice changes a product's price, by its vendor.
func (s *shop) reprice(p *product.State) {
	price := domain.Cents(299 + s.rng.IntN(25_000))
	s.write(product.Stream(p.ID), s.request(p.VendorID), must(product.DecideUpdate(*p, product.Update{Price: &price})), foldProduct(p))
}

// popular picks a product index, the first products far more often than
// the last (a long tail).
func (s *shop) popular() int {
	return int(float64(len(s.products)) * math.Pow(s.rng.Float64(), 2.5))
}

// placeOrder reserves 1 to 4 distinct products for a new order, restocking
// a product first when it runs short (as its vendor would), records the
// order, and schedules what happens to it: paid (78%), then completed, or
// cancelled by its customer, or left paid; cancelled unpaid (12%); or
// never paid and expired by the process manager (10%).
func (s *shop) placeOrder(customer string) {
	id := uuid.Must(uuid.NewV7()).String()
	lines := 1 + min(s.rng.IntN(20)/6, 3) // 1: 30%, 2: 30%, 3: 30%, 4: 10%
	picked := map[int]bool{}
	for len(picked) < lines {
		picked[s.popular()] = true
	}
	var ps []*product.State
	for i := range picked {
		ps = append(ps, s.products[i])
	}
	slices.SortFunc(ps, func(a, b *product.State) int { return strings.Compare(a.ID, b.ID) })
	r := s.request(customer)
	items := make([]order.Item, 0, len(ps))
	for _, p := range ps {
		q := int64(1 + s.rng.IntN(3))
		if p.Available() < q {
			s.write(product.Stream(p.ID), s.request(p.VendorID), must(product.DecideAdjustInventory(*p, product.AdjustInventory{
				Adjustment: shopStock, Reason: "restock",
			})), foldProduct(p))
		}
		s.write(product.Stream(p.ID), r, must(product.DecideReserve(*p, id, q)), foldProduct(p))
		items = append(items, order.Item{ProductID: p.ID, SKU: p.SKU, Name: p.Name, Quantity: q, Price: p.Price})
	}
	o := &shopOrder{state: order.New(), correlation: r.correlation}
	s.write(order.Stream(id), r, must(order.DecidePlace(o.state, order.Place{OrderID: id, UserID: customer, Items: items})), o.fold)
	o.createdID = s.events[len(s.events)-1].ID.String()
	s.orders[id] = o
	switch x := s.rng.Float64(); {
	case x < 0.78:
		s.after(s.between(30*time.Second, 10*time.Minute), func() { s.pay(id) })
	case x < 0.90:
		s.after(s.between(time.Minute, shopPaymentWindow-time.Minute), func() { s.cancel(id, "changed my mind") })
	default:
		s.after(shopPaymentWindow+s.between(0, 30*time.Second), func() { s.expire(id) })
	}
}

func (o *shopOrder) fold(r domain.Recorded) { o.state = order.Evolve(o.state, r) }

func (s *shop) pay(id string) {
	o := s.orders[id]
	st := o.state
	s.write(order.Stream(id), s.request(st.UserID), must(order.DecidePay(st, "ch_"+uuid.NewString(), st.Total, "4242", "")), o.fold)
	switch x := s.rng.Float64(); {
	case x < 0.85:
		s.after(s.between(time.Hour, 48*time.Hour), func() { s.complete(id) })
	case x < 0.93:
		s.after(s.between(10*time.Minute, 24*time.Hour), func() { s.cancel(id, "arrived too late") })
	}
}

// complete is an admin fulfilling the order, then deducting its stock.
func (s *shop) complete(id string) {
	o := s.orders[id]
	r := s.request(s.admin)
	s.write(order.Stream(id), r, must(order.DecideComplete(o.state)), o.fold)
	for _, it := range o.state.Items {
		p := s.byID[it.ProductID]
		s.write(product.Stream(p.ID), r, product.DecideDeduct(*p, id), foldProduct(p))
	}
}

// cancel is the customer cancelling: the cancellation, the stock
// released, and the refund of a paid order.
func (s *shop) cancel(id, reason string) {
	o := s.orders[id]
	r := s.request(o.state.UserID)
	s.write(order.Stream(id), r, must(order.DecideCancel(o.state, reason)), o.fold)
	s.release(id, o, r, "order_cancelled")
	if o.state.RefundPending() {
		s.write(order.Stream(id), r, order.DecideRecordRefund(o.state, "re_"+uuid.NewString()), o.fold)
	}
}

// expire is the process manager cancelling an unpaid order.
func (s *shop) expire(id string) {
	o := s.orders[id]
	r := request{correlation: o.correlation, causation: o.createdID, actor: "system"}
	s.write(order.Stream(id), r, order.DecideExpire(o.state, s.now, shopPaymentWindow), o.fold)
	s.release(id, o, r, order.ReasonPaymentTimeout)
}

func (s *shop) release(id string, o *shopOrder, r request, reason string) {
	for _, it := range o.state.Items {
		p := s.byID[it.ProductID]
		s.write(product.Stream(p.ID), r, product.DecideRelease(*p, id, reason), foldProduct(p))
	}
}

// mix describes the simulated log: how many events of each type.
func (s *shop) mix() string {
	types := make([]string, 0, len(s.counts))
	for t := range s.counts {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b string) int { return s.counts[b] - s.counts[a] })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s %d", t, s.counts[t])
	}
	return strings.Join(parts, ", ")
}

// dueAction is a follow-up the simulation runs at a later time.
type dueAction struct {
	at time.Time
	do func()
}

type dueQueue []dueAction

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q dueQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *dueQueue) Push(x any)        { *q = append(*q, x.(dueAction)) }
func (q *dueQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
