package load

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// mailTally counts, per shopper, the mails the timed window's requests
// caused: an order's confirmation once it was placed, its receipt once it
// was paid.
type mailTally struct {
	mu   sync.Mutex
	want map[string]int
}

func newMailTally() *mailTally { return &mailTally{want: map[string]int{}} }

// add counts one mail to email.
func (m *mailTally) add(email string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.want[email]++
}

func (m *mailTally) snapshot() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.want)
}

// MailCheck is how the mails the timed window caused were delivered, as
// each shopper's GET /api/notifications lists them.
type MailCheck struct {
	// Expected is the confirmations and receipts of the orders the
	// window placed and paid; Sent, how many of them were listed as
	// sent when the check ended.
	Expected int `json:"expected"`
	Sent     int `json:"sent"`
	// AllSent is how long after the window's end the last of them was
	// listed as sent (to within a round of reading the lists); Done
	// says whether that happened before the check gave up.
	AllSent time.Duration `json:"all_sent_ns"`
	Done    bool          `json:"done"`
	// Error is what stopped the check, if anything did.
	Error string `json:"error,omitempty"`
}

// mailKinds are the events whose mails the window causes.
var mailKinds = map[string]bool{"order.created": true, "order.paid": true}

// checkMails reads the shoppers' notification lists, round after round,
// until every shopper has at least the mails want counts for them listed
// as sent since since, or until bound has passed since end.
func checkMails(ctx context.Context, c *client, shoppers []Shopper, want map[string]int, since, end time.Time, bound time.Duration) MailCheck {
	var mc MailCheck
	pending := map[string]Shopper{}
	for _, sh := range shoppers {
		if want[sh.Email] > 0 {
			mc.Expected += want[sh.Email]
			pending[sh.Email] = sh
		}
	}
	sent := map[string]int{}
	var mu sync.Mutex
	for {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for email, sh := range pending {
			g.Go(func() error {
				n, err := sentSince(gctx, c, sh, since, want[email])
				if err != nil {
					return fmt.Errorf("notifications of %s: %w", email, err)
				}
				mu.Lock()
				defer mu.Unlock()
				sent[email] = min(n, want[email])
				return nil
			})
		}
		err := g.Wait()
		for email := range pending {
			if sent[email] >= want[email] {
				delete(pending, email)
			}
		}
		mc.Sent = 0
		for _, n := range sent {
			mc.Sent += n
		}
		switch {
		case len(pending) == 0:
			mc.AllSent, mc.Done = time.Since(end), true
			return mc
		case err != nil:
			mc.Error = err.Error()
			return mc
		case time.Since(end) > bound:
			mc.Error = fmt.Sprintf("%d of %d mails not listed as sent %s after the window", mc.Expected-mc.Sent, mc.Expected, fmtDur(bound))
			return mc
		}
		select {
		case <-ctx.Done():
			mc.Error = ctx.Err().Error()
			return mc
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sentSince counts the order mails of sh listed as sent and created at or
// after since, reading sh's list newest first until it reaches older mails
// or has counted enough.
func sentSince(ctx context.Context, c *client, sh Shopper, since time.Time, enough int) (int, error) {
	n := 0
	for p := 1; ; p++ {
		var pg page[struct {
			EventType string    `json:"event_type"`
			Status    string    `json:"status"`
			CreatedAt time.Time `json:"created_at"`
		}]
		if _, err := c.call(ctx, request{method: "GET", path: "/api/notifications?page=" + strconv.Itoa(p) + "&limit=100", token: sh.Token}, http.StatusOK, &pg); err != nil {
			return n, err
		}
		for _, it := range pg.Items {
			if it.CreatedAt.Before(since) {
				return n, nil
			}
			if mailKinds[it.EventType] && it.Status == "sent" {
				n++
			}
		}
		if len(pg.Items) < 100 || n >= enough {
			return n, nil
		}
	}
}

// mailVerdict holds mc to the goal of every mail sent within within of
// the window's end.
func mailVerdict(mc MailCheck, within time.Duration) Verdict {
	v := Verdict{Goal: fmt.Sprintf("every mail sent ≤ %s after the end", fmtDur(within))}
	switch {
	case mc.Expected == 0:
		v.Pass, v.Got = true, "no mails to send"
	case mc.Done:
		v.Pass = mc.AllSent <= within
		v.Got = fmt.Sprintf("%d of %d sent, the last %s after the end", mc.Sent, mc.Expected, fmtDur(mc.AllSent))
	default:
		v.Got = fmt.Sprintf("%d of %d sent; %s", mc.Sent, mc.Expected, mc.Error)
	}
	return v
}
