package product

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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

// Limits on catalogue fields.
const (
	MaxSKULength         = 64
	MaxNameLength        = 200
	MaxDescriptionLength = 5000
	MaxCategoryLength    = 100
	MaxImages            = 20
	MaxImageURLLength    = 2048
	MaxMetadataBytes     = 16 << 10
	MaxQuantity          = 1_000_000_000
	DefaultCategory      = "uncategorized"
	DefaultWarehouse     = "main"
)

var skuPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

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

// DecideCreate lists a new product. Errors: CodeConflict "product_exists",
// CodeInvalid for every bad field.
func DecideCreate(s State, c Create) ([]domain.Event, error) {
	if s.Version >= 0 {
		return nil, domain.Conflict("product_exists", "product %s already exists", c.ProductID)
	}
	var f domain.Fields
	sku := strings.TrimSpace(c.SKU)
	switch {
	case sku == "":
		f.Add("sku", "is required")
	case len(sku) > MaxSKULength:
		f.Add("sku", "must be at most %d characters", MaxSKULength)
	case !skuPattern.MatchString(sku):
		f.Add("sku", "may hold only letters, digits, '.', '_' and '-'")
	}
	f.CheckName("name", c.Name, MaxNameLength)
	if c.VendorID == "" {
		f.Add("vendor_id", "is required")
	}
	if c.Quantity < 0 {
		f.Add("quantity", "must be 0 or more")
	} else if c.Quantity > MaxQuantity {
		f.Add("quantity", "must be at most %d", MaxQuantity)
	}
	category := checkCatalogue(&f, &c.Price, &c.Description, &c.Category, &c.Images, c.Metadata)
	warehouse := strings.TrimSpace(c.Warehouse)
	if warehouse == "" {
		warehouse = DefaultWarehouse
	} else if utf8.RuneCountInString(warehouse) > MaxCategoryLength {
		f.Add("warehouse", "must be at most %d characters", MaxCategoryLength)
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	if category == "" {
		category = DefaultCategory
	}
	meta := c.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	images := c.Images
	if images == nil {
		images = []string{}
	}
	return []domain.Event{Created{
		ProductID: c.ProductID, SKU: sku, Name: strings.TrimSpace(c.Name), Description: c.Description,
		Price: c.Price, Category: category, VendorID: c.VendorID, Images: images, Metadata: meta,
		Quantity: c.Quantity, Warehouse: warehouse,
	}}, nil
}

// checkCatalogue validates the fields Create and Update share; pointers
// that are nil were not sent. It returns the trimmed category.
func checkCatalogue(f *domain.Fields, price *domain.Cents, desc, category *string, images *[]string, meta json.RawMessage) string {
	if price != nil && (*price <= 0 || *price > domain.MaxCents) {
		f.Add("price", "must be greater than 0 and at most %s", domain.MaxCents)
	}
	if desc != nil && utf8.RuneCountInString(*desc) > MaxDescriptionLength {
		f.Add("description", "must be at most %d characters", MaxDescriptionLength)
	}
	cat := ""
	if category != nil {
		cat = strings.TrimSpace(*category)
		if utf8.RuneCountInString(cat) > MaxCategoryLength {
			f.Add("category", "must be at most %d characters", MaxCategoryLength)
		}
	}
	if images != nil {
		if len(*images) > MaxImages {
			f.Add("images", "must hold at most %d URLs", MaxImages)
		}
		for _, img := range *images {
			u, err := url.Parse(img)
			if len(img) > MaxImageURLLength || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				f.Add("images", "must be http or https URLs of at most %d characters", MaxImageURLLength)
				break
			}
		}
	}
	if meta != nil {
		trimmed := bytes.TrimSpace(meta)
		switch {
		case len(meta) > MaxMetadataBytes:
			f.Add("metadata", "must be at most %d bytes", MaxMetadataBytes)
		case len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed):
			f.Add("metadata", "must be a JSON object")
		}
	}
	return cat
}
