package writeapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
	"github.com/eventshop/eventshop/internal/testsupport/storetest"
	"github.com/eventshop/eventshop/writeapi"
)

// instance is one process of the API: its own command handlers (and so
// its own cache of folded states), Redis client and token service, over
// the event store and the Redis every instance shares. Besides the write
// API it serves GET /test/roles, the caller's roles as authentication
// found them, and GET /test/vendor, a route for vendors only, standing for
// any route of the read API.
type instance struct {
	t      *testing.T
	cmd    commands.Handlers
	tokens *auth.Service
	srv    *httptest.Server
}

// cluster is the event store and Redis instances share.
type cluster struct {
	t      *testing.T
	store  eventstore.Store
	opts   *redis.Options
	prefix string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	_, store := storetest.Postgres(t)
	_, prefix := redistest.New(t) // its cleanup drops the prefix's keys
	opts, err := redis.ParseURL(redistest.URL())
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, store: store, opts: opts, prefix: prefix}
}

// instance starts an instance; roles wraps the role cache its commands
// mark and offer through (nil: as is).
func (c *cluster) instance(roles func(commands.RoleCache) commands.RoleCache) *instance {
	t := c.t
	t.Helper()
	rdb := redis.NewClient(c.opts)
	t.Cleanup(func() { rdb.Close() })
	tokens, err := auth.New(auth.Config{
		Secret: []byte("writeapi-roles-test-secret-0123456789-abc"), Issuer: "eventshop-test", Audience: "eventshop-test",
		KeyPrefix: c.prefix,
	}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	h := commands.New(commands.Config{Store: c.store, Payments: payment.NewTestProcessor()})
	var cache commands.RoleCache = auth.NewRoleCache(rdb, c.prefix)
	if roles != nil {
		cache = roles(cache)
	}
	h.Users.CacheRoles(cache)
	authenticate := edge.Authenticate(tokens, h.Users)
	api := writeapi.New(writeapi.Config{
		Authenticate: authenticate, Users: h.Users, Catalog: h.Catalog, Orders: h.Orders, Auth: tokens,
		Logins:      auth.NewLoginLimiter(rdb, c.prefix, auth.LoginLimits{}),
		Idempotency: idempotency.New(rdb, idempotency.Config{KeyPrefix: c.prefix}),
	})
	r := chi.NewRouter()
	r.Use(edge.Middleware(nil))
	api.Routes(r)
	r.With(authenticate).Get("/test/roles", func(w http.ResponseWriter, r *http.Request) {
		a, _ := edge.ActorFrom(r.Context())
		edge.WriteJSON(w, http.StatusOK, a.Roles)
	})
	r.With(authenticate, edge.RequireRole(user.RoleVendor)).Get("/test/vendor", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &instance{t: t, cmd: h, tokens: tokens, srv: srv}
}

// caller is a signed-in user.
type caller struct {
	id            string
	access, fresh string // access and refresh tokens
}

// user registers a user holding roles besides customer, through this
// instance's commands, and signs it in.
func (in *instance) user(tag string, roles ...string) caller {
	in.t.Helper()
	ctx := context.Background()
	u, _, err := in.cmd.Users.RegisterUser(ctx, commands.RegisterUser{
		Email: tag + "-" + uuid.NewString()[:8] + "@example.org", Password: "correct horse battery", FullName: "Test " + tag,
	})
	if err != nil {
		in.t.Fatalf("register %s: %v", tag, err)
	}
	system := commands.Actor{ID: "system", Roles: []string{user.RoleAdmin}}
	for _, role := range roles {
		if _, _, err := in.cmd.Users.GrantRole(ctx, system, u.ID, role); err != nil {
			in.t.Fatalf("grant %s to %s: %v", role, tag, err)
		}
	}
	tok, err := in.tokens.Issue(ctx, u.ID, append([]string{user.RoleCustomer}, roles...))
	if err != nil {
		in.t.Fatal(err)
	}
	return caller{id: u.ID, access: tok.AccessToken, fresh: tok.RefreshToken}
}

// do sends a request as c; body, when not nil, goes as JSON. It returns
// the status and the body.
func (in *instance) do(method, path string, c caller, body any) (int, []byte, error) {
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return 0, nil, err
		}
	}
	req, err := http.NewRequest(method, in.srv.URL+path, &buf)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.access)
	resp, err := in.srv.Client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// want sends a request and fails the test unless it is answered status.
func (in *instance) want(method, path string, c caller, body any, status int) []byte {
	in.t.Helper()
	got, b, err := in.do(method, path, c, body)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	if got != status {
		in.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	return b
}

// roles are c's roles as authentication finds them on this instance.
func (in *instance) roles(c caller) ([]string, error) {
	status, b, err := in.do(http.MethodGet, "/test/roles", c, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /test/roles: %d %s", status, b)
	}
	var roles []string
	err = json.Unmarshal(b, &roles)
	slices.Sort(roles)
	return roles, err
}

func (in *instance) wantRoles(c caller, want ...string) {
	in.t.Helper()
	got, err := in.roles(c)
	if err != nil {
		in.t.Fatal(err)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		in.t.Fatalf("roles on this instance = %v, want %v", got, want)
	}
}

// TestRoleChangeBitesOnAnotherInstance: an admin revokes a role through
// one instance; the very next request of the user, to another instance
// that had the old roles cached, is refused. A grant shows at once too.
func TestRoleChangeBitesOnAnotherInstance(t *testing.T) {
	c := newCluster(t)
	write, read := c.instance(nil), c.instance(nil)
	admin := write.user("admin", user.RoleAdmin)
	vendor := write.user("vendor", user.RoleVendor)

	read.want(http.MethodGet, "/test/vendor", vendor, nil, http.StatusNoContent)
	read.want(http.MethodGet, "/test/vendor", vendor, nil, http.StatusNoContent) // now cached
	write.want(http.MethodDelete, "/api/users/"+vendor.id+"/roles/vendor", admin, nil, http.StatusOK)
	read.want(http.MethodGet, "/test/vendor", vendor, nil, http.StatusForbidden)
	read.wantRoles(vendor, user.RoleCustomer)
	write.want(http.MethodPost, "/api/products", vendor, map[string]any{"sku": "REVOKED-1", "name": "No", "price": 1, "quantity": 1}, http.StatusForbidden)

	write.want(http.MethodPost, "/api/users/"+vendor.id+"/roles", admin, map[string]any{"role": "vendor"}, http.StatusOK)
	read.want(http.MethodGet, "/test/vendor", vendor, nil, http.StatusNoContent)

	// An admin whose admin role is revoked is no admin on the next request.
	other := write.user("other-admin", user.RoleAdmin)
	read.wantRoles(other, user.RoleCustomer, user.RoleAdmin)
	read.want(http.MethodDelete, "/api/users/"+other.id+"/roles/admin", admin, nil, http.StatusOK)
	write.want(http.MethodPost, "/api/users/"+vendor.id+"/roles", other, map[string]any{"role": "admin"}, http.StatusForbidden)
}

// TestLogoutBitesOnAnotherInstance: a session logged out through one
// instance is refused on the next request to another.
func TestLogoutBitesOnAnotherInstance(t *testing.T) {
	c := newCluster(t)
	write, read := c.instance(nil), c.instance(nil)
	u := write.user("leaving")
	read.wantRoles(u, user.RoleCustomer)
	write.want(http.MethodPost, "/api/auth/logout", u, map[string]any{"refresh_token": u.fresh}, http.StatusNoContent)
	read.want(http.MethodGet, "/test/roles", u, nil, http.StatusUnauthorized)
	write.want(http.MethodGet, "/api/auth/me", u, nil, http.StatusUnauthorized)
}

// crashAfterAppend is a role cache whose process dies right after the
// append: the mark goes through, the offer of the new roles never does.
type crashAfterAppend struct{ commands.RoleCache }

func (crashAfterAppend) Offer(context.Context, string, []string, int64) error {
	return errors.New("process died")
}

// TestRoleChangeCrashWindow: the revocation's event is appended but the
// new roles never reach Redis; the next request on any instance still
// gets the new roles, never the cached old ones.
func TestRoleChangeCrashWindow(t *testing.T) {
	c := newCluster(t)
	crashing := c.instance(func(rc commands.RoleCache) commands.RoleCache { return crashAfterAppend{rc} })
	read := c.instance(nil)
	admin := crashing.user("admin", user.RoleAdmin)
	vendor := crashing.user("vendor", user.RoleVendor)
	read.wantRoles(vendor, user.RoleCustomer, user.RoleVendor)
	crashing.wantRoles(vendor, user.RoleCustomer, user.RoleVendor)

	crashing.want(http.MethodDelete, "/api/users/"+vendor.id+"/roles/vendor", admin, nil, http.StatusOK)
	read.wantRoles(vendor, user.RoleCustomer)
	crashing.wantRoles(vendor, user.RoleCustomer)
	read.want(http.MethodGet, "/test/vendor", vendor, nil, http.StatusForbidden)
}

// TestRoleChangeRedisDown: a role change that cannot mark the cache is
// not made at all.
func TestRoleChangeRedisDown(t *testing.T) {
	c := newCluster(t)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { down.Close() })
	write := c.instance(func(commands.RoleCache) commands.RoleCache { return auth.NewRoleCache(down, c.prefix) })
	read := c.instance(nil)
	admin := read.user("admin", user.RoleAdmin)
	vendor := read.user("vendor", user.RoleVendor)
	read.wantRoles(vendor, user.RoleCustomer, user.RoleVendor)

	status, b, err := write.do(http.MethodDelete, "/api/users/"+vendor.id+"/roles/vendor", admin, nil)
	if err != nil || status < 500 {
		t.Fatalf("revoke with the role cache down: %d %s %v, want a 5xx", status, b, err)
	}
	u, _, err := read.cmd.Users.User(context.Background(), vendor.id)
	if err != nil {
		t.Fatal(err)
	}
	if !u.HasRole(user.RoleVendor) {
		t.Fatal("the role was revoked without marking the cache")
	}
	read.wantRoles(vendor, user.RoleCustomer, user.RoleVendor)
}

// TestAuthenticateRedisDown: a signed-in request that cannot ask Redis
// about its token is answered 503, never let through or called a bad
// token.
func TestAuthenticateRedisDown(t *testing.T) {
	c := newCluster(t)
	in := c.instance(nil)
	u := in.user("someone")
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { down.Close() })
	tokens, err := auth.New(auth.Config{
		Secret: []byte("writeapi-roles-test-secret-0123456789-abc"), Issuer: "eventshop-test", Audience: "eventshop-test",
		KeyPrefix: c.prefix,
	}, down)
	if err != nil {
		t.Fatal(err)
	}
	h := edge.Authenticate(tokens, in.cmd.Users)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a request went through with Redis down")
	}))
	req := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
	req.Header.Set("Authorization", "Bearer "+u.access)
	w := httptest.NewRecorder()
	edge.Middleware(nil)(h).ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("Redis down: %d %s, want 503 with Retry-After", w.Code, w.Body)
	}
}

// sometimesCrash is a role cache whose process dies after the append,
// before the offer, every other change or so.
type sometimesCrash struct{ commands.RoleCache }

func (s sometimesCrash) Offer(ctx context.Context, userID string, roles []string, version int64) error {
	if rand.IntN(2) == 0 {
		return errors.New("process died")
	}
	return s.RoleCache.Offer(ctx, userID, roles, version)
}

// TestRoleChangesRacingRequests: an admin grants and revokes a role over
// and over through two instances (one of them dying before it caches the
// new roles, half the time) while requests of the user pour into both,
// missing the cache after every change and filling it from the stream,
// some of them racing the change. After each change, the next request on
// either instance has exactly the roles the change left.
func TestRoleChangesRacingRequests(t *testing.T) {
	c := newCluster(t)
	a := c.instance(func(rc commands.RoleCache) commands.RoleCache { return sometimesCrash{rc} })
	b := c.instance(nil)
	admin := a.user("admin", user.RoleAdmin)
	u := a.user("flipping", user.RoleVendor)
	changes := 60
	if testing.Short() {
		changes = 16
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		in := []*instance{a, b}[i%2]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := in.roles(u); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	vendor := true
	for i := range changes {
		via := []*instance{a, b}[rand.IntN(2)]
		if vendor {
			via.want(http.MethodDelete, "/api/users/"+u.id+"/roles/vendor", admin, nil, http.StatusOK)
		} else {
			via.want(http.MethodPost, "/api/users/"+u.id+"/roles", admin, map[string]any{"role": "vendor"}, http.StatusOK)
		}
		vendor = !vendor
		want := []string{user.RoleCustomer}
		if vendor {
			want = append(want, user.RoleVendor)
		}
		for _, in := range []*instance{b, a} {
			got, err := in.roles(u)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("change %d: roles = %v on the next request, want %v", i+1, got, want)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
