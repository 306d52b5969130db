package readapi

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/platform/resource"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// newNotificationsStack is a stack whose notifications route reads a
// ledger of its own in PostgreSQL.
func newNotificationsStack(t *testing.T) (*testStack, *ledger.Ledger) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t)+"&pool_max_conns=4")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	l := ledger.New(pool)
	if err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return newTestStack(t, func(c *Config) { c.Notifications = l }), l
}

// record claims a notification for userID and leaves it in status: "sent",
// "failed", "retrying" (an attempt failed, another comes) or "sending"
// (the first attempt in flight).
func record(t *testing.T, l *ledger.Ledger, userID string, status ledger.Status) ledger.Notification {
	t.Helper()
	ctx := context.Background()
	uid := uuid.MustParse(userID)
	ev := uuid.Must(uuid.NewV7())
	c, err := l.Claim(ctx, ledger.Notification{
		UserID: uid, EventID: ev, EventType: "order.paid", Template: "receipt",
		Recipient: "someone@example.org", Subject: "Receipt " + ev.String()[:8],
		MessageID: ev.String() + "@eventshop.test",
	}, time.Minute)
	if err != nil || c.Outcome != ledger.Won {
		t.Fatalf("claim: %v %v", c.Outcome, err)
	}
	var ok bool
	switch status {
	case ledger.StatusSent:
		ok, err = l.MarkSent(ctx, c.Row.ID, c.Row.Attempts)
	case ledger.StatusFailed:
		ok, err = l.MarkFailed(ctx, c.Row.ID, c.Row.Attempts, "550 no such user")
	case ledger.StatusRetrying:
		ok, err = l.MarkRetrying(ctx, c.Row.ID, c.Row.Attempts, "451 try later", time.Minute)
	default:
		ok = true
	}
	if err != nil || !ok {
		t.Fatalf("mark %s: %v %v", status, ok, err)
	}
	return c.Row
}

// TestNotificationsVisibility: a user lists their own notifications, only;
// an admin lists everyone's, or one user's; a non-admin asking for someone
// else's is refused rather than answered with their own.
func TestNotificationsVisibility(t *testing.T) {
	s, l := newNotificationsStack(t)
	ada, bob, admin := s.user("ada"), s.user("bob"), s.user("admin", user.RoleAdmin)
	var adas []string
	for range 3 {
		adas = append(adas, record(t, l, ada.id, ledger.StatusSent).ID.String())
	}
	bobs := record(t, l, bob.id, ledger.StatusSent).ID.String()

	ids := func(p page[resource.Notification]) []string {
		var out []string
		for _, n := range p.Items {
			out = append(out, n.ID)
		}
		return out
	}
	var got page[resource.Notification]
	expectStatus(t, "ada's own", s.do(http.MethodGet, "/api/notifications", ada, nil), http.StatusOK, &got)
	if want := []string{adas[2], adas[1], adas[0]}; got.Total != 3 || !slices.Equal(ids(got), want) {
		t.Errorf("ada sees %v (total %d), want her three newest first %v", ids(got), got.Total, want)
	}
	for _, n := range got.Items {
		if n.UserID != ada.id {
			t.Errorf("ada sees a notification of %s", n.UserID)
		}
	}
	expectStatus(t, "ada's own by user_id", s.do(http.MethodGet, "/api/notifications?user_id="+ada.id, ada, nil), http.StatusOK, &got)
	if got.Total != 3 {
		t.Errorf("ada with her own user_id: total %d, want 3", got.Total)
	}
	expectStatus(t, "ada asking for bob's", s.do(http.MethodGet, "/api/notifications?user_id="+bob.id, ada, nil), http.StatusForbidden, nil)

	expectStatus(t, "admin, all", s.do(http.MethodGet, "/api/notifications?limit=100", admin, nil), http.StatusOK, &got)
	if got.Total != 4 || len(got.Items) != 4 {
		t.Errorf("admin sees %d of total %d, want 4", len(got.Items), got.Total)
	}
	expectStatus(t, "admin, bob's", s.do(http.MethodGet, "/api/notifications?user_id="+bob.id, admin, nil), http.StatusOK, &got)
	if !slices.Equal(ids(got), []string{bobs}) {
		t.Errorf("admin filtering bob sees %v, want %v", ids(got), []string{bobs})
	}
	expectStatus(t, "admin, page 2 of 2", s.do(http.MethodGet, "/api/notifications?limit=3&page=2", admin, nil), http.StatusOK, &got)
	if got.Total != 4 || len(got.Items) != 1 || got.Page != 2 || got.Limit != 3 {
		t.Errorf("page 2 by 3: %d items, total %d, page %d, limit %d", len(got.Items), got.Total, got.Page, got.Limit)
	}

	expectStatus(t, "signed out", s.do(http.MethodGet, "/api/notifications", testCaller{}, nil), http.StatusUnauthorized, nil)
	for _, q := range []string{"?user_id=nope", "?limit=0", "?limit=101", "?page=x"} {
		expectStatus(t, "admin "+q, s.do(http.MethodGet, "/api/notifications"+q, admin, nil), http.StatusUnprocessableEntity, nil)
	}
}

// TestNotificationsShape: each status of the ledger shows as one of the
// three of API.md, with the fields of API.md.
func TestNotificationsShape(t *testing.T) {
	s, l := newNotificationsStack(t)
	ada := s.user("ada")
	rows := map[string]ledger.Notification{}
	want := map[string]string{}
	for status, api := range map[ledger.Status]string{
		ledger.StatusSent: "sent", ledger.StatusFailed: "failed",
		ledger.StatusRetrying: "retrying", ledger.StatusSending: "retrying",
	} {
		r := record(t, l, ada.id, status)
		rows[r.ID.String()], want[r.ID.String()] = r, api
	}
	var got page[resource.Notification]
	expectStatus(t, "list", s.do(http.MethodGet, "/api/notifications", ada, nil), http.StatusOK, &got)
	if len(got.Items) != len(rows) {
		t.Fatalf("%d items, want %d", len(got.Items), len(rows))
	}
	for _, n := range got.Items {
		r := rows[n.ID]
		if n.Status != want[n.ID] {
			t.Errorf("%s: status %q, want %q", n.ID, n.Status, want[n.ID])
		}
		if n.UserID != ada.id || n.EventID != r.EventID.String() || n.EventType != "order.paid" ||
			n.Channel != "email" || n.To != r.Recipient || n.Subject != r.Subject || n.Attempts != 1 || n.CreatedAt.IsZero() {
			t.Errorf("%s: %+v does not match its row %+v", n.ID, n, r)
		}
		if (n.SentAt != nil) != (n.Status == "sent") {
			t.Errorf("%s: status %s with sent_at %v", n.ID, n.Status, n.SentAt)
		}
	}
	// sent_at is null, not absent, until sent.
	w := s.do(http.MethodGet, "/api/notifications?limit=100", ada, nil)
	var raw struct {
		Items []map[string]any `json:"items"`
	}
	expectStatus(t, "raw", w, http.StatusOK, &raw)
	for _, item := range raw.Items {
		if _, ok := item["sent_at"]; !ok {
			t.Errorf("item without sent_at: %v", item)
		}
		if len(item) != 11 {
			t.Errorf("item has %d fields, want the 11 of API.md: %v", len(item), item)
		}
	}
}
