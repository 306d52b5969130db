package readapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/pgtest"
	"github.com/eventshop/eventshop/projections"
)

// The projections the admin tests configure: one live, one failing, one
// that never ran.
const (
	liveProjection    = "alpha.v1"
	failingProjection = "beta.v2"
	idleProjection    = "gamma.v1"
)

// reportJSON is one projection in the admin routes' answers.
type reportJSON struct {
	Name       string     `json:"name"`
	Position   string     `json:"position"`
	Lag        *int64     `json:"lag"`
	LagSeconds float64    `json:"lag_seconds"`
	Status     string     `json:"status"`
	LastError  *string    `json:"last_error"`
	Rebuild    *string    `json:"rebuild"`
	RebuiltAt  *time.Time `json:"rebuilt_at"`
	ReportedAt *time.Time `json:"reported_at"`
}

// newAdminTestStack is a stack whose admin routes read the projections'
// reports from a database of its own, as every process does, where two
// runners have reported what the projections package stores for them.
func newAdminTestStack(t *testing.T) (*testStack, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := projections.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// What the active runners of two projections last reported.
	if _, err := pool.Exec(ctx, `INSERT INTO projections.checkpoints
			(name, commit, prepare, state, lag_events, lag_ms, last_error, reported_at, rebuilt_at) VALUES
			($1, 42, 7, 'live', 0, 1500, '', now(), NULL),
			($2, 9, 3, 'failing', 12, 60000, 'event 0190… (order-1 v2, order.paid): boom', now(), '2026-01-02T03:04:05Z')`,
		liveProjection, failingProjection); err != nil {
		t.Fatal(err)
	}
	s := newTestStack(t, func(c *Config) {
		c.Projections = []string{liveProjection, failingProjection, idleProjection}
		c.Reports = func(ctx context.Context, names []string) ([]projections.Report, error) {
			return projections.Reports(ctx, pool, names)
		}
		c.RequestRebuild = func(ctx context.Context, name string) error {
			return projections.RequestRebuild(ctx, pool, name)
		}
	})
	return s, pool
}

// TestAdminProjectionsRoles: the admin routes are an admin's alone, and
// the role is checked before anything else: a customer learns nothing of
// which projections exist.
func TestAdminProjectionsRoles(t *testing.T) {
	s, pool := newAdminTestStack(t)
	customer, vendor := s.user("customer"), s.user("vendor", user.RoleVendor)
	for _, c := range []struct {
		method, path string
	}{
		{http.MethodGet, "/api/admin/projections"},
		{http.MethodPost, "/api/admin/projections/" + liveProjection + "/rebuild"},
		{http.MethodPost, "/api/admin/projections/no-such-projection/rebuild"},
	} {
		expectProblem(t, c.method+" "+c.path+" without a token", s.do(c.method, c.path, testCaller{}, nil), http.StatusUnauthorized)
		expectProblem(t, c.method+" "+c.path+" as a customer", s.do(c.method, c.path, customer, nil), http.StatusForbidden)
		expectProblem(t, c.method+" "+c.path+" as a vendor", s.do(c.method, c.path, vendor, nil), http.StatusForbidden)
	}
	var pending int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM projections.checkpoints WHERE rebuild_requested_at IS NOT NULL`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Errorf("%d rebuilds requested by callers who are no admins", pending)
	}
}

// TestAdminProjections: the report of every configured projection, in the
// configured order, as its runner stored it.
func TestAdminProjections(t *testing.T) {
	s, _ := newAdminTestStack(t)
	admin := s.user("admin", user.RoleAdmin)
	var got []reportJSON
	expectStatus(t, "GET /api/admin/projections", s.do(http.MethodGet, "/api/admin/projections", admin, nil), http.StatusOK, &got)
	if len(got) != 3 || got[0].Name != liveProjection || got[1].Name != failingProjection || got[2].Name != idleProjection {
		t.Fatalf("reports %+v, want %s, %s, %s in that order", got, liveProjection, failingProjection, idleProjection)
	}

	live := got[0]
	if live.Position != "42.7" || live.Lag == nil || *live.Lag != 0 || live.LagSeconds != 1.5 || live.Status != projections.StateLive ||
		live.LastError != nil || live.Rebuild != nil || live.RebuiltAt != nil || live.ReportedAt == nil || time.Since(*live.ReportedAt) > time.Minute {
		t.Errorf("live projection: %+v", live)
	}
	failing := got[1]
	if failing.Position != "9.3" || failing.Lag == nil || *failing.Lag != 12 || failing.LagSeconds != 60 || failing.Status != projections.StateFailing ||
		failing.LastError == nil || !strings.Contains(*failing.LastError, "order.paid") ||
		failing.RebuiltAt == nil || !failing.RebuiltAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("failing projection: %+v", failing)
	}
	// A projection no runner ever reported on: stopped, at the start,
	// with no lag counted.
	idle := got[2]
	if idle.Position != "0.0" || idle.Lag != nil || idle.Status != projections.StateStopped || idle.LastError != nil || idle.ReportedAt != nil {
		t.Errorf("idle projection: %+v", idle)
	}
}

// TestAdminRebuild: a rebuild is filed for the runner to pick up, and the
// 202 shows it requested; filing it again changes nothing; a name that is
// not configured is a 404 and files nothing.
func TestAdminRebuild(t *testing.T) {
	s, pool := newAdminTestStack(t)
	admin := s.user("admin", user.RoleAdmin)
	requestedAt := func(name string) *time.Time {
		t.Helper()
		var at *time.Time
		err := pool.QueryRow(context.Background(), `SELECT rebuild_requested_at FROM projections.checkpoints WHERE name = $1`, name).Scan(&at)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return at
	}

	path := "/api/admin/projections/" + failingProjection + "/rebuild"
	w := s.do(http.MethodPost, path, admin, nil)
	var rep reportJSON
	expectStatus(t, "rebuild", w, http.StatusAccepted, &rep)
	if rep.Name != failingProjection || rep.Rebuild == nil || *rep.Rebuild != "requested" || rep.Position != "9.3" {
		t.Errorf("202 %+v, want %s with its rebuild requested", rep, failingProjection)
	}
	if loc := w.Header().Get("Location"); loc != "/api/admin/projections" {
		t.Errorf("Location %q", loc)
	}
	first := requestedAt(failingProjection)
	if first == nil {
		t.Fatal("no rebuild filed")
	}
	expectStatus(t, "rebuild again", s.do(http.MethodPost, path, admin, nil), http.StatusAccepted, &rep)
	if again := requestedAt(failingProjection); again == nil || !again.Equal(*first) {
		t.Errorf("filing again moved the request from %v to %v", first, again)
	}
	var all []reportJSON
	expectStatus(t, "GET after rebuild", s.do(http.MethodGet, "/api/admin/projections", admin, nil), http.StatusOK, &all)
	if len(all) != 3 || all[1].Rebuild == nil || *all[1].Rebuild != "requested" || all[0].Rebuild != nil {
		t.Errorf("after the rebuild request: %+v", all)
	}

	// A configured projection that never ran may be rebuilt too.
	expectStatus(t, "rebuild idle", s.do(http.MethodPost, "/api/admin/projections/"+idleProjection+"/rebuild", admin, nil), http.StatusAccepted, &rep)
	if rep.Name != idleProjection || rep.Rebuild == nil || *rep.Rebuild != "requested" || requestedAt(idleProjection) == nil {
		t.Errorf("rebuild of a projection that never ran: %+v", rep)
	}

	for _, name := range []string{"delta.v1", "ALPHA.V1", "alpha.v1%20"} {
		expectProblem(t, "rebuild "+name, s.do(http.MethodPost, "/api/admin/projections/"+name+"/rebuild", admin, nil), http.StatusNotFound)
	}
	var rows int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM projections.checkpoints`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("%d checkpoint rows, want the 3 configured projections only", rows)
	}
}

// TestAdminProjectionsDatabaseDown: reports that cannot be read are a 503
// that names nothing of the database.
func TestAdminProjectionsDatabaseDown(t *testing.T) {
	s := newTestStack(t, func(c *Config) {
		c.Projections = []string{liveProjection}
		c.Reports = func(context.Context, []string) ([]projections.Report, error) {
			return nil, errors.New("dial tcp 10.0.0.7:5432: connection refused")
		}
		c.RequestRebuild = func(context.Context, string) error {
			return errors.New("dial tcp 10.0.0.7:5432: connection refused")
		}
	})
	admin := s.user("admin", user.RoleAdmin)
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/admin/projections"},
		{http.MethodPost, "/api/admin/projections/" + liveProjection + "/rebuild"},
	} {
		w := s.do(c.method, c.path, admin, nil)
		expectProblem(t, c.method+" "+c.path, w, http.StatusServiceUnavailable)
		if strings.Contains(w.Body.String(), "10.0.0.7") {
			t.Errorf("%s %s: the 503 shows internals: %s", c.method, c.path, w.Body)
		}
	}
}
