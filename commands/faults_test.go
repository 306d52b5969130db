package commands_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// faultStore fails the next append of one event type once. With commit,
// the append lands before the error is returned: the ambiguous failure of
// a connection lost after COMMIT.
type faultStore struct {
	eventstore.Store
	mu     sync.Mutex
	typ    string
	commit bool
}

func (s *faultStore) failNext(typ string, commit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.typ, s.commit = typ, commit
}

var errLost = errors.New("connection reset by peer")

// take reports whether the pending fault falls on an append whose
// batches start with the event types firsts, and clears it when it does;
// commit says whether the append lands before the failure.
func (s *faultStore) take(firsts ...string) (fail, commit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail = s.typ != "" && slices.Contains(firsts, s.typ)
	if fail {
		s.typ = ""
	}
	return fail, s.commit
}

// firstType is the type of a batch's first event, "" for none.
func firstType(evs []eventstore.EventData) string {
	if len(evs) == 0 {
		return ""
	}
	return evs[0].Type
}

func (s *faultStore) Append(ctx context.Context, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) (eventstore.AppendResult, error) {
	fail, commit := s.take(firstType(evs))
	if !fail {
		return s.Store.Append(ctx, stream, exp, evs...)
	}
	if commit {
		if _, err := s.Store.Append(ctx, stream, exp, evs...); err != nil {
			return eventstore.AppendResult{}, err
		}
	}
	return eventstore.AppendResult{}, errLost
}

// faultMultiStore is faultStore over a store that appends to several
// streams atomically: the fault falls on an atomic append any of whose
// parts starts with the event type.
type faultMultiStore struct {
	*faultStore
	multi eventstore.MultiAppender
}

func newFaultMultiStore() *faultMultiStore {
	m := memory.New()
	return &faultMultiStore{faultStore: &faultStore{Store: m}, multi: m}
}

func (s *faultMultiStore) AppendMulti(ctx context.Context, parts ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	firsts := make([]string, len(parts))
	for i, p := range parts {
		firsts[i] = firstType(p.Events)
	}
	fail, commit := s.take(firsts...)
	if !fail {
		return s.multi.AppendMulti(ctx, parts...)
	}
	if commit {
		if _, err := s.multi.AppendMulti(ctx, parts...); err != nil {
			return nil, err
		}
	}
	return nil, errLost
}

// placements are the two ways an order is placed, each over a store that
// fails on demand: the saga's appends one by one, and one atomic append.
func placements() map[string]func() (eventstore.Store, *faultStore) {
	return map[string]func() (eventstore.Store, *faultStore){
		"saga": func() (eventstore.Store, *faultStore) { fs := &faultStore{Store: memory.New()}; return fs, fs },
		"atomic": func() (eventstore.Store, *faultStore) {
			fs := newFaultMultiStore()
			return fs, fs.faultStore
		},
	}
}

// A payment that could not be recorded is voided on the order before its
// charge is refunded, so the client's retry with the same card makes a new
// charge instead of getting the refunded one back.
func TestPayRetryAfterVoidedCharge(t *testing.T) {
	fs := &faultStore{Store: memory.New()}
	e := newEnv(t, fs)
	ctx := context.Background()
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 10)
	o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})

	fs.failNext("order.paid", false)
	if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); !errors.Is(err, errLost) {
		t.Fatalf("first pay: %v, want the store's failure", err)
	}
	if e.payments.Charges() != 1 || e.payments.Refunds() != 1 {
		t.Fatalf("after the failed pay: %d charges, %d refunds; want the charge refunded", e.payments.Charges(), e.payments.Refunds())
	}
	if got := types(readStream(t, fs, order.Stream(o.ID))); fmt.Sprint(got[1:]) != "[order.payment_voided order.refunded]" {
		t.Fatalf("order stream %v, want the charge voided, then its refund recorded", got)
	}
	st, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard)
	if err != nil || st.Status != order.StatusPaid {
		t.Fatalf("retry: %v %s", err, st.Status)
	}
	if e.payments.Charges() != 2 || e.payments.Refunds() != 1 {
		t.Fatalf("after the retry: %d charges, %d refunds; want a second charge, the first one still refunded", e.payments.Charges(), e.payments.Refunds())
	}
}

// A payment recorded by an append that failed only on its way back is the
// order's payment: the request succeeds and nothing is refunded.
func TestPayAppendLandsButFails(t *testing.T) {
	fs := &faultStore{Store: memory.New()}
	e := newEnv(t, fs)
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 10)
	o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
	fs.failNext("order.paid", true)
	st, _, err := e.h.Orders.PayOrder(context.Background(), c, o.ID, commands.NoVersion, goodCard)
	if err != nil || st.Status != order.StatusPaid {
		t.Fatalf("pay: %v %s, want paid", err, st.Status)
	}
	if e.payments.Refunds() != 0 || e.order(t, o.ID).Payment.Refunded {
		t.Fatalf("%d refunds: the recorded payment was refunded", e.payments.Refunds())
	}
}

// An order recorded by an append that failed only on its way back keeps
// its stock: no oversell, and the request answers with the order.
func TestPlaceOrderAppendLandsButFails(t *testing.T) {
	for name, open := range placements() {
		t.Run(name, func(t *testing.T) {
			s, fs := open()
			e := newEnv(t, s)
			ctx := context.Background()
			p := e.newProduct(t, vendor("vendor-1"), 1)
			fs.failNext(map[string]string{"saga": "order.created", "atomic": "inventory.reserved"}[name], true)
			o, _, err := e.h.Orders.PlaceOrder(ctx, customer("cust-1"), []order.Line{{ProductID: p.ID, Quantity: 1}})
			if err != nil || o.Status != order.StatusPending {
				t.Fatalf("place: %v %s, want the recorded order", err, o.Status)
			}
			if got := e.product(t, p.ID); got.Reserved != 1 || got.Reservations[o.ID] != 1 {
				t.Fatalf("product %s: the recorded order lost its stock", describe(got))
			}
			if _, _, err := e.h.Orders.PlaceOrder(ctx, customer("cust-2"), []order.Line{{ProductID: p.ID, Quantity: 1}}); !isReason(err, "conflict", "insufficient_stock") {
				t.Fatalf("second order of the single unit: %v, want insufficient_stock", err)
			}
		})
	}
}

// An order that was not recorded gives its stock back and its id is
// fenced; placed atomically, its stock was never reserved at all.
func TestPlaceOrderAppendFails(t *testing.T) {
	for name, open := range placements() {
		t.Run(name, func(t *testing.T) {
			s, fs := open()
			e := newEnv(t, s)
			p := e.newProduct(t, vendor("vendor-1"), 1)
			fs.failNext(map[string]string{"saga": "order.created", "atomic": "inventory.reserved"}[name], false)
			if _, _, err := e.h.Orders.PlaceOrder(context.Background(), customer("cust-1"), []order.Line{{ProductID: p.ID, Quantity: 1}}); !errors.Is(err, errLost) {
				t.Fatalf("place: %v, want the store's failure", err)
			}
			if got := e.product(t, p.ID); got.Reserved != 0 {
				t.Fatalf("product %s: stock held by an order that does not exist", describe(got))
			}
			count := map[string]int{}
			for _, ev := range readAll(t, s) {
				count[ev.Type]++
			}
			if count["order.placement_abandoned"] != 1 {
				t.Fatalf("%d fenced order ids, want 1", count["order.placement_abandoned"])
			}
			if want := map[string]int{"saga": 1, "atomic": 0}[name]; count["inventory.reserved"] != want {
				t.Fatalf("%d reservations written, want %d", count["inventory.reserved"], want)
			}
		})
	}
}

// A process manager run again after its subscription ended rebuilds its
// view: it still finishes what a completed order holds.
func TestProcessManagerRunAgain(t *testing.T) {
	fs := &faultStore{Store: memory.New()}
	e := newEnv(t, fs, func(c *commands.Config) { c.ClaimGrace = time.Second })
	ctx := context.Background()
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 5)
	o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 2})
	if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); err != nil {
		t.Fatal(err)
	}
	// A placement that stopped after reserving, already past the grace:
	// its release shows that a run has caught up with the log.
	orphan := e.newProduct(t, vendor("vendor-1"), 5)
	mustAppend(t, fs, product.Stream(orphan.ID), eventstore.Exact(orphan.Version), e.clock.Now().Add(-time.Hour),
		product.Reserved{ProductID: orphan.ID, OrderID: "01900000-0000-7000-8000-000000000001", Quantity: 1})

	pm := commands.NewProcessManager(e.h.Orders, 10*time.Millisecond, nil, nil)
	run := func() (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- pm.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("process manager: %v", err)
			}
		}
	}
	stop := run()
	waitFor(t, 10*time.Second, "the orphaned reservation released", func() (bool, string) {
		got := e.product(t, orphan.ID)
		return got.Reserved == 0, describe(got)
	})
	stop()
	defer run()()

	fs.failNext("inventory.deducted", false)
	if _, _, err := e.h.Orders.CompleteOrder(ctx, admin, o.ID, commands.NoVersion); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the completed order's stock deducted by the process manager", func() (bool, string) {
		e.clock.Advance(50 * time.Millisecond)
		got := e.product(t, p.ID)
		return got.Reserved == 0 && got.Quantity == 3, describe(got)
	})
}

// holdingProcessor holds the first Charge, after making it, until released.
type holdingProcessor struct {
	*payment.TestProcessor
	charged, release chan struct{}
	once             sync.Once
	failRefunds      int
	mu               sync.Mutex
}

func (p *holdingProcessor) Charge(ctx context.Context, req payment.ChargeRequest) (payment.Charge, error) {
	c, err := p.TestProcessor.Charge(ctx, req)
	first := false
	p.once.Do(func() { first = true })
	if first && p.charged != nil {
		close(p.charged)
		<-p.release
	}
	return c, err
}

func (p *holdingProcessor) Refund(ctx context.Context, chargeID string, amount int64, key string) (payment.Refund, error) {
	p.mu.Lock()
	fail := p.failRefunds > 0
	if fail {
		p.failRefunds--
	}
	p.mu.Unlock()
	if fail {
		return payment.Refund{}, errors.New("provider unavailable")
	}
	return p.TestProcessor.Refund(ctx, chargeID, amount, key)
}

// Two requests pay with the same card (one charge, by its key). One of
// them fails to record it and voids and refunds it; the other, which held
// the same charge all along, must not record it as the order's payment.
func TestVoidedChargeNeverPays(t *testing.T) {
	fs := &faultStore{Store: memory.New()}
	gp := &holdingProcessor{TestProcessor: payment.NewTestProcessor(), charged: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, fs, func(c *commands.Config) { c.Payments = gp })
	ctx := context.Background()
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 10)
	o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})

	late := make(chan error, 1)
	go func() {
		_, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard)
		late <- err
	}()
	<-gp.charged // the late request holds the charge
	fs.failNext("order.paid", false)
	if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); !errors.Is(err, errLost) {
		t.Fatalf("first pay: %v, want the store's failure", err)
	}
	close(gp.release)
	if err := <-late; !isReason(err, "conflict", "payment_voided") {
		t.Fatalf("the late request: %v, want payment_voided", err)
	}
	if got := e.order(t, o.ID); got.Status != order.StatusPending || gp.Charges() != 1 || gp.Refunds() != 1 {
		t.Fatalf("order %s with %d charges and %d refunds; want pending, the one charge refunded", got.Status, gp.Charges(), gp.Refunds())
	}
	if st, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); err != nil || st.Status != order.StatusPaid {
		t.Fatalf("paying again: %v %s", err, st.Status)
	}
	if gp.Charges() != 2 || gp.Refunds() != 1 {
		t.Fatalf("%d charges and %d refunds, want a new charge", gp.Charges(), gp.Refunds())
	}
}

// A voided charge whose refund failed is refunded by the process manager.
func TestVoidedChargeRefundRetried(t *testing.T) {
	fs := &faultStore{Store: memory.New()}
	gp := &holdingProcessor{TestProcessor: payment.NewTestProcessor(), failRefunds: 1}
	e := newEnv(t, fs, func(c *commands.Config) { c.Payments = gp })
	ctx := context.Background()
	c := customer("cust-1")
	p := e.newProduct(t, vendor("vendor-1"), 10)
	o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
	fs.failNext("order.paid", false)
	if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, commands.NoVersion, goodCard); !errors.Is(err, errLost) {
		t.Fatalf("pay: %v, want the store's failure", err)
	}
	if gp.Refunds() != 0 || len(e.order(t, o.ID).VoidsDue) != 1 {
		t.Fatalf("%d refunds, voids due %v: want the failed refund pending", gp.Refunds(), e.order(t, o.ID).VoidsDue)
	}
	runPM(t, e.h, 10*time.Millisecond)
	waitFor(t, 10*time.Second, "the voided charge refunded", func() (bool, string) {
		e.clock.Advance(50 * time.Millisecond)
		got := e.order(t, o.ID)
		return gp.Refunds() == 1 && len(got.VoidsDue) == 0, fmt.Sprintf("%d refunds, voids due %v", gp.Refunds(), got.VoidsDue)
	})
}

// A grant whose admins-set write failed leaves the set short of that
// admin; the admin still cannot drop the role when no other admin exists.
func TestAdminMissingFromSetKeepsTheRole(t *testing.T) {
	fs := &faultStore{Store: memory.New()}
	e := newEnv(t, fs)
	ctx := context.Background()
	fs.failNext("user.admin_added", false)
	if _, err := e.h.Users.EnsureAdmin(ctx, "root@example.com", "Root-pass-1", "Root"); !errors.Is(err, errLost) {
		t.Fatalf("first EnsureAdmin: %v, want the store's failure", err)
	}
	u, err := e.h.Users.EnsureAdmin(ctx, "root@example.com", "Root-pass-1", "Root")
	if err != nil || !u.HasRole(user.RoleAdmin) {
		t.Fatalf("EnsureAdmin again: %v %v", err, u.Roles)
	}
	self := commands.Actor{ID: u.ID, Roles: u.Roles}
	if _, _, err := e.h.Users.RevokeRole(ctx, self, u.ID, user.RoleAdmin); !isReason(err, "conflict", "last_admin") {
		t.Fatalf("the only admin dropping the role: %v, want last_admin", err)
	}
}
