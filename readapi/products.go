package readapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/projections/catalogquery"
)

// handleProducts is GET /api/products?page&limit&category&vendor_id&q&min_price&max_price&sort:
// a page of the listed products (not discontinued), newest first unless
// sort says otherwise. Anyone may list them.
func (s *Server) handleProducts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query, err := productQuery(q)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	res, err := s.catalog.Products(r.Context(), query)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	writeJSON(w, page[resource.Product]{Items: res.Items, Page: query.Page, Limit: query.Limit, Total: res.Total, TotalCapped: res.Capped})
}

// productQuery reads the list parameters; every bad one is named in one
// CodeInvalid error (422).
func productQuery(q url.Values) (catalogquery.ProductQuery, error) {
	var bad domain.Fields
	pg, limit := pagination(q, &bad)
	query := catalogquery.ProductQuery{Page: pg, Limit: limit,
		Category: strings.TrimSpace(param(q, "category", &bad)), Q: strings.TrimSpace(param(q, "q", &bad)), Sort: param(q, "sort", &bad)}
	if utf8.RuneCountInString(query.Category) > product.MaxCategoryLength {
		bad.Add("category", "must be at most %d characters", product.MaxCategoryLength)
	}
	// Text the database would refuse (invalid UTF-8, NUL) is the
	// client's mistake, not an outage.
	for _, f := range []struct{ name, v string }{{"category", query.Category}, {"q", query.Q}} {
		if !utf8.ValidString(f.v) || strings.ContainsRune(f.v, 0) {
			bad.Add(f.name, "must be text without NUL characters")
		}
	}
	query.VendorID = queryID(q, "vendor_id", &bad)
	if utf8.RuneCountInString(query.Q) > catalogquery.MaxQLength {
		bad.Add("q", "must be at most %d characters", catalogquery.MaxQLength)
	}
	query.MinPrice = priceParam(q, "min_price", &bad)
	query.MaxPrice = priceParam(q, "max_price", &bad)
	if query.MinPrice != nil && query.MaxPrice != nil && *query.MinPrice > *query.MaxPrice {
		bad.Add("max_price", "must not be below min_price")
	}
	if query.Sort != "" && !slices.Contains(catalogquery.Sorts, query.Sort) {
		bad.Add("sort", "must be one of %s, not %q", strings.Join(catalogquery.Sorts, ", "), query.Sort)
	}
	return query, bad.Err()
}

// priceParam reads the price q[name]: nil when absent or empty; an amount
// of 0 or more with at most two decimals, else it is listed in bad.
func priceParam(q url.Values, name string, bad *domain.Fields) *domain.Cents {
	v := param(q, name, bad)
	if v == "" {
		return nil
	}
	c, err := domain.ParseCents(v)
	if err != nil || c < 0 {
		bad.Add(name, "must be a number of 0 or more with at most two decimals, not %q", v)
		return nil
	}
	return &c
}

// categoryItem is an entry of GET /api/products/categories.
type categoryItem struct {
	Name         string `json:"name"`
	ProductCount int    `json:"product_count"`
}

// handleCategories is GET /api/products/categories: the categories of the
// listed products, by name, with how many each lists.
func (s *Server) handleCategories(w http.ResponseWriter, r *http.Request) {
	cats, err := s.catalog.Categories(r.Context())
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	items := make([]categoryItem, len(cats))
	for i, c := range cats {
		items[i] = categoryItem(c)
	}
	writeJSON(w, struct {
		Items []categoryItem `json:"items"`
	}{items})
}

// handleProduct is GET /api/products/{id}, with its version as ETag. An
// id that is not a UUID gets the same 404 as one the catalogue does not
// list (unknown, abandoned or discontinued).
func (s *Server) handleProduct(w http.ResponseWriter, r *http.Request) {
	raw := chi.URLParam(r, "id")
	canonical, ok := edge.CanonicalID(raw)
	if !ok {
		edge.WriteError(w, r, domain.NotFound("product", raw))
		return
	}
	id := uuid.MustParse(canonical)
	p, err := s.catalog.Product(r.Context(), id)
	switch {
	case errors.Is(err, catalogquery.ErrNotFound):
		edge.WriteError(w, r, domain.NotFound("product", raw))
	case err != nil:
		edge.WriteError(w, r, edge.Unavailable(err))
	default:
		writeResource(w, r, p.Version, p)
	}
}
