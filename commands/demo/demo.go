// Package demo seeds the local run's demo data through the command
// handlers, as any client would: an admin, a vendor, a customer and a
// catalogue of twenty products owned by the vendor. Seeding again adds
// nothing.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/platform/correlation"
)

// The demo accounts.
const (
	AdminEmail       = "admin@example.com"
	AdminPassword    = "Admin123!"
	VendorEmail      = "vendor@example.com"
	VendorPassword   = "Vendor123!"
	CustomerEmail    = "customer@example.com"
	CustomerPassword = "Customer123!"
)

// Product is a product of the demo catalogue, listed with Quantity in
// stock.
type Product struct {
	SKU, Name, Category, Description string
	Price                            domain.Cents
	Quantity                         int64
}

// Catalogue is the demo catalogue, in the order Seed lists it.
var Catalogue = []Product{
	{"DEMO-LAPTOP-13", "Ultralight Laptop 13\"", "electronics", "A 1.1 kg laptop with a full-day battery.", 129900, 25},
	{"DEMO-PHONE-6", "Smartphone 6.1\"", "electronics", "OLED screen, dual camera, 128 GB.", 69900, 40},
	{"DEMO-HEADPHONES", "Noise-cancelling Headphones", "electronics", "Over-ear, 30 hours of playback.", 24900, 60},
	{"DEMO-KEYBOARD", "Mechanical Keyboard", "electronics", "Hot-swappable switches, USB-C.", 8900, 80},
	{"DEMO-MONITOR-27", "27\" 4K Monitor", "electronics", "IPS panel with USB-C power delivery.", 39900, 15},
	{"DEMO-TSHIRT", "Organic Cotton T-shirt", "clothing", "Soft, breathable, ethically made.", 1900, 200},
	{"DEMO-JEANS", "Slim Fit Jeans", "clothing", "Stretch denim in indigo.", 5900, 120},
	{"DEMO-JACKET", "Waterproof Jacket", "clothing", "Lightweight shell with taped seams.", 12900, 50},
	{"DEMO-SNEAKERS", "Running Sneakers", "clothing", "Cushioned sole for long runs.", 8900, 90},
	{"DEMO-NOVEL", "The Event Log (novel)", "books", "A thriller told in append-only chapters.", 1499, 300},
	{"DEMO-COOKBOOK", "Weeknight Cookbook", "books", "100 recipes in 30 minutes or less.", 2499, 150},
	{"DEMO-GO-BOOK", "Concurrency in Practice", "books", "Patterns for correct concurrent programs.", 3999, 100},
	{"DEMO-MUG", "Ceramic Coffee Mug", "home", "350 ml, dishwasher safe.", 1200, 250},
	{"DEMO-LAMP", "LED Desk Lamp", "home", "Dimmable with a warm-light mode.", 3400, 70},
	{"DEMO-PILLOW", "Memory Foam Pillow", "home", "Contoured support for side sleepers.", 4500, 90},
	{"DEMO-KETTLE", "Electric Kettle", "home", "1.7 l, boils in three minutes.", 3900, 60},
	{"DEMO-YOGA-MAT", "Yoga Mat", "sports", "6 mm, non-slip surface.", 2900, 110},
	{"DEMO-DUMBBELLS", "Adjustable Dumbbells", "sports", "From 2 to 24 kg each.", 19900, 20},
	{"DEMO-BOTTLE", "Insulated Water Bottle", "sports", "Keeps drinks cold for 24 hours.", 2500, 180},
	{"DEMO-BIKE-LIGHT", "Bike Light Set", "sports", "USB-rechargeable front and rear lights.", 3200, 85},
}

// Users registers the demo accounts and makes the admin and the vendor;
// *commands.Users is one.
type Users interface {
	EnsureAdmin(ctx context.Context, email, password, fullName string) (user.State, error)
	RegisterUser(ctx context.Context, c commands.RegisterUser) (user.State, commands.Result, error)
	UserIDByEmail(ctx context.Context, email string) (string, error)
	GrantRole(ctx context.Context, actor commands.Actor, userID, role string) (user.State, commands.Result, error)
}

// Catalog lists the demo products; *commands.Catalog is one.
type Catalog interface {
	CreateProduct(ctx context.Context, actor commands.Actor, c commands.CreateProduct) (product.State, commands.Result, error)
}

// Seed loads the demo data: an admin (adminEmail and adminPassword, when
// set, override AdminEmail and AdminPassword), the vendor, the customer
// and the Catalogue owned by the vendor. Every step is keyed by a unique
// email or SKU, so seeding again adds nothing. Its errors say which step
// failed ("admin: ", "user EMAIL: ", "vendor role: ", "product SKU: ").
func Seed(ctx context.Context, users Users, catalog Catalog, adminEmail, adminPassword string, log *slog.Logger) error {
	// The seed's events carry a correlation id of their own, as a
	// request's would, and the system as their actor.
	ctx = correlation.With(ctx, correlation.IDs{Correlation: uuid.Must(uuid.NewV7()).String(), Actor: "system"})
	email, password := adminEmail, adminPassword
	if email == "" {
		email = AdminEmail
	}
	if password == "" {
		password = AdminPassword
	}
	if _, err := users.EnsureAdmin(ctx, email, password, "Demo Admin"); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	system := commands.Actor{ID: "system", Roles: []string{user.RoleAdmin}}
	vendorID, err := ensureUser(ctx, users, VendorEmail, VendorPassword, "Demo Vendor")
	if err != nil {
		return err
	}
	if _, _, err := users.GrantRole(ctx, system, vendorID, user.RoleVendor); err != nil {
		return fmt.Errorf("vendor role: %w", err)
	}
	if _, err := ensureUser(ctx, users, CustomerEmail, CustomerPassword, "Demo Customer"); err != nil {
		return err
	}
	added := 0
	for _, p := range Catalogue {
		_, _, err := catalog.CreateProduct(ctx, system, commands.CreateProduct{
			SKU: p.SKU, Name: p.Name, Description: p.Description, Price: p.Price, Category: p.Category,
			VendorID: vendorID, Quantity: p.Quantity, Metadata: json.RawMessage(`{"demo":true}`),
		})
		switch {
		case err == nil:
			added++
		case errors.Is(err, &domain.Error{Reason: "sku_taken"}):
		default:
			return fmt.Errorf("product %s: %w", p.SKU, err)
		}
	}
	log.Info("demo data ready", "admin", email, "vendor", VendorEmail, "customer", CustomerEmail, "products_added", added)
	return nil
}

// ensureUser registers email unless it is taken, and returns the user id.
func ensureUser(ctx context.Context, users Users, email, password, name string) (string, error) {
	u, _, err := users.RegisterUser(ctx, commands.RegisterUser{Email: email, Password: password, FullName: name})
	if err == nil {
		return u.ID, nil
	}
	if !errors.Is(err, &domain.Error{Reason: "email_taken"}) {
		return "", fmt.Errorf("user %s: %w", email, err)
	}
	id, err := users.UserIDByEmail(ctx, email)
	if err != nil {
		return "", fmt.Errorf("user %s: %w", email, err)
	}
	return id, nil
}
