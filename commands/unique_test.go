package commands_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
)

// race runs fn(i) for i in [0, n) at once and returns the errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks exactly one nil error and that the others are
// CodeConflict reason.
func oneWinner(t *testing.T, errs []error, reason string) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("both %d and %d succeeded", winner, i)
		case err == nil:
			winner = i
		case !isReason(err, domain.CodeConflict, reason):
			t.Errorf("contender %d: got %v, want CodeConflict %s", i, err, reason)
		}
	}
	if winner < 0 {
		t.Errorf("no contender succeeded: %v", errs)
	}
	return winner
}

// TestUniqueEmail: of concurrent registrations of one email, in any
// case, exactly one succeeds.
func TestUniqueEmail(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		modes := []bool{true, false}
		if _, ok := s.(*memory.Store); ok {
			modes = modes[:1] // argon2id under -race is slow; the retry path runs on PostgreSQL
		}
		for _, ser := range modes {
			t.Run(fmt.Sprintf("serialize=%v", ser), func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, s, serialize(ser))
				local := "Jane.Doe+" + uuid.NewString()[:8]
				variants := []string{
					local + "@Example.com", strings.ToLower(local) + "@example.com", strings.ToUpper(local) + "@EXAMPLE.COM",
					"  " + local + "@example.COM ",
				}
				const n = 8 // argon2id under -race is slow
				users := make([]user.State, n)
				errs := race(n, func(i int) error {
					var err error
					users[i], _, err = e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: variants[i%len(variants)], Password: "correct horse", FullName: "Jane"})
					return err
				})
				w := oneWinner(t, errs, "email_taken")
				if w < 0 {
					return
				}
				norm := strings.ToLower(local) + "@example.com"
				if u := users[w]; u.Email != norm || !u.HasRole(user.RoleCustomer) || u.PasswordHash == "" {
					t.Errorf("registered %+v, want email %s, customer", u, norm)
				}
				if id, err := e.h.Users.UserIDByEmail(ctx, strings.ToUpper(norm)); err != nil || id != users[w].ID {
					t.Errorf("user by email: %q, %v; want %s", id, err, users[w].ID)
				}
				if _, err := e.h.Users.Authenticate(ctx, norm, "correct horse"); err != nil {
					t.Errorf("the winner cannot sign in: %v", err)
				}
				registered := 0
				for _, ev := range readAll(t, s) {
					var r user.Registered
					if ev.Type == "user.registered" {
						decodeData(t, ev, &r)
						if r.Email == norm {
							registered++
						}
					}
				}
				if registered != 1 {
					t.Errorf("%d user.registered events for %s, want 1", registered, norm)
				}
			})
		}
	})
}

// TestUniqueSKU: of concurrent listings of one SKU, in any case, exactly
// one succeeds.
func TestUniqueSKU(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		for _, ser := range []bool{true, false} {
			t.Run(fmt.Sprintf("serialize=%v", ser), func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, s, serialize(ser))
				sku := "Sku-" + uuid.NewString()[:8]
				const n = 16
				made := make([]string, n)
				errs := race(n, func(i int) error {
					spelling := sku
					if i%2 == 1 {
						spelling = strings.ToUpper(sku)
					}
					p, _, err := e.h.Catalog.CreateProduct(ctx, vendor(fmt.Sprintf("vendor-%d", i)), commands.CreateProduct{SKU: spelling, Name: "Thing", Price: 100, Quantity: 1})
					made[i] = p.ID
					return err
				})
				w := oneWinner(t, errs, "sku_taken")
				if w < 0 {
					return
				}
				created := 0
				for _, ev := range readAll(t, s) {
					var c product.Created
					if ev.Type == "product.created" {
						decodeData(t, ev, &c)
						if product.NormaliseSKU(c.SKU) == product.NormaliseSKU(sku) {
							created++
							if c.ProductID != made[w] {
								t.Errorf("product %s was created for the SKU, the winner is %s", c.ProductID, made[w])
							}
						}
					}
				}
				if created != 1 {
					t.Errorf("%d product.created events for the SKU, want 1", created)
				}
			})
		}
	})
}

// TestOrphanedClaimTakeover: a claim whose owner never came to exist (the
// process stopped between claiming and writing the owner) blocks the value
// during the grace period, then is taken over, and the old owner's stream
// is fenced so the stalled creation can never finish.
func TestOrphanedClaimTakeover(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		ctx := context.Background()
		const grace = 200 * time.Millisecond
		e := newEnv(t, s, func(c *commands.Config) { c.ClaimGrace = grace })

		t.Run("email", func(t *testing.T) {
			email := "ghost-" + uuid.NewString()[:8] + "@example.com"
			ghost := uuid.NewString()
			mustAppend(t, s, user.EmailStream(email), eventstore.NoStream, e.clock.Now(), unique.Claimed{Value: email, OwnerID: ghost})

			e.clock.Advance(grace / 2)
			_, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: strings.ToUpper(email), Password: "password1", FullName: "New"})
			if !isReason(err, domain.CodeConflict, "email_taken") {
				t.Fatalf("within the grace: got %v, want email_taken", err)
			}
			if evs := readStream(t, s, user.Stream(ghost)); evs != nil {
				t.Fatalf("the owner was fenced within the grace: %v", types(evs))
			}

			e.clock.Advance(grace)
			u, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: email, Password: "password1", FullName: "New"})
			if err != nil {
				t.Fatalf("after the grace: %v", err)
			}
			if evs := readStream(t, s, user.Stream(ghost)); len(evs) != 1 || evs[0].Type != "user.registration_abandoned" {
				t.Errorf("old owner's stream holds %v, want [user.registration_abandoned]", types(evs))
			}
			if id, err := e.h.Users.UserIDByEmail(ctx, email); err != nil || id != u.ID {
				t.Errorf("the email belongs to %q (%v), want %s", id, err, u.ID)
			}
			// The stalled registration wakes up: it cannot write its user.
			_, err = appendEvent(t, s, user.Stream(ghost), eventstore.NoStream, e.clock.Now(),
				user.Registered{UserID: ghost, Email: email, FullName: "Ghost", Roles: []string{user.RoleCustomer}})
			if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
				t.Errorf("late write of the fenced user: got %v, want ErrWrongExpectedVersion", err)
			}
			if _, _, err := e.h.Users.User(ctx, ghost); !isReason(err, domain.CodeNotFound, "") {
				t.Errorf("the fenced user: got %v, want CodeNotFound", err)
			}
			// And a third registration is refused: the new owner exists.
			e.clock.Advance(time.Hour)
			if _, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: email, Password: "password1", FullName: "Third"}); !isReason(err, domain.CodeConflict, "email_taken") {
				t.Errorf("registering a taken email long after: got %v, want email_taken", err)
			}
		})

		t.Run("sku", func(t *testing.T) {
			sku := "GHOST-" + uuid.NewString()[:8]
			ghost := uuid.NewString()
			stream := unique.Stream(product.SKUStreamPrefix, product.NormaliseSKU(sku))
			mustAppend(t, s, stream, eventstore.NoStream, e.clock.Now(), unique.Claimed{Value: product.NormaliseSKU(sku), OwnerID: ghost})

			e.clock.Advance(grace / 2)
			v := vendor("vendor-1")
			create := commands.CreateProduct{SKU: strings.ToLower(sku), Name: "Thing", Price: 100, Quantity: 1}
			if _, _, err := e.h.Catalog.CreateProduct(ctx, v, create); !isReason(err, domain.CodeConflict, "sku_taken") {
				t.Fatalf("within the grace: got %v, want sku_taken", err)
			}
			if evs := readStream(t, s, product.Stream(ghost)); evs != nil {
				t.Fatalf("the owner was fenced within the grace: %v", types(evs))
			}

			e.clock.Advance(grace)
			p, _, err := e.h.Catalog.CreateProduct(ctx, v, create)
			if err != nil {
				t.Fatalf("after the grace: %v", err)
			}
			if evs := readStream(t, s, product.Stream(ghost)); len(evs) != 1 || evs[0].Type != "product.creation_abandoned" {
				t.Errorf("old owner's stream holds %v, want [product.creation_abandoned]", types(evs))
			}
			_, err = appendEvent(t, s, product.Stream(ghost), eventstore.NoStream, e.clock.Now(),
				product.Created{ProductID: ghost, SKU: sku, Name: "Ghost", Price: 100, VendorID: "vendor-x", Quantity: 1})
			if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
				t.Errorf("late write of the fenced product: got %v, want ErrWrongExpectedVersion", err)
			}
			if _, _, err := e.h.Catalog.Product(ctx, ghost); !isReason(err, domain.CodeNotFound, "") {
				t.Errorf("the fenced product: got %v, want CodeNotFound", err)
			}
			if got := e.product(t, p.ID); got.SKU != strings.ToLower(sku) {
				t.Errorf("the new product's SKU is %q", got.SKU)
			}
			e.clock.Advance(time.Hour)
			if _, _, err := e.h.Catalog.CreateProduct(ctx, vendor("vendor-2"), create); !isReason(err, domain.CodeConflict, "sku_taken") {
				t.Errorf("listing a taken SKU long after: got %v, want sku_taken", err)
			}
		})
	})
}

// TestLastAdmin: the admin role is never revoked from the last admin,
// even by concurrent revocations, in one process or two.
func TestLastAdmin(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s eventstore.Store) {
		for _, mode := range []string{"serialize=true", "serialize=false", "two-processes"} {
			t.Run(mode, func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, s, serialize(mode == "serialize=true"))
				hs := []commands.Handlers{e.h, e.h}
				if mode == "two-processes" {
					hs[1] = e.another()
				}
				// The admins set is one stream per store: each run starts
				// by emptying it of the previous run's admins.
				a, b := seedUser(t, s, e.clock.Now()), seedUser(t, s, e.clock.Now())
				for _, id := range []string{a, b} {
					if _, _, err := e.h.Users.GrantRole(ctx, admin, id, user.RoleAdmin); err != nil {
						t.Fatal(err)
					}
				}
				clearOtherAdmins(t, e, a, b)
				// Both handlers have the admins set cached.
				for _, h := range hs {
					if _, _, err := h.Users.GrantRole(ctx, admin, a, user.RoleAdmin); err != nil {
						t.Fatal(err)
					}
				}

				// Both revoke each other at once.
				ids := []string{a, b}
				errs := race(2, func(i int) error {
					_, _, err := hs[i].Users.RevokeRole(ctx, commands.Actor{ID: ids[1-i], Roles: []string{user.RoleAdmin}}, ids[i], user.RoleAdmin)
					return err
				})
				w := oneWinner(t, errs, "last_admin")
				if w < 0 {
					return
				}
				left := ids[1-w]
				for _, id := range ids {
					u, _, err := e.h.Users.User(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if u.HasRole(user.RoleAdmin) != (id == left) {
						t.Errorf("user %s roles %v; %s should be the one admin left", id, u.Roles, left)
					}
				}
				// The sole admin cannot lose the role, not even to themself,
				// through either process.
				for _, h := range hs {
					if _, _, err := h.Users.RevokeRole(ctx, commands.Actor{ID: left, Roles: []string{user.RoleAdmin}}, left, user.RoleAdmin); !isReason(err, domain.CodeConflict, "last_admin") {
						t.Errorf("revoke the last admin: got %v, want last_admin", err)
					}
				}
				if u, _, _ := e.h.Users.User(ctx, left); !u.HasRole(user.RoleAdmin) {
					t.Errorf("the last admin lost the role: %v", u.Roles)
				}
				// Other roles come and go freely.
				if _, _, err := e.h.Users.RevokeRole(ctx, admin, left, user.RoleCustomer); err != nil {
					t.Errorf("revoke customer from the last admin: %v", err)
				}
				// With a second admin again (granted through the other
				// process), the first may go.
				if _, _, err := hs[1].Users.GrantRole(ctx, admin, ids[w], user.RoleAdmin); err != nil {
					t.Fatal(err)
				}
				if _, _, err := hs[0].Users.RevokeRole(ctx, admin, left, user.RoleAdmin); err != nil {
					t.Errorf("revoke one of two admins: %v", err)
				}
			})
		}
	})
}

// clearOtherAdmins revokes admin from everyone but keep, so the admins
// set holds exactly them.
func clearOtherAdmins(t *testing.T, e *env, keep ...string) {
	t.Helper()
	ctx := context.Background()
	for _, ev := range readStream(t, e.store, user.AdminsStream) {
		var a user.AdminAdded
		decodeData(t, ev, &a)
		if ev.Type != "user.admin_added" || a.UserID == keep[0] || a.UserID == keep[1] {
			continue
		}
		if _, _, err := e.h.Users.RevokeRole(ctx, admin, a.UserID, user.RoleAdmin); err != nil {
			t.Fatalf("clear admin %s: %v", a.UserID, err)
		}
	}
}
