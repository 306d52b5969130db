package load

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestCheckMails: a shopper's order mails count once they are listed as
// sent, and only those created since the window began; the check ends
// when all are, or gives up after its bound and says how many were not.
func TestCheckMails(t *testing.T) {
	since := time.Now().Add(-time.Minute)
	var sending atomic.Bool
	sending.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		status := "sent"
		if sending.Load() {
			status = "sending"
		}
		type item struct {
			EventType string    `json:"event_type"`
			Status    string    `json:"status"`
			CreatedAt time.Time `json:"created_at"`
		}
		// Newest first, 150 in all over two pages: the run's receipt,
		// confirmation and welcome mail, then 147 mails of an older run.
		all := []item{{"order.paid", status, since.Add(2 * time.Second)}, {"order.created", "sent", since.Add(time.Second)},
			{"user.registered", "sent", since.Add(time.Second)}}
		for len(all) < 150 {
			all = append(all, item{"order.created", "sent", since.Add(-time.Hour)})
		}
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		lo, hi := min((p-1)*100, len(all)), min(p*100, len(all))
		json.NewEncoder(w).Encode(map[string]any{"items": all[lo:hi], "total": len(all)})
	}))
	defer srv.Close()
	c := newClient(srv.URL, 4, 5*time.Second)
	defer c.close()
	shoppers := []Shopper{{Email: "a", Token: "t"}, {Email: "idle", Token: "t"}}
	want := map[string]int{"a": 2}

	mc := checkMails(context.Background(), c, shoppers, want, since, time.Now(), 300*time.Millisecond)
	if mc.Done || mc.Expected != 2 || mc.Sent != 1 || mc.Error == "" {
		t.Fatalf("with the receipt still sending: %+v, want 1 of 2 sent and the check given up", mc)
	}
	if v := mailVerdict(mc, 5*time.Second); v.Pass {
		t.Errorf("verdict %+v passed with a mail unsent", v)
	}
	sending.Store(false)
	mc = checkMails(context.Background(), c, shoppers, want, since, time.Now(), 300*time.Millisecond)
	if !mc.Done || mc.Sent != 2 || mc.Error != "" {
		t.Fatalf("with both sent: %+v, want done, 2 of 2", mc)
	}
	if v := mailVerdict(mc, 5*time.Second); !v.Pass {
		t.Errorf("verdict %+v failed with every mail sent at once", v)
	}
	// An older run's mails are not this run's: 3 wanted, 2 there.
	want["a"] = 3
	if mc = checkMails(context.Background(), c, shoppers, want, since, time.Now(), 300*time.Millisecond); mc.Done || mc.Sent != 2 {
		t.Errorf("an older run's mails counted: %+v, want 2 of 3", mc)
	}
}
