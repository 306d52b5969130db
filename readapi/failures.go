package readapi

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/projections"
)

// FailureReader lists what the order process manager fails on
// (projections.Failures of its worker).
type FailureReader interface {
	List(ctx context.Context, page, limit int) ([]projections.Failure, int, error)
}

// processFailure is one failing order in the admin route's answer.
type processFailure struct {
	// OrderID is the order; null for an event that names no order the
	// process manager could read (then Stream says where it is).
	OrderID *string `json:"order_id"`
	Stream  string  `json:"stream"`
	// EventID is the event it could not read; null when an action failed.
	EventID *string `json:"event_id"`
	// Action is what failed: "read event", or the action on the order.
	Action    string    `json:"action"`
	Error     string    `json:"error"`
	Attempts  int       `json:"attempts"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// handleProcessFailures is GET /api/admin/process-manager/failures?page&limit:
// the orders the process manager fails on now, the latest failure first,
// kept in the database until the order's next action succeeds.
func (s *Server) handleProcessFailures(w http.ResponseWriter, r *http.Request) {
	var bad domain.Fields
	pg, limit := pagination(r.URL.Query(), &bad)
	if err := bad.Err(); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	list, total, err := s.failures.List(r.Context(), pg, limit)
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	items := make([]processFailure, len(list))
	for i, f := range list {
		items[i] = processFailure{Stream: f.StreamID, Action: f.Action, Error: f.Error, Attempts: f.Attempts,
			FirstSeen: f.FirstSeen.UTC(), LastSeen: f.LastSeen.UTC()}
		if _, err := uuid.Parse(f.Key); err == nil {
			items[i].OrderID = &f.Key
		}
		if f.EventID != uuid.Nil {
			id := f.EventID.String()
			items[i].EventID = &id
		}
	}
	writeJSON(w, page[processFailure]{Items: items, Page: pg, Limit: limit, Total: total})
}
