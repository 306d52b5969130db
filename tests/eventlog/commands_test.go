package eventlog

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/platform/correlation"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// password is every generated user's: passwords never leave the event
// store (their hash is a secret event), so their edges are not this
// test's.
const password = "correct horse battery"

// world is what a run has made so far, for its later commands to name.
type world struct {
	h        commands.Handlers
	admin    commands.Actor
	users    []commands.Actor // every user registered, with the roles last seen
	products []*ownedProduct
	orders   []*ownedOrder
	// shelf is one product more than an order may have lines, listed
	// at the start and only ever ordered, so that an order can have as
	// many lines as it may, or one more.
	shelf []string
}

type ownedProduct struct {
	id           string
	vendor       commands.Actor
	price        domain.Cents
	discontinued bool
}

type ownedOrder struct {
	id     string
	owner  commands.Actor
	status order.Status
}

// kind is one command of the generator: it makes the command's values,
// runs it, updates w when it succeeds, and says what it ran.
type kind func(ctx context.Context, g *gen, w *world) (what string, err error)

// kinds are the commands runs are made of, with their weights.
var kinds = []struct {
	weight int
	run    kind
}{
	{10, register}, {4, grantRole}, {2, revokeRole},
	{16, createProduct}, {9, updateProduct}, {9, adjustInventory}, {2, discontinueProduct},
	{20, placeOrder}, {11, payOrder}, {5, completeOrder}, {8, cancelOrder}, {2, expireOrder}, {1, abandonPlacement},
}

func (g *gen) kind() kind {
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	r := g.intn(total)
	for _, k := range kinds {
		if r < k.weight {
			return k.run
		}
		r -= k.weight
	}
	panic("unreachable")
}

// acting is ctx with actor as the acting user, as the API puts it there.
func acting(ctx context.Context, actor commands.Actor) context.Context {
	ids := correlation.From(ctx)
	ids.Actor = actor.ID
	return correlation.With(ctx, ids)
}

// who names actor in a transcript.
func (w *world) who(actor commands.Actor) string {
	for i, u := range w.users {
		if u.ID == actor.ID {
			return fmt.Sprintf("user#%d%v", i, actor.Roles)
		}
	}
	return actor.ID + fmt.Sprint(actor.Roles)
}

// anyUser is any registered user.
func (g *gen) anyUser(w *world) commands.Actor { return pick(g, w.users...) }

// holder is a user holding one of roles, or the admin when there is none.
// When no field of the command is at the edge (f), it is now and then
// anyone, who may lack the role; a command with a field at the edge is
// left every chance to store it.
func (g *gen) holder(w *world, f focus, roles ...string) commands.Actor {
	if f == noEdge && g.chance(10) {
		return g.anyUser(w)
	}
	var them []commands.Actor
	for _, u := range w.users {
		if slices.ContainsFunc(roles, u.Has) {
			them = append(them, u)
		}
	}
	if len(them) == 0 {
		return w.admin
	}
	return pick(g, them...)
}

// ownerOr is the owner mostly, else the admin, or when no field of the
// command is at the edge (f), anyone.
func (g *gen) ownerOr(w *world, owner commands.Actor, f focus) commands.Actor {
	switch g.intn(10) {
	case 0:
		if f == noEdge {
			return g.anyUser(w)
		}
	case 1, 2:
		return w.admin
	}
	return owner
}

func (w *world) setRoles(id string, roles []string) {
	for i := range w.users {
		if w.users[i].ID == id {
			w.users[i].Roles = slices.Clone(roles)
		}
	}
}

func register(ctx context.Context, g *gen, w *world) (string, error) {
	f := g.focus("register", 2)
	email, name := g.email(f.on(0)), g.text("full_name", maxFullName, f.on(1))
	what := fmt.Sprintf("RegisterUser(email=%s, full_name=%s)", show(email), show(name))
	u, _, err := w.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: email, Password: password, FullName: name})
	if err == nil {
		w.users = append(w.users, commands.Actor{ID: u.ID, Roles: u.Roles})
	}
	return what, err
}

func grantRole(ctx context.Context, g *gen, w *world) (string, error) {
	return changeRole(ctx, g, w, "GrantRole", w.h.Users.GrantRole)
}

func revokeRole(ctx context.Context, g *gen, w *world) (string, error) {
	return changeRole(ctx, g, w, "RevokeRole", w.h.Users.RevokeRole)
}

func changeRole(ctx context.Context, g *gen, w *world, name string,
	change func(context.Context, commands.Actor, string, string) (user.State, commands.Result, error)) (string, error) {
	actor := w.admin
	if g.chance(10) {
		actor = g.anyUser(w)
	}
	u := g.anyUser(w)
	role := pickBy(g, "role", user.RoleVendor, user.RoleVendor, user.RoleCustomer, user.RoleAdmin, "Vendor", "", "root", "vendor\x00")
	what := fmt.Sprintf("%s(as %s, user=%s, role=%s)", name, w.who(actor), w.who(u), show(role))
	st, _, err := change(acting(ctx, actor), actor, u.ID, role)
	if err == nil {
		w.setRoles(u.ID, st.Roles)
	}
	return what, err
}

func createProduct(ctx context.Context, g *gen, w *world) (string, error) {
	f := g.focus("create", 9)
	actor := g.holder(w, f, user.RoleVendor, user.RoleAdmin)
	c := commands.CreateProduct{
		SKU: g.sku(f.on(0)), Name: g.text("name", maxName, f.on(1)), Price: g.price(f.on(3)),
		Images: g.images(f.on(5)), Metadata: g.metadata(f.on(6)), Quantity: g.stock(f.on(7)),
	}
	c.Description = pick(g, "", "A mug.\nDishwasher safe.\tMade in Portugal.")
	if f.on(2) {
		c.Description = g.text("description", maxDescription, true)
	}
	c.Category = pick(g, "", "mugs", "  Kitchen & dining  ")
	if f.on(4) {
		c.Category = g.text("category", maxCategory, true)
	}
	c.Warehouse = pick(g, "", "main", "north-2")
	if f.on(8) {
		c.Warehouse = g.text("warehouse", maxWarehouse, true)
	}
	if actor.Has(user.RoleAdmin) && g.chance(30) {
		c.VendorID = g.holder(w, f, user.RoleVendor).ID
	}
	what := fmt.Sprintf("CreateProduct(as %s, vendor_id=%q, sku=%s, name=%s, description=%s, price=%s, category=%s, images=%s, metadata=%s, quantity=%d, warehouse=%s)",
		w.who(actor), c.VendorID, show(c.SKU), show(c.Name), show(c.Description), c.Price, show(c.Category),
		showList(c.Images), showMeta(c.Metadata), c.Quantity, show(c.Warehouse))
	st, _, err := w.h.Catalog.CreateProduct(acting(ctx, actor), actor, c)
	if err == nil {
		owner := actor
		if c.VendorID != "" {
			owner = commands.Actor{ID: st.VendorID, Roles: []string{user.RoleVendor}}
		}
		w.products = append(w.products, &ownedProduct{id: st.ID, vendor: owner, price: st.Price})
	}
	return what, err
}

// product is one of the run's products, mostly one on sale; nil when
// there is none yet.
func (g *gen) product(w *world) *ownedProduct {
	p, _ := pickMostly(g, w.products, func(p *ownedProduct) bool { return !p.discontinued })
	return p
}

// pickMostly picks one of xs, mostly one that keep accepts; ok is false
// when xs is empty.
func pickMostly[T any](g *gen, xs []T, keep func(T) bool) (x T, ok bool) {
	in := slices.DeleteFunc(slices.Clone(xs), func(x T) bool { return !keep(x) })
	if len(in) == 0 || g.chance(10) {
		in = xs
	}
	if len(in) == 0 {
		return x, false
	}
	return pick(g, in...), true
}

// onProduct runs a command on one of the run's products, mostly one on
// sale, and keeps the price and status it leaves; while there is no
// product yet it lists one instead.
func onProduct(ctx context.Context, g *gen, w *world,
	do func(p *ownedProduct) (string, product.State, error)) (string, error) {
	p := g.product(w)
	if p == nil {
		return createProduct(ctx, g, w)
	}
	what, st, err := do(p)
	if err == nil {
		p.price, p.discontinued = st.Price, st.Discontinued
	}
	return what, err
}

func updateProduct(ctx context.Context, g *gen, w *world) (string, error) {
	return onProduct(ctx, g, w, func(p *ownedProduct) (string, product.State, error) {
		f := g.focus("update", 6)
		actor := g.ownerOr(w, p.vendor, f)
		var u product.Update
		var sent []string
		if f.on(0) || g.chance(40) {
			v := g.text("name", maxName, f.on(0))
			u.Name, sent = &v, append(sent, "name="+show(v))
		}
		if f.on(1) || g.chance(30) {
			v := g.text("description", maxDescription, f.on(1))
			u.Description, sent = &v, append(sent, "description="+show(v))
		}
		if f.on(2) || g.chance(40) {
			v := g.price(f.on(2))
			u.Price, sent = &v, append(sent, "price="+v.String())
		}
		if f.on(3) || g.chance(20) {
			v := g.text("category", maxCategory, f.on(3))
			u.Category, sent = &v, append(sent, "category="+show(v))
		}
		if f.on(4) || g.chance(20) {
			v := g.images(f.on(4))
			u.Images, sent = &v, append(sent, "images="+showList(v))
		}
		if f.on(5) || g.chance(20) {
			u.Metadata = g.metadata(f.on(5))
			sent = append(sent, "metadata="+showMeta(u.Metadata))
		}
		st, _, err := w.h.Catalog.UpdateProduct(acting(ctx, actor), actor, p.id, commands.NoVersion, u)
		return fmt.Sprintf("UpdateProduct(as %s, product=%s, %s)", w.who(actor), p.id, strings.Join(sent, ", ")), st, err
	})
}

func adjustInventory(ctx context.Context, g *gen, w *world) (string, error) {
	return onProduct(ctx, g, w, func(p *ownedProduct) (string, product.State, error) {
		f := g.focus("adjust", 3)
		actor := g.ownerOr(w, p.vendor, f)
		c := product.AdjustInventory{Adjustment: pick[int64](g, 100, -1, int64(1+g.intn(1000))), Reason: pick(g, "restock", "damaged in transit")}
		if f.on(0) {
			// The adjustments that land on a bound, or just past it,
			// are found from the product's stock now.
			st, _, err := w.h.Catalog.Product(ctx, p.id)
			if err != nil {
				return "Product(" + p.id + ") before AdjustInventory", st, err
			}
			c.Adjustment = pickBy[int64](g, "adjustment", 0, maxStock, maxStock+1, -maxStock, -maxStock-1,
				maxStock-st.Quantity, maxStock-st.Quantity+1, st.Reserved-st.Quantity, st.Reserved-st.Quantity-1)
		}
		if f.on(1) {
			c.Reason = g.text("reason", maxReason, true)
		}
		if f.on(2) || g.chance(20) {
			c.Warehouse = g.text("warehouse", maxWarehouse, f.on(2))
		}
		st, _, err := w.h.Catalog.AdjustInventory(acting(ctx, actor), actor, p.id, commands.NoVersion, c)
		return fmt.Sprintf("AdjustInventory(as %s, product=%s, adjustment=%d, reason=%s, warehouse=%s)",
			w.who(actor), p.id, c.Adjustment, show(c.Reason), show(c.Warehouse)), st, err
	})
}

func discontinueProduct(ctx context.Context, g *gen, w *world) (string, error) {
	return onProduct(ctx, g, w, func(p *ownedProduct) (string, product.State, error) {
		actor := g.ownerOr(w, p.vendor, noEdge)
		st, _, err := w.h.Catalog.DiscontinueProduct(acting(ctx, actor), actor, p.id, commands.NoVersion)
		return fmt.Sprintf("DiscontinueProduct(as %s, product=%s)", w.who(actor), p.id), st, err
	})
}

func placeOrder(ctx context.Context, g *gen, w *world) (string, error) {
	actor := g.holder(w, noEdge, user.RoleCustomer, user.RoleAdmin)
	lines := g.lines(w)
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = fmt.Sprintf("%s×%d", l.ProductID, l.Quantity)
	}
	if len(parts) > 6 {
		parts = append(parts[:3], fmt.Sprintf("… %d lines in all", len(lines)))
	}
	what := fmt.Sprintf("PlaceOrder(as %s, lines=[%s])", w.who(actor), strings.Join(parts, " "))
	key := g.requestKey()
	if key != "" {
		what += " with a key"
	}
	st, _, err := w.h.Orders.PlaceOrderOnce(acting(ctx, actor), actor, key, lines)
	if err == nil {
		w.orders = append(w.orders, &ownedOrder{id: st.ID, owner: actor, status: st.Status})
		what += fmt.Sprintf(" → order %s, total %s", st.ID, st.Total)
	}
	return what, err
}

// lines are the lines of an order: plain ones mostly, and ones whose line
// total, or whose sum, crosses the money bound, with as many lines as an
// order may have or one more, or odd ones.
// requestKey is the idempotent request a command runs for, as the write
// API names it (idempotency.RequestKey: 64 hex digits), or "" for half of
// the commands, sent without an Idempotency-Key.
func (g *gen) requestKey() string {
	if g.chance(50) {
		return ""
	}
	return fmt.Sprintf("%064x", g.intn(1<<30))
}

func (g *gen) lines(w *world) []order.Line {
	var live []*ownedProduct
	for _, p := range w.products {
		if !p.discontinued {
			live = append(live, p)
		}
	}
	// The dearest first: they cross the bound with the fewest units.
	slices.SortStableFunc(live, func(a, b *ownedProduct) int { return cmp.Compare(b.price, a.price) })
	unknown := func() string { return uuid.NewString() }
	switch mode := g.pickCase("lines", 8); {
	case len(live) == 0:
		return []order.Line{{ProductID: unknown(), Quantity: 1}}
	case mode == 0:
		// One line past the bound, if its units allow.
		p := live[g.intn(min(len(live), 2))]
		return []order.Line{{ProductID: p.id, Quantity: min(maxLineUnits, int64(maxMoney/max(p.price, 1))+1)}}
	case mode == 1:
		// Lines each within the bound, whose sum crosses it.
		var out []order.Line
		var sum domain.Cents
		for _, p := range live {
			q := max(1, min(maxLineUnits, int64(maxMoney/max(p.price, 1))))
			out = append(out, order.Line{ProductID: p.id, Quantity: q})
			if sum += p.price * domain.Cents(q); sum > maxMoney {
				break
			}
		}
		return out
	case mode == 2:
		// The most lines an order may have, or one more.
		out := make([]order.Line, pickBy(g, "lines/most", maxLines, maxLines+1))
		for i := range out {
			out[i] = order.Line{ProductID: w.shelf[i], Quantity: 1}
		}
		return out
	case mode == 3:
		p := pick(g, live...)
		return pickBy(g, "lines/odd",
			[]order.Line{},
			[]order.Line{{ProductID: p.id, Quantity: 1}, {ProductID: p.id, Quantity: 2}},
			[]order.Line{{ProductID: unknown(), Quantity: 1}},
			[]order.Line{{ProductID: "", Quantity: 1}},
			[]order.Line{{ProductID: p.id, Quantity: g.lineUnits(true)}})
	default:
		n := 1 + g.intn(min(3, len(live)))
		out := make([]order.Line, 0, n)
		for _, p := range live[g.intn(len(live)-n+1):][:n] {
			out = append(out, order.Line{ProductID: p.id, Quantity: g.lineUnits(g.chance(15))})
		}
		return out
	}
}

// order is one of the run's orders, mostly one in one of statuses; nil
// when there is none yet.
func (g *gen) order(w *world, statuses ...order.Status) *ownedOrder {
	o, _ := pickMostly(g, w.orders, func(o *ownedOrder) bool { return slices.Contains(statuses, o.status) })
	return o
}

// onOrder runs a command on one of the run's orders, mostly one in one
// of statuses, and keeps the status it leaves; while there is no order yet
// it places one instead.
func onOrder(ctx context.Context, g *gen, w *world, statuses []order.Status,
	do func(o *ownedOrder) (string, order.State, error)) (string, error) {
	o := g.order(w, statuses...)
	if o == nil {
		return placeOrder(ctx, g, w)
	}
	what, st, err := do(o)
	if err == nil {
		o.status = st.Status
	}
	return what, err
}

func payOrder(ctx context.Context, g *gen, w *world) (string, error) {
	return onOrder(ctx, g, w, []order.Status{order.StatusPending}, func(o *ownedOrder) (string, order.State, error) {
		actor := g.ownerOr(w, o.owner, noEdge)
		year := time.Now().Year()
		card := payment.Card{Number: payment.TestCardSuccess, ExpMonth: 12, ExpYear: year + 2, CVC: "123"}
		switch g.pickCase("card", 8) {
		case 0:
			card.Number = payment.TestCardDeclined
		case 1:
			card.Number = payment.TestCardInsufficientFunds
		case 2:
			card.ExpYear = year - 1
		}
		key := g.requestKey()
		st, _, err := w.h.Orders.PayOrderOnce(acting(ctx, actor), actor, key, o.id, commands.NoVersion, card)
		return fmt.Sprintf("PayOrder(as %s, order=%s, %s, key %q)", w.who(actor), o.id, card, key), st, err
	})
}

func completeOrder(ctx context.Context, g *gen, w *world) (string, error) {
	return onOrder(ctx, g, w, []order.Status{order.StatusPaid}, func(o *ownedOrder) (string, order.State, error) {
		actor := w.admin
		if g.chance(10) {
			actor = g.anyUser(w)
		}
		st, _, err := w.h.Orders.CompleteOrder(acting(ctx, actor), actor, o.id, commands.NoVersion)
		return fmt.Sprintf("CompleteOrder(as %s, order=%s)", w.who(actor), o.id), st, err
	})
}

func cancelOrder(ctx context.Context, g *gen, w *world) (string, error) {
	return onOrder(ctx, g, w, []order.Status{order.StatusPending, order.StatusPaid}, func(o *ownedOrder) (string, order.State, error) {
		f := g.focus("cancel", 1)
		reason := pick(g, "", "changed my mind", "Ordered twice.\nPlease refund.")
		if f.on(0) {
			reason = g.text("cancel_reason", maxReason, true)
		}
		actor := g.ownerOr(w, o.owner, f)
		st, _, err := w.h.Orders.CancelOrder(acting(ctx, actor), actor, o.id, commands.NoVersion, reason)
		return fmt.Sprintf("CancelOrder(as %s, order=%s, reason=%s)", w.who(actor), o.id, show(reason)), st, err
	})
}

// expireOrder expires a pending order, as the process manager does once
// the payment timeout has passed; the handler's timeout is a nanosecond,
// so it has.
func expireOrder(ctx context.Context, g *gen, w *world) (string, error) {
	return onOrder(ctx, g, w, []order.Status{order.StatusPending}, func(o *ownedOrder) (string, order.State, error) {
		st, err := w.h.Orders.ExpireOrder(ctx, o.id)
		return fmt.Sprintf("ExpireOrder(order=%s)", o.id), st, err
	})
}

// abandonPlacement fences an order id no placement recorded, as the
// process manager does for a placement that stopped part-way.
func abandonPlacement(ctx context.Context, _ *gen, w *world) (string, error) {
	id := uuid.NewString()
	_, err := w.h.Orders.AbandonPlacement(ctx, id, nil)
	return "AbandonPlacement(order=" + id + ")", err
}

func showList(xs []string) string {
	if xs == nil {
		return "nil"
	}
	shown := make([]string, 0, 3)
	for _, x := range xs[:min(len(xs), 3)] {
		shown = append(shown, show(x))
	}
	if len(xs) > 3 {
		shown = append(shown, fmt.Sprintf("… %d in all", len(xs)))
	}
	return "[" + strings.Join(shown, " ") + "]"
}

func showMeta(m json.RawMessage) string {
	if m == nil {
		return "nil"
	}
	return show(string(m))
}
