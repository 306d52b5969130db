package auth

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// roundTrips counts the commands and pipelines a client sends, each one
// network round trip.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func (f fixture) cachedRoles(t *testing.T, userID string) (roles string, cached bool) {
	t.Helper()
	r, err := f.rdb.HGet(context.Background(), f.svc.roles.key(userID), "r").Result()
	if errors.Is(err, redis.Nil) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

func (f fixture) callerRoles(t *testing.T, access string, src RoleSource) []string {
	t.Helper()
	_, roles, err := f.svc.VerifyAccess(context.Background(), access, src)
	if err != nil {
		t.Fatalf("VerifyAccess: %v", err)
	}
	return roles
}

// TestVerifyAccessCachesRoles: the stream is read once; after that a
// request costs one round trip to Redis, which answers for the token and
// the roles together.
func TestVerifyAccessCachesRoles(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, "user-1", "customer")
	src := &stream{roles: []string{"customer", "vendor"}, version: 4}

	// The roles come from the stream, not from the token.
	if got := f.callerRoles(t, tok.AccessToken, src); !slices.Equal(got, []string{"customer", "vendor"}) {
		t.Fatalf("roles = %v, want the stream's", got)
	}
	hook := &roundTrips{}
	f.rdb.AddHook(hook)
	for range 3 {
		if got := f.callerRoles(t, tok.AccessToken, src); !slices.Equal(got, []string{"customer", "vendor"}) {
			t.Fatalf("cached roles = %v", got)
		}
	}
	if n := src.readCount(); n != 1 {
		t.Errorf("stream read %d times, want once", n)
	}
	if n := hook.n.Load(); n != 3 {
		t.Errorf("3 requests made %d round trips to Redis, want 3", n)
	}

	// A user without roles is cached as such, not as a miss.
	bare := &stream{roles: nil, version: 2}
	tok2 := f.issue(t, "user-2")
	for range 2 {
		if got := f.callerRoles(t, tok2.AccessToken, bare); len(got) != 0 {
			t.Fatalf("roles = %v, want none", got)
		}
	}
	if n := bare.readCount(); n != 1 {
		t.Errorf("stream of a user without roles read %d times, want once", n)
	}
}

// TestVerifyAccessSourceErrors: the stream's errors come back unchanged
// and nothing is cached.
func TestVerifyAccessSourceErrors(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, "user-1")
	errGone := errors.New("no such user")
	src := &stream{err: errGone}
	for range 2 {
		if _, _, err := f.svc.VerifyAccess(context.Background(), tok.AccessToken, src); !errors.Is(err, errGone) {
			t.Fatalf("err = %v, want the source's", err)
		}
	}
	if n := src.readCount(); n != 2 {
		t.Errorf("stream read %d times, want every time", n)
	}
	if _, ok := f.cachedRoles(t, "user-1"); ok {
		t.Error("a failed read left roles cached")
	}
}

// TestLogoutBitesCachedRoles: with the roles cached, a logged-out access
// token is refused on the next request.
func TestLogoutBitesCachedRoles(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, "user-1", "customer")
	src := &stream{roles: []string{"customer"}}
	access, _, err := f.svc.VerifyAccess(context.Background(), tok.AccessToken, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(context.Background(), tok.RefreshToken, access); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.VerifyAccess(context.Background(), tok.AccessToken, src); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after logout: err = %v, want ErrInvalidToken", err)
	}
}

// TestRoleChangeCrashWindow: a change marked and appended, whose new roles
// were never offered (the process died in between), is what the next
// request sees.
func TestRoleChangeCrashWindow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1", "customer", "vendor")
	src := &stream{roles: []string{"customer", "vendor"}, version: 3}
	f.callerRoles(t, tok.AccessToken, src) // cached

	if err := f.svc.roles.Changing(ctx, "user-1", src.version+1); err != nil {
		t.Fatal(err)
	}
	src.set("customer") // the append; then the crash: no Offer
	if got := f.callerRoles(t, tok.AccessToken, src); !slices.Equal(got, []string{"customer"}) {
		t.Fatalf("roles after the crash = %v, want [customer]", got)
	}
	// ...and the stream's answer is cached again.
	f.callerRoles(t, tok.AccessToken, src)
	if n := src.readCount(); n != 2 {
		t.Errorf("stream read %d times, want 2 (the first request, the one after the change)", n)
	}
}

// TestRoleChangeUnderWay: between the mark and the append every request
// reads the stream and nothing read then is cached; neither is a read
// from before the mark, nor one older than what is cached.
func TestRoleChangeUnderWay(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1", "customer", "vendor")
	src := &stream{roles: []string{"customer", "vendor"}, version: 3}
	f.callerRoles(t, tok.AccessToken, src)

	if err := f.svc.roles.Changing(ctx, "user-1", 4); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := f.callerRoles(t, tok.AccessToken, src); !slices.Equal(got, []string{"customer", "vendor"}) {
			t.Fatalf("roles before the append = %v, want the stream's", got)
		}
	}
	if n := src.readCount(); n != 3 {
		t.Errorf("stream read %d times, want on every request while the change is under way", n)
	}
	if _, ok := f.cachedRoles(t, "user-1"); ok {
		t.Fatal("roles read before the append were cached")
	}
	// A read from before the mark, offered late, is refused too.
	if err := f.svc.roles.Offer(ctx, "user-1", []string{"customer", "vendor"}, 3); err != nil {
		t.Fatal(err)
	}
	if r, ok := f.cachedRoles(t, "user-1"); ok {
		t.Fatalf("a read from before the mark was cached: %s", r)
	}

	src.set("customer")
	if err := f.svc.roles.Offer(ctx, "user-1", []string{"customer"}, 4); err != nil {
		t.Fatal(err)
	}
	// A late offer of an older read loses to the newer roles.
	if err := f.svc.roles.Offer(ctx, "user-1", []string{"customer", "vendor"}, 3); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.cachedRoles(t, "user-1"); r != `["customer"]` {
		t.Fatalf("cached %s, want the newer roles", r)
	}
	if got := f.callerRoles(t, tok.AccessToken, src); !slices.Equal(got, []string{"customer"}) {
		t.Fatalf("roles = %v", got)
	}

	// Two changes racing from one version: the higher mark stands.
	if err := f.svc.roles.Changing(ctx, "user-1", 6); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.roles.Changing(ctx, "user-1", 5); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.roles.Offer(ctx, "user-1", []string{"customer"}, 5); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.cachedRoles(t, "user-1"); ok {
		t.Fatal("a read below the higher mark was cached")
	}
}

// racingStream is a user's stream under concurrent role changes: a read
// takes a snapshot, then yields for a while before it answers, so that
// changes land between the read and its offer to the cache, as a slow
// query would let them.
type racingStream struct {
	mu      sync.Mutex
	version int64
}

func (s *racingStream) Roles(context.Context, string) ([]string, int64, error) {
	s.mu.Lock()
	v := s.version
	s.mu.Unlock()
	for range rand.IntN(4) {
		runtime.Gosched()
	}
	if rand.IntN(8) == 0 {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	}
	return []string{"v" + strconv.FormatInt(v, 10)}, v, nil
}

func (s *racingStream) append() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	return s.version
}

func (s *racingStream) current() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// TestRoleChangesRacingReads: role changes race with requests that miss
// the cache and fill it (some changes' processes dying before their
// offer). A request that starts after a change was appended always sees
// that change or a later one, and when the changes stop the cache holds
// the last.
func TestRoleChangesRacingReads(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, "user-1")
	src := &racingStream{}
	changes := 300
	if testing.Short() {
		changes = 50
	}
	var appended atomic.Int64 // the version of the last change appended
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := appended.Load()
				_, roles, err := f.svc.VerifyAccess(ctx, tok.AccessToken, src)
				if err == nil {
					var v int64
					if _, err = fmt.Sscanf(roles[0], "v%d", &v); err == nil && v < floor {
						err = fmt.Errorf("a request begun after change %d was answered with the roles of version %d", floor, v)
					}
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	for range changes {
		if err := f.svc.roles.Changing(ctx, "user-1", src.current()+1); err != nil {
			t.Fatal(err)
		}
		v := src.append()
		appended.Store(v)
		if rand.IntN(3) > 0 { // else the process died before its offer
			if err := f.svc.roles.Offer(ctx, "user-1", []string{"v" + strconv.FormatInt(v, 10)}, v); err != nil {
				t.Fatal(err)
			}
		}
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	last := fmt.Sprintf("v%d", src.current())
	if got := f.callerRoles(t, tok.AccessToken, src); !slices.Equal(got, []string{last}) {
		t.Fatalf("roles after the changes = %v, want [%s]", got, last)
	}
	if r, _ := f.cachedRoles(t, "user-1"); r != `["`+last+`"]` {
		t.Fatalf("cached %s, want %s", r, last)
	}
}

func TestRoleCacheRedisDown(t *testing.T) {
	down := NewRoleCache(downClient(t), "test:")
	ctx := context.Background()
	if err := down.Changing(ctx, "user-1", 1); err == nil {
		t.Error("Changing with Redis down: no error")
	}
	if err := down.Offer(ctx, "user-1", []string{"customer"}, 1); err == nil {
		t.Error("Offer with Redis down: no error")
	}
}
