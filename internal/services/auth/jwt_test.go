package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

func TestIssueThenVerifyAccess(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, "user-1", "customer", "vendor")

	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || tok.RefreshExpiresIn != 604800 {
		t.Errorf("tokens = %+v, want Bearer, 900, 604800", tok)
	}
	c := f.verify(t, tok.AccessToken)
	if c.UserID != "user-1" || !slices.Equal(c.Roles, []string{"customer", "vendor"}) || c.Type != TypeAccess {
		t.Errorf("claims = %+v", c)
	}
	if !isUUID(c.TokenID) || !isUUID(c.FamilyID) {
		t.Errorf("jti %q, fid %q: want UUIDs", c.TokenID, c.FamilyID)
	}
	if want := f.clock.Now().Add(DefaultAccessTTL); !c.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, want)
	}
	if h := header(t, tok.AccessToken); h["typ"] != "at+jwt" || h["alg"] != "HS256" {
		t.Errorf("access header = %v", h)
	}
	if h := header(t, tok.RefreshToken); h["typ"] != "rt+jwt" || h["alg"] != "HS256" {
		t.Errorf("refresh header = %v", h)
	}

	body, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"access_token"`, `"refresh_token"`, `"token_type":"Bearer"`, `"expires_in":900`, `"refresh_expires_in":604800`} {
		if !strings.Contains(string(body), field) {
			t.Errorf("JSON %s lacks %s", body, field)
		}
	}
}

func TestVerifyAccessHonoursExpiryAndConfiguredTTL(t *testing.T) {
	rdb, prefix := redistest.New(t)
	clk := newClock()
	cfg := testConfig(clk, prefix)
	cfg.AccessTTL, cfg.RefreshTTL = time.Minute, time.Hour
	svc, err := New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.Issue(context.Background(), "user-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn != 60 || tok.RefreshExpiresIn != 3600 {
		t.Errorf("expires_in %d, refresh_expires_in %d; want 60, 3600", tok.ExpiresIn, tok.RefreshExpiresIn)
	}
	clk.Advance(time.Minute - time.Second)
	if _, _, err := svc.VerifyAccess(context.Background(), tok.AccessToken, noSource); err != nil {
		t.Fatalf("a second before exp: %v", err)
	}
	clk.Advance(time.Second)
	if _, _, err := svc.VerifyAccess(context.Background(), tok.AccessToken, noSource); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("at exp: err = %v, want ErrInvalidToken", err)
	}
}

func TestVerifyAccessRefusesBadTokens(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	secret := []byte(testSecret)
	good := validClaims(now)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	issued := f.issue(t, "user-1", "customer")
	tamperedSig := tamper(issued.AccessToken, 2, 10)
	tamperedPayload := rewritePayload(t, issued.AccessToken, func(c map[string]any) { c["roles"] = []string{"admin"} })

	// The control case proves forge builds acceptable tokens, so each
	// other case fails for its own defect only.
	if _, _, err := f.svc.VerifyAccess(context.Background(), forge(t, jwt.SigningMethodHS256, secret, "at+jwt", good), noSource); err != nil {
		t.Fatalf("control: forged valid token refused: %v", err)
	}

	cases := map[string]string{
		"alg none":                 forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "at+jwt", good),
		"RS256":                    forge(t, jwt.SigningMethodRS256, rsaKey, "at+jwt", good),
		"HS256 keyed with RSA PEM": forge(t, jwt.SigningMethodHS256, pubPEM, "at+jwt", good),
		"HS384 right secret":       forge(t, jwt.SigningMethodHS384, secret, "at+jwt", good),
		"HS512 right secret":       forge(t, jwt.SigningMethodHS512, secret, "at+jwt", good),
		"expired":                  forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "exp", now.Add(-time.Second).Unix())),
		"expires now":              forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "exp", now.Unix())),
		"no exp":                   forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "exp", nil)),
		"nbf in future":            forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "nbf", now.Add(5*time.Minute).Unix())),
		"iat in future":            forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "iat", now.Add(5*time.Minute).Unix())),
		"wrong aud":                forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "aud", "other-api")),
		"no aud":                   forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "aud", nil)),
		"wrong iss":                forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "iss", "evil")),
		"no iss":                   forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "iss", nil)),
		"no sub":                   forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "sub", nil)),
		"jti not a UUID":           forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "jti", "x}:y")),
		"typ claim refresh":        forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "typ", TypeRefresh)),
		"no typ claim":             forge(t, jwt.SigningMethodHS256, secret, "at+jwt", with(good, "typ", nil)),
		"header typ rt+jwt":        forge(t, jwt.SigningMethodHS256, secret, "rt+jwt", good),
		"header typ JWT":           forge(t, jwt.SigningMethodHS256, secret, "JWT", good),
		"another secret":           forge(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefghij"), "at+jwt", good),
		"refresh token":            issued.RefreshToken,
		"tampered signature":       tamperedSig,
		"tampered payload":         tamperedPayload,
		"signature stripped":       issued.AccessToken[:strings.LastIndex(issued.AccessToken, ".")+1],
		"garbage":                  "garbage",
		"three dots":               "a.b.c",
		"only dots":                "..",
		"JSON header, junk":        "eyJhbGciOiJIUzI1NiJ9.!!!.***",
		"huge":                     strings.Repeat("A", 1<<16),
		"empty":                    "",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := f.svc.VerifyAccess(context.Background(), tok, noSource)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			if (tok != "" && strings.Contains(err.Error(), tok)) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q leaks the token or the secret", err)
			}
		})
	}
}

func TestRefreshRefusesBadTokens(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	secret := []byte(testSecret)
	issued := f.issue(t, "user-1", "customer")
	good := with(with(validClaims(now), "typ", TypeRefresh), "roles", nil)

	cases := map[string]string{
		"access token":            issued.AccessToken,
		"alg none":                forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rt+jwt", good),
		"HS512 right secret":      forge(t, jwt.SigningMethodHS512, secret, "rt+jwt", good),
		"another secret":          forge(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefghij"), "rt+jwt", good),
		"header typ at+jwt":       forge(t, jwt.SigningMethodHS256, secret, "at+jwt", good),
		"no fid":                  forge(t, jwt.SigningMethodHS256, secret, "rt+jwt", with(good, "fid", nil)),
		"never issued, signed ok": forge(t, jwt.SigningMethodHS256, secret, "rt+jwt", good),
		"tampered signature":      tamper(issued.RefreshToken, 2, 10),
		"garbage":                 "not.a.token",
		"empty":                   "",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.Refresh(context.Background(), tok, rolesOf("admin"))
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrTokenReused) {
				t.Fatalf("err = %v, want ErrInvalidToken (not reuse)", err)
			}
		})
	}
	// None of the refusals consumed or revoked the real refresh token.
	if _, err := f.svc.Refresh(context.Background(), issued.RefreshToken, rolesOf("customer")); err != nil {
		t.Fatalf("genuine refresh after refusals: %v", err)
	}
}

func TestRefreshRefusesExpiredToken(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, "user-1")
	f.clock.Advance(DefaultRefreshTTL)
	_, err := f.svc.Refresh(context.Background(), tok.RefreshToken, rolesOf())
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrInvalidToken", err)
	}
}

func TestErrTokenReusedIsInvalidToken(t *testing.T) {
	if !errors.Is(ErrTokenReused, ErrInvalidToken) || !errors.Is(ErrTokenReused, ErrTokenReused) {
		t.Fatal("ErrTokenReused must be ErrTokenReused and ErrInvalidToken")
	}
	if errors.Is(ErrInvalidToken, ErrTokenReused) {
		t.Fatal("ErrInvalidToken must not be ErrTokenReused")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ok := testConfig(newClock(), prefix)
	bad := map[string]func(*Config){
		"short secret":  func(c *Config) { c.Secret = make([]byte, MinSecretLen-1) },
		"no issuer":     func(c *Config) { c.Issuer = "" },
		"no audience":   func(c *Config) { c.Audience = "" },
		"negative TTL":  func(c *Config) { c.AccessTTL = -time.Second },
		"negative RTTL": func(c *Config) { c.RefreshTTL = -time.Second },
	}
	for name, mutate := range bad {
		cfg := ok
		mutate(&cfg)
		if _, err := New(cfg, rdb); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := New(ok, nil); err == nil {
		t.Error("nil client: New succeeded")
	}
	cfg := ok
	cfg.Now = nil
	svc, err := New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if svc.accessTTL != DefaultAccessTTL || svc.refreshTTL != DefaultRefreshTTL || svc.now == nil {
		t.Errorf("defaults not applied: %v %v", svc.accessTTL, svc.refreshTTL)
	}
	// The service keeps its own copy of the secret.
	secret := []byte(testSecret)
	cfg.Secret = secret
	svc, _ = New(cfg, rdb)
	secret[0] ^= 0xff
	if string(svc.secret) != testSecret {
		t.Error("changing the caller's slice changed the key")
	}
}

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// tamper changes one character of segment seg of token.
func tamper(token string, seg, at int) string {
	parts := strings.Split(token, ".")
	b := []byte(parts[seg])
	if b[at] == 'A' {
		b[at] = 'B'
	} else {
		b[at] = 'A'
	}
	parts[seg] = string(b)
	return strings.Join(parts, ".")
}

// rewritePayload edits token's claims and keeps the original signature.
func rewritePayload(t *testing.T, token string, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	if raw, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, ".")
}
