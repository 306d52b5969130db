package commands_test

import (
	"context"
	"sync"
	"testing"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/memory"
)

// A grant of admin to a user who still holds the role, landing between a
// revocation's two writes (from another process), must not leave the
// admins set holding someone who is no admin: the last real admin would
// then lose the role too.
func TestGrantDuringRevokeKeepsAnAdmin(t *testing.T) {
	hs := &hookStore{Store: memory.New()}
	e := newEnv(t, hs)
	other := e.another()
	ctx := context.Background()
	a := seedUser(t, hs, e.clock.Now())
	b := seedUser(t, hs, e.clock.Now())
	for _, id := range []string{a, b} {
		if _, _, err := e.h.GrantRole(ctx, admin, id, user.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	hs.set(func(stream string, evs []eventstore.EventData) {
		if stream == user.Stream(a) && evs[0].Type == "user.role_revoked" {
			once.Do(func() {
				if _, _, err := other.GrantRole(ctx, admin, a, user.RoleAdmin); err != nil {
					t.Errorf("concurrent grant: %v", err)
				}
			})
		}
	})
	if _, _, err := e.h.RevokeRole(ctx, admin, a, user.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	hs.set(nil)
	_, _, err := e.h.RevokeRole(ctx, admin, b, user.RoleAdmin)
	if !isReason(err, "conflict", "last_admin") {
		t.Fatalf("revoking the last real admin: %v, want last_admin", err)
	}
	if ub, _, _ := e.h.User(ctx, b); !ub.HasRole(user.RoleAdmin) {
		t.Fatal("no admin left")
	}
}

// An operator's create-admin never hands admin to an account someone else
// registered first with the same email.
func TestEnsureAdminNeedsTheAccountsPassword(t *testing.T) {
	e := newEnv(t, memory.New())
	ctx := context.Background()
	if _, _, err := e.h.RegisterUser(ctx, commands.RegisterUser{Email: "ops@corp.example", Password: "someone-elses", FullName: "Mallory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.EnsureAdmin(ctx, "ops@corp.example", "Operator-Secret-1", "Administrator"); err == nil {
		t.Fatal("EnsureAdmin took over an account whose password it did not know")
	}
	if u, err := e.h.Authenticate(ctx, "ops@corp.example", "someone-elses"); err != nil || u.HasRole(user.RoleAdmin) {
		t.Fatalf("the earlier account: %v, roles %v; want it unchanged, without admin", err, u.Roles)
	}
	u, err := e.h.EnsureAdmin(ctx, "OPS@corp.example", "someone-elses", "Administrator")
	if err != nil || !u.HasRole(user.RoleAdmin) {
		t.Fatalf("EnsureAdmin with the account's own password: %v, roles %v", err, u.Roles)
	}
}
