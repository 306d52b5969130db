package demo_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/commands/demo"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
	"github.com/eventshop/eventshop/internal/services/payment"
)

// TestSeedTwiceAddsNothing: the first seed lists the whole catalogue under
// the vendor and registers the three accounts; a second adds no event.
func TestSeedTwiceAddsNothing(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	h := commands.New(commands.Config{Store: store, Payments: payment.NewTestProcessor()})
	log := slog.New(slog.DiscardHandler)
	if err := demo.Seed(ctx, h.Users, h.Catalog, "", "", log); err != nil {
		t.Fatal(err)
	}
	first := readAll(t, store)
	counts := map[string]int{}
	for _, e := range first {
		counts[e.Type]++
	}
	if counts["product.created"] != len(demo.Catalogue) || counts["user.registered"] != 3 {
		t.Errorf("events by type %v, want %d products and 3 users", counts, len(demo.Catalogue))
	}
	vendorID, err := h.Users.UserIDByEmail(ctx, demo.VendorEmail)
	if err != nil {
		t.Fatal(err)
	}
	vendor, _, err := h.Users.User(ctx, vendorID)
	if err != nil || !vendor.HasRole(user.RoleVendor) {
		t.Errorf("vendor %+v (%v), want the vendor role", vendor, err)
	}

	if err := demo.Seed(ctx, h.Users, h.Catalog, "", "", log); err != nil {
		t.Fatal(err)
	}
	if again := readAll(t, store); len(again) != len(first) {
		t.Errorf("a second seed added %d events", len(again)-len(first))
	}
}

func readAll(t *testing.T, s *memory.Store) []eventstore.Event {
	t.Helper()
	evs, err := s.ReadAll(context.Background(), eventstore.Start, eventstore.MaxReadCount)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
