// Package product is the Product aggregate: catalogue data and stock, as
// pure decide/evolve functions over the stream "product-<id>".
//
// Stock is quantity on hand and reserved units. Reservations name their
// order, so reserving or releasing twice for the same order is a no-op,
// and available = quantity - reserved never goes below zero.
package product

import (
	"encoding/json"
	"net/url"
	"regexp"

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

// CreationAbandoned fences a product id whose listing never finished (the
// process stopped between claiming the SKU and writing the product): once
// it is in the stream, that listing can no longer complete.
type CreationAbandoned struct {
	ProductID string `json:"product_id"`
}

func (Created) EventType() string           { return "product.created" }
func (Updated) EventType() string           { return "product.updated" }
func (Discontinued) EventType() string      { return "product.discontinued" }
func (InventoryUpdated) EventType() string  { return "inventory.updated" }
func (Reserved) EventType() string          { return "inventory.reserved" }
func (Released) EventType() string          { return "inventory.released" }
func (Deducted) EventType() string          { return "inventory.deducted" }
func (CreationAbandoned) EventType() string { return "product.creation_abandoned" }

// Limits on catalogue and stock fields, which the events' Validate hold.
const (
	MaxSKULength         = 64
	MaxNameLength        = 200
	MaxDescriptionLength = 5000
	MaxCategoryLength    = 100
	MaxWarehouseLength   = 100
	MaxImages            = 20
	MaxImageURLLength    = 2048
	MaxMetadataBytes     = 16 << 10
	MaxMetadataDepth     = 32
	MaxQuantity          = 1_000_000_000
)

var skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate checks the bounds of a new product; field names are those of
// the create request. Errors: CodeInvalid naming every bad field.
func (e Created) Validate() error {
	var f domain.Fields
	f.CheckID("product_id", e.ProductID)
	checkSKU(&f, e.SKU)
	f.CheckName("name", e.Name, MaxNameLength)
	f.CheckText("description", e.Description, MaxDescriptionLength, true)
	f.CheckCents("price", e.Price, true)
	f.CheckName("category", e.Category, MaxCategoryLength)
	f.CheckID("vendor_id", e.VendorID)
	checkImages(&f, e.Images)
	f.CheckObject("metadata", e.Metadata, MaxMetadataBytes, MaxMetadataDepth)
	f.CheckRange("quantity", e.Quantity, 0, MaxQuantity)
	f.CheckName("warehouse", e.Warehouse, MaxWarehouseLength)
	return f.Err()
}

// Validate checks the fields the update carries, as Created does; field
// names are those of the PATCH request. Errors: CodeInvalid.
func (e Updated) Validate() error {
	var f domain.Fields
	f.CheckID("product_id", e.ProductID)
	if e.Name != nil {
		f.CheckName("name", *e.Name, MaxNameLength)
	}
	if e.Description != nil {
		f.CheckText("description", *e.Description, MaxDescriptionLength, true)
	}
	if e.Price != nil {
		f.CheckCents("price", *e.Price, true)
	}
	if e.Category != nil {
		f.CheckName("category", *e.Category, MaxCategoryLength)
	}
	if e.Images != nil {
		checkImages(&f, *e.Images)
	}
	if e.Metadata != nil {
		f.CheckObject("metadata", e.Metadata, MaxMetadataBytes, MaxMetadataDepth)
	}
	return f.Err()
}

// Validate checks the product id. Errors: CodeInvalid.
func (e Discontinued) Validate() error { return productID(e.ProductID) }

// Validate checks the product id. Errors: CodeInvalid.
func (e CreationAbandoned) Validate() error { return productID(e.ProductID) }

// Validate checks a stock adjustment: a non-zero adjustment within
// ±MaxQuantity, the resulting quantity 0..MaxQuantity, a reason (multiline)
// and a warehouse, which may be empty (unchanged); field names are those
// of the inventory request. Errors: CodeInvalid.
func (e InventoryUpdated) Validate() error {
	var f domain.Fields
	f.CheckID("product_id", e.ProductID)
	if e.Adjustment == 0 {
		f.Add("adjustment", "must not be 0")
	} else {
		f.CheckRange("adjustment", e.Adjustment, -MaxQuantity, MaxQuantity)
	}
	f.CheckRange("quantity", e.Quantity, 0, MaxQuantity)
	if f.Require("reason", e.Reason) {
		f.CheckText("reason", e.Reason, domain.MaxReasonLength, true)
	}
	f.CheckText("warehouse", e.Warehouse, MaxWarehouseLength, false)
	return f.Err()
}

// Validate checks a hold: its product, its order and 1..MaxQuantity
// units. Errors: CodeInvalid.
func (e Reserved) Validate() error { return checkHold(e.ProductID, e.OrderID, e.Quantity, nil) }

// Validate checks a release as a hold, and its reason (one line).
// Errors: CodeInvalid.
func (e Released) Validate() error { return checkHold(e.ProductID, e.OrderID, e.Quantity, &e.Reason) }

// Validate checks a deduction as a hold. Errors: CodeInvalid.
func (e Deducted) Validate() error { return checkHold(e.ProductID, e.OrderID, e.Quantity, nil) }

func checkHold(productID, orderID string, quantity int64, reason *string) error {
	var f domain.Fields
	f.CheckID("product_id", productID)
	f.CheckID("order_id", orderID)
	f.CheckRange("quantity", quantity, 1, MaxQuantity)
	if reason != nil {
		f.CheckName("reason", *reason, domain.MaxReasonLength)
	}
	return f.Err()
}

func productID(id string) error {
	var f domain.Fields
	f.CheckID("product_id", id)
	return f.Err()
}

// checkSKU: a SKU is letters, digits, '.', '_' and '-', starting with a
// letter or digit, at most MaxSKULength.
func checkSKU(f *domain.Fields, sku string) {
	switch {
	case !f.Require("sku", sku):
	case len(sku) > MaxSKULength:
		f.Add("sku", "must be at most %d characters", MaxSKULength)
	case !skuPattern.MatchString(sku):
		f.Add("sku", "may hold only letters, digits, '.', '_' and '-'")
	}
}

// checkImages: at most MaxImages absolute http(s) URLs of at most
// MaxImageURLLength bytes each, which are text; one error for the list.
func checkImages(f *domain.Fields, images []string) {
	if len(images) > MaxImages {
		f.Add("images", "must hold at most %d URLs", MaxImages)
	}
	for _, img := range images {
		u, err := url.Parse(img)
		if len(img) > MaxImageURLLength || !domain.ValidText(img, false) || err != nil ||
			(u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			f.Add("images", "must be http or https URLs of at most %d characters", MaxImageURLLength)
			return
		}
	}
}

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
