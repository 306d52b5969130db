package auth

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRefreshRotates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.issue(t, "user-1", "customer")
	fid := f.verify(t, first.AccessToken).FamilyID

	second, err := f.svc.Refresh(ctx, first.RefreshToken, rolesOf("customer", "vendor"))
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("Refresh returned the same tokens")
	}
	c := f.verify(t, second.AccessToken)
	if c.UserID != "user-1" || c.FamilyID != fid || !slices.Equal(c.Roles, []string{"customer", "vendor"}) {
		t.Errorf("rotated access claims = %+v, want user-1, family %s, current roles", c, fid)
	}
	third, err := f.svc.Refresh(ctx, second.RefreshToken, rolesOf("customer"))
	if err != nil {
		t.Fatalf("second Refresh: %v", err)
	}

	// Reusing the first, already rotated token is reuse.
	_, err = f.svc.Refresh(ctx, first.RefreshToken, rolesOf("customer"))
	if !errors.Is(err, ErrTokenReused) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("reuse: err = %v, want ErrTokenReused", err)
	}
	// ...which revoked the family: the newest refresh token is refused too,
	// and so are the family's access tokens.
	if _, err := f.svc.Refresh(ctx, third.RefreshToken, rolesOf("customer")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("newest token after reuse: err = %v, want ErrInvalidToken", err)
	}
	if _, _, err := f.svc.VerifyAccess(ctx, third.AccessToken, noSource); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("family access token after reuse: err = %v, want ErrInvalidToken", err)
	}
	// Other families of the same user are untouched.
	other := f.issue(t, "user-1", "customer")
	f.verify(t, other.AccessToken)
	if _, err := f.svc.Refresh(ctx, other.RefreshToken, rolesOf("customer")); err != nil {
		t.Fatalf("other family: %v", err)
	}
}

func TestRefreshReturnsCallbackErrorUnchanged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1")
	errGone := errors.New("user gone")
	var asked string
	_, err := f.svc.Refresh(ctx, tok.RefreshToken, func(_ context.Context, userID string) ([]string, error) {
		asked = userID
		return nil, errGone
	})
	if err != errGone {
		t.Fatalf("err = %v, want the callback's error itself", err)
	}
	if asked != "user-1" {
		t.Errorf("callback asked for %q, want user-1", asked)
	}
	// The failed attempt did not consume the token.
	if _, err := f.svc.Refresh(ctx, tok.RefreshToken, rolesOf()); err != nil {
		t.Fatalf("Refresh after callback failure: %v", err)
	}
}

func TestRefreshConcurrentSameToken(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, "user-1", "customer")
	const n = 16
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			_, results[i] = f.svc.Refresh(context.Background(), tok.RefreshToken, rolesOf("customer"))
		})
	}
	close(start)
	wg.Wait()
	var ok, reused int
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenReused):
			reused++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || reused != n-1 {
		t.Fatalf("%d succeeded and %d saw reuse of %d concurrent refreshes, want 1 and %d", ok, reused, n, n-1)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1", "customer")
	f.clock.Advance(5 * time.Minute)
	access := f.verify(t, tok.AccessToken)

	if err := f.svc.Logout(ctx, tok.RefreshToken, access); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	_, err := f.svc.Refresh(ctx, tok.RefreshToken, rolesOf("customer"))
	if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrTokenReused) {
		t.Fatalf("Refresh after logout: err = %v, want ErrInvalidToken", err)
	}
	if _, _, err := f.svc.VerifyAccess(ctx, tok.AccessToken, noSource); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("VerifyAccess after logout: err = %v, want ErrInvalidToken", err)
	}

	remaining := access.ExpiresAt.Sub(f.clock.Now()) // 10 minutes
	ttl := f.rdb.PTTL(ctx, f.prefix+"atbl:"+access.TokenID).Val()
	if ttl <= 0 || ttl > remaining {
		t.Errorf("blacklist TTL = %v, want in (0, %v]", ttl, remaining)
	}
	famTTL := f.rdb.PTTL(ctx, f.svc.familyKey(access.FamilyID)).Val()
	if famTTL <= 0 || famTTL > DefaultRefreshTTL {
		t.Errorf("family revocation TTL = %v, want in (0, %v]", famTTL, DefaultRefreshTTL)
	}
	// Logging out again is harmless.
	if err := f.svc.Logout(ctx, tok.RefreshToken, access); err != nil {
		t.Fatalf("second Logout: %v", err)
	}
}

func TestLogoutBlacklistsOnlyUntilExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1")
	access := f.verify(t, tok.AccessToken)
	// Claims of an already expired access token: nothing to blacklist.
	access.ExpiresAt = f.clock.Now().Add(-time.Second)
	if err := f.svc.Logout(ctx, tok.RefreshToken, access); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if n := f.rdb.Exists(ctx, f.prefix+"atbl:"+access.TokenID).Val(); n != 0 {
		t.Error("expired access token was blacklisted (key without a useful TTL)")
	}
}

// TestLogoutRefusesAnotherSessionsRefreshToken: the access token of one
// session with the refresh token of another session of the same user is
// refused, nothing revoked; each session still logs out with its own pair.
func TestLogoutRefusesAnotherSessionsRefreshToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.issue(t, "alice", "customer")
	b := f.issue(t, "alice", "customer")
	aAccess := f.verify(t, a.AccessToken)
	if err := f.svc.Logout(ctx, b.RefreshToken, aAccess); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Logout with another session's refresh token: err = %v, want ErrInvalidToken", err)
	}
	if keys := append(keysMatching(t, f.rdb, f.prefix+"atbl:*"), keysMatching(t, f.rdb, f.prefix+"rtfam:*")...); len(keys) != 0 {
		t.Fatalf("revoked: %v", keys)
	}
	f.verify(t, a.AccessToken)
	if err := f.svc.Logout(ctx, a.RefreshToken, aAccess); err != nil {
		t.Fatalf("Logout with the session's own pair: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, a.RefreshToken, rolesOf("customer")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("the logged-out session's refresh token: %v, want ErrInvalidToken", err)
	}
	if _, err := f.svc.Refresh(ctx, b.RefreshToken, rolesOf("customer")); err != nil {
		t.Fatalf("the other session's refresh token after the first logged out: %v", err)
	}
}

func TestLogoutRefusesAnotherUsersRefreshToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alice := f.issue(t, "alice", "customer")
	bob := f.issue(t, "bob", "customer")
	aliceAccess := f.verify(t, alice.AccessToken)

	for name, refresh := range map[string]string{"bob's": bob.RefreshToken, "alice's access token": alice.AccessToken, "garbage": "x.y.z"} {
		if err := f.svc.Logout(ctx, refresh, aliceAccess); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Logout with %s: err = %v, want ErrInvalidToken", name, err)
		}
	}
	// Claims that did not come from VerifyAccess are refused too.
	forged := aliceAccess
	forged.Type = TypeRefresh
	if err := f.svc.Logout(ctx, alice.RefreshToken, forged); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Logout with refresh-typed claims: err = %v, want ErrInvalidToken", err)
	}

	// Nothing was revoked.
	if keys := keysMatching(t, f.rdb, f.prefix+"atbl:*"); len(keys) != 0 {
		t.Errorf("blacklist keys written: %v", keys)
	}
	if keys := keysMatching(t, f.rdb, f.prefix+"rtfam:*"); len(keys) != 0 {
		t.Errorf("family revocations written: %v", keys)
	}
	f.verify(t, alice.AccessToken)
	if _, err := f.svc.Refresh(ctx, bob.RefreshToken, rolesOf("customer")); err != nil {
		t.Errorf("bob's refresh after refused logout: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, alice.RefreshToken, rolesOf("customer")); err != nil {
		t.Errorf("alice's refresh after refused logout: %v", err)
	}
}

func TestServiceKeysCarryPrefix(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1")
	access := f.verify(t, tok.AccessToken)
	next, err := f.svc.Refresh(ctx, tok.RefreshToken, rolesOf())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(ctx, next.RefreshToken, f.verify(t, next.AccessToken)); err != nil {
		t.Fatal(err)
	}
	// Every key naming this family or token, anywhere in the database.
	keys := append(keysMatching(t, f.rdb, "*"+access.FamilyID+"*"), keysMatching(t, f.rdb, "*"+access.TokenID+"*")...)
	if len(keys) == 0 {
		t.Fatal("no keys found for the family")
	}
	assertPrefixed(t, keys, f.prefix)
	for _, k := range keysMatching(t, f.rdb, f.prefix+"*") {
		if ttl := f.rdb.PTTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
	}
}

func TestRedisDown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1")
	down, err := New(testConfig(f.clock, f.prefix), downClient(t))
	if err != nil {
		t.Fatal(err)
	}

	if _, _, err := down.VerifyAccess(ctx, tok.AccessToken, noSource); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Errorf("VerifyAccess: err = %v, want a non-ErrInvalidToken error", err)
	}
	if _, err := down.Refresh(ctx, tok.RefreshToken, rolesOf()); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Errorf("Refresh: err = %v, want a non-ErrInvalidToken error", err)
	}
	if _, err := down.Issue(ctx, "user-1", nil); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Errorf("Issue: err = %v, want a non-ErrInvalidToken error", err)
	}
	access := f.verify(t, tok.AccessToken)
	if err := down.Logout(ctx, tok.RefreshToken, access); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Errorf("Logout: err = %v, want a non-ErrInvalidToken error", err)
	}
	// A bad token is still a bad token: it is refused before Redis is asked.
	if _, _, err := down.VerifyAccess(ctx, "garbage", noSource); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("garbage: err = %v, want ErrInvalidToken", err)
	}
}
