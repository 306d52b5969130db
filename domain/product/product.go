package product

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eventshop/eventshop/domain"
)

// State is a product as folded from its stream. Version is -1 before the
// first event.
type State struct {
	ID           string
	SKU          string
	Name         string
	Description  string
	Price        domain.Cents
	Category     string
	VendorID     string
	Images       []string
	Metadata     json.RawMessage
	Quantity     int64
	Reserved     int64
	Reservations map[string]int64 // order id → units held
	Warehouse    string
	Discontinued bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64
}

// New is the state of a stream with no events.
func New() State { return State{Version: -1} }

// Exists reports whether the product was created.
func (s State) Exists() bool { return s.ID != "" }

// Available is what can still be reserved.
func (s State) Available() int64 { return s.Quantity - s.Reserved }

// Clone returns a copy that shares nothing mutable with s.
func (s State) Clone() State {
	s.Reservations = maps.Clone(s.Reservations)
	s.Images = slices.Clone(s.Images)
	return s
}

// Evolve applies one recorded event and never fails. It updates
// s.Reservations in place, so a caller that keeps an earlier state must
// Clone it first; this keeps folding a long, hot stream linear.
func Evolve(s State, r domain.Recorded) State {
	s.Version = r.Version
	s.UpdatedAt = r.At
	switch e := r.Event.(type) {
	case Created:
		s.ID, s.SKU, s.Name, s.Description = e.ProductID, e.SKU, e.Name, e.Description
		s.Price, s.Category, s.VendorID = e.Price, e.Category, e.VendorID
		s.Images, s.Metadata = slices.Clone(e.Images), e.Metadata
		s.Quantity, s.Warehouse = e.Quantity, e.Warehouse
		s.CreatedAt = r.At
	case Updated:
		if e.Name != nil {
			s.Name = *e.Name
		}
		if e.Description != nil {
			s.Description = *e.Description
		}
		if e.Price != nil {
			s.Price = *e.Price
		}
		if e.Category != nil {
			s.Category = *e.Category
		}
		if e.Images != nil {
			s.Images = slices.Clone(*e.Images)
		}
		if e.Metadata != nil {
			s.Metadata = e.Metadata
		}
	case Discontinued:
		s.Discontinued = true
	case InventoryUpdated:
		s.Quantity = e.Quantity
		if e.Warehouse != "" {
			s.Warehouse = e.Warehouse
		}
	case Reserved:
		if s.Reservations == nil {
			s.Reservations = map[string]int64{}
		}
		s.Reservations[e.OrderID] += e.Quantity
		s.Reserved += e.Quantity
	case Released:
		s.Reserved -= e.Quantity
		delete(s.Reservations, e.OrderID)
	case Deducted:
		s.Reserved -= e.Quantity
		s.Quantity -= e.Quantity
		delete(s.Reservations, e.OrderID)
	}
	return s
}

// Fold folds history from New.
func Fold(history []domain.Recorded) State { return domain.Fold(New(), Evolve, history) }

// Defaults of a new product.
const (
	DefaultCategory  = "uncategorized"
	DefaultWarehouse = "main"
)

// NormaliseSKU is the form a SKU is unique under: trimmed, upper case.
func NormaliseSKU(sku string) string { return strings.ToUpper(strings.TrimSpace(sku)) }

// Create is the command to list a product. VendorID is the caller (or the
// vendor an admin names), never a field the vendor controls.
type Create struct {
	ProductID   string
	SKU         string
	Name        string
	Description string
	Price       domain.Cents
	Category    string
	VendorID    string
	Images      []string
	Metadata    json.RawMessage
	Quantity    int64
	Warehouse   string
}

// DecideCreate lists a new product: the SKU, name, category and
// warehouse trimmed, a blank category or warehouse defaulted, no images or
// metadata made empty, the metadata in its stored form (CanonicalJSON). Errors: CodeConflict "product_exists", CodeInvalid
// for every bad field (Created.Validate).
func DecideCreate(s State, c Create) ([]domain.Event, error) {
	if s.Version >= 0 {
		return nil, domain.Conflict("product_exists", "product %s already exists", c.ProductID)
	}
	e := Created{
		ProductID: c.ProductID, SKU: strings.TrimSpace(c.SKU), Name: strings.TrimSpace(c.Name), Description: c.Description,
		Price: c.Price, Category: orDefault(c.Category, DefaultCategory), VendorID: c.VendorID, Images: c.Images,
		Metadata: domain.CanonicalJSON(c.Metadata), Quantity: c.Quantity, Warehouse: orDefault(c.Warehouse, DefaultWarehouse),
	}
	if e.Images == nil {
		e.Images = []string{}
	}
	if len(e.Metadata) == 0 {
		e.Metadata = json.RawMessage(`{}`)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return []domain.Event{e}, nil
}

// orDefault is s trimmed, or def when that is empty.
func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s == "" {
		return def
	}
	return s
}
