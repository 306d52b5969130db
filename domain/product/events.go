// Package product is the Product aggregate: catalogue data and stock, as
// pure decide/evolve functions over the stream "product-<id>".
//
// Stock is quantity on hand and reserved units. Reservations name their
// order, so reserving or releasing twice for the same order is a no-op,
// and available = quantity - reserved never goes below zero.
package product

import (
	"encoding/json"

	"github.com/eventshop/eventshop/domain"
)

// Stream names of this package.
const (
	StreamPrefix    = "product-"
	SKUStreamPrefix = "product_sku-"
)

// Stream is the stream of product id.
func Stream(id string) string { return StreamPrefix + id }

// Created: a vendor listed a product.
type Created struct {
	ProductID   string          `json:"product_id"`
	SKU         string          `json:"sku"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Price       domain.Cents    `json:"price"`
	Category    string          `json:"category"`
	VendorID    string          `json:"vendor_id"`
	Images      []string        `json:"images"`
	Metadata    json.RawMessage `json:"metadata"`
	Quantity    int64           `json:"quantity"`
	Warehouse   string          `json:"warehouse"`
}

// Updated carries the changed catalogue fields only.
type Updated struct {
	ProductID   string          `json:"product_id"`
	Name        *string         `json:"name,omitempty"`
	Description *string         `json:"description,omitempty"`
	Price       *domain.Cents   `json:"price,omitempty"`
	Category    *string         `json:"category,omitempty"`
	Images      *[]string       `json:"images,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
}

// Discontinued: the product is gone from listings and cannot be ordered.
type Discontinued struct {
	ProductID string `json:"product_id"`
}

// InventoryUpdated: stock on hand changed by Adjustment to Quantity.
type InventoryUpdated struct {
	ProductID  string `json:"product_id"`
	Adjustment int64  `json:"adjustment"`
	Quantity   int64  `json:"quantity"`
	Reason     string `json:"reason"`
	Warehouse  string `json:"warehouse"`
}

// Reserved: Quantity units are held for OrderID.
type Reserved struct {
	ProductID string `json:"product_id"`
	OrderID   string `json:"order_id"`
	Quantity  int64  `json:"quantity"`
}

// Released: OrderID's hold ended without a sale.
type Released struct {
	ProductID string `json:"product_id"`
	OrderID   string `json:"order_id"`
	Quantity  int64  `json:"quantity"`
	Reason    string `json:"reason"`
}

// Deducted: OrderID's held units left stock (the order completed).
type Deducted struct {
	ProductID string `json:"product_id"`
	OrderID   string `json:"order_id"`
	Quantity  int64  `json:"quantity"`
}

func (Created) EventType() string          { return "product.created" }
func (Updated) EventType() string          { return "product.updated" }
func (Discontinued) EventType() string     { return "product.discontinued" }
func (InventoryUpdated) EventType() string { return "inventory.updated" }
func (Reserved) EventType() string         { return "inventory.reserved" }
func (Released) EventType() string         { return "inventory.released" }
func (Deducted) EventType() string         { return "inventory.deducted" }

// Registry decodes every event of this package.
func Registry() domain.Registry {
	r := domain.Registry{}
	domain.Register[Created](r)
	domain.Register[Updated](r)
	domain.Register[Discontinued](r)
	domain.Register[InventoryUpdated](r)
	domain.Register[Reserved](r)
	domain.Register[Released](r)
	domain.Register[Deducted](r)
	domain.Register[CreationAbandoned](r)
	return r
}
