package main

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
	"github.com/eventshop/eventshop/internal/correlation"
)

// Demo accounts of the local run.
const (
	demoAdminEmail       = "admin@example.com"
	demoAdminPassword    = "Admin123!"
	demoVendorEmail      = "vendor@example.com"
	demoVendorPassword   = "Vendor123!"
	demoCustomerEmail    = "customer@example.com"
	demoCustomerPassword = "Customer123!"
)

type demoProduct struct {
	sku, name, category, description string
	price                            domain.Cents
	quantity                         int64
}

var demoCatalogue = []demoProduct{
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

// seedUsers registers the demo accounts; *commands.Users is one.
type seedUsers interface {
	EnsureAdmin(ctx context.Context, email, password, fullName string) (user.State, error)
	RegisterUser(ctx context.Context, c commands.RegisterUser) (user.State, commands.Result, error)
	UserIDByEmail(ctx context.Context, email string) (string, error)
	GrantRole(ctx context.Context, actor commands.Actor, userID, role string) (user.State, commands.Result, error)
}

// seedCatalog lists the demo products; *commands.Catalog is one.
type seedCatalog interface {
	CreateProduct(ctx context.Context, actor commands.Actor, c commands.CreateProduct) (product.State, commands.Result, error)
}

// seed loads the local run's demo data: an admin (ADMIN_EMAIL and
// ADMIN_PASSWORD override the default), a vendor, a customer and a
// catalogue owned by the vendor. Every step is keyed by a unique email or
// SKU, so running it again adds nothing.
func seed(ctx context.Context, users seedUsers, catalog seedCatalog, cfg config, log *slog.Logger) error {
	// The seed's events carry a correlation id of their own, as a
	// request's would, and the system as their actor.
	ctx = correlation.With(ctx, correlation.IDs{Correlation: uuid.Must(uuid.NewV7()).String(), Actor: "system"})
	email, password := cfg.AdminEmail, cfg.AdminPassword
	if email == "" {
		email = demoAdminEmail
	}
	if password == "" {
		password = demoAdminPassword
	}
	if _, err := users.EnsureAdmin(ctx, email, password, "Demo Admin"); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	system := commands.Actor{ID: "system", Roles: []string{user.RoleAdmin}}
	vendorID, err := ensureUser(ctx, users, demoVendorEmail, demoVendorPassword, "Demo Vendor")
	if err != nil {
		return err
	}
	if _, _, err := users.GrantRole(ctx, system, vendorID, user.RoleVendor); err != nil {
		return fmt.Errorf("vendor role: %w", err)
	}
	if _, err := ensureUser(ctx, users, demoCustomerEmail, demoCustomerPassword, "Demo Customer"); err != nil {
		return err
	}
	added := 0
	for _, p := range demoCatalogue {
		_, _, err := catalog.CreateProduct(ctx, system, commands.CreateProduct{
			SKU: p.sku, Name: p.name, Description: p.description, Price: p.price, Category: p.category,
			VendorID: vendorID, Quantity: p.quantity, Metadata: json.RawMessage(`{"demo":true}`),
		})
		switch {
		case err == nil:
			added++
		case errors.Is(err, &domain.Error{Reason: "sku_taken"}):
		default:
			return fmt.Errorf("product %s: %w", p.sku, err)
		}
	}
	log.Info("demo data ready", "admin", email, "vendor", demoVendorEmail, "customer", demoCustomerEmail, "products_added", added)
	return nil
}

// ensureUser registers email unless it is taken, and returns the user id.
func ensureUser(ctx context.Context, users seedUsers, email, password, name string) (string, error) {
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
