package readapi

import (
	"net/url"
	"strconv"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// maxPage bounds ?page so that the offset, (page−1)·limit, cannot
// overflow.
const maxPage = 1_000_000_000

// pagination reads ?page and ?limit: page 1 to maxPage (default 1), limit 1 to
// pgread.MaxLimit (default pgread.DefaultLimit). Anything else is listed
// in bad, so one 422 names every bad parameter.
func pagination(q url.Values, bad *domain.Fields) (page, limit int) {
	page = intParam(q, "page", 1, bad)
	if page < 1 || page > maxPage {
		bad.Add("page", "must be a whole number from 1 to %d", maxPage)
	}
	limit = intParam(q, "limit", pgread.DefaultLimit, bad)
	if limit < 1 || limit > pgread.MaxLimit {
		bad.Add("limit", "must be a whole number from 1 to %d", pgread.MaxLimit)
	}
	return page, limit
}

// intParam reads the whole number q[name], def when absent or empty. One
// that does not parse is listed in bad and read as def, so it is not
// reported twice.
func intParam(q url.Values, name string, def int, bad *domain.Fields) int {
	v := q.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		bad.Add(name, "must be a whole number, not %q", v)
		return def
	}
	return n
}

// orderStatuses are the statuses a client may filter on; abandoned
// placements are not orders.
var orderStatuses = []order.Status{order.StatusPending, order.StatusPaid, order.StatusCompleted, order.StatusCancelled}

// statusParam reads ?status: empty, or one of orderStatuses.
func statusParam(q url.Values, bad *domain.Fields) string {
	v := q.Get("status")
	if v == "" {
		return ""
	}
	for _, s := range orderStatuses {
		if v == string(s) {
			return v
		}
	}
	bad.Add("status", "must be one of pending, paid, completed or cancelled, not %q", v)
	return ""
}
