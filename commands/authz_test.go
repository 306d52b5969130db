package commands_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
)

// lastVersion is the version of stream's last event, -1 for none.
func lastVersion(t *testing.T, s eventstore.Store, stream string) int64 {
	t.Helper()
	evs := readStream(t, s, stream)
	return int64(len(evs)) - 1
}

// TestAuthorization: roles and ownership are checked by the commands, on
// the loaded state, and a refused command writes nothing.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		v1, v2 := vendor("vendor-1"), vendor("vendor-2")
		c1, c2 := customer("cust-1"), customer("cust-2")
		p1 := e.newProduct(t, v1, 10)
		p2 := e.newProduct(t, v2, 10)

		// Products: only vendors and admins list; a vendor lists as
		// themself whatever vendor id it sends; an admin may name one.
		if _, _, err := e.h.Catalog.CreateProduct(ctx, c1, commands.CreateProduct{SKU: "C-1", Name: "x", Price: 100, Quantity: 1}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("customer lists a product: got %v, want domain.ErrForbidden", err)
		}
		got, _, err := e.h.Catalog.CreateProduct(ctx, v1, commands.CreateProduct{SKU: "V-1", Name: "x", Price: 100, Quantity: 1, VendorID: v2.ID})
		if err != nil || got.VendorID != v1.ID {
			t.Errorf("vendor lists naming another vendor: vendor %q, %v; want listed as %s", got.VendorID, err, v1.ID)
		}
		realVendor := seedUser(t, s, e.clock.Now(), user.RoleVendor)
		got, _, err = e.h.Catalog.CreateProduct(ctx, admin, commands.CreateProduct{SKU: "A-1", Name: "x", Price: 100, Quantity: 1, VendorID: realVendor})
		if err != nil || got.VendorID != realVendor {
			t.Errorf("admin lists for a vendor: vendor %q, %v; want %s", got.VendorID, err, realVendor)
		}
		for _, notVendor := range []string{seedUser(t, s, e.clock.Now()), "no-such-user"} {
			if _, _, err := e.h.Catalog.CreateProduct(ctx, admin, commands.CreateProduct{SKU: "A-2", Name: "x", Price: 100, Quantity: 1, VendorID: notVendor}); !isReason(err, domain.CodeInvalid, "") {
				t.Errorf("admin lists for %s, who is no vendor: got %v, want CodeInvalid", notVendor, err)
			}
		}
		// The product id is the handler's to choose, never the caller's:
		// naming an existing product neither fails nor touches it.
		before := lastVersion(t, s, product.Stream(p1.ID))
		got, _, err = e.h.Catalog.CreateProduct(ctx, v2, commands.CreateProduct{ProductID: p1.ID, SKU: "V-2", Name: "x", Price: 100, Quantity: 1})
		if err != nil || got.ID == p1.ID || got.ID == "" {
			t.Errorf("listing with a chosen product id: id %q, %v; want a new id", got.ID, err)
		}
		if after := lastVersion(t, s, product.Stream(p1.ID)); after != before {
			t.Errorf("listing with another product's id wrote to it: version %d → %d", before, after)
		}

		// Another vendor's product: no change of any kind.
		name := "Stolen"
		before = lastVersion(t, s, product.Stream(p1.ID))
		if _, _, err := e.h.Catalog.UpdateProduct(ctx, v2, p1.ID, commands.NoVersion, product.Update{Name: &name}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("vendor updates another's product: got %v, want domain.ErrForbidden", err)
		}
		if _, _, err := e.h.Catalog.AdjustInventory(ctx, v2, p1.ID, commands.NoVersion, product.AdjustInventory{Adjustment: -5, Reason: "x"}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("vendor adjusts another's stock: got %v, want domain.ErrForbidden", err)
		}
		if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, v2, p1.ID, commands.NoVersion); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("vendor discontinues another's product: got %v, want domain.ErrForbidden", err)
		}
		if _, _, err := e.h.Catalog.UpdateProduct(ctx, c1, p1.ID, commands.NoVersion, product.Update{Name: &name}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("customer updates a product: got %v, want domain.ErrForbidden", err)
		}
		if after := lastVersion(t, s, product.Stream(p1.ID)); after != before {
			t.Errorf("refused commands wrote to the product: version %d → %d", before, after)
		}
		if _, _, err := e.h.Catalog.UpdateProduct(ctx, v1, p1.ID, commands.NoVersion, product.Update{Name: &name}); err != nil {
			t.Errorf("owner updates: %v", err)
		}
		if _, _, err := e.h.Catalog.UpdateProduct(ctx, admin, p2.ID, commands.NoVersion, product.Update{Name: &name}); err != nil {
			t.Errorf("admin updates: %v", err)
		}

		// Orders: a vendor-only user cannot order.
		if _, _, err := e.h.Orders.PlaceOrder(ctx, v1, []order.Line{{ProductID: p1.ID, Quantity: 1}}); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("vendor-only user orders: got %v, want domain.ErrForbidden", err)
		}
		if got := e.product(t, p1.ID); got.Reserved != 0 {
			t.Errorf("a refused order reserved stock: %s", describe(got))
		}
		both := commands.Actor{ID: "vc-1", Roles: []string{user.RoleVendor, user.RoleCustomer}}
		if _, _, err := e.h.Orders.PlaceOrder(ctx, both, []order.Line{{ProductID: p2.ID, Quantity: 1}}); err != nil {
			t.Errorf("a vendor who is also a customer orders: %v", err)
		}
		o := e.placeOrder(t, c1, order.Line{ProductID: p1.ID, Quantity: 1})

		// Completion is for admins only, even the order's own customer.
		for _, a := range []commands.Actor{c1, v1} {
			if _, _, err := e.h.Orders.CompleteOrder(ctx, a, o.ID, commands.NoVersion); !errors.Is(err, domain.ErrForbidden) {
				t.Errorf("%s completes: got %v, want domain.ErrForbidden", a.ID, err)
			}
		}

		// Visibility: the customer, an admin, a vendor with items in it.
		for _, tc := range []struct {
			actor   commands.Actor
			visible bool
		}{
			{c1, true}, {admin, true}, {v1, true},
			{c2, false}, {v2, false}, {commands.Actor{ID: "nobody"}, false},
		} {
			got, _, err := e.h.Orders.Order(ctx, tc.actor, o.ID)
			switch {
			case tc.visible && (err != nil || got.ID != o.ID):
				t.Errorf("%s reads the order: %v, want it", tc.actor.ID, err)
			case !tc.visible && !isReason(err, domain.CodeNotFound, ""):
				t.Errorf("%s reads the order: got %+v, %v; want CodeNotFound", tc.actor.ID, got, err)
			}
		}
		if _, _, err := e.h.Orders.Order(ctx, c1, "00000000-0000-0000-0000-000000000000"); !isReason(err, domain.CodeNotFound, "") {
			t.Errorf("a missing order: got %v, want CodeNotFound", err)
		}

		// Another customer cannot cancel or pay: not found, nothing written.
		before = lastVersion(t, s, order.Stream(o.ID))
		if _, _, err := e.h.Orders.CancelOrder(ctx, c2, o.ID, commands.NoVersion, ""); !isReason(err, domain.CodeNotFound, "") {
			t.Errorf("another customer cancels: got %v, want CodeNotFound", err)
		}
		if _, _, err := e.h.Orders.CancelOrder(ctx, v1, o.ID, commands.NoVersion, ""); !isReason(err, domain.CodeNotFound, "") {
			t.Errorf("the product's vendor cancels: got %v, want CodeNotFound", err)
		}
		if _, _, err := e.h.Orders.PayOrder(ctx, v1, o.ID, commands.NoVersion, goodCard); !isReason(err, domain.CodeNotFound, "") {
			t.Errorf("the product's vendor pays: got %v, want CodeNotFound", err)
		}
		if after := lastVersion(t, s, order.Stream(o.ID)); after != before {
			t.Errorf("refused commands wrote to the order: version %d → %d", before, after)
		}
		if e.payments.Charges() != 0 {
			t.Errorf("a refused payment charged the card")
		}

		// Roles: only admins grant or revoke.
		uid := seedUser(t, s, e.clock.Now())
		if _, _, err := e.h.Users.GrantRole(ctx, v1, uid, user.RoleAdmin); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("vendor grants admin: got %v, want domain.ErrForbidden", err)
		}
		if _, _, err := e.h.Users.RevokeRole(ctx, commands.Actor{ID: uid, Roles: []string{user.RoleCustomer}}, uid, user.RoleCustomer); !errors.Is(err, domain.ErrForbidden) {
			t.Errorf("customer revokes a role: got %v, want domain.ErrForbidden", err)
		}
		if _, _, err := e.h.Users.GrantRole(ctx, admin, uid, "root"); !isReason(err, domain.CodeInvalid, "") {
			t.Errorf("grant an unknown role: got %v, want CodeInvalid", err)
		}
	})
}

// TestIfMatch: a command sent with the version the client last saw fails
// with domain.ErrPreconditionFailed once the aggregate has moved on, and writes
// nothing.
func TestIfMatch(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		e := newEnv(t, s)
		v := vendor("vendor-1")
		p := e.newProduct(t, v, 10)
		stale := p.Version

		name := "First"
		upd, res, err := e.h.Catalog.UpdateProduct(ctx, v, p.ID, stale, product.Update{Name: &name})
		if err != nil || upd.Name != name || res.Version != stale+1 {
			t.Fatalf("update with the current version: %v, version %d; want version %d", err, res.Version, stale+1)
		}
		name2 := "Second"
		price := domain.Cents(1)
		before := readStream(t, s, product.Stream(p.ID))
		if _, _, err := e.h.Catalog.UpdateProduct(ctx, v, p.ID, stale, product.Update{Name: &name2}); !errors.Is(err, domain.ErrPreconditionFailed) {
			t.Errorf("update with a stale version: got %v, want domain.ErrPreconditionFailed", err)
		}
		if _, _, err := e.h.Catalog.UpdateProduct(ctx, v, p.ID, stale+5, product.Update{Price: &price}); !errors.Is(err, domain.ErrPreconditionFailed) {
			t.Errorf("update with a future version: got %v, want domain.ErrPreconditionFailed", err)
		}
		if _, _, err := e.h.Catalog.AdjustInventory(ctx, v, p.ID, stale, product.AdjustInventory{Adjustment: 5, Reason: "restock"}); !errors.Is(err, domain.ErrPreconditionFailed) {
			t.Errorf("adjust with a stale version: got %v, want domain.ErrPreconditionFailed", err)
		}
		if _, _, err := e.h.Catalog.DiscontinueProduct(ctx, v, p.ID, stale); !errors.Is(err, domain.ErrPreconditionFailed) {
			t.Errorf("discontinue with a stale version: got %v, want domain.ErrPreconditionFailed", err)
		}
		if after := readStream(t, s, product.Stream(p.ID)); len(after) != len(before) {
			t.Errorf("stale commands wrote %v", types(after[len(before):]))
		}
		if got := e.product(t, p.ID); got.Name != name || got.Price != p.Price || got.Quantity != 10 || got.Discontinued {
			t.Errorf("product changed by stale commands: %+v", got)
		}

		// Orders too.
		c := customer("cust-1")
		o := e.placeOrder(t, c, order.Line{ProductID: p.ID, Quantity: 1})
		if _, _, err := e.h.Orders.PayOrder(ctx, c, o.ID, o.Version+1, goodCard); !errors.Is(err, domain.ErrPreconditionFailed) {
			t.Errorf("pay with a wrong version: got %v, want domain.ErrPreconditionFailed", err)
		}
		if e.payments.Charges() != 0 {
			t.Errorf("a payment refused for its version charged the card")
		}
		if _, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, o.Version+1, ""); !errors.Is(err, domain.ErrPreconditionFailed) {
			t.Errorf("cancel with a wrong version: got %v, want domain.ErrPreconditionFailed", err)
		}
		if got := e.order(t, o.ID); got.Status != order.StatusPending || got.Version != o.Version {
			t.Errorf("order after refused commands: %s v%d, want pending v%d", got.Status, got.Version, o.Version)
		}
		if _, _, err := e.h.Orders.CancelOrder(ctx, c, o.ID, o.Version, ""); err != nil {
			t.Errorf("cancel with the current version: %v", err)
		}
	})
}
