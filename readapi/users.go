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

// handleUsers is GET /api/users: admins only (403 otherwise), oldest
// first.
func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) {
	a, _ := edge.ActorFrom(r.Context())
	if !a.Has(user.RoleAdmin) {
		edge.WriteError(w, r, domain.ErrForbidden)
		return
	}
	var bad domain.Fields
	pg, limit := pagination(r.URL.Query(), &bad)
	if err := bad.Err(); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	items, total, err := s.reads.Users(r.Context(), pg, limit)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	writeJSON(w, page[resource.User]{Items: items, Page: pg, Limit: limit, Total: total})
}

// handleUser is GET /api/users/{id}: an admin, or the user themself. Any
// other caller gets the same 404 as for a user that does not exist, so
// user ids cannot be probed (API.md: 404 is "missing, or not yours").
func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	a, _ := edge.ActorFrom(r.Context())
	if !a.Has(user.RoleAdmin) && id != a.ID {
		edge.WriteError(w, r, domain.NotFound("user", id))
		return
	}
	u, err := s.reads.User(r.Context(), id)
	switch {
	case errors.Is(err, pgread.ErrNotFound):
		edge.WriteError(w, r, domain.NotFound("user", id))
	case err != nil:
		edge.WriteError(w, r, edge.Unavailable(err))
	default:
		writeResource(w, r, u.Version, u)
	}
}
