package writeapi

import (
	"net/http"
	"strconv"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/internal/payment"
	"github.com/eventshop/eventshop/internal/problem"
	"github.com/eventshop/eventshop/internal/resource"
)

func (s *Server) handlePlaceOrder(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Items []struct {
			ProductID string `json:"product_id"`
			Quantity  int64  `json:"quantity"`
		} `json:"items"`
	}
	if err := decode(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	lines := make([]order.Line, len(body.Items))
	var bad problem.Details
	for i, it := range body.Items {
		id, ok := canonicalID(it.ProductID)
		lines[i] = order.Line{ProductID: id, Quantity: it.Quantity}
		if !ok && it.ProductID != "" {
			bad.Errors = append(bad.Errors, problem.FieldError{
				Field: "items[" + strconv.Itoa(i) + "].product_id", Message: "product " + it.ProductID + " does not exist"})
		}
	}
	if len(bad.Errors) > 0 {
		p := problem.New(http.StatusUnprocessableEntity, "the order names products that do not exist")
		p.Code, p.Errors = "product_unavailable", bad.Errors
		problem.Write(w, p)
		return
	}
	ctx, cancel := command(r)
	defer cancel()
	o, res, err := s.cmd.PlaceOrder(ctx, actorFrom(r.Context()).Actor, lines)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/orders/"+o.ID)
	writeResult(w, http.StatusCreated, res, resource.FromOrder(o))
}

func (s *Server) handlePayOrder(w http.ResponseWriter, r *http.Request) {
	var body struct {
		PaymentMethod *payment.Card `json:"payment_method"`
	}
	if err := decode(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.PaymentMethod == nil {
		s.writeError(w, r, &requestError{status: http.StatusUnprocessableEntity, field: "payment_method", detail: "payment_method is required"})
		return
	}
	s.orderCommand(w, r, func(id string, v int64) (order.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.cmd.PayOrder(ctx, actorFrom(r.Context()).Actor, id, v, *body.PaymentMethod)
	})
}

func (s *Server) handleCompleteOrder(w http.ResponseWriter, r *http.Request) {
	s.orderCommand(w, r, func(id string, v int64) (order.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.cmd.CompleteOrder(ctx, actorFrom(r.Context()).Actor, id, v)
	})
}

func (s *Server) handleCancelOrder(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	// The body is optional: an empty one cancels without a reason.
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	s.orderCommand(w, r, func(id string, v int64) (order.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.cmd.CancelOrder(ctx, actorFrom(r.Context()).Actor, id, v, body.Reason)
	})
}

// orderCommand runs a command on the order named in the path with the
// request's If-Match, and writes the order.
func (s *Server) orderCommand(w http.ResponseWriter, r *http.Request, run func(id string, ifMatch int64) (order.State, commands.Result, error)) {
	id, err := pathID(r, "order")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := ifMatch(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	o, res, err := run(id, v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeResult(w, http.StatusOK, res, resource.FromOrder(o))
}
