// Package catalogquery is the catalogue's query as the read API asks it
// (GET /api/products and /api/products/categories of API.md): the page,
// the filters, the sort orders and the answer's shape. The catalogue's
// read models, the PostgreSQL one that serves the routes
// (projections/postgres) and the MongoDB product documents
// (projections/mongo), answer the same ProductQuery.
package catalogquery

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

// ErrNotFound is returned for a product the catalogue does not list: one
// it never held, one whose creation was abandoned, or a discontinued one.
var ErrNotFound = errors.New("product not found in catalogue")

// ErrInvalidQuery is returned for a ProductQuery a model refuses (the read
// API checks its parameters first and answers 422).
var ErrInvalidQuery = errors.New("invalid catalogue query")

// Pagination bounds of API.md. The read API refuses a limit over MaxLimit
// with 422; the models clamp it.
const (
	DefaultLimit = 10
	MaxLimit     = 100
)

// MaxQLength bounds ProductQuery.Q, in characters.
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
	// Q searches the name and the description; at most MaxQLength
	// characters. What matches is the model's (see each).
	Q string
	// MinPrice and MaxPrice bound the price, inclusive.
	MinPrice, MaxPrice *domain.Cents
	// Sort is one of Sorts; "" is SortNewest, or, when Q is set, the best
	// matches first where the model ranks them.
	Sort string
}

// Check returns ErrInvalidQuery for an unknown sort or a Q over
// MaxQLength characters.
func (q ProductQuery) Check() error {
	if q.Sort != "" && !slices.Contains(Sorts, q.Sort) {
		return fmt.Errorf("%w: sort %q is not one of %s", ErrInvalidQuery, q.Sort, strings.Join(Sorts, ", "))
	}
	if utf8.RuneCountInString(strings.TrimSpace(q.Q)) > MaxQLength {
		return fmt.Errorf("%w: q is over %d characters", ErrInvalidQuery, MaxQLength)
	}
	return nil
}

// Window is the page's limit (DefaultLimit for 0, at most MaxLimit) and
// how many matches come before it.
func (q ProductQuery) Window() (limit int, offset int64) {
	limit = q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	return limit, int64(max(q.Page, 1)-1) * int64(limit)
}

// Page is a page of products and how many match in all.
type Page struct {
	Items []resource.Product
	// Total is how many products match; when Capped, a lower bound: the
	// model stopped counting there.
	Total  int
	Capped bool
}

// Category is a category of listed products.
type Category struct {
	Name         string
	ProductCount int
}
