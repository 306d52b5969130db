package product

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/eventshop/eventshop/domain"
)

// Update carries the catalogue fields a PATCH sent; nil means not sent.
type Update struct {
	Name        *string
	Description *string
	Price       *domain.Cents
	Category    *string
	Images      *[]string
	Metadata    json.RawMessage
}

// DecideUpdate changes catalogue fields; fields equal to the current value
// are left out, and nothing happens when nothing changes. Every field sent
// is checked, changed or not. Errors: CodeNotFound, CodeConflict
// "product_discontinued", CodeInvalid (Updated.Validate).
func DecideUpdate(s State, c Update) ([]domain.Event, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	sent := Updated{ProductID: s.ID, Description: c.Description, Price: c.Price, Metadata: domain.CanonicalJSON(c.Metadata)}
	if c.Name != nil {
		n := strings.TrimSpace(*c.Name)
		sent.Name = &n
	}
	if c.Category != nil {
		cat := orDefault(*c.Category, DefaultCategory)
		sent.Category = &cat
	}
	if c.Images != nil {
		imgs := slices.Clone(*c.Images)
		if imgs == nil {
			imgs = []string{}
		}
		sent.Images = &imgs
	}
	if err := sent.Validate(); err != nil {
		return nil, err
	}
	e := Updated{ProductID: s.ID}
	changed := false
	if sent.Name != nil && *sent.Name != s.Name {
		e.Name, changed = sent.Name, true
	}
	if sent.Description != nil && *sent.Description != s.Description {
		e.Description, changed = sent.Description, true
	}
	if sent.Price != nil && *sent.Price != s.Price {
		e.Price, changed = sent.Price, true
	}
	if sent.Category != nil && *sent.Category != s.Category {
		e.Category, changed = sent.Category, true
	}
	if sent.Images != nil && !slices.Equal(*sent.Images, s.Images) {
		e.Images, changed = sent.Images, true
	}
	// Both in the stored form: the state's was read back from it.
	if sent.Metadata != nil && !bytes.Equal(sent.Metadata, domain.CanonicalJSON(s.Metadata)) {
		e.Metadata, changed = sent.Metadata, true
	}
	if !changed {
		return nil, nil
	}
	return []domain.Event{e}, nil
}

// DecideDiscontinue takes the product off sale; discontinuing it again
// changes nothing. Held stock stays held: orders already placed can still
// complete or be cancelled. Errors: CodeNotFound.
func DecideDiscontinue(s State) ([]domain.Event, error) {
	if !s.Exists() {
		return nil, domain.NotFound("product", s.ID)
	}
	if s.Discontinued {
		return nil, nil
	}
	return []domain.Event{Discontinued{ProductID: s.ID}}, nil
}

// AdjustInventory changes stock on hand by Adjustment.
type AdjustInventory struct {
	Adjustment int64
	Reason     string
	Warehouse  string
}

// DecideAdjustInventory applies a stock adjustment, the reason and
// warehouse trimmed. Errors: CodeNotFound, CodeConflict
// "product_discontinued", CodeInvalid (InventoryUpdated.Validate: zero or
// out-of-range adjustment, no reason, …), then CodeConflict
// "quantity_too_large" or "below_reserved" when the resulting quantity
// would leave its bounds or fall below the units held for orders.
func DecideAdjustInventory(s State, c AdjustInventory) ([]domain.Event, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	// Checked first with the current quantity: the fields the client sent
	// are judged before the stock, whose outcome is a conflict, not a bad
	// field.
	e := InventoryUpdated{ProductID: s.ID, Adjustment: c.Adjustment, Quantity: s.Quantity,
		Reason: strings.TrimSpace(c.Reason), Warehouse: strings.TrimSpace(c.Warehouse)}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	q := s.Quantity + c.Adjustment // both bounded by MaxQuantity: no overflow
	if q > MaxQuantity {
		return nil, domain.Conflict("quantity_too_large", "quantity would be %d, above the limit of %d", q, MaxQuantity)
	}
	if q < s.Reserved {
		err := domain.Conflict("below_reserved", "quantity would be %d, below the %d units reserved for orders", q, s.Reserved)
		err.Extra = map[string]any{"product_id": s.ID, "quantity": s.Quantity, "reserved": s.Reserved}
		return nil, err
	}
	e.Quantity = q
	return []domain.Event{e}, nil
}

// DecideReserve holds quantity units for orderID. Reserving again for an
// order that already holds stock changes nothing. Errors: CodeInvalid
// "product_unavailable" when the product does not exist or is
// discontinued (an order names it, so it is bad input of the order);
// CodeInvalid for a quantity below 1 (Reserved.Validate), or whose total
// at the current price (price × quantity) exceeds domain.MaxCents, which
// catches a price raised after the order was checked; CodeConflict
// "insufficient_stock" with the product and what is available.
func DecideReserve(s State, orderID string, quantity int64) ([]domain.Event, error) {
	if !s.Exists() || s.Discontinued {
		return nil, Unavailable(s.ID)
	}
	if _, held := s.Reservations[orderID]; held {
		return nil, nil
	}
	e := Reserved{ProductID: s.ID, OrderID: orderID, Quantity: quantity}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if _, ok := s.Price.Times(quantity); !ok {
		msg := fmt.Sprintf("%d × %s (product %s) is over the limit of %s for one order line", quantity, s.Price, s.ID, domain.MaxCents)
		return nil, &domain.Error{
			Code: domain.CodeInvalid, Reason: "validation_failed", Detail: msg,
			Fields: []domain.FieldError{{Field: "items.quantity", Message: msg}},
			Extra:  map[string]any{"product_id": s.ID},
		}
	}
	if s.Available() < quantity {
		err := domain.Conflict("insufficient_stock", "product %s (%s) has %d available, %d requested", s.ID, s.SKU, s.Available(), quantity)
		err.Extra = map[string]any{"product_id": s.ID, "sku": s.SKU, "available": s.Available(), "requested": quantity}
		return nil, err
	}
	return []domain.Event{e}, nil
}

// Unavailable is the error for an order line naming a product that does
// not exist or is discontinued.
func Unavailable(productID string) error {
	return &domain.Error{
		Code: domain.CodeInvalid, Reason: "product_unavailable",
		Detail: "product " + productID + " does not exist or is discontinued",
		Fields: []domain.FieldError{{Field: "items.product_id", Message: "product " + productID + " does not exist or is discontinued"}},
		Extra:  map[string]any{"product_id": productID},
	}
}

// DecideRelease ends orderID's hold without a sale; nothing happens when
// the order holds nothing (never reserved, or already released or
// deducted).
func DecideRelease(s State, orderID, reason string) []domain.Event {
	q, held := s.Reservations[orderID]
	if !held {
		return nil
	}
	return []domain.Event{Released{ProductID: s.ID, OrderID: orderID, Quantity: q, Reason: reason}}
}

// DecideDeduct turns orderID's hold into a sale: the units leave stock.
// Nothing happens when the order holds nothing here.
func DecideDeduct(s State, orderID string) []domain.Event {
	q, held := s.Reservations[orderID]
	if !held {
		return nil
	}
	return []domain.Event{Deducted{ProductID: s.ID, OrderID: orderID, Quantity: q}}
}

func live(s State) error {
	if !s.Exists() {
		return domain.NotFound("product", s.ID)
	}
	if s.Discontinued {
		return domain.Conflict("product_discontinued", "product %s is discontinued", s.ID)
	}
	return nil
}
