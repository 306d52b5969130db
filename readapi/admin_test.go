package readapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
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
		c.Admin = projections.Admin{Pool: pool}
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
		{http.MethodGet, "/api/admin/projections/" + liveProjection + "/parked"},
		{http.MethodPost, "/api/admin/projections/" + liveProjection + "/parked/" + uuid.NewString() + "/retry"},
		{http.MethodPost, "/api/admin/projections/" + liveProjection + "/parked/" + uuid.NewString() + "/skip"},
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
	// A database nobody listens on: every query fails to connect.
	down, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	s := newTestStack(t, func(c *Config) {
		c.Projections = []string{liveProjection}
		c.Admin = projections.Admin{Pool: down}
	})
	admin := s.user("admin", user.RoleAdmin)
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/admin/projections"},
		{http.MethodPost, "/api/admin/projections/" + liveProjection + "/rebuild"},
		{http.MethodGet, "/api/admin/projections/" + liveProjection + "/parked"},
		{http.MethodPost, "/api/admin/projections/" + liveProjection + "/parked/" + uuid.NewString() + "/retry"},
	} {
		w := s.do(c.method, c.path, admin, nil)
		expectProblem(t, c.method+" "+c.path, w, http.StatusServiceUnavailable)
		if strings.Contains(w.Body.String(), "127.0.0.1") {
			t.Errorf("%s %s: the 503 shows internals: %s", c.method, c.path, w.Body)
		}
	}
}

// parkedJSON is one entry of a parked list in the admin routes' answers.
type parkedJSON struct {
	EventID    string  `json:"event_id"`
	Stream     string  `json:"stream"`
	Version    int64   `json:"version"`
	Type       string  `json:"type"`
	Position   string  `json:"position"`
	Status     string  `json:"status"`
	Error      *string `json:"error"`
	Attempts   int     `json:"attempts"`
	Action     *string `json:"action"`
	ActionBy   *string `json:"action_by"`
	SkippedBy  *string `json:"skipped_by"`
	SkipReason *string `json:"skip_reason"`
}

// TestAdminParked: the parked list, paged and filtered, and the retry and
// skip requests, filed in the database for whichever process runs the
// projection, with who asked; a skip names the first parked event of the
// stream when it is not that one, and needs a reason.
func TestAdminParked(t *testing.T) {
	s, pool := newAdminTestStack(t)
	ctx := context.Background()
	admin := s.user("admin", user.RoleAdmin)
	head, behind, other := uuid.New(), uuid.New(), uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO projections.parked (projection, event_id, stream_id, version, type, commit, prepare,
			status, error, attempts) VALUES
			($1, $2, 'order-1', 4, 'order.paid', 10, 11, 'parked', 'apply: boom', 5),
			($1, $3, 'order-1', 5, 'order.completed', 12, 13, 'parked', '', 0),
			($1, $4, 'order-2', 0, 'order.created', 9, 9, 'parked', 'apply: bad', 5)`,
		liveProjection, head, behind, other); err != nil {
		t.Fatal(err)
	}
	base := "/api/admin/projections/" + liveProjection + "/parked"
	var pg struct {
		Items []parkedJSON `json:"items"`
		Page  int          `json:"page"`
		Limit int          `json:"limit"`
		Total int          `json:"total"`
	}
	expectStatus(t, "list", s.do(http.MethodGet, base, admin, nil), http.StatusOK, &pg)
	if pg.Total != 3 || len(pg.Items) != 3 || pg.Items[0].EventID != head.String() || pg.Items[1].EventID != behind.String() ||
		pg.Items[2].EventID != other.String() || pg.Page != 1 || pg.Limit != 10 {
		t.Fatalf("list %+v, want the three entries by stream and version", pg)
	}
	first := pg.Items[0]
	if first.Stream != "order-1" || first.Version != 4 || first.Type != "order.paid" || first.Position != "10.11" ||
		first.Status != "parked" || first.Error == nil || *first.Error != "apply: boom" || first.Attempts != 5 || first.Action != nil {
		t.Errorf("first entry %+v", first)
	}
	if pg.Items[1].Error != nil {
		t.Errorf("an entry waiting behind another has error %q, want null", *pg.Items[1].Error)
	}
	expectStatus(t, "page 2", s.do(http.MethodGet, base+"?limit=2&page=2", admin, nil), http.StatusOK, &pg)
	if pg.Total != 3 || len(pg.Items) != 1 || pg.Items[0].EventID != other.String() {
		t.Errorf("page 2 of 2: %+v", pg)
	}
	expectStatus(t, "skipped only", s.do(http.MethodGet, base+"?status=skipped", admin, nil), http.StatusOK, &pg)
	if pg.Total != 0 || len(pg.Items) != 0 {
		t.Errorf("skipped entries %+v, want none", pg)
	}
	expectProblem(t, "bad status", s.do(http.MethodGet, base+"?status=gone", admin, nil), http.StatusUnprocessableEntity)
	expectProblem(t, "unknown projection", s.do(http.MethodGet, "/api/admin/projections/delta.v1/parked", admin, nil), http.StatusNotFound)

	var entry parkedJSON
	w := s.do(http.MethodPost, base+"/"+behind.String()+"/retry", admin, nil)
	expectStatus(t, "retry", w, http.StatusAccepted, &entry)
	if entry.EventID != behind.String() || entry.Action == nil || *entry.Action != "retry" || entry.ActionBy == nil || *entry.ActionBy != admin.id {
		t.Errorf("202 of retry: %+v", entry)
	}
	if loc := w.Header().Get("Location"); loc != base {
		t.Errorf("Location %q", loc)
	}

	w = s.do(http.MethodPost, base+"/"+behind.String()+"/skip", admin, map[string]any{"reason": "bad data"})
	expectProblem(t, "skip behind the first", w, http.StatusConflict)
	var conflict struct {
		Code         string `json:"code"`
		FirstEventID string `json:"first_event_id"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &conflict); err != nil || conflict.Code != "not_first_in_stream" || conflict.FirstEventID != head.String() {
		t.Errorf("409 %s, want code not_first_in_stream naming %s", w.Body, head)
	}
	expectProblem(t, "skip without a reason", s.do(http.MethodPost, base+"/"+head.String()+"/skip", admin, map[string]any{}), http.StatusUnprocessableEntity)
	expectProblem(t, "skip with an unknown member", s.do(http.MethodPost, base+"/"+head.String()+"/skip", admin,
		map[string]any{"reason": "x", "by": "someone"}), http.StatusBadRequest)
	expectStatus(t, "skip", s.do(http.MethodPost, base+"/"+head.String()+"/skip", admin, map[string]any{"reason": "bad data"}),
		http.StatusAccepted, &entry)
	if entry.Action == nil || *entry.Action != "skip" || entry.ActionBy == nil || *entry.ActionBy != admin.id {
		t.Errorf("202 of skip: %+v", entry)
	}
	var reason, by string
	if err := pool.QueryRow(ctx, `SELECT action_reason, action_by FROM projections.parked WHERE event_id = $1`, head).Scan(&reason, &by); err != nil ||
		reason != "bad data" || by != admin.id {
		t.Errorf("filed skip: reason %q by %q (%v)", reason, by, err)
	}
	expectProblem(t, "retry of an event not parked", s.do(http.MethodPost, base+"/"+uuid.NewString()+"/retry", admin, nil), http.StatusNotFound)
	expectProblem(t, "retry of an id that is no UUID", s.do(http.MethodPost, base+"/42/retry", admin, nil), http.StatusNotFound)
	expectProblem(t, "retry in an unknown projection", s.do(http.MethodPost, "/api/admin/projections/delta.v1/parked/"+head.String()+"/retry", admin, nil),
		http.StatusNotFound)
}
