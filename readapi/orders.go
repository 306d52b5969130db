package readapi

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/platform/resource"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// handleOrders is GET /api/orders?page&limit&status, newest first: an
// admin sees every order; anyone else the orders they placed (kept even
// when their customer role is revoked) and, as a vendor, the orders
// holding one of their products.
func (s *Server) handleOrders(w http.ResponseWriter, r *http.Request) {
	var bad domain.Fields
	q := r.URL.Query()
	pg, limit := pagination(q, &bad)
	status := statusParam(q, &bad)
	if err := bad.Err(); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	query := pgread.OrderQuery{Status: status, Page: pg, Limit: limit}
	if a, _ := edge.ActorFrom(r.Context()); !a.Has(user.RoleAdmin) {
		query.UserID = a.ID
		if a.Has(user.RoleVendor) {
			query.VendorID = a.ID
		}
	}
	items, total, err := s.reads.Orders(r.Context(), query)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	writeJSON(w, page[resource.Order]{Items: items, Page: pg, Limit: limit, Total: total})
}

// handleOrder is GET /api/orders/{id}: its owner, an admin, or a vendor
// with a product in it. Anyone else gets the same 404 as for an order that
// does not exist.
func (s *Server) handleOrder(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	o, err := s.reads.Order(r.Context(), id)
	switch {
	case errors.Is(err, pgread.ErrNotFound):
		edge.WriteError(w, r, domain.NotFound("order", id))
		return
	case err != nil:
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	ok, err := s.mayRead(r, o)
	switch {
	case err != nil:
		edge.WriteError(w, r, edge.Unavailable(err))
	case !ok:
		edge.WriteError(w, r, domain.NotFound("order", id))
	default:
		writeResource(w, r, o.Version, o)
	}
}

// mayRead is the per-object check of an order.
func (s *Server) mayRead(r *http.Request, o resource.Order) (bool, error) {
	a, _ := edge.ActorFrom(r.Context())
	switch {
	case a.ID == "":
		return false, nil
	case a.Has(user.RoleAdmin), o.UserID == a.ID:
		return true, nil
	case a.Has(user.RoleVendor):
		return s.reads.OrderVisible(r.Context(), o.ID, a.ID)
	}
	return false, nil
}
