package product

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

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
// are left out, and nothing happens when nothing changes. Errors:
// CodeNotFound, CodeConflict "product_discontinued", CodeInvalid.
func DecideUpdate(s State, c Update) ([]domain.Event, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	var f domain.Fields
	if c.Name != nil {
		f.CheckName("name", *c.Name, MaxNameLength)
	}
	cat := checkCatalogue(&f, c.Price, c.Description, c.Category, c.Images, c.Metadata)
	if err := f.Err(); err != nil {
		return nil, err
	}
	e := Updated{ProductID: s.ID}
	changed := false
	if c.Name != nil && strings.TrimSpace(*c.Name) != s.Name {
		n := strings.TrimSpace(*c.Name)
		e.Name, changed = &n, true
	}
	if c.Description != nil && *c.Description != s.Description {
		e.Description, changed = c.Description, true
	}
	if c.Price != nil && *c.Price != s.Price {
		e.Price, changed = c.Price, true
	}
	if c.Category != nil {
		if cat == "" {
			cat = DefaultCategory
		}
		if cat != s.Category {
			e.Category, changed = &cat, true
		}
	}
	if c.Images != nil && !slices.Equal(*c.Images, s.Images) {
		imgs := slices.Clone(*c.Images)
		if imgs == nil {
			imgs = []string{}
		}
		e.Images, changed = &imgs, true
	}
	if c.Metadata != nil && !bytes.Equal(bytes.TrimSpace(c.Metadata), bytes.TrimSpace(s.Metadata)) {
		e.Metadata, changed = c.Metadata, true
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

// DecideAdjustInventory applies a stock adjustment. Errors: CodeNotFound,
// CodeConflict "product_discontinued", CodeInvalid (zero adjustment, no
// reason), CodeConflict "below_reserved" when quantity would fall below the
// units held for orders.
func DecideAdjustInventory(s State, c AdjustInventory) ([]domain.Event, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	var f domain.Fields
	if c.Adjustment == 0 {
		f.Add("adjustment", "must not be 0")
	} else if c.Adjustment > MaxQuantity || c.Adjustment < -MaxQuantity {
		f.Add("adjustment", "must be between %d and %d", -MaxQuantity, MaxQuantity)
	}
	reason := strings.TrimSpace(c.Reason)
	if reason == "" {
		f.Add("reason", "is required")
	} else if utf8.RuneCountInString(reason) > 500 {
		f.Add("reason", "must be at most 500 characters")
	}
	if utf8.RuneCountInString(c.Warehouse) > MaxCategoryLength {
		f.Add("warehouse", "must be at most %d characters", MaxCategoryLength)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	q := s.Quantity + c.Adjustment
	if q > MaxQuantity {
		return nil, domain.Conflict("quantity_too_large", "quantity would be %d, above the limit of %d", q, MaxQuantity)
	}
	if q < s.Reserved {
		err := domain.Conflict("below_reserved", "quantity would be %d, below the %d units reserved for orders", q, s.Reserved)
		err.Extra = map[string]any{"product_id": s.ID, "quantity": s.Quantity, "reserved": s.Reserved}
		return nil, err
	}
	return []domain.Event{InventoryUpdated{
		ProductID: s.ID, Adjustment: c.Adjustment, Quantity: q, Reason: reason, Warehouse: strings.TrimSpace(c.Warehouse),
	}}, nil
}

// DecideReserve holds quantity units for orderID. Reserving again for an
// order that already holds stock changes nothing. Errors: CodeInvalid
// "product_unavailable" when the product does not exist or is
// discontinued (an order names it, so it is bad input of the order),
// CodeConflict "insufficient_stock" with the product and what is available.
func DecideReserve(s State, orderID string, quantity int64) ([]domain.Event, error) {
	if !s.Exists() || s.Discontinued {
		return nil, Unavailable(s.ID)
	}
	if _, held := s.Reservations[orderID]; held {
		return nil, nil
	}
	if quantity < 1 {
		var f domain.Fields
		f.Add("quantity", "must be at least 1")
		return nil, f.Err()
	}
	if s.Available() < quantity {
		err := domain.Conflict("insufficient_stock", "product %s (%s) has %d available, %d requested", s.ID, s.SKU, s.Available(), quantity)
		err.Extra = map[string]any{"product_id": s.ID, "sku": s.SKU, "available": s.Available(), "requested": quantity}
		return nil, err
	}
	return []domain.Event{Reserved{ProductID: s.ID, OrderID: orderID, Quantity: quantity}}, nil
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
