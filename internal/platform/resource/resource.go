// Package resource holds the JSON shapes of API.md — user, tokens,
// product, order — and builds them from aggregate states, so every route
// that returns one returns the same shape.
package resource

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
)

// User is the public user shape; it never carries credentials.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	FullName  string    `json:"full_name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
	Version   int64     `json:"version"`
}

// FromUser builds the shape of s.
func FromUser(s user.State) User {
	roles := slices.Clone(s.Roles)
	if roles == nil {
		roles = []string{}
	}
	slices.Sort(roles)
	return User{ID: s.ID, Email: s.Email, FullName: s.FullName, Roles: roles, CreatedAt: s.CreatedAt.UTC(), Version: s.Version}
}

// Inventory is a product's stock.
type Inventory struct {
	Quantity  int64  `json:"quantity"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
	Warehouse string `json:"warehouse"`
}

// Product is the catalogue shape.
type Product struct {
	ID           string          `json:"id"`
	SKU          string          `json:"sku"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	Price        domain.Cents    `json:"price"`
	VendorID     string          `json:"vendor_id"`
	Category     string          `json:"category"`
	Images       []string        `json:"images"`
	Inventory    Inventory       `json:"inventory"`
	Metadata     json.RawMessage `json:"metadata"`
	Discontinued bool            `json:"discontinued"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	Version      int64           `json:"version"`
}

// FromProduct builds the shape of s.
func FromProduct(s product.State) Product {
	images := slices.Clone(s.Images)
	if images == nil {
		images = []string{}
	}
	meta := s.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	return Product{
		ID: s.ID, SKU: s.SKU, Name: s.Name, Description: s.Description, Price: s.Price,
		VendorID: s.VendorID, Category: s.Category, Images: images,
		Inventory: Inventory{Quantity: s.Quantity, Reserved: s.Reserved, Available: s.Available(), Warehouse: s.Warehouse},
		Metadata:  meta, Discontinued: s.Discontinued,
		CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(), Version: s.Version,
	}
}

// OrderItem is an order line.
type OrderItem struct {
	ProductID string       `json:"product_id"`
	SKU       string       `json:"sku"`
	Name      string       `json:"name"`
	Quantity  int64        `json:"quantity"`
	Price     domain.Cents `json:"price"`
}

// Payment is an order's payment; the card's last four digits are all that
// is kept of it.
type Payment struct {
	ID       string       `json:"id"`
	Amount   domain.Cents `json:"amount"`
	Last4    string       `json:"last4"`
	Refunded bool         `json:"refunded"`
}

// Order is the order shape.
type Order struct {
	ID           string       `json:"id"`
	UserID       string       `json:"user_id"`
	Status       string       `json:"status"`
	Items        []OrderItem  `json:"items"`
	Total        domain.Cents `json:"total"`
	Payment      *Payment     `json:"payment"`
	CancelReason *string      `json:"cancel_reason"`
	CreatedAt    time.Time    `json:"created_at"`
	UpdatedAt    time.Time    `json:"updated_at"`
	Version      int64        `json:"version"`
}

// FromOrder builds the shape of s.
func FromOrder(s order.State) Order {
	o := Order{ID: s.ID, UserID: s.UserID, Status: string(s.Status), Items: make([]OrderItem, len(s.Items)),
		Total: s.Total, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(), Version: s.Version}
	for i, it := range s.Items {
		o.Items[i] = OrderItem(it)
	}
	if s.Payment != nil {
		o.Payment = &Payment{ID: s.Payment.ID, Amount: s.Payment.Amount, Last4: s.Payment.Last4, Refunded: s.Payment.Refunded}
	}
	if s.CancelReason != "" {
		r := s.CancelReason
		o.CancelReason = &r
	}
	return o
}

// Notification is one email sent, or being sent, about an event.
type Notification struct {
	ID        string     `json:"id"`
	UserID    string     `json:"user_id"`
	EventID   string     `json:"event_id"`
	EventType string     `json:"event_type"`
	Channel   string     `json:"channel"`
	To        string     `json:"to"`
	Subject   string     `json:"subject"`
	Status    string     `json:"status"` // sent, retrying or failed
	Attempts  int        `json:"attempts"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}
