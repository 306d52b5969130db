package readapi

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// NotificationReader lists the notifier's ledger; *ledger.Ledger is one.
type NotificationReader interface {
	List(ctx context.Context, q ledger.Query) ([]ledger.Notification, int, error)
}

// handleNotifications is GET /api/notifications?page&limit&user_id,
// newest first: a signed-in user lists their own; an admin lists all, or
// one user's with user_id. A user_id other than the caller's own from
// anyone else is 403, rather than quietly answering with their own.
func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	var bad domain.Fields
	q := r.URL.Query()
	pg, limit := pagination(q, &bad)
	filter := queryID(q, "user_id", &bad)
	if err := bad.Err(); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	a, _ := edge.ActorFrom(r.Context())
	if !a.Has(user.RoleAdmin) {
		own, err := uuid.Parse(a.ID)
		if err != nil || (filter != nil && *filter != own) {
			edge.WriteError(w, r, domain.ErrForbidden)
			return
		}
		filter = &own
	}
	rows, total, err := s.notifications.List(r.Context(), ledger.Query{UserID: filter, Page: pg, Limit: limit})
	if err != nil {
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	items := make([]resource.Notification, len(rows))
	for i, n := range rows {
		items[i] = notification(n)
	}
	writeJSON(w, page[resource.Notification]{Items: items, Page: pg, Limit: limit, Total: total})
}

// notification is the API shape of a ledger row. The API knows three
// statuses: a row neither sent nor failed for good is on its way, a first
// attempt in flight included, and is "retrying".
func notification(n ledger.Notification) resource.Notification {
	status := "retrying"
	switch n.Status {
	case ledger.StatusSent:
		status = "sent"
	case ledger.StatusFailed:
		status = "failed"
	}
	sentAt := n.SentAt
	if sentAt != nil {
		t := sentAt.UTC()
		sentAt = &t
	}
	return resource.Notification{
		ID: n.ID.String(), UserID: n.UserID.String(), EventID: n.EventID.String(), EventType: n.EventType,
		Channel: n.Channel, To: n.Recipient, Subject: n.Subject, Status: status, Attempts: n.Attempts,
		CreatedAt: n.CreatedAt.UTC(), SentAt: sentAt,
	}
}
