package mongo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

// document is a product as the catalogue stores it: the fields of
// resource.Product, plus what queries need and the API does not show.
//
// Times are kept twice: as BSON dates for people and tools reading the
// collection, and as Unix microseconds, which is what the event log holds
// and what the API returns (a BSON date keeps milliseconds only). Price is
// kept twice too: as integer cents, exact, for range queries and sorting,
// and as a number for people reading the collection. Metadata is kept as
// its JSON text: a client's keys may hold '.' or '$', which not every
// MongoDB-protocol server accepts as field names, and its numbers must not
// lose precision.
type document struct {
	ID           string            `bson:"_id"`
	SKU          string            `bson:"sku"`
	Name         string            `bson:"name"`
	NameKey      string            `bson:"name_key"` // lower-cased name, the sort key of ?sort=name
	Description  string            `bson:"description"`
	Price        float64           `bson:"price"`
	PriceCents   int64             `bson:"price_cents"`
	VendorID     string            `bson:"vendor_id"`
	Category     string            `bson:"category"`
	Images       []string          `bson:"images"`
	Inventory    inventoryDocument `bson:"inventory"`
	Metadata     string            `bson:"metadata"`
	Discontinued bool              `bson:"discontinued"`
	CreatedAt    time.Time         `bson:"created_at"`
	CreatedUS    int64             `bson:"created_us"`
	UpdatedAt    time.Time         `bson:"updated_at"`
	UpdatedUS    int64             `bson:"updated_us"`
	// Version is the product stream's version the document reflects; every
	// write is guarded by it.
	Version int64 `bson:"version"`
}

type inventoryDocument struct {
	Quantity  int64  `bson:"quantity"`
	Reserved  int64  `bson:"reserved"`
	Available int64  `bson:"available"`
	Warehouse string `bson:"warehouse"`
}

// Field names used in queries.
const (
	fieldID           = "_id"
	fieldVersion      = "version"
	fieldDiscontinued = "discontinued"
	fieldCategory     = "category"
	fieldVendorID     = "vendor_id"
	fieldPriceCents   = "price_cents"
	fieldNameKey      = "name_key"
	fieldName         = "name"
	fieldDescription  = "description"
	fieldCreatedUS    = "created_us"
	fieldSKU          = "sku"
)

// newDocument is the document of s, the state of product stream id. It is
// a function of s alone (times at microsecond precision), so folding the
// same events, from the start or from a stored document, writes the same
// bytes.
func newDocument(id string, s product.State) document {
	p := resource.FromProduct(s)
	created, updated := s.CreatedAt.UTC().Truncate(time.Microsecond), s.UpdatedAt.UTC().Truncate(time.Microsecond)
	// The text fields that were written unbounded before events were
	// validated may hold NUL, which FerretDB's jsonb refuses.
	return document{
		ID: id, SKU: p.SKU, Name: p.Name, NameKey: strings.ToLower(p.Name), Description: domain.StorableText(p.Description),
		Price: float64(p.Price) / 100, PriceCents: int64(p.Price), VendorID: p.VendorID, Category: domain.StorableText(p.Category),
		Images: p.Images,
		Inventory: inventoryDocument{Quantity: p.Inventory.Quantity, Reserved: p.Inventory.Reserved,
			Available: p.Inventory.Available, Warehouse: domain.StorableText(p.Inventory.Warehouse)},
		Metadata: string(p.Metadata), Discontinued: p.Discontinued,
		CreatedAt: created, CreatedUS: created.UnixMicro(), UpdatedAt: updated, UpdatedUS: updated.UnixMicro(),
		Version: p.Version,
	}
}

// state is the product state d was built from, with the product id in
// its canonical form (the _id), less the per-order reservations, which the catalogue does not keep: Evolve needs only the
// reserved total, which every stock event moves by its own quantity.
func (d *document) state() product.State {
	return product.State{
		ID: d.ID, SKU: d.SKU, Name: d.Name, Description: d.Description, Price: domain.Cents(d.PriceCents),
		Category: d.Category, VendorID: d.VendorID, Images: slices.Clone(d.Images),
		Metadata: json.RawMessage(d.Metadata), Quantity: d.Inventory.Quantity, Reserved: d.Inventory.Reserved,
		Warehouse: d.Inventory.Warehouse, Discontinued: d.Discontinued,
		CreatedAt: time.UnixMicro(d.CreatedUS).UTC(), UpdatedAt: time.UnixMicro(d.UpdatedUS).UTC(), Version: d.Version,
	}
}

// resource is the API shape of d.
func (d *document) resource() resource.Product { return resource.FromProduct(d.state()) }

// indexes serve the list queries: each sort with its tie-break on _id,
// and the filters. The SKU index is not unique: uniqueness is the write
// side's (claim streams, case-insensitive), a discontinued product keeps
// its document, and a unique violation raised by a replayed, unordered
// batch would stop the projection for a state that is only transient.
var indexes = []mongo.IndexModel{
	{Keys: bson.D{{Key: fieldCreatedUS, Value: -1}, {Key: fieldID, Value: -1}}},
	{Keys: bson.D{{Key: fieldPriceCents, Value: 1}, {Key: fieldID, Value: 1}}},
	{Keys: bson.D{{Key: fieldNameKey, Value: 1}, {Key: fieldID, Value: 1}}},
	{Keys: bson.D{{Key: fieldCategory, Value: 1}}},
	{Keys: bson.D{{Key: fieldVendorID, Value: 1}}},
	skuIndex,
}

var skuIndex = mongo.IndexModel{Keys: bson.D{{Key: fieldSKU, Value: 1}}}

// ferretIndexes are the indexes kept on FerretDB 1.x. It pushes a filter
// down as `_jsonb->$key @> $value` and sorts in memory, so a btree index
// on a field serves none of its queries, and each one costs an entry per
// write (the projection writes a product's document at every stock
// change). The SKU index stays, as what tells a shadow Shadow made from
// one a write recreated (checkShadow). Lookups by _id use the index the
// embedded server adds (internal/standins/ferret).
var ferretIndexes = []mongo.IndexModel{skuIndex}

// indexesFor returns the indexes coll's server needs: ferretIndexes on
// FerretDB (its buildInfo names its version), indexes on MongoDB.
// Errors: the database's.
func indexesFor(ctx context.Context, coll *mongo.Collection) ([]mongo.IndexModel, error) {
	var info bson.M
	if err := coll.Database().RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return nil, fmt.Errorf("catalogue: buildInfo: %w", err)
	}
	if _, ok := info["ferretdbVersion"]; ok {
		return ferretIndexes, nil
	}
	return indexes, nil
}

// createIndexes creates coll (if missing) and the indexes its server
// needs, and drops those of indexes it does not (an earlier version made
// them on FerretDB too); it is idempotent. It creates them one at a time:
// FerretDB v1.24 fails (drops the connection) on a createIndexes naming
// several indexes some of which exist already.
func createIndexes(ctx context.Context, coll *mongo.Collection) error {
	want, err := indexesFor(ctx, coll)
	if err != nil {
		return err
	}
	for _, ix := range want {
		if _, err := coll.Indexes().CreateOne(ctx, ix); err != nil {
			return fmt.Errorf("catalogue: create index %v on %s: %w", ix.Keys, coll.Name(), err)
		}
	}
	if len(want) == len(indexes) {
		return nil
	}
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("catalogue: list the indexes of %s: %w", coll.Name(), err)
	}
	for _, spec := range specs {
		if !keyedAsOneOf(spec.KeysDocument, indexes) || keyedAsOneOf(spec.KeysDocument, want) {
			continue // not ours, or needed
		}
		if err := coll.Indexes().DropOne(ctx, spec.Name); err != nil {
			return fmt.Errorf("catalogue: drop index %s on %s: %w", spec.Name, coll.Name(), err)
		}
	}
	return nil
}

// keyedAsOneOf reports whether an index's keys document has the keys of
// one of list.
func keyedAsOneOf(raw bson.Raw, list []mongo.IndexModel) bool {
	return slices.ContainsFunc(list, func(ix mongo.IndexModel) bool { return sameKeys(raw, ix.Keys.(bson.D)) })
}

// sameKeys reports whether an index's keys document has keys.
func sameKeys(raw bson.Raw, keys bson.D) bool {
	elems, err := raw.Elements()
	if err != nil || len(elems) != len(keys) {
		return false
	}
	for i, e := range elems {
		n, ok := e.Value().AsInt64OK()
		if !ok || e.Key() != keys[i].Key || n != int64(keys[i].Value.(int)) {
			return false
		}
	}
	return true
}
