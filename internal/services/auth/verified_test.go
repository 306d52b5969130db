package auth

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVerifiedTokens: a token verified once is not decoded again, but a
// token differing by a byte is, and so is one past its expiry; the
// remembered tokens stay bounded.
func TestVerifiedTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1", "customer")
	f.verify(t, tok.AccessToken)
	if _, ok := f.svc.verified.get(tok.AccessToken, f.clock.Now()); !ok {
		t.Fatal("a verified token was not remembered")
	}
	// The signature's first character changed: a token never verified.
	sig := strings.LastIndexByte(tok.AccessToken, '.') + 1
	flip := "A"
	if tok.AccessToken[sig] == 'A' {
		flip = "B"
	}
	forged := tok.AccessToken[:sig] + flip + tok.AccessToken[sig+1:]
	if _, _, err := f.svc.VerifyAccess(ctx, forged, noSource); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a token one byte off a verified one: err = %v, want ErrInvalidToken", err)
	}
	f.clock.Advance(DefaultAccessTTL)
	if _, _, err := f.svc.VerifyAccess(ctx, tok.AccessToken, noSource); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a remembered token past its expiry: err = %v, want ErrInvalidToken", err)
	}

	var v verified
	now := f.clock.Now()
	for i := range maxVerified + 10 {
		v.put(strconv.Itoa(i), Claims{ExpiresAt: now.Add(time.Minute)}, now)
	}
	if n := len(v.m); n > maxVerified {
		t.Fatalf("%d tokens remembered, want at most %d", n, maxVerified)
	}
	if _, ok := v.get(strconv.Itoa(maxVerified+9), now); !ok {
		t.Fatal("the newest token was forgotten")
	}
}
