package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// TestE2ETokens: refresh tokens rotate, a reused one revokes its family,
// and logout ends both the refresh and the access token.
func TestE2ETokens(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	email := uniqueEmail("tokens")
	s.register(email, testPassword, "Token User")
	first := s.login(email, testPassword)

	refresh := func(token string) *response {
		return s.post("/api/auth/refresh", "", map[string]any{"refresh_token": token})
	}
	me := func(access string) *response { return s.do(http.MethodGet, "/api/auth/me", access, nil) }

	// Rotation: a new pair, which works.
	r := want(t, refresh(str(first, "refresh_token")), http.StatusOK)
	second := r.body
	if str(second, "refresh_token") == str(first, "refresh_token") || str(second, "access_token") == "" {
		t.Fatalf("refresh did not rotate: %v", second)
	}
	if str(second, "token_type") != "Bearer" || num(t, second["expires_in"]) != 900 || num(t, second["refresh_expires_in"]) != 604800 {
		t.Errorf("refreshed tokens shape: %v", second)
	}
	want(t, me(str(second, "access_token")), http.StatusOK)
	r = want(t, refresh(str(second, "refresh_token")), http.StatusOK)
	third := r.body
	want(t, me(str(third, "access_token")), http.StatusOK)

	// Reusing a rotated token: 401, and the whole family is revoked.
	wantProblem(t, refresh(str(first, "refresh_token")), http.StatusUnauthorized)
	wantProblem(t, refresh(str(third, "refresh_token")), http.StatusUnauthorized)
	wantProblem(t, me(str(third, "access_token")), http.StatusUnauthorized)

	// Junk refresh tokens.
	wantProblem(t, refresh("not-a-token"), http.StatusUnauthorized)
	wantProblem(t, refresh(""), http.StatusUnauthorized)
	wantProblem(t, refresh(str(third, "access_token")), http.StatusUnauthorized) // an access token is no refresh token

	// Logout: 204, then that refresh token and the caller's access token are dead.
	pair := s.login(email, testPassword)
	access, rt := str(pair, "access_token"), str(pair, "refresh_token")
	want(t, me(access), http.StatusOK)
	wantProblem(t, s.post("/api/auth/logout", "", map[string]any{"refresh_token": rt}), http.StatusUnauthorized)
	r = want(t, s.post("/api/auth/logout", access, map[string]any{"refresh_token": rt}), http.StatusNoContent)
	if len(r.raw) != 0 {
		t.Errorf("204 with a body: %s", r.raw)
	}
	wantProblem(t, refresh(rt), http.StatusUnauthorized)
	wantProblem(t, me(access), http.StatusUnauthorized)

	// Signing in again works.
	again := s.login(email, testPassword)
	want(t, me(str(again, "access_token")), http.StatusOK)

	// Nobody logs out another user's session.
	other := uniqueEmail("tokens-other")
	s.register(other, testPassword, "Other User")
	otherPair := s.login(other, testPassword)
	wantProblem(t, s.post("/api/auth/logout", str(again, "access_token"), map[string]any{"refresh_token": str(otherPair, "refresh_token")}), http.StatusUnauthorized)
	want(t, refresh(str(otherPair, "refresh_token")), http.StatusOK)
}

// claims are the claims of a forged token.
type claims = jwt.MapClaims

// forge signs claims with method and key, with header typ (unless empty).
func forge(t *testing.T, method jwt.SigningMethod, key any, typ string, c claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if typ != "" {
		tok.Header["typ"] = typ
	} else {
		delete(tok.Header, "typ")
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	return s
}

// accessClaims are the claims of a valid access token of userID, as the
// server issues them (see internal/services/auth/jwt.go).
func accessClaims(userID string, mod func(claims)) claims {
	now := time.Now()
	c := claims{
		"iss": "eventshop", "aud": []string{"eventshop-api"}, "sub": userID,
		"exp": now.Add(10 * time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
		"jti": uuid.NewString(), "typ": "access", "roles": []string{"customer"},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// TestE2ERejectedTokens: every token that is not a valid access token of
// this server is a 401.
func TestE2ERejectedTokens(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	email := uniqueEmail("jwt")
	userID := s.register(email, testPassword, "JWT User")
	pair := s.login(email, testPassword)
	secret := []byte(e2eSecret)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024) // small: only the algorithm matters, and -race makes keygen slow
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	// The control: a token forged exactly as the server signs is accepted,
	// so each case below fails for its one defect.
	valid := forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, nil))
	if r := s.do(http.MethodGet, "/api/auth/me", valid, nil); r.status != http.StatusOK || str(r.body, "id") != userID {
		t.Fatalf("a correctly forged token is refused, so the cases below prove nothing: %s", r)
	}

	real := str(pair, "access_token")
	parts := strings.Split(real, ".")
	sig := []byte(parts[2])
	i := len(sig) / 2
	if sig[i] == 'A' {
		sig[i] = 'B'
	} else {
		sig[i] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = bytes.Replace(payload, []byte(`"roles":["customer"]`), []byte(`"roles":["admin"]`), 1)
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

	noneToken := forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "at+jwt", accessClaims(userID, nil))

	for _, tc := range []struct {
		name   string
		header string // the whole Authorization header; "" sends none
	}{
		{"no Authorization header", ""},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(email+":"+testPassword))},
		{"garbage", "Bearer not.a.jwt"},
		{"alg none", "Bearer " + noneToken},
		{"alg none, signature stripped from a real token", "Bearer " + noneHeader(t) + "." + parts[1] + "."},
		{"RS256", "Bearer " + forge(t, jwt.SigningMethodRS256, rsaKey, "at+jwt", accessClaims(userID, nil))},
		{"HS256 keyed with the RSA public key (key confusion)", "Bearer " + forge(t, jwt.SigningMethodHS256, pubPEM, "at+jwt", accessClaims(userID, nil))},
		{"HS384 with the right secret", "Bearer " + forge(t, jwt.SigningMethodHS384, secret, "at+jwt", accessClaims(userID, nil))},
		{"HS512 with the right secret", "Bearer " + forge(t, jwt.SigningMethodHS512, secret, "at+jwt", accessClaims(userID, nil))},
		{"wrong secret", "Bearer " + forge(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefghijklmnop"), "at+jwt", accessClaims(userID, nil))},
		{"expired", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) {
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-20*time.Minute).Unix(), time.Now().Add(-20*time.Minute).Unix(), time.Now().Add(-5*time.Second).Unix()
		}))},
		{"no exp", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { delete(c, "exp") }))},
		{"not valid yet", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) {
			c["nbf"] = time.Now().Add(5 * time.Minute).Unix()
		}))},
		{"wrong aud", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { c["aud"] = []string{"another-api"} }))},
		{"no aud", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { delete(c, "aud") }))},
		{"wrong iss", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { c["iss"] = "evil" }))},
		{"no iss", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { delete(c, "iss") }))},
		{"refresh typ claim and header", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "rt+jwt", accessClaims(userID, func(c claims) {
			c["typ"], c["fid"] = "refresh", uuid.NewString()
		}))},
		{"access claim under a refresh header", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "rt+jwt", accessClaims(userID, nil))},
		{"access header without typ claim", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { delete(c, "typ") }))},
		{"plain JWT header", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "JWT", accessClaims(userID, nil))},
		{"real refresh token as access token", "Bearer " + str(pair, "refresh_token")},
		{"tampered signature", "Bearer " + tamperedSig},
		{"tampered payload (roles: admin)", "Bearer " + tamperedPayload},
		{"user that does not exist", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(uuid.NewString(), nil))},
		{"no subject", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, "at+jwt", accessClaims(userID, func(c claims) { delete(c, "sub") }))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			wantProblem(t, s.do(http.MethodGet, "/api/auth/me", "", nil, hdr...), http.StatusUnauthorized)
			// A command route answers the same.
			wantProblem(t, s.post("/api/orders", "", orderBody(line{uuid.NewString(), 1}), hdr...), http.StatusUnauthorized)
		})
	}
	// The real token still works: nothing above revoked it.
	want(t, s.do(http.MethodGet, "/api/auth/me", real, nil), http.StatusOK)
}

// noneHeader is the encoded JOSE header {"alg":"none","typ":"at+jwt"}.
func noneHeader(t *testing.T) string {
	b, err := json.Marshal(map[string]string{"alg": "none", "typ": "at+jwt"})
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestE2EAuthorization: roles (function level) and ownership (object
// level) over HTTP.
func TestE2EAuthorization(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	vendor := s.newUser(admin, "authz-vendor", "vendor")
	otherVendor := s.signIn("vendor@example.com", "Vendor123!")
	customer := s.newUser(admin, "authz-customer")
	otherCustomer := s.signIn("customer@example.com", "Customer123!")
	vendorOnly := s.newUser(admin, "authz-vendor-only", "vendor")
	want(t, s.do(http.MethodDelete, "/api/users/"+vendorOnly.id+"/roles/customer", admin.token, nil), http.StatusOK)

	p := s.product(vendor, 10, "9.99")
	o := s.order(customer, line{p, 1})

	// Function level.
	wantProblem(t, s.post("/api/products", customer.token, map[string]any{"sku": "CUST-1", "name": "No", "price": 1, "quantity": 1}), http.StatusForbidden)
	wantProblem(t, s.post("/api/users/"+customer.id+"/roles", customer.token, map[string]any{"role": "admin"}), http.StatusForbidden)
	wantProblem(t, s.post("/api/users/"+vendor.id+"/roles", vendor.token, map[string]any{"role": "admin"}), http.StatusForbidden)
	wantProblem(t, s.do(http.MethodDelete, "/api/users/"+admin.id+"/roles/admin", vendor.token, nil), http.StatusForbidden)
	wantProblem(t, s.do(http.MethodDelete, "/api/users/"+vendor.id+"/roles/vendor", customer.token, nil), http.StatusForbidden)
	wantProblem(t, s.placeOrder(vendorOnly, line{p, 1}), http.StatusForbidden)
	wantProblem(t, s.complete(customer, o), http.StatusForbidden)
	wantProblem(t, s.complete(vendor, o), http.StatusForbidden)

	// A role that may not use a route at all is told so (403) whatever
	// the body holds: field checks come after function-level authorization.
	t.Run("role before fields", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"sku": "CUST-2", "name": "No", "price": 1, "quantity": 1, "vendor_id": customer.id},
			{"sku": "CUST-3", "name": "No", "price": json.Number("1.999"), "quantity": 1},
		} {
			if r := s.post("/api/products", customer.token, body); r.status != http.StatusForbidden {
				t.Errorf("customer listing a product: %s, want 403", r)
			}
		}
		if r := s.placeOrder(vendorOnly, line{"not-a-uuid", 1}); r.status != http.StatusForbidden {
			t.Errorf("vendor-only user ordering: %s, want 403", r)
		}
	})

	// Another vendor's product.
	wantProblem(t, s.do(http.MethodPatch, "/api/products/"+p, otherVendor.token, map[string]any{"name": "Mine now"}), http.StatusForbidden)
	wantProblem(t, s.do(http.MethodDelete, "/api/products/"+p, otherVendor.token, nil), http.StatusForbidden)
	wantProblem(t, s.post("/api/products/"+p+"/inventory", otherVendor.token, map[string]any{"adjustment": -5, "reason": "theft"}), http.StatusForbidden)
	wantProblem(t, s.do(http.MethodPatch, "/api/products/"+p, customer.token, map[string]any{"name": "Mine now"}), http.StatusForbidden)
	wantProblem(t, s.do(http.MethodDelete, "/api/products/"+p, customer.token, nil), http.StatusForbidden)

	// Another customer's order is not there.
	wantProblem(t, s.pay(otherCustomer, o, goodCard), http.StatusNotFound)
	wantProblem(t, s.cancel(otherCustomer, o, nil), http.StatusNotFound)
	wantProblem(t, s.pay(vendor, o, goodCard), http.StatusNotFound)
	wantProblem(t, s.cancel(vendor, o, nil), http.StatusNotFound)
	// ... just like an order that does not exist.
	wantProblem(t, s.pay(customer, uuid.NewString(), goodCard), http.StatusNotFound)
	wantProblem(t, s.cancel(customer, uuid.NewString(), nil), http.StatusNotFound)
	wantProblem(t, s.complete(admin, uuid.NewString()), http.StatusNotFound)
	wantProblem(t, s.pay(customer, "not-a-uuid", goodCard), http.StatusNotFound)

	// Nothing above changed the product or the order.
	r := want(t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{}), http.StatusOK)
	if str(r.body, "name") != "Test product" || r.body["discontinued"] == true {
		t.Errorf("product after refused changes: %v", r.body)
	}
	if got := s.stockOf(vendor, p); got != (stock{10, 1, 9}) {
		t.Errorf("stock after refused changes: %+v", got)
	}
	want(t, s.pay(customer, o, goodCard), http.StatusOK)

	// An admin may act on any product, and the vendor-only user may list.
	want(t, s.do(http.MethodPatch, "/api/products/"+p, admin.token, map[string]any{"name": "Renamed by admin"}), http.StatusOK)
	want(t, s.post("/api/products", vendorOnly.token, map[string]any{"sku": "VONLY-1", "name": "Vendor only", "price": 1, "quantity": 1}), http.StatusCreated)

	// A revoked role stops working at once, with the same token.
	want(t, s.do(http.MethodDelete, "/api/users/"+vendor.id+"/roles/vendor", admin.token, nil), http.StatusOK)
	wantProblem(t, s.do(http.MethodPatch, "/api/products/"+p, vendor.token, map[string]any{"name": "Still mine?"}), http.StatusForbidden)
	wantProblem(t, s.post("/api/products", vendor.token, map[string]any{"sku": "REVOKED-1", "name": "No", "price": 1, "quantity": 1}), http.StatusForbidden)
}

// TestE2ELoginRateLimit: failed logins are counted per account and per IP;
// an unknown email and a wrong password look the same.
func TestE2ELoginRateLimit(t *testing.T) {
	t.Parallel()
	s := newE2E(t, "LOGIN_FAILURES_PER_ACCOUNT", "3", "LOGIN_FAILURES_PER_IP", "6")
	email := uniqueEmail("ratelimit")
	s.register(email, testPassword, "Rate Limited")
	login := func(email, password string) *response {
		return s.post("/api/auth/login", "", map[string]any{"email": email, "password": password})
	}

	unknown := wantProblem(t, login(uniqueEmail("nobody"), testPassword), http.StatusUnauthorized) // IP failures: 1
	wrong := wantProblem(t, login(email, "wrong password"), http.StatusUnauthorized)               // account 1, IP 2
	if !bytes.Equal(unknown.raw, wrong.raw) {
		t.Errorf("unknown email and wrong password answer differently:\n%s\n%s", unknown.raw, wrong.raw)
	}
	if unknown.header.Get("Content-Type") != wrong.header.Get("Content-Type") || unknown.header.Get("WWW-Authenticate") != wrong.header.Get("WWW-Authenticate") {
		t.Errorf("headers differ: %v vs %v", unknown.header, wrong.header)
	}
	malformed := wantProblem(t, login("not-an-email", testPassword), http.StatusUnauthorized) // IP 3
	if !bytes.Equal(unknown.raw, malformed.raw) {
		t.Errorf("a malformed email answers differently:\n%s\n%s", unknown.raw, malformed.raw)
	}

	// The account's limit: the third failure blocks even the right password.
	wantProblem(t, login(email, "wrong again"), http.StatusUnauthorized) // account 2, IP 4
	wantProblem(t, login(email, "and again"), http.StatusUnauthorized)   // account 3, IP 5
	r := wantProblem(t, login(email, testPassword), http.StatusTooManyRequests)
	wantRetryAfter(t, r)
	r = wantProblem(t, login(strings.ToUpper(email), testPassword), http.StatusTooManyRequests) // case does not dodge it
	wantRetryAfter(t, r)

	// The IP's limit: one more failure anywhere blocks every account from here.
	other := uniqueEmail("ratelimit-other")
	s.register(other, testPassword, "Other")
	wantProblem(t, login(uniqueEmail("nobody"), testPassword), http.StatusUnauthorized) // IP 6
	wantRetryAfter(t, wantProblem(t, login(other, testPassword), http.StatusTooManyRequests))
	// Without TRUST_PROXY_HEADERS a forged X-Forwarded-For changes nothing.
	r = s.post("/api/auth/login", "", map[string]any{"email": other, "password": testPassword}, "X-Forwarded-For", "203.0.113.7")
	wantRetryAfter(t, wantProblem(t, r, http.StatusTooManyRequests))
}

func wantRetryAfter(t *testing.T, r *response) {
	t.Helper()
	n, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || n < 1 || n > 15*60 {
		t.Errorf("Retry-After %q, want whole seconds within the 15 min window", r.header.Get("Retry-After"))
	}
}

// TestE2EWriteAPIMode: `eventshop writeapi` needs JWT_SECRET and a
// PAYMENT_PROCESSOR named (fail closed: the only one built in moves no
// money), and seeds nothing.
func TestE2EWriteAPIMode(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t)
	for _, bad := range []struct{ key, value string }{
		{"PAYMENT_PROCESSOR", ""}, {"PAYMENT_PROCESSOR", "stripe"}, {"JWT_SECRET", ""}, {"JWT_SECRET", "too-short"},
	} {
		env := maps.Clone(env)
		env[bad.key] = bad.value
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, []string{"writeapi"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("writeapi with %s %q: %v, want an error naming %s", bad.key, bad.value, err, bad.key)
		}
	}
	if _, err := os.Stat(filepath.Join(env["DATA_DIR"], "jwt-secret")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("writeapi made a JWT secret of its own in DATA_DIR (stat: %v)", err)
	}

	env["JWT_SECRET"] = e2eSecret
	s := startServer(t, env, "writeapi")
	wantProblem(t, s.post("/api/auth/login", "", map[string]any{"email": adminEmail, "password": adminPassword}), http.StatusUnauthorized)
	wantProblem(t, s.post("/api/auth/login", "", map[string]any{"email": "vendor@example.com", "password": "Vendor123!"}), http.StatusUnauthorized)
	email := uniqueEmail("writeapi")
	s.register(email, testPassword, "Write API User")
	u := s.signIn(email, testPassword)
	me := want(t, s.do(http.MethodGet, "/api/auth/me", u.token, nil), http.StatusOK)
	if roles, _ := me.body["roles"].([]any); !slices.Equal(roles, []any{"customer"}) {
		t.Errorf("a new user of writeapi has roles %v, want [customer]", me.body["roles"])
	}
	if n := countType(s.events(), "product.created"); n != 0 {
		t.Errorf("writeapi seeded %d products", n)
	}
}

// TestE2ECreateAdmin: `eventshop create-admin` makes the first admin of a
// deployment, who can then grant roles.
func TestE2ECreateAdmin(t *testing.T) {
	t.Parallel()
	env := e2eEnv(t)
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if err := run(ctx, []string{"create-admin"}, getenv, io.Discard, io.Discard); err == nil {
		t.Error("create-admin without ADMIN_EMAIL and ADMIN_PASSWORD succeeded")
	}
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = "Ops@Example.org", "0ps-Secret-Pass"
	var out bytes.Buffer
	if err := run(ctx, []string{"create-admin"}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("create-admin: %v", err)
	}
	if !strings.Contains(out.String(), "ops@example.org") {
		t.Errorf("create-admin said %q", out.String())
	}
	// Running it again is harmless.
	if err := run(ctx, []string{"create-admin"}, getenv, io.Discard, io.Discard); err != nil {
		t.Fatalf("create-admin again: %v", err)
	}
	delete(env, "ADMIN_EMAIL")
	delete(env, "ADMIN_PASSWORD")

	s := startServer(t, env, "writeapi")
	admin := s.signIn("ops@example.org", "0ps-Secret-Pass")
	me := want(t, s.do(http.MethodGet, "/api/auth/me", admin.token, nil), http.StatusOK)
	if roles, _ := me.body["roles"].([]any); !slices.Contains(roles, any("admin")) {
		t.Fatalf("the created admin has roles %v", me.body["roles"])
	}
	id := s.register(uniqueEmail("granted"), testPassword, "Granted Vendor")
	r := s.grant(admin, id, "vendor")
	if roles, _ := r.body["roles"].([]any); !slices.Equal(roles, []any{"customer", "vendor"}) {
		t.Errorf("roles after grant: %v, want [customer vendor]", r.body["roles"])
	}
	// The only admin cannot drop its own admin role.
	wantProblem(t, s.do(http.MethodDelete, "/api/users/"+admin.id+"/roles/admin", admin.token, nil), http.StatusConflict)
}

// TestE2EConcurrentLoginGuesses: wrong passwords sent all at once get no
// more tries than sent one by one.
func TestE2EConcurrentLoginGuesses(t *testing.T) {
	t.Parallel()
	const guesses, limit = 20, 3
	s := newE2E(t, "LOGIN_FAILURES_PER_ACCOUNT", strconv.Itoa(limit), "LOGIN_FAILURES_PER_IP", "100")
	email := uniqueEmail("guessed")
	s.register(email, testPassword, "Guessed")
	start := make(chan struct{})
	codes := make([]int, guesses)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			<-start
			codes[i] = s.post("/api/auth/login", "", map[string]any{"email": email, "password": fmt.Sprintf("guess %d", i)}).status
		})
	}
	close(start)
	wg.Wait()
	checked, refused := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			refused++
		default:
			t.Errorf("status %d", c)
		}
	}
	if checked != limit || refused != guesses-limit {
		t.Fatalf("%d guesses checked and %d refused, want %d and %d", checked, refused, limit, guesses-limit)
	}
}

// TestE2EAccountLockNeedsTheOwnersAddress: wrong passwords from many
// addresses use up the account's total, so the right password answers 429
// from any address the account has not signed in from; but from the one
// its owner signed in from, it still signs in (finding: anyone could lock
// any account, an admin's included).
func TestE2EAccountLockNeedsTheOwnersAddress(t *testing.T) {
	t.Parallel()
	s := newE2E(t, "TRUST_PROXY_HEADERS", "true", "AUTH_RATE_LIMIT_PER_MINUTE", "0",
		"LOGIN_FAILURES_PER_ACCOUNT", "2", "LOGIN_FAILURES_PER_ACCOUNT_TOTAL", "6")
	email := uniqueEmail("locked")
	s.register(email, testPassword, "Locked Out")
	login := func(password, from string) *response {
		return s.post("/api/auth/login", "", map[string]any{"email": email, "password": password}, "X-Forwarded-For", from)
	}
	const owner = "198.51.100.10"
	want(t, login(testPassword, owner), http.StatusOK)
	for i := range 6 { // three attackers' addresses, two guesses each
		wantProblem(t, login(fmt.Sprintf("guess %d", i), fmt.Sprintf("203.0.113.%d", i/2)), http.StatusUnauthorized)
	}
	wantRetryAfter(t, wantProblem(t, login(testPassword, "203.0.113.200"), http.StatusTooManyRequests))
	wantRetryAfter(t, wantProblem(t, login(testPassword, "192.0.2.1"), http.StatusTooManyRequests))
	r := want(t, login(testPassword, owner), http.StatusOK)
	if r.body["access_token"] == nil {
		t.Errorf("the owner's sign-in answered %s", r.raw)
	}
}
