package readapi

import (
	"net/url"
	"strconv"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/internal/edge"
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

// param reads q[name], "" when absent. A parameter sent more than once is
// listed in bad and read as absent: which of its values the client meant
// is not for the server to guess.
func param(q url.Values, name string, bad *domain.Fields) string {
	switch vs := q[name]; len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	bad.Add(name, "must be sent once")
	return ""
}

// queryID reads the id q[name]: nil when absent or empty; a UUID in its
// canonical 36-character form, else it is listed in bad.
func queryID(q url.Values, name string, bad *domain.Fields) *uuid.UUID {
	v := param(q, name, bad)
	if v == "" {
		return nil
	}
	id, ok := edge.CanonicalID(v)
	if !ok {
		bad.Add(name, "must be an id (a UUID), not %q", v)
		return nil
	}
	u := uuid.MustParse(id)
	return &u
}

// intParam reads the whole number q[name], def when absent or empty. One
// that does not parse is listed in bad and read as def, so it is not
// reported twice.
func intParam(q url.Values, name string, def int, bad *domain.Fields) int {
	v := param(q, name, bad)
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
	v := param(q, "status", bad)
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
