package writeapi

import (
	"net/http"
	"strconv"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/services/payment"
)

func (s *Server) handlePlaceOrder(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Items []struct {
			ProductID string `json:"product_id"`
			Quantity  int64  `json:"quantity"`
		} `json:"items"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	lines := make([]order.Line, len(body.Items))
	var bad domain.Fields
	for i, it := range body.Items {
		id, ok := edge.CanonicalID(it.ProductID)
		lines[i] = order.Line{ProductID: id, Quantity: it.Quantity}
		if !ok && it.ProductID != "" {
			bad.Add("items["+strconv.Itoa(i)+"].product_id", "product %s does not exist", it.ProductID)
		}
	}
	if len(bad) > 0 {
		edge.WriteError(w, r, &domain.Error{Code: domain.CodeInvalid, Reason: "product_unavailable",
			Detail: "the order names products that do not exist", Fields: bad})
		return
	}
	ctx, cancel := command(r)
	defer cancel()
	o, res, err := s.orders.PlaceOrderOnce(ctx, actor(r), idempotency.RequestKey(r.Context()), lines)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/orders/"+o.ID)
	writeResult(w, http.StatusCreated, res, resource.FromOrder(o))
}

func (s *Server) handlePayOrder(w http.ResponseWriter, r *http.Request) {
	var body struct {
		PaymentMethod *payment.Card `json:"payment_method"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	if body.PaymentMethod == nil {
		edge.WriteError(w, r, edge.Invalid("payment_method", "payment_method is required"))
		return
	}
	s.orderCommand(w, r, func(id string, v int64) (order.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.orders.PayOrderOnce(ctx, actor(r), idempotency.RequestKey(r.Context()), id, v, *body.PaymentMethod)
	})
}

func (s *Server) handleCompleteOrder(w http.ResponseWriter, r *http.Request) {
	s.orderCommand(w, r, func(id string, v int64) (order.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.orders.CompleteOrder(ctx, actor(r), id, v)
	})
}

func (s *Server) handleCancelOrder(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	// The body is optional: an empty one cancels without a reason.
	if r.ContentLength != 0 {
		if err := edge.Decode(r, &body); err != nil {
			edge.WriteError(w, r, err)
			return
		}
	}
	s.orderCommand(w, r, func(id string, v int64) (order.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.orders.CancelOrder(ctx, actor(r), id, v, body.Reason)
	})
}

// orderCommand runs a command on the order named in the path with the
// request's If-Match, and writes the order.
func (s *Server) orderCommand(w http.ResponseWriter, r *http.Request, run func(id string, ifMatch int64) (order.State, commands.Result, error)) {
	id, err := edge.PathID(r, "order")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	v, err := ifMatch(r)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	o, res, err := run(id, v)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	writeResult(w, http.StatusOK, res, resource.FromOrder(o))
}
