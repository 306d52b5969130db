package commands_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

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
		if _, _, err := e.h.Users.GrantRole(ctx, admin, id, user.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	var once sync.Once
	hs.set(func(stream string, evs []eventstore.EventData) {
		if stream == user.Stream(a) && evs[0].Type == "user.role_revoked" {
			once.Do(func() {
				if _, _, err := other.Users.GrantRole(ctx, admin, a, user.RoleAdmin); err != nil {
					t.Errorf("concurrent grant: %v", err)
				}
			})
		}
	})
	if _, _, err := e.h.Users.RevokeRole(ctx, admin, a, user.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	hs.set(nil)
	_, _, err := e.h.Users.RevokeRole(ctx, admin, b, user.RoleAdmin)
	if !isReason(err, "conflict", "last_admin") {
		t.Fatalf("revoking the last real admin: %v, want last_admin", err)
	}
	if ub, _, _ := e.h.Users.User(ctx, b); !ub.HasRole(user.RoleAdmin) {
		t.Fatal("no admin left")
	}
}

// An operator's create-admin never hands admin to an account someone else
// registered first with the same email.
func TestEnsureAdminNeedsTheAccountsPassword(t *testing.T) {
	e := newEnv(t, memory.New())
	ctx := context.Background()
	if _, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: "ops@corp.example", Password: "someone-elses", FullName: "Mallory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.Users.EnsureAdmin(ctx, "ops@corp.example", "Operator-Secret-1", "Administrator"); err == nil {
		t.Fatal("EnsureAdmin took over an account whose password it did not know")
	}
	if u, err := e.h.Users.Authenticate(ctx, "ops@corp.example", "someone-elses"); err != nil || u.HasRole(user.RoleAdmin) {
		t.Fatalf("the earlier account: %v, roles %v; want it unchanged, without admin", err, u.Roles)
	}
	u, err := e.h.Users.EnsureAdmin(ctx, "OPS@corp.example", "someone-elses", "Administrator")
	if err != nil || !u.HasRole(user.RoleAdmin) {
		t.Fatalf("EnsureAdmin with the account's own password: %v, roles %v", err, u.Roles)
	}
}

// A password stored with older hashing parameters is stored again with the
// current ones at the next successful sign-in.
func TestSignInRehashesOldParameters(t *testing.T) {
	s := memory.New()
	e := newEnv(t, s)
	ctx := context.Background()
	u, _, err := e.h.Users.RegisterUser(ctx, commands.RegisterUser{Email: "old@example.com", Password: "old-params-1", FullName: "Old"})
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	weak := fmt.Sprintf("$argon2id$v=19$m=8192,t=1,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte("old-params-1"), salt, 1, 8192, 1, 32)))
	mustAppend(t, s, user.Stream(u.ID), eventstore.Exact(u.Version), e.clock.Now(), user.CredentialsSet{UserID: u.ID, PasswordHash: weak})
	e = newEnv(t, s) // a fresh cache, as after a restart

	if _, err := e.h.Users.Authenticate(ctx, "old@example.com", "old-params-1"); err != nil {
		t.Fatalf("sign in with the old hash: %v", err)
	}
	evs := readStream(t, s, user.Stream(u.ID))
	last := evs[len(evs)-1]
	var c user.CredentialsSet
	decodeData(t, last, &c)
	if last.Type != "user.credentials_set" || !strings.HasPrefix(c.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("last event %s %q, want the password stored again with the current parameters", last.Type, c.PasswordHash)
	}
	if _, err := e.h.Users.Authenticate(ctx, "old@example.com", "old-params-1"); err != nil {
		t.Fatalf("sign in after the rehash: %v", err)
	}
	if n := len(readStream(t, s, user.Stream(u.ID))); n != len(evs) {
		t.Fatalf("%d events after a second sign-in, want %d: rehashed again", n, len(evs))
	}
}
