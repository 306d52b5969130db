package mongo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/projections/catalogquery"
)

// Product returns product id. Errors: ErrNotFound (never created, creation
// abandoned, or discontinued), the database's.
func (s *Store) Product(ctx context.Context, id uuid.UUID) (resource.Product, error) {
	coll, err := s.collection(ctx)
	if err != nil {
		return resource.Product{}, err
	}
	if coll == nil {
		return resource.Product{}, ErrNotFound
	}
	var d document
	err = coll.FindOne(ctx, bson.D{{Key: fieldID, Value: id.String()}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return resource.Product{}, ErrNotFound
	case err != nil:
		return resource.Product{}, fmt.Errorf("catalogue: read product %s: %w", id, err)
	case d.Discontinued:
		return resource.Product{}, ErrNotFound
	}
	return d.resource(), nil
}

// Products returns a page of the listed products that match q, and how
// many match in all, exactly. Q matches a case-insensitive substring of the
// name or the description. Every query but a lookup by _id scans the
// collection on FerretDB; the read API lists from the PostgreSQL model
// (projections/postgres), and this answers the same query from the
// documents (tests hold the two to the same answers). Errors:
// catalogquery.ErrInvalidQuery (an unknown sort, Q too long), the
// database's.
func (s *Store) Products(ctx context.Context, q catalogquery.ProductQuery) (catalogquery.Page, error) {
	filter, sort, err := compile(q)
	if err != nil {
		return catalogquery.Page{}, err
	}
	coll, err := s.collection(ctx)
	if err != nil {
		return catalogquery.Page{}, err
	}
	if coll == nil {
		return catalogquery.Page{Items: []resource.Product{}}, nil // the projection never ran
	}
	limit, skip := q.Window()
	cur, err := coll.Find(ctx, filter, options.Find().SetSort(sort).SetSkip(skip).SetLimit(int64(limit)))
	if err != nil {
		return catalogquery.Page{}, fmt.Errorf("catalogue: list products: %w", err)
	}
	var docs []document
	if err := cur.All(ctx, &docs); err != nil {
		return catalogquery.Page{}, fmt.Errorf("catalogue: list products: %w", err)
	}
	items := make([]resource.Product, len(docs))
	for i := range docs {
		items[i] = docs[i].resource()
	}
	// A page that is not full is the last one, and tells the total: the
	// count, a scan of every match on FerretDB, is needed only otherwise.
	total := skip + int64(len(docs))
	if len(docs) == limit || (len(docs) == 0 && skip > 0) {
		if total, err = coll.CountDocuments(ctx, filter); err != nil {
			return catalogquery.Page{}, fmt.Errorf("catalogue: count products: %w", err)
		}
	}
	return catalogquery.Page{Items: items, Total: int(total)}, nil
}

// compile builds the filter and sort of q.
func compile(q catalogquery.ProductQuery) (bson.D, bson.D, error) {
	if err := q.Check(); err != nil {
		return nil, nil, err
	}
	filter := bson.D{{Key: fieldDiscontinued, Value: false}}
	if q.Category != "" {
		filter = append(filter, bson.E{Key: fieldCategory, Value: q.Category})
	}
	if q.VendorID != nil {
		filter = append(filter, bson.E{Key: fieldVendorID, Value: q.VendorID.String()})
	}
	var price bson.D
	if q.MinPrice != nil {
		price = append(price, bson.E{Key: "$gte", Value: int64(*q.MinPrice)})
	}
	if q.MaxPrice != nil {
		price = append(price, bson.E{Key: "$lte", Value: int64(*q.MaxPrice)})
	}
	if price != nil {
		filter = append(filter, bson.E{Key: fieldPriceCents, Value: price})
	}
	if text := strings.TrimSpace(q.Q); text != "" {
		re := bson.D{{Key: "$regex", Value: regexp.QuoteMeta(text)}, {Key: "$options", Value: "i"}}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: fieldName, Value: re}},
			bson.D{{Key: fieldDescription, Value: re}},
		}})
	}
	var sort bson.D
	switch q.Sort {
	case "", catalogquery.SortNewest:
		sort = bson.D{{Key: fieldCreatedUS, Value: -1}, {Key: fieldID, Value: -1}}
	case catalogquery.SortPrice:
		sort = bson.D{{Key: fieldPriceCents, Value: 1}, {Key: fieldID, Value: 1}}
	case catalogquery.SortPriceDesc:
		sort = bson.D{{Key: fieldPriceCents, Value: -1}, {Key: fieldID, Value: 1}}
	default: // catalogquery.SortName; Check refused the rest
		sort = bson.D{{Key: fieldNameKey, Value: 1}, {Key: fieldID, Value: 1}}
	}
	return filter, sort, nil
}

// Categories returns the categories of the listed products, by name, with
// how many products each lists. Errors: the database's.
func (s *Store) Categories(ctx context.Context) ([]catalogquery.Category, error) {
	coll, err := s.collection(ctx)
	if err != nil {
		return nil, err
	}
	if coll == nil {
		return []catalogquery.Category{}, nil // the projection never ran
	}
	// One accumulator per $group: FerretDB computes only the first of
	// several, silently.
	cur, err := coll.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: fieldDiscontinued, Value: false}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$" + fieldCategory}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("catalogue: categories: %w", err)
	}
	var rows []struct {
		Name string `bson:"_id"`
		N    int64  `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("catalogue: categories: %w", err)
	}
	out := make([]catalogquery.Category, len(rows))
	for i, r := range rows {
		out[i] = catalogquery.Category{Name: r.Name, ProductCount: int(r.N)}
	}
	// Sorted here rather than by a $sort stage: the categories are few,
	// and Go's string order is the same on every server.
	slices.SortFunc(out, func(a, b catalogquery.Category) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
