package auth

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

const (
	testSecret   = "test-secret-0123456789-abcdefghijklmnop"
	testIssuer   = "eventshop"
	testAudience = "eventshop-api"
)

// clock is a Config.Now the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	svc    *Service
	clock  *clock
	rdb    *redis.Client
	prefix string
}

func testConfig(clk *clock, prefix string) Config {
	return Config{
		Secret:    []byte(testSecret),
		Issuer:    testIssuer,
		Audience:  testAudience,
		KeyPrefix: prefix,
		Now:       clk.Now,
	}
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	rdb, prefix := redistest.New(t)
	clk := newClock()
	svc, err := New(testConfig(clk, prefix), rdb)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return fixture{svc: svc, clock: clk, rdb: rdb, prefix: prefix}
}

func (f fixture) issue(t *testing.T, userID string, roles ...string) Tokens {
	t.Helper()
	tok, err := f.svc.Issue(context.Background(), userID, roles)
	if err != nil {
		t.Fatalf("Issue(%s): %v", userID, err)
	}
	return tok
}

func (f fixture) verify(t *testing.T, access string) Claims {
	t.Helper()
	c, _, err := f.svc.VerifyAccess(context.Background(), access, noSource)
	if err != nil {
		t.Fatalf("VerifyAccess: %v", err)
	}
	return c
}

// noSource is the stream of a user without roles, for tests about tokens.
var noSource RoleSource = &stream{}

// stream stands in for a user's stream as a RoleSource: its roles at its
// version, or err; it counts its reads.
type stream struct {
	mu      sync.Mutex
	roles   []string
	version int64
	err     error
	reads   int
}

func (s *stream) Roles(context.Context, string) ([]string, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return slices.Clone(s.roles), s.version, s.err
}

// set changes the roles, as an appended event does.
func (s *stream) set(roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles = roles
	s.version++
}

func (s *stream) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// rolesOf answers Refresh's roles callback with fixed roles.
func rolesOf(roles ...string) func(context.Context, string) ([]string, error) {
	return func(context.Context, string) ([]string, error) { return roles, nil }
}

// validClaims are claims a Service would accept in an access token at now.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   testIssuer,
		"aud":   []string{testAudience},
		"sub":   "user-1",
		"exp":   now.Add(10 * time.Minute).Unix(),
		"nbf":   now.Unix(),
		"iat":   now.Unix(),
		"jti":   uuid.NewString(),
		"fid":   uuid.NewString(),
		"typ":   TypeAccess,
		"roles": []string{"customer"},
	}
}

// forge signs claims with method and key, with header "typ" set to typ.
func forge(t *testing.T, method jwt.SigningMethod, key any, typ string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = typ
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge %s: %v", method.Alg(), err)
	}
	return s
}

// with returns a copy of claims with k set to v, or deleted when v is nil.
func with(claims jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for key, val := range claims {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// keysMatching lists every key in the whole database matching pattern,
// not only the test's prefix: that is how a key outside it would show.
func keysMatching(t *testing.T, rdb *redis.Client, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s: %v", pattern, err)
	}
	return keys
}

func assertPrefixed(t *testing.T, keys []string, prefix string) {
	t.Helper()
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			t.Errorf("key %q lacks the prefix %q", k, prefix)
		}
	}
}

// downClient is a client for a port nothing listens on.
func downClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
