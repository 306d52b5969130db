// Package genlog writes a realistic event log of a given size straight
// into an event store, in minutes, for measuring what grows with history:
// start-up of each role, the first command on a long stream, rebuilds.
//
// The log is what the write side would have stored: users registered
// (their email claimed first; a few of them vendors), a catalogue listed
// by the vendors (each SKU claimed), and orders of one to three products,
// placed (stock reserved and the order recorded together), then mostly
// paid and completed (stock deducted), some cancelled while pending
// (stock released), some left paid, and the newest left pending. One
// product is in a fifth of the orders, so its stream is long. Every event
// is decided by the domain's own Decide functions on folded states, so
// every reader accepts it; orders are written in chunks, phase by phase,
// with one multi-stream append per thousand events where the store can.
package genlog

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/snapshots"
	"github.com/eventshop/eventshop/internal/services/auth"
)

// Options shape a log.
type Options struct {
	// Events is how many events to write, at least; the last chunk of
	// orders may go a little over.
	Events int
	// Seed makes the log repeatable (ids aside).
	Seed uint64
	// Password is every generated user's password; default
	// DefaultPassword. Users are user-N@genlog.example (N from 1).
	Password string
	// Span is how far back the log starts; default 30 days.
	Span time.Duration
	// Progress, when set, is told the events written so far after each
	// chunk.
	Progress func(written int)
	// Snapshots, when set, gets a snapshot of every product whose stream
	// reached SnapshotEvery events (default commands.DefaultSnapshotEvery),
	// as the write side would have left it.
	Snapshots     commands.SnapshotStore
	SnapshotEvery int
}

// DefaultPassword is the generated users' password by default.
const DefaultPassword = "Genlog-Passw0rd!"

// Summary is what Generate wrote.
type Summary struct {
	Events, Users, Vendors, Products, Orders int
	ByStatus                                 map[order.Status]int
	// HotProduct is the product in a fifth of the orders, and HotEvents
	// the length of its stream.
	HotProduct string
	HotEvents  int64
	// Snapshots is how many product snapshots were saved.
	Snapshots int
}

// chunkOrders is how many orders are written phase by phase together.
const chunkOrders = 300

// Generate writes a log of about opts.Events events into store. Errors:
// the store's; the log written so far stays.
func Generate(ctx context.Context, store eventstore.Store, opts Options) (Summary, error) {
	if opts.Events <= 0 {
		return Summary{}, fmt.Errorf("genlog: %d events", opts.Events)
	}
	if opts.Password == "" {
		opts.Password = DefaultPassword
	}
	if opts.Span <= 0 {
		opts.Span = 30 * 24 * time.Hour
	}
	hash, err := auth.HashPassword(opts.Password)
	if err != nil {
		return Summary{}, err
	}
	g := &gen{store: store, rng: rand.New(rand.NewPCG(opts.Seed, 0x67656e6c6f67)), w: newWriter(store),
		end: time.Now().UTC().Truncate(time.Microsecond), sum: Summary{ByStatus: map[order.Status]int{}},
		byID: map[string]*product.State{}}
	g.start = g.end.Add(-opts.Span)
	users := max(100, opts.Events/100)
	products := max(20, min(100_000, opts.Events/500))
	vendors := max(5, products/200)
	// Events per order, about 6.3: one to three reservations, the order,
	// mostly its payment, completion and deductions.
	orders := max(1, (opts.Events-3*users-2*products-vendors)*10/63)
	g.orders = orders
	if err := g.people(ctx, users, vendors, hash); err != nil {
		return g.sum, err
	}
	if err := g.catalogue(ctx, products); err != nil {
		return g.sum, err
	}
	for g.w.written < opts.Events {
		if err := g.chunk(ctx, min(chunkOrders, max(1, (opts.Events-g.w.written)/7))); err != nil {
			return g.sum, err
		}
		if opts.Progress != nil {
			opts.Progress(g.w.written)
		}
	}
	g.sum.Events = g.w.written
	g.sum.HotProduct = g.hot.ID
	g.sum.HotEvents = g.hot.Version + 1
	return g.sum, g.snapshot(ctx, opts)
}

// snapshot saves the snapshots of the long product streams.
func (g *gen) snapshot(ctx context.Context, opts Options) error {
	every := int64(opts.SnapshotEvery)
	if every <= 0 {
		every = commands.DefaultSnapshotEvery
	}
	if opts.Snapshots == nil {
		return nil
	}
	for _, p := range g.products {
		if p.Version+1 < every {
			continue
		}
		data, err := p.Snapshot()
		if err != nil {
			return err
		}
		stream := product.Stream(p.ID)
		if err := opts.Snapshots.Save(ctx, snapshots.Snapshot{Stream: stream, Format: product.SnapshotFormat,
			Version: p.Version, Position: g.w.positions[stream], Data: data}); err != nil {
			return fmt.Errorf("genlog: %w", err)
		}
		g.sum.Snapshots++
	}
	return nil
}

type gen struct {
	store      eventstore.Store
	rng        *rand.Rand
	w          *writer
	start, end time.Time
	orders     int // planned, to spread their times over the span
	placed     int
	customers  []string
	vendors    []string
	products   []*product.State
	byID       map[string]*product.State
	hot        *product.State
	sum        Summary
}

// at is the time of the i-th of n steps over the span, never past its end.
func (g *gen) at(i, n int) time.Time {
	// To the microsecond, as the stores keep timestamps.
	return g.start.Add(time.Duration(float64(g.end.Sub(g.start)) * min(1, float64(i)/float64(max(n, 1))))).Truncate(time.Microsecond)
}

// people registers users, each with its email claimed first; the first
// vendors of them are granted the vendor role.
func (g *gen) people(ctx context.Context, n, vendors int, hash string) error {
	for i := range n {
		id := uuid.Must(uuid.NewV7()).String()
		email := fmt.Sprintf("user-%d@genlog.example", i+1)
		at := g.at(i, n*10)
		claim, err := unique.DecideClaim(unique.New(), email, id, "email_taken", false, false, at, time.Minute)
		if err != nil {
			return err
		}
		g.w.add(user.EmailStream(email), id, at, claim...)
		events, err := user.DecideRegister(user.New(), user.Register{UserID: id, Email: email, FullName: fmt.Sprintf("Genlog User %d", i+1), PasswordHash: hash})
		if err != nil {
			return err
		}
		s := domain.Fold(user.New(), user.Evolve, g.w.add(user.Stream(id), id, at, events...))
		if i >= vendors {
			g.customers = append(g.customers, id)
		} else {
			role, err := user.DecideGrantRole(s, user.RoleVendor)
			if err != nil {
				return err
			}
			g.w.add(user.Stream(id), id, at, role...)
			g.vendors = append(g.vendors, id)
		}
		if err := g.w.flushIfFull(ctx); err != nil {
			return err
		}
	}
	g.sum.Users, g.sum.Vendors = n, vendors
	return g.w.flush(ctx)
}

var categories = []string{"electronics", "clothing", "books", "home", "sports", "toys", "garden", "kitchen"}

// catalogue lists n products, each SKU claimed first; the first is the
// hot one.
func (g *gen) catalogue(ctx context.Context, n int) error {
	for i := range n {
		id := uuid.Must(uuid.NewV7()).String()
		sku := fmt.Sprintf("GEN-%07d", i+1)
		vendor := g.vendors[i%len(g.vendors)]
		at := g.at(i, n*10)
		claim, err := unique.DecideClaim(unique.New(), sku, id, "sku_taken", false, false, at, time.Minute)
		if err != nil {
			return err
		}
		g.w.add(unique.Stream(product.SKUStreamPrefix, sku), vendor, at, claim...)
		events, err := product.DecideCreate(product.New(), product.Create{ProductID: id, SKU: sku,
			Name: fmt.Sprintf("Genlog %s item %d", categories[i%len(categories)], i+1), Description: "Generated for measurements.",
			Price: domain.Cents(100 + g.rng.IntN(20_000)), Category: categories[i%len(categories)], VendorID: vendor,
			Quantity: 1_000_000_000})
		if err != nil {
			return err
		}
		p := &product.State{}
		*p = product.Fold(g.w.add(product.Stream(id), vendor, at, events...))
		g.products = append(g.products, p)
		g.byID[id] = p
		if err := g.w.flushIfFull(ctx); err != nil {
			return err
		}
	}
	g.hot = g.products[0]
	g.sum.Products = n
	return g.w.flush(ctx)
}

// placed is one order of a chunk.
type placed struct {
	state    order.State
	customer string
	at       time.Time
	outcome  order.Status // what it ends as; pending: left so
}

// chunk writes n orders: their placements, then their payments, then
// their completions and cancellations, each phase in multi-stream
// appends.
func (g *gen) chunk(ctx context.Context, n int) error {
	batch := make([]placed, 0, n)
	for range n {
		o, err := g.place()
		if err != nil {
			return err
		}
		batch = append(batch, o)
	}
	if err := g.w.flush(ctx); err != nil {
		return err
	}
	for i := range batch {
		o := &batch[i]
		if o.outcome != order.StatusPaid && o.outcome != order.StatusCompleted {
			continue
		}
		events, err := order.DecidePay(o.state, "ch_genlog_"+o.state.ID, o.state.Total, "4242", "")
		if err != nil {
			return err
		}
		o.state = g.record(order.Stream(o.state.ID), o, o.at.Add(time.Minute), events)
	}
	if err := g.w.flush(ctx); err != nil {
		return err
	}
	for i := range batch {
		o := &batch[i]
		var events []domain.Event
		var err error
		var stock func(*product.State) []domain.Event
		switch o.outcome {
		case order.StatusCompleted:
			events, err = order.DecideComplete(o.state)
			stock = func(p *product.State) []domain.Event { return product.DecideDeduct(*p, o.state.ID) }
		case order.StatusCancelled:
			events, err = order.DecideCancel(o.state, "changed my mind")
			stock = func(p *product.State) []domain.Event { return product.DecideRelease(*p, o.state.ID, "order_cancelled") }
		}
		if err != nil {
			return err
		}
		g.sum.ByStatus[o.outcome]++
		if stock == nil {
			continue
		}
		at := o.at.Add(time.Hour)
		o.state = g.record(order.Stream(o.state.ID), o, at, events)
		for _, it := range o.state.Items {
			p := g.product(it.ProductID)
			g.evolve(p, g.w.add(product.Stream(p.ID), o.customer, at, stock(p)...))
		}
	}
	if err := g.w.flush(ctx); err != nil {
		return err
	}
	// The chunk's orders get no more events: their versions can go.
	for _, o := range batch {
		delete(g.w.versions, order.Stream(o.state.ID))
	}
	return nil
}

// place decides one order: its products' reservations, then the order.
func (g *gen) place() (placed, error) {
	g.placed++
	o := placed{customer: g.customers[g.rng.IntN(len(g.customers))], at: g.at(g.placed, g.orders)}
	switch r := g.rng.IntN(100); {
	case g.placed > g.orders*99/100 || r < 2:
		o.outcome, o.at = order.StatusPending, g.end
	case r < 14:
		o.outcome = order.StatusCancelled
	case r < 22:
		o.outcome = order.StatusPaid
	default:
		o.outcome = order.StatusCompleted
	}
	id := uuid.Must(uuid.NewV7()).String()
	picked := map[*product.State]bool{}
	if g.rng.IntN(5) == 0 {
		picked[g.hot] = true
	}
	for want := 1 + g.rng.IntN(3); len(picked) < want; {
		picked[g.products[g.rng.IntN(len(g.products))]] = true
	}
	var items []order.Item
	for p := range picked {
		q := int64(1 + g.rng.IntN(3))
		events, err := product.DecideReserve(*p, id, q)
		if err != nil {
			return o, err
		}
		g.evolve(p, g.w.add(product.Stream(p.ID), o.customer, o.at, events...))
		items = append(items, order.Item{ProductID: p.ID, SKU: p.SKU, Name: p.Name, Quantity: q, Price: p.Price})
	}
	events, err := order.DecidePlace(order.New(), order.Place{OrderID: id, UserID: o.customer, Items: items})
	if err != nil {
		return o, err
	}
	o.state = g.record(order.Stream(id), &o, o.at, events)
	return o, nil
}

// record adds an order's events and returns its state after them.
func (g *gen) record(stream string, o *placed, at time.Time, events []domain.Event) order.State {
	s := o.state
	if s.ID == "" {
		s = order.New()
	}
	for _, r := range g.w.add(stream, o.customer, at, events...) {
		s = order.Evolve(s, r)
	}
	if s.Version == 0 {
		g.sum.Orders++
	}
	return s
}

func (g *gen) evolve(p *product.State, recs []domain.Recorded) {
	for _, r := range recs {
		*p = product.Evolve(*p, r)
	}
}

func (g *gen) product(id string) *product.State { return g.byID[id] }

// writer gathers events by stream and appends them, in the order their
// streams first got one, at the versions it counts.
type writer struct {
	store    eventstore.Store
	multi    eventstore.MultiAppender
	versions map[string]int64 // last version written or gathered, per stream
	// positions holds the position of each product stream's last event
	// written, for its snapshot.
	positions map[string]eventstore.Position
	order     []string
	parts     map[string][]eventstore.EventData
	pending   int
	written   int
}

func newWriter(store eventstore.Store) *writer {
	m, _ := store.(eventstore.MultiAppender)
	return &writer{store: store, multi: m, versions: map[string]int64{}, parts: map[string][]eventstore.EventData{},
		positions: map[string]eventstore.Position{}}
}

// add gathers events for stream, by actor at at, and returns them as
// recorded at the versions they will have.
func (w *writer) add(stream, actor string, at time.Time, events ...domain.Event) []domain.Recorded {
	v, ok := w.versions[stream]
	if !ok {
		v = -1
	}
	if _, ok := w.parts[stream]; !ok {
		w.order = append(w.order, stream)
	}
	corr := uuid.Must(uuid.NewV7()).String()
	recs := make([]domain.Recorded, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			panic(err) // the domain's events always encode
		}
		v++
		w.parts[stream] = append(w.parts[stream], eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), SchemaVersion: 1,
			Data: data, Metadata: eventstore.Metadata{CorrelationID: corr, ActorID: actor, Timestamp: at}})
		recs[i] = domain.Recorded{Event: e, Version: v, At: at, ActorID: actor}
	}
	w.versions[stream] = v
	w.pending += len(events)
	return recs
}

// flushIfFull flushes once a thousand events are gathered.
func (w *writer) flushIfFull(ctx context.Context) error {
	if w.pending < eventstore.MaxAppendEvents {
		return nil
	}
	return w.flush(ctx)
}

// flush appends everything gathered: in multi-stream appends of at most
// eventstore.MaxAppendEvents events where the store has them, else stream
// by stream.
func (w *writer) flush(ctx context.Context) error {
	var call []eventstore.StreamAppend
	n := 0
	send := func() error {
		if len(call) == 0 {
			return nil
		}
		res, err := w.multi.AppendMulti(ctx, call...)
		if err != nil {
			return fmt.Errorf("genlog: append: %w", err)
		}
		for i, r := range res {
			w.wrote(call[i].Stream, r)
		}
		w.written += n
		call, n = call[:0], 0
		return nil
	}
	for _, stream := range w.order {
		evs := w.parts[stream]
		expected := eventstore.NoStream
		if first := w.versions[stream] - int64(len(evs)); first >= 0 {
			expected = eventstore.Exact(first)
		}
		if w.multi == nil {
			res, err := w.store.Append(ctx, stream, expected, evs...)
			if err != nil {
				return fmt.Errorf("genlog: append to %s: %w", stream, err)
			}
			w.wrote(stream, res)
			w.written += len(evs)
			continue
		}
		if n+len(evs) > eventstore.MaxAppendEvents {
			if err := send(); err != nil {
				return err
			}
		}
		call = append(call, eventstore.StreamAppend{Stream: stream, Expected: expected, Events: evs})
		n += len(evs)
	}
	if err := send(); err != nil {
		return err
	}
	w.order, w.pending = w.order[:0], 0
	clear(w.parts)
	return nil
}

// wrote notes where a product stream's append ended.
func (w *writer) wrote(stream string, r eventstore.AppendResult) {
	if strings.HasPrefix(stream, product.StreamPrefix) {
		w.positions[stream] = r.Position
	}
}
