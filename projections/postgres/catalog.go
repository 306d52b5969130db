package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/projections/catalogquery"
)

// deferFrom is the offset from which a page reads the ids of its rows
// before the rows themselves: below it, reading the rows skipped costs
// less than looking up the page's rows again by id.
const deferFrom = 50

// CountCap bounds the count of a listing whose total product_counts does
// not keep (a price range, a search): it counts at most CountCap matches
// after the page's offset, and past that says the total is capped.
const CountCap = 1_000

// Catalog answers the catalogue's queries (API.md's product routes) from
// the read model ProductsProjection builds. Every query reads an index: a
// page is read in the order of its sort's index, after the offset, and
// its total is read from product_counts, or, for a price range or a
// search, counted up to CountCap.
//
// It is safe for concurrent use.
type Catalog struct {
	pool *pgxpool.Pool
}

// NewCatalog returns a Catalog reading through pool.
func NewCatalog(pool *pgxpool.Pool) *Catalog { return &Catalog{pool: pool} }

// Name names the projection that builds the catalogue, whose checkpoint
// X-Min-Position waits for.
func (c *Catalog) Name() string { return ProductsProjection{}.Name() }

// Filter is the projection's.
func (c *Catalog) Filter() eventstore.Filter { return ProductsProjection{}.Filter() }

// Product returns product id. Errors: catalogquery.ErrNotFound (never
// created, creation abandoned, or discontinued), the database's.
func (c *Catalog) Product(ctx context.Context, id uuid.UUID) (resource.Product, error) {
	r, err := scanProductRow(c.pool.QueryRow(ctx, "SELECT "+productColumns+
		" FROM readmodel.products WHERE id = $1 AND NOT discontinued", id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return resource.Product{}, catalogquery.ErrNotFound
	case err != nil:
		return resource.Product{}, fmt.Errorf("catalogue: product %s: %w", id, err)
	}
	return r.Product, nil
}

// Categories returns the categories of the listed products, by name
// (bytewise), with how many products each lists. Errors: the database's.
func (c *Catalog) Categories(ctx context.Context) ([]catalogquery.Category, error) {
	rows, err := c.pool.Query(ctx, `SELECT category, n FROM readmodel.product_counts
		WHERE kind = 'category' ORDER BY category`)
	if err != nil {
		return nil, fmt.Errorf("catalogue: categories: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (catalogquery.Category, error) {
		var cat catalogquery.Category
		var n int64
		err := row.Scan(&cat.Name, &n)
		cat.ProductCount = int(n)
		return cat, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalogue: categories: %w", err)
	}
	if out == nil {
		out = []catalogquery.Category{}
	}
	return out, nil
}

// Products returns a page of the listed products that match q, and how
// many match in all: exactly when q filters on category and vendor at
// most; else counted up to CountCap past the page's offset (Capped when
// more match).
//
// Q is product search (see searchQuery): each of its words matches a word
// of the name or the description, stemmed, in any order, whatever the
// case and accents; the last word matches as a prefix too. Without a
// sort the best matches come first (ts_rank, names weighing more than
// descriptions).
//
// Errors: catalogquery.ErrInvalidQuery, the database's.
func (c *Catalog) Products(ctx context.Context, q catalogquery.ProductQuery) (catalogquery.Page, error) {
	if err := q.Check(); err != nil {
		return catalogquery.Page{}, err
	}
	limit, offset := q.Window()
	page := catalogquery.Page{Items: make([]resource.Product, 0, limit)}
	var total int64
	sql, args, counted := listingSQL(q, limit, offset, true)
	rows, err := c.pool.Query(ctx, sql, args...)
	if err != nil {
		return catalogquery.Page{}, fmt.Errorf("catalogue: list products: %w", err)
	}
	for rows.Next() {
		r, err := scanProductRow(rows, &total)
		if err != nil {
			rows.Close()
			return catalogquery.Page{}, fmt.Errorf("catalogue: list products: %w", err)
		}
		page.Items = append(page.Items, r.Product)
	}
	if err := rows.Err(); err != nil {
		return catalogquery.Page{}, fmt.Errorf("catalogue: list products: %w", err)
	}
	if len(page.Items) == 0 && offset > 0 {
		// Past the last page: no row brought the total.
		sql, args, _ := listingSQL(q, limit, offset, false)
		if err := c.pool.QueryRow(ctx, sql, args...).Scan(&total); err != nil {
			return catalogquery.Page{}, fmt.Errorf("catalogue: count products: %w", err)
		}
	}
	page.Total = int(total)
	if !counted && total > offset+CountCap {
		page.Total, page.Capped = int(offset+CountCap), true
	}
	return page, nil
}

// listingSQL is the query of q's page of limit after offset, each row led
// by the total, or when not withPage the query of the total alone.
// counted reports that product_counts holds the total; else the matches
// are counted, up to CountCap past offset and one more, to tell a capped
// count.
func listingSQL(q catalogquery.ProductQuery, limit int, offset int64, withPage bool) (sql string, args []any, counted bool) {
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	from, where := "readmodel.products p", []string{"NOT p.discontinued"}
	if q.Category != "" {
		where = append(where, "p.category = "+arg(q.Category))
	}
	if q.VendorID != nil {
		where = append(where, "p.vendor_id = "+arg(q.VendorID.String()))
	}
	if q.MinPrice != nil {
		where = append(where, "p.price_cents >= "+arg(int64(*q.MinPrice)))
	}
	if q.MaxPrice != nil {
		where = append(where, "p.price_cents <= "+arg(int64(*q.MaxPrice)))
	}
	text := strings.TrimSpace(q.Q)
	if text != "" {
		from += ", to_tsquery('projections.product_search', " + arg(searchQuery(text)) + "::text) query"
		where = append(where, "p.search @@ query")
	}
	cond := strings.Join(where, " AND ")

	var total string
	counted = text == "" && q.MinPrice == nil && q.MaxPrice == nil
	if counted && !withPage {
		args = nil // the total alone names none of the conditions
	}
	if counted {
		kind, category, vendor := countAll, "", ""
		if q.Category != "" {
			kind, category = countCategory, q.Category
		}
		if q.VendorID != nil {
			kind, vendor = countVendor, q.VendorID.String()
			if q.Category != "" {
				kind = countBoth
			}
		}
		total = "coalesce((SELECT n FROM readmodel.product_counts WHERE kind = " + arg(kind) +
			" AND category = " + arg(category) + " AND vendor_id = " + arg(vendor) + "), 0)"
	} else {
		total = "(SELECT count(*) FROM (SELECT FROM " + from + " WHERE " + cond +
			" LIMIT " + arg(offset+CountCap+1) + ") matches)"
	}
	if !withPage {
		sql = "SELECT " + total
	} else {
		// key is the column of the order, which order names unqualified.
		var key, order string
		switch {
		case text != "" && q.Sort == "":
			order = "ts_rank(p.search, query) DESC, p.id"
		case q.Sort == "" || q.Sort == catalogquery.SortNewest:
			key, order = "created_at", "created_at DESC, id DESC"
		case q.Sort == catalogquery.SortPrice:
			key, order = "price_cents", "price_cents, id"
		case q.Sort == catalogquery.SortPriceDesc:
			key, order = "price_cents", "price_cents DESC, id"
		default: // catalogquery.SortName; Check refused the rest
			key, order = "name_key", "name_key, id"
		}
		if key == "" || offset < deferFrom {
			if key != "" {
				order = prefixEach("p.", order)
			}
			// The window is written into the statement: a plan made for
			// a LIMIT or OFFSET parameter is costed as reading a tenth of
			// the matches, so past a few hundred products PostgreSQL
			// would plan each execution again (0.1-0.2 ms, more than the
			// page's execution) rather than reuse the statement's plan.
			// Near the top the windows are few (limit 1-100, offsets
			// below deferFrom); a search, unnamed, is planned for its
			// values anyway.
			sql = "SELECT " + total + ", " + productColumnsOf("p") + " FROM " + from + " WHERE " + cond +
				" ORDER BY " + order + " LIMIT " + strconv.Itoa(limit) + " OFFSET " + strconv.FormatInt(offset, 10)
		} else {
			window := " LIMIT " + arg(int64(limit)) + " OFFSET " + arg(offset)
			// A page deep in the listing takes its ids from the sort's
			// index alone (an index-only scan past the offset), and reads
			// the rows of those ids only: 10 rows rather than the 500
			// before them.
			sql = "SELECT " + total + ", " + productColumnsOf("r") + " FROM (SELECT p.id, p." + key + " FROM " + from +
				" WHERE " + cond + " ORDER BY " + order + window + ") page" +
				" JOIN readmodel.products r ON r.id = page.id ORDER BY " + prefixEach("page.", order)
		}
	}
	if !counted {
		// A search or a price range is planned for its own values
		// (unnamed statements): a plan made for any value may read the
		// sort's index and test every row where this search matches three,
		// or sort half the catalogue where this range's rows come first in
		// the sort's index anyway.
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	return sql, args, counted
}

// prefixEach puts prefix before each term of the ORDER BY list order.
func prefixEach(prefix, order string) string {
	terms := strings.Split(order, ", ")
	for i := range terms {
		terms[i] = prefix + terms[i]
	}
	return strings.Join(terms, ", ")
}
