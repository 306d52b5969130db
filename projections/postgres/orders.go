package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
)

const ordersDDL = `
CREATE TABLE IF NOT EXISTS orders (
	id                   uuid PRIMARY KEY,
	user_id              uuid NOT NULL,
	status               text NOT NULL,
	total_cents          bigint NOT NULL,
	payment_id           text,
	payment_amount_cents bigint,
	payment_last4        text,
	payment_refunded     boolean NOT NULL DEFAULT false,
	cancel_reason        text,
	created_at           timestamptz NOT NULL,
	updated_at           timestamptz NOT NULL,
	version              bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_created_idx ON orders (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_status_created_idx ON orders (status, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS order_items (
	order_id    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
	line        int NOT NULL,
	product_id  uuid NOT NULL,
	sku         text NOT NULL,
	name        text NOT NULL,
	quantity    bigint NOT NULL,
	price_cents bigint NOT NULL,
	PRIMARY KEY (order_id, line)
);
CREATE INDEX IF NOT EXISTS order_items_product_idx ON order_items (product_id, order_id);
CREATE TABLE IF NOT EXISTS product_vendors (
	product_id uuid PRIMARY KEY,
	vendor_id  uuid NOT NULL
);
CREATE INDEX IF NOT EXISTS product_vendors_vendor_idx ON product_vendors (vendor_id, product_id);`

// OrdersProjection builds orders and order_items from
// the order streams, folding as domain/order.Evolve does, and
// product_vendors from product.created, so that a vendor's
// orders can be listed through their items. Products and orders share one
// projection so a product's vendor is always there before any order
// naming it.
//
// An order stream that holds only order.placement_abandoned gets no row:
// such an order does not exist for clients.
type OrdersProjection struct{}

// Name is "orders.v1".
func (OrdersProjection) Name() string { return "orders.v1" }

// Filter selects the order events and product.created.
func (OrdersProjection) Filter() eventstore.Filter {
	return eventstore.Filter{
		StreamPrefixes:    []string{order.StreamPrefix, product.StreamPrefix},
		EventTypePrefixes: []string{"order.", product.Created{}.EventType()},
	}
}

// Schema is Schema.
func (OrdersProjection) Schema() string { return Schema }

// Tables are the orders, their items, and the products' vendors.
func (OrdersProjection) Tables() []string {
	return []string{"orders", "order_items", "product_vendors"}
}

// Setup creates the tables if missing.
func (OrdersProjection) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, ordersDDL)
	return err
}

var orderEvents = order.Registry().Merge(func() domain.Registry {
	r := domain.Registry{}
	domain.Register[product.Created](r)
	return r
}())

// Apply applies batch in one round trip. Errors: an event of an order
// stream this build does not know (the fold would go wrong; the runtime
// retries and reports it rather than skip it), one that does not decode,
// ids that are not UUIDs, the database's.
func (OrdersProjection) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	var b pgx.Batch
	for i := range batch {
		e := &batch[i]
		if err := queueOrder(&b, e); err != nil {
			return fmt.Errorf("event %s (stream %s, version %d, %s): %w", e.ID, e.StreamID, e.Version, e.Type, err)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// bump moves an order's version and updated_at on, as Evolve does for
// every event; set holds the other assignments, with parameters from $4.
const bump = "UPDATE orders SET version = $2, updated_at = $3"
const guard = " WHERE id = $1 AND version < $2"

func queueOrder(b *pgx.Batch, e *eventstore.Event) error {
	isProduct := e.Type == product.Created{}.EventType()
	switch {
	case isProduct && strings.HasPrefix(e.StreamID, product.StreamPrefix):
	case !isProduct && strings.HasPrefix(e.Type, "order.") && strings.HasPrefix(e.StreamID, order.StreamPrefix):
	default:
		return nil // not for this projection (a filter wider than ours)
	}
	ev, err := orderEvents.Decode(e.Type, e.SchemaVersion, e.Data)
	if err != nil {
		return err
	}
	if p, ok := ev.(product.Created); ok {
		pid, err1 := uuid.Parse(p.ProductID)
		vid, err2 := uuid.Parse(p.VendorID)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("product %q or vendor %q is not a UUID", p.ProductID, p.VendorID)
		}
		// A product's vendor never changes; the first write stands.
		b.Queue(`INSERT INTO product_vendors (product_id, vendor_id) VALUES ($1, $2)
			ON CONFLICT (product_id) DO NOTHING`, pid, vid)
		return nil
	}
	id, ok := idOf(e.StreamID, order.StreamPrefix)
	if !ok {
		return fmt.Errorf("order id %q is not a UUID", e.StreamID[len(order.StreamPrefix):])
	}
	at, v := e.Metadata.Timestamp, e.Version
	switch ev := ev.(type) {
	case order.Created:
		return queueCreated(b, id, ev, e)
	case order.Paid:
		b.Queue(bump+`, status = 'paid', payment_id = $4, payment_amount_cents = $5, payment_last4 = $6,
			payment_refunded = false`+guard, id, v, at, ev.PaymentID, int64(ev.Amount), ev.Last4)
	case order.Completed:
		b.Queue(bump+", status = 'completed'"+guard, id, v, at)
	case order.Cancelled:
		b.Queue(bump+`, status = 'cancelled', cancel_reason = NULLIF($4, ''),
			payment_refunded = payment_refunded OR ($5 AND payment_id IS NOT NULL)`+guard,
			id, v, at, domain.StorableText(ev.Reason), ev.Refunded)
	case order.Refunded:
		// The refund of a voided charge never names the payment (a voided
		// charge can never become it), so only the payment's refund, or
		// one naming no charge, marks the payment refunded.
		b.Queue(bump+`, payment_refunded = payment_refunded OR
			(payment_id IS NOT NULL AND ($4 = '' OR payment_id = $4))`+guard, id, v, at, ev.ChargeID)
	case order.PaymentVoided:
		b.Queue(bump+guard, id, v, at)
	case order.PlacementAbandoned:
		// Only a stream without an order is fenced, so there is no row;
		// were there one, "abandoned" hides it as Exists would.
		b.Queue(bump+", status = 'abandoned'"+guard, id, v, at)
	default:
		return fmt.Errorf("order event type %q has no fold in this projection", e.Type)
	}
	return nil
}

func queueCreated(b *pgx.Batch, id uuid.UUID, ev order.Created, e *eventstore.Event) error {
	uid, err := uuid.Parse(ev.UserID)
	if err != nil {
		return fmt.Errorf("user id %q is not a UUID", ev.UserID)
	}
	b.Queue(`INSERT INTO orders AS o (id, user_id, status, total_cents, payment_refunded,
			created_at, updated_at, version)
		VALUES ($1, $2, 'pending', $3, false, $4, $4, $5)
		ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, status = excluded.status,
			total_cents = excluded.total_cents, payment_id = NULL, payment_amount_cents = NULL,
			payment_last4 = NULL, payment_refunded = false, cancel_reason = NULL,
			created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version
		WHERE o.version < excluded.version`,
		id, uid, int64(ev.Total), e.Metadata.Timestamp, e.Version)
	n := len(ev.Items)
	lines, products := make([]int32, n), make([]uuid.UUID, n)
	skus, names := make([]string, n), make([]string, n)
	qty, prices := make([]int64, n), make([]int64, n)
	for i, it := range ev.Items {
		pid, err := uuid.Parse(it.ProductID)
		if err != nil {
			return fmt.Errorf("product id %q is not a UUID", it.ProductID)
		}
		lines[i], products[i], skus[i], names[i], qty[i], prices[i] = int32(i), pid, it.SKU, it.Name, it.Quantity, int64(it.Price)
	}
	// Items never change after order.created: on a replay they are there
	// already, identical.
	b.Queue(`INSERT INTO order_items (order_id, line, product_id, sku, name, quantity, price_cents)
		SELECT $1, l, p, s, n, q, c
		FROM unnest($2::int[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $7::bigint[]) AS u(l, p, s, n, q, c)
		ON CONFLICT (order_id, line) DO NOTHING`, id, lines, products, skus, names, qty, prices)
	return nil
}
