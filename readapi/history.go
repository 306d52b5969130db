package readapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
)

// historyPage is how many events one read of an order's stream asks for.
const historyPage = 100

// maxHistory bounds the events one history answer holds. An order's
// stream is a handful of events (placed, paid, cancelled, refunded); the
// bound only keeps a pathological stream from being read whole into one
// response.
const maxHistory = 1_000

// OrderReader reads an order on the write side, refusing callers who may
// not see it: the order's customer, an admin and a vendor with items in
// it may; anyone else gets the CodeNotFound of a missing order, as does an
// order whose placement was abandoned. *commands.Orders is one, so the
// history route applies the very rule of the order commands.
type OrderReader interface {
	Order(ctx context.Context, actor commands.Actor, id string) (order.State, commands.Result, error)
}

// StreamReader reads one stream of the event store; eventstore.Store is
// one.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error)
}

// orderHistory is the answer of GET /api/orders/{id}/history.
type orderHistory struct {
	OrderID string         `json:"order_id"`
	Events  []historyEvent `json:"events"`
	// Truncated says the stream holds more than maxHistory events and
	// only the first of them are listed.
	Truncated bool `json:"truncated,omitempty"`
}

// historyEvent is one event of an order's stream.
type historyEvent struct {
	Version       int64           `json:"version"`
	EventID       string          `json:"event_id"`
	EventType     string          `json:"event_type"`
	Timestamp     time.Time       `json:"timestamp"`
	ActorID       string          `json:"actor_id"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   string          `json:"causation_id"`
	Data          json.RawMessage `json:"data"`
}

// handleOrderHistory is GET /api/orders/{id}/history: every event of the
// order's stream, oldest first, for exactly the callers who may GET the
// order. It is read from the event store, not from a read model, so it
// is current by nature and X-Min-Position has nothing to wait for.
//
// Every event of the stream is listed as it was recorded, including the
// bookkeeping of payments (order.payment_voided, order.refunded): this is
// the order's audit trail. Each event's data is decoded with the order
// events' registry and encoded again, so a client sees the current shape
// of the event and only the fields the event type declares; order events
// hold no secrets (a payment keeps the card's last four digits only).
// actor_id is the user whose request caused the event, or "system" for the
// process manager (expiry, compensation); correlation_id is that of the
// request the work began with, causation_id what caused the event (that
// request, or the event the process manager reacted to). The ETag is the
// stream's version.
func (s *Server) handleOrderHistory(w http.ResponseWriter, r *http.Request) {
	id, err := edge.PathID(r, "order")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	a, _ := edge.ActorFrom(r.Context())
	_, res, err := s.orders.Order(r.Context(), commands.Actor{ID: a.ID, Roles: a.Roles}, id)
	if err != nil {
		var de *domain.Error
		if !errors.As(err, &de) {
			err = edge.Unavailable(err)
		}
		edge.WriteError(w, r, err)
		return
	}
	evs, truncated, err := readOrderStream(r.Context(), s.streams, order.Stream(id))
	switch {
	case errors.Is(err, eventstore.ErrStreamNotFound):
		edge.WriteError(w, r, domain.NotFound("order", id))
		return
	case err != nil:
		edge.WriteError(w, r, edge.Unavailable(err))
		return
	}
	h, err := newOrderHistory(id, evs)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	h.Truncated = truncated
	// The stream may have moved on since the check: then the events read
	// are the newer, and their last version is the stream's.
	version := res.Version
	if n := len(evs); n > 0 {
		version = max(version, evs[n-1].Version)
	}
	writeResource(w, r, version, h)
}

// readOrderStream reads stream forwards in pages of historyPage, up to
// maxHistory events; truncated says there were more. Errors:
// eventstore.ErrStreamNotFound, the store's.
func readOrderStream(ctx context.Context, st StreamReader, stream string) (evs []eventstore.Event, truncated bool, err error) {
	for from := int64(0); ; {
		page, err := st.ReadStream(ctx, stream, eventstore.Forwards, from, min(historyPage, maxHistory+1-len(evs)))
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", stream, err)
		}
		evs = append(evs, page...)
		switch {
		case len(evs) > maxHistory:
			return evs[:maxHistory], true, nil
		case len(page) < historyPage:
			return evs, false, nil
		}
		from = page[len(page)-1].Version + 1
	}
}

// newOrderHistory turns the events of order id's stream into its history.
// Errors: CodeConflict stream_unreadable for an event that does not decode
// (the order's commands answer the same), an encoding failure.
func newOrderHistory(id string, evs []eventstore.Event) (orderHistory, error) {
	reg := order.Registry()
	h := orderHistory{OrderID: id, Events: make([]historyEvent, 0, len(evs))}
	for i := range evs {
		e := &evs[i]
		ev, err := reg.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return orderHistory{}, domain.StreamUnreadable(order.Stream(id), e.ID.String(), e.Type, e.Version, err)
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return orderHistory{}, fmt.Errorf("history of order %s: encode event %d: %w", id, e.Version, err)
		}
		h.Events = append(h.Events, historyEvent{
			Version: e.Version, EventID: e.ID.String(), EventType: e.Type,
			Timestamp: e.Metadata.Timestamp.UTC(), ActorID: e.Metadata.ActorID,
			CorrelationID: e.Metadata.CorrelationID, CausationID: e.Metadata.CausationID,
			Data: data,
		})
	}
	return h, nil
}
