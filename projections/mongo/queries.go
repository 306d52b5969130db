package mongo

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

// Pagination bounds of API.md. The read API refuses a limit over MaxLimit
// with 422; the Store clamps it.
const (
	DefaultLimit = 10
	MaxLimit     = 100
)

// MaxQLength bounds ProductQuery.Q, in characters: a longer text matches
// no product name anyway, and each query scans with a regular expression.
const MaxQLength = 100

// Sort orders of ProductQuery.Sort; every order ends with the product id,
// so pages are stable.
const (
	SortNewest    = "-created_at" // newest first, the default
	SortPrice     = "price"       // cheapest first
	SortPriceDesc = "-price"      // dearest first
	SortName      = "name"        // by name, case-insensitive
)

// Sorts lists the sort orders, the default first.
var Sorts = []string{SortNewest, SortPrice, SortPriceDesc, SortName}

// ProductQuery is a page of listed products. Zero fields do not filter.
type ProductQuery struct {
	// Page counts from 1 (less is 1); Limit is 1 to MaxLimit (0 is
	// DefaultLimit, more is MaxLimit).
	Page, Limit int
	// Category matches exactly.
	Category string
	// VendorID matches the vendor's products.
	VendorID *uuid.UUID
	// Q matches a case-insensitive substring of the name or the
	// description; at most MaxQLength characters.
	Q string
	// MinPrice and MaxPrice bound the price, inclusive.
	MinPrice, MaxPrice *domain.Cents
	// Sort is one of Sorts; "" is SortNewest.
	Sort string
}

// Category is a category of listed products.
type Category struct {
	Name         string
	ProductCount int
}

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
// many match in all. Errors: ErrInvalidQuery (an unknown sort, Q too
// long), the database's.
func (s *Store) Products(ctx context.Context, q ProductQuery) ([]resource.Product, int, error) {
	filter, sort, err := q.compile()
	if err != nil {
		return nil, 0, err
	}
	coll, err := s.collection(ctx)
	if err != nil {
		return nil, 0, err
	}
	if coll == nil {
		return []resource.Product{}, 0, nil // the projection never ran
	}
	page, limit := max(q.Page, 1), q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	skip := int64(page-1) * int64(limit)
	cur, err := coll.Find(ctx, filter, options.Find().SetSort(sort).SetSkip(skip).SetLimit(int64(limit)))
	if err != nil {
		return nil, 0, fmt.Errorf("catalogue: list products: %w", err)
	}
	var docs []document
	if err := cur.All(ctx, &docs); err != nil {
		return nil, 0, fmt.Errorf("catalogue: list products: %w", err)
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
			return nil, 0, fmt.Errorf("catalogue: count products: %w", err)
		}
	}
	return items, int(total), nil
}

// compile builds the filter and sort of q.
func (q ProductQuery) compile() (bson.D, bson.D, error) {
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
		if utf8.RuneCountInString(text) > MaxQLength {
			return nil, nil, fmt.Errorf("%w: q is over %d characters", ErrInvalidQuery, MaxQLength)
		}
		re := bson.D{{Key: "$regex", Value: regexp.QuoteMeta(text)}, {Key: "$options", Value: "i"}}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: fieldName, Value: re}},
			bson.D{{Key: fieldDescription, Value: re}},
		}})
	}
	var sort bson.D
	switch q.Sort {
	case "", SortNewest:
		sort = bson.D{{Key: fieldCreatedUS, Value: -1}, {Key: fieldID, Value: -1}}
	case SortPrice:
		sort = bson.D{{Key: fieldPriceCents, Value: 1}, {Key: fieldID, Value: 1}}
	case SortPriceDesc:
		sort = bson.D{{Key: fieldPriceCents, Value: -1}, {Key: fieldID, Value: 1}}
	case SortName:
		sort = bson.D{{Key: fieldNameKey, Value: 1}, {Key: fieldID, Value: 1}}
	default:
		return nil, nil, fmt.Errorf("%w: sort %q is not one of %s", ErrInvalidQuery, q.Sort, strings.Join(Sorts, ", "))
	}
	return filter, sort, nil
}

// Categories returns the categories of the listed products, by name, with
// how many products each lists. Errors: the database's.
func (s *Store) Categories(ctx context.Context) ([]Category, error) {
	coll, err := s.collection(ctx)
	if err != nil {
		return nil, err
	}
	if coll == nil {
		return []Category{}, nil // the projection never ran
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
	out := make([]Category, len(rows))
	for i, r := range rows {
		out[i] = Category{Name: r.Name, ProductCount: int(r.N)}
	}
	// Sorted here rather than by a $sort stage: the categories are few,
	// and Go's string order is the same on every server.
	slices.SortFunc(out, func(a, b Category) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
