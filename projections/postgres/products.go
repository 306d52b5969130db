package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

// The catalogue's tables. Every listing index leaves discontinued products
// out and ends with the id, so each sort of API.md, alone or after a
// category or a vendor, is read in index order, a page at a time. name_key
// sorts bytewise (COLLATE "C"), as strings.Compare and MongoDB do. search
// is the product's words, stemmed without accents by the configuration of
// migration 004, names weighing more than descriptions. A stock change
// touches no indexed column, so with room left on each page (fillfactor)
// it is a HOT update.
const productsDDL = `
CREATE TABLE IF NOT EXISTS products (
	id           uuid PRIMARY KEY,
	sku          text NOT NULL,
	name         text NOT NULL,
	name_key     text COLLATE "C" NOT NULL,
	description  text NOT NULL,
	price_cents  bigint NOT NULL,
	vendor_id    text NOT NULL,
	category     text NOT NULL,
	images       text[] NOT NULL,
	metadata     text NOT NULL,
	quantity     bigint NOT NULL,
	reserved     bigint NOT NULL,
	warehouse    text NOT NULL,
	discontinued boolean NOT NULL,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	version      bigint NOT NULL,
	search       tsvector GENERATED ALWAYS AS (
		setweight(to_tsvector('projections.product_search', name), 'A') ||
		setweight(to_tsvector('projections.product_search', description), 'B')) STORED
) WITH (fillfactor = 85);
CREATE INDEX IF NOT EXISTS products_newest_idx ON products (created_at DESC, id DESC) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_price_idx ON products (price_cents, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_price_desc_idx ON products (price_cents DESC, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_name_idx ON products (name_key, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_category_newest_idx ON products (category, created_at DESC, id DESC) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_category_price_idx ON products (category, price_cents, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_category_price_desc_idx ON products (category, price_cents DESC, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_category_name_idx ON products (category, name_key, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_vendor_newest_idx ON products (vendor_id, created_at DESC, id DESC) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_vendor_price_idx ON products (vendor_id, price_cents, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_vendor_price_desc_idx ON products (vendor_id, price_cents DESC, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_vendor_name_idx ON products (vendor_id, name_key, id) WHERE NOT discontinued;
CREATE INDEX IF NOT EXISTS products_search_idx ON products USING gin (search) WHERE NOT discontinued;
CREATE TABLE IF NOT EXISTS product_counts (
	kind      text NOT NULL,
	category  text NOT NULL,
	vendor_id text NOT NULL,
	n         bigint NOT NULL CHECK (n > 0),
	PRIMARY KEY (kind, category, vendor_id)
);`

// The kinds of product_counts: how many products are listed in all, in a
// category, by a vendor, and by a vendor in a category; the parts a kind
// does not name are empty.
const (
	countAll      = "all"
	countCategory = "category"
	countVendor   = "vendor"
	countBoth     = "vendor_category"
)

// ProductsProjection builds the catalogue the read API serves: products,
// one row per product, folded as domain/product.Evolve folds its stream
// (a product whose creation was abandoned gets none; a discontinued one
// keeps its row, flagged, and is no longer listed), and product_counts,
// how many products are listed in all, per category, per vendor and per
// vendor and category, moved in the same transaction as the rows, so
// totals are exact without counting rows.
type ProductsProjection struct{}

// Name is "products.v1".
func (ProductsProjection) Name() string { return "products.v1" }

// Filter selects every event of the product streams: the fold needs them
// all, and an event type it does not know must stop it, not be skipped.
func (ProductsProjection) Filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{product.StreamPrefix}}
}

// Schema is Schema.
func (ProductsProjection) Schema() string { return Schema }

// Tables are the products and their counts.
func (ProductsProjection) Tables() []string { return []string{"products", "product_counts"} }

// Setup creates the tables if missing; the search configuration is
// projections.Migrate's.
func (ProductsProjection) Setup(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, productsDDL)
	return err
}

var productEvents = product.Registry()

// Apply applies batch in two round trips, whatever its size: it reads
// the rows of the batch's products, folds each product's events onto its
// row in memory, and writes each changed row once, with the counts it
// moves. Events at or below a row's version are skipped, so a batch, or a
// part of one, applied again changes nothing. Errors: an event that does
// not decode, a stream id that is not a UUID, the database's.
func (ProductsProjection) Apply(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
	streams, err := productStreams(batch)
	if err != nil || len(streams) == 0 {
		return err
	}
	ids := make([]uuid.UUID, len(streams))
	for i, st := range streams {
		ids[i] = st.id
	}
	stored, err := loadProducts(ctx, tx, ids)
	if err != nil {
		return err
	}
	var b pgx.Batch
	counts := map[countKey]int64{}
	for _, st := range streams {
		old, had := stored[st.id]
		s := product.New()
		if had {
			s = old.state()
		}
		from := s.Version
		for _, r := range st.events {
			if r.Version > s.Version { // else applied already
				s = product.Evolve(s, r)
			}
		}
		if s.Version == from || !s.Exists() {
			continue
		}
		row := newProductRow(st.id, s)
		if had && old.listed() {
			old.count(counts, -1)
		}
		if row.listed() {
			row.count(counts, 1)
		}
		b.Queue(upsertProduct, row.args()...)
	}
	queueCounts(&b, counts)
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &b).Close()
}

// productStream is the events of one product stream within a batch, in
// order.
type productStream struct {
	id     uuid.UUID
	events []domain.Recorded
}

// productStreams decodes the product events of batch into one stream per
// product, in the order of each product's first event; it skips events of
// other streams (a filter wider than the projection's).
func productStreams(batch []eventstore.Event) ([]*productStream, error) {
	var (
		out  []*productStream
		byID = map[uuid.UUID]*productStream{}
	)
	for i := range batch {
		e := &batch[i]
		if !strings.HasPrefix(e.StreamID, product.StreamPrefix) {
			continue
		}
		fail := func(err error) error {
			return fmt.Errorf("event %s (stream %s, version %d, %s): %w", e.ID, e.StreamID, e.Version, e.Type, err)
		}
		id, ok := idOf(e.StreamID, product.StreamPrefix)
		if !ok {
			return nil, fail(fmt.Errorf("product id %q is not a UUID", e.StreamID[len(product.StreamPrefix):]))
		}
		ev, err := productEvents.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return nil, fail(err)
		}
		st := byID[id]
		if st == nil {
			st = &productStream{id: id}
			byID[id] = st
			out = append(out, st)
		}
		st.events = append(st.events, domain.Recorded{Event: ev, Version: e.Version, At: e.Metadata.Timestamp, ActorID: e.Metadata.ActorID})
	}
	return out, nil
}

// productRow is a row of products: resource.Product's fields, plus what
// queries need.
type productRow struct {
	resource.Product
	nameKey string
}

// productColumns are the columns of a productRow, in scan order.
var productColumns = productColumnsOf("")

// productColumnsOf lists the columns of a productRow of table (an alias;
// "" for none).
func productColumnsOf(table string) string {
	if table != "" {
		table += "."
	}
	cols := []string{"id::text", "sku", "name", "name_key", "description", "price_cents", "vendor_id", "category",
		"images", "metadata", "quantity", "reserved", "warehouse", "discontinued", "created_at", "updated_at", "version"}
	for i := range cols {
		cols[i] = table + cols[i]
	}
	return strings.Join(cols, ", ")
}

const upsertProduct = `INSERT INTO products AS p (id, sku, name, name_key, description, price_cents, vendor_id, category,
		images, metadata, quantity, reserved, warehouse, discontinued, created_at, updated_at, version)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
	ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, name = excluded.name, name_key = excluded.name_key,
		description = excluded.description, price_cents = excluded.price_cents, vendor_id = excluded.vendor_id,
		category = excluded.category, images = excluded.images, metadata = excluded.metadata,
		quantity = excluded.quantity, reserved = excluded.reserved, warehouse = excluded.warehouse,
		discontinued = excluded.discontinued, created_at = excluded.created_at, updated_at = excluded.updated_at,
		version = excluded.version
	WHERE p.version < excluded.version`

// newProductRow is the row of s, the state of product id. It is a
// function of s alone (times at microsecond precision, as the column
// keeps them), so folding the same events from the start or from a
// stored row writes the same row. Text that was written unbounded before
// events were validated may hold NUL, which a text column refuses: it is
// kept as U+FFFD.
func newProductRow(id uuid.UUID, s product.State) productRow {
	p := resource.FromProduct(s)
	p.ID = id.String()
	for _, f := range []*string{&p.SKU, &p.Name, &p.Description, &p.VendorID, &p.Category, &p.Inventory.Warehouse} {
		*f = domain.StorableText(*f)
	}
	for i := range p.Images {
		p.Images[i] = domain.StorableText(p.Images[i])
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.Truncate(time.Microsecond), p.UpdatedAt.Truncate(time.Microsecond)
	return productRow{Product: p, nameKey: strings.ToLower(p.Name)}
}

func (r *productRow) args() []any {
	p := &r.Product
	return []any{p.ID, p.SKU, p.Name, r.nameKey, p.Description, int64(p.Price), p.VendorID, p.Category,
		p.Images, string(p.Metadata), p.Inventory.Quantity, p.Inventory.Reserved, p.Inventory.Warehouse,
		p.Discontinued, p.CreatedAt, p.UpdatedAt, p.Version}
}

// scanProductRow scans the productColumns of row, after the columns
// before, scanned into lead.
func scanProductRow(row pgx.Row, lead ...any) (productRow, error) {
	var (
		r     productRow
		price int64
		meta  string
	)
	p := &r.Product
	err := row.Scan(append(lead, &p.ID, &p.SKU, &p.Name, &r.nameKey, &p.Description, &price, &p.VendorID, &p.Category, &p.Images,
		&meta, &p.Inventory.Quantity, &p.Inventory.Reserved, &p.Inventory.Warehouse, &p.Discontinued,
		&p.CreatedAt, &p.UpdatedAt, &p.Version)...)
	if err != nil {
		return productRow{}, err
	}
	p.Price, p.Metadata = domain.Cents(price), json.RawMessage(meta)
	p.Inventory.Available = p.Inventory.Quantity - p.Inventory.Reserved
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	if p.Images == nil {
		p.Images = []string{}
	}
	return r, nil
}

// state is the product state r was built from, less the per-order
// reservations, which the catalogue does not keep: Evolve needs only the
// reserved total, which every stock event moves by its own quantity.
func (r *productRow) state() product.State {
	p := &r.Product
	return product.State{
		ID: p.ID, SKU: p.SKU, Name: p.Name, Description: p.Description, Price: p.Price,
		Category: p.Category, VendorID: p.VendorID, Images: slices.Clone(p.Images), Metadata: p.Metadata,
		Quantity: p.Inventory.Quantity, Reserved: p.Inventory.Reserved, Warehouse: p.Inventory.Warehouse,
		Discontinued: p.Discontinued, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Version: p.Version,
	}
}

func (r *productRow) listed() bool { return !r.Discontinued }

// countKey is a row of product_counts.
type countKey struct{ kind, category, vendorID string }

// count adds by to the counts r is listed under.
func (r *productRow) count(counts map[countKey]int64, by int64) {
	c, v := r.Category, r.VendorID
	counts[countKey{countAll, "", ""}] += by
	counts[countKey{countCategory, c, ""}] += by
	counts[countKey{countVendor, "", v}] += by
	counts[countKey{countBoth, c, v}] += by
}

// queueCounts queues the moves of counts, and the removal of the rows
// they bring to zero: a count's row exists exactly while it is positive,
// so the table is the same however the log was cut into batches.
func queueCounts(b *pgx.Batch, counts map[countKey]int64) {
	var kinds, categories, vendors []string
	var moves []int64
	for k, n := range counts {
		if n != 0 {
			kinds, categories, vendors = append(kinds, k.kind), append(categories, k.category), append(vendors, k.vendorID)
			moves = append(moves, n)
		}
	}
	if len(moves) == 0 {
		return
	}
	b.Queue(`WITH moved AS (
			UPDATE product_counts c SET n = c.n + m.n
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS m(kind, category, vendor_id, n)
			WHERE (c.kind, c.category, c.vendor_id) = (m.kind, m.category, m.vendor_id) AND c.n + m.n > 0
			RETURNING c.kind, c.category, c.vendor_id),
		gone AS (
			DELETE FROM product_counts c
			USING unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS m(kind, category, vendor_id, n)
			WHERE (c.kind, c.category, c.vendor_id) = (m.kind, m.category, m.vendor_id) AND c.n + m.n <= 0
			RETURNING c.kind)
		INSERT INTO product_counts (kind, category, vendor_id, n)
		SELECT m.kind, m.category, m.vendor_id, m.n
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS m(kind, category, vendor_id, n)
		WHERE m.n > 0 AND NOT EXISTS (SELECT 1 FROM product_counts c
			WHERE (c.kind, c.category, c.vendor_id) = (m.kind, m.category, m.vendor_id))`,
		kinds, categories, vendors, moves)
}

// loadProducts reads the rows of ids.
func loadProducts(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]productRow, error) {
	rows, err := tx.Query(ctx, "SELECT "+productColumns+" FROM products WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read %d products: %w", len(ids), err)
	}
	out := make(map[uuid.UUID]productRow, len(ids))
	for rows.Next() {
		r, err := scanProductRow(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read %d products: %w", len(ids), err)
		}
		out[uuid.MustParse(r.ID)] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %d products: %w", len(ids), err)
	}
	return out, nil
}
