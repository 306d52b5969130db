package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// newPool connects to a database of the test's own.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return newPoolOf(t, 25) // so that the concurrent tests really are
}

// newPoolOf connects to a database of the test's own with at most conns
// connections.
func newPoolOf(t *testing.T, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newLedger returns a migrated ledger in a database of the test's own.
func newLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	l := ledger.New(newPool(t))
	if err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// email returns a notification of user about a new event.
func email(user uuid.UUID) ledger.Notification {
	ev := uuid.Must(uuid.NewV7())
	return ledger.Notification{
		UserID:    user,
		EventID:   ev,
		EventType: "order.paid",
		Template:  "receipt",
		Recipient: "ada@example.com",
		Subject:   "Your receipt",
		MessageID: "<" + ledger.Key(ev, "receipt") + "@eventshop>",
	}
}

// claim claims n and fails the test unless the outcome is want.
func claim(t *testing.T, l *ledger.Ledger, n ledger.Notification, lease time.Duration, want ledger.Outcome) ledger.Notification {
	t.Helper()
	c, err := l.Claim(context.Background(), n, lease)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if c.Outcome != want {
		t.Fatalf("claim: outcome %v, want %v (row %+v)", c.Outcome, want, c.Row)
	}
	return c.Row
}

// claimEventually claims n until it is Won, failing the test after a
// deadline.
func claimEventually(t *testing.T, l *ledger.Ledger, n ledger.Notification, lease time.Duration) ledger.Notification {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := l.Claim(context.Background(), n, lease)
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if c.Outcome == ledger.Won {
			return c.Row
		}
		if c.Outcome != ledger.Busy {
			t.Fatalf("claim: outcome %v, want busy then won", c.Outcome)
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim still busy after deadline; lease until %v", c.Row.LeaseUntil)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}

// mustApply fails the test unless a Mark call applied as want says.
func mustApply(t *testing.T, applied bool, err error, want bool) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if applied != want {
		t.Fatalf("mark applied = %v, want %v", applied, want)
	}
}

func TestClaimSendRedeliver(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	n := email(uuid.New())

	row := claim(t, l, n, time.Minute, ledger.Won)
	if row.ID.Version() != 7 || row.Key != ledger.Key(n.EventID, n.Template) || row.Attempts != 1 ||
		row.Status != ledger.StatusSending || row.Channel != ledger.ChannelEmail || row.MessageID != n.MessageID ||
		row.Recipient != n.Recipient || row.SentAt != nil || !row.LeaseUntil.After(row.CreatedAt) {
		t.Fatalf("won row = %+v", row)
	}
	busy := claim(t, l, n, time.Minute, ledger.Busy)
	if busy.ID != row.ID || busy.Attempts != 1 {
		t.Fatalf("busy row = %+v", busy)
	}

	ok, err := l.MarkSent(ctx, row.ID, 1)
	mustApply(t, ok, err, true)
	ok, err = l.MarkSent(ctx, row.ID, 1)
	mustApply(t, ok, err, false) // not 'sending' any more

	// Kafka delivers the message again, even with a lease of 0.
	sent := claim(t, l, n, 0, ledger.AlreadySent)
	if sent.Status != ledger.StatusSent || sent.SentAt == nil || sent.Attempts != 1 {
		t.Fatalf("sent row = %+v", sent)
	}
	got, err := l.Get(ctx, row.ID)
	if err != nil || got.Status != ledger.StatusSent {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

// TestCrashAfterSendTakeover is the crash window: the holder sent and
// died before MarkSent. The next claim takes over with the first claim's
// Message-ID, and the stalled holder, should it wake, is fenced off.
func TestCrashAfterSendTakeover(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	n := email(uuid.New())

	first := claim(t, l, n, 0, ledger.Won) // lease 0: expired as soon as it is taken
	again := n
	again.MessageID = "<different@eventshop>"
	again.Subject = "changed"
	second := claim(t, l, again, time.Minute, ledger.Won)
	if second.ID != first.ID || second.Attempts != 2 || second.Status != ledger.StatusSending ||
		second.MessageID != n.MessageID || second.Subject != n.Subject {
		t.Fatalf("takeover row = %+v, first %+v", second, first)
	}

	ok, err := l.MarkSent(ctx, first.ID, 1)
	mustApply(t, ok, err, false)
	ok, err = l.MarkRetrying(ctx, first.ID, 1, "late", 0)
	mustApply(t, ok, err, false)
	ok, err = l.MarkFailed(ctx, first.ID, 1, "late")
	mustApply(t, ok, err, false)

	ok, err = l.MarkSent(ctx, second.ID, 2)
	mustApply(t, ok, err, true)
	claim(t, l, n, 0, ledger.AlreadySent)
}

func TestLeaseExpires(t *testing.T) {
	l := newLedger(t)
	n := email(uuid.New())
	claim(t, l, n, 30*time.Millisecond, ledger.Won)
	row := claimEventually(t, l, n, time.Minute)
	if row.Attempts != 2 {
		t.Fatalf("attempts = %d, want 2", row.Attempts)
	}
}

func TestMarkRetrying(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)

	n := email(uuid.New())
	row := claim(t, l, n, time.Minute, ledger.Won)
	ok, err := l.MarkRetrying(ctx, row.ID, 1, "smtp: connection refused", time.Hour)
	mustApply(t, ok, err, true)
	busy := claim(t, l, n, 0, ledger.Busy)
	if busy.Status != ledger.StatusRetrying || busy.LastError != "smtp: connection refused" ||
		busy.LeaseUntil.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("retrying row = %+v", busy)
	}

	// A short wait: busy, then won once it has passed.
	n = email(uuid.New())
	row = claim(t, l, n, time.Minute, ledger.Won)
	ok, err = l.MarkRetrying(ctx, row.ID, 1, "timeout", 30*time.Millisecond)
	mustApply(t, ok, err, true)
	row = claimEventually(t, l, n, time.Minute)
	if row.Attempts != 2 || row.Status != ledger.StatusSending || row.LastError != "timeout" {
		t.Fatalf("retried row = %+v", row)
	}

	// No wait: the next claim wins at once.
	ok, err = l.MarkRetrying(ctx, row.ID, 2, "timeout", 0)
	mustApply(t, ok, err, true)
	row = claim(t, l, n, time.Minute, ledger.Won)
	if row.Attempts != 3 {
		t.Fatalf("attempts = %d, want 3", row.Attempts)
	}
	ok, err = l.MarkSent(ctx, row.ID, 3)
	mustApply(t, ok, err, true)
	if got, _ := l.Get(ctx, row.ID); got.LastError != "" || got.SentAt == nil {
		t.Fatalf("sent after retries = %+v", got)
	}

	if _, err := l.MarkRetrying(ctx, row.ID, 3, "x", -time.Second); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("negative retryAfter: %v, want ErrInvalid", err)
	}
}

func TestMarkFailed(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	n := email(uuid.New())
	row := claim(t, l, n, time.Minute, ledger.Won)
	ok, err := l.MarkFailed(ctx, row.ID, 1, "template: missing total")
	mustApply(t, ok, err, true)
	failed := claim(t, l, n, 0, ledger.AlreadyFailed)
	if failed.Status != ledger.StatusFailed || failed.LastError != "template: missing total" || failed.SentAt != nil {
		t.Fatalf("failed row = %+v", failed)
	}
}

func TestConcurrentClaimsOneWins(t *testing.T) {
	l := newLedger(t)
	n := email(uuid.New())
	const claimers = 20
	outcomes := make(chan ledger.Outcome, claimers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range claimers {
		wg.Go(func() {
			<-start
			c, err := l.Claim(context.Background(), n, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			outcomes <- c.Outcome
		})
	}
	close(start)
	wg.Wait()
	close(outcomes)
	count := map[ledger.Outcome]int{}
	for o := range outcomes {
		count[o]++
	}
	if count[ledger.Won] != 1 || count[ledger.Busy] != claimers-1 {
		t.Fatalf("outcomes = %v, want 1 won and %d busy", count, claimers-1)
	}
}

func TestClaimInvalid(t *testing.T) {
	l := newLedger(t)
	for name, change := range map[string]func(*ledger.Notification){
		"no event id":   func(n *ledger.Notification) { n.EventID = uuid.Nil },
		"no user id":    func(n *ledger.Notification) { n.UserID = uuid.Nil },
		"no event type": func(n *ledger.Notification) { n.EventType = "" },
		"no template":   func(n *ledger.Notification) { n.Template = "" },
		"no recipient":  func(n *ledger.Notification) { n.Recipient = "" },
		"no message id": func(n *ledger.Notification) { n.MessageID = "" },
		"sms":           func(n *ledger.Notification) { n.Channel = "sms" },
	} {
		n := email(uuid.New())
		change(&n)
		if _, err := l.Claim(context.Background(), n, time.Minute); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := l.Claim(context.Background(), email(uuid.New()), -time.Second); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("negative lease: %v, want ErrInvalid", err)
	}
}

// TestClaimManyMarkSentManyRelease: one statement claims a batch whose rows
// stand in every state and answers each as Claim would; a released claim
// is claimable at once, at the attempt it had; the batch's marks apply
// only to claims at the row's attempt.
func TestClaimManyMarkSentManyRelease(t *testing.T) {
	ctx := context.Background()
	l := newLedger(t)
	user := uuid.New()
	sent, failed, busy, fresh, other := email(user), email(user), email(user), email(user), email(user)
	row := claim(t, l, sent, time.Minute, ledger.Won)
	ok, err := l.MarkSent(ctx, row.ID, row.Attempts)
	mustApply(t, ok, err, true)
	row = claim(t, l, failed, time.Minute, ledger.Won)
	ok, err = l.MarkFailed(ctx, row.ID, row.Attempts, "550")
	mustApply(t, ok, err, true)
	claim(t, l, busy, time.Minute, ledger.Won)

	batch := []ledger.Notification{fresh, sent, busy, failed, other}
	got, err := l.ClaimMany(ctx, batch, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Outcome{ledger.Won, ledger.AlreadySent, ledger.Busy, ledger.AlreadyFailed, ledger.Won}
	for i, c := range got {
		if c.Outcome != want[i] || c.Row.Key != ledger.Key(batch[i].EventID, batch[i].Template) {
			t.Fatalf("claim %d: %v of %s, want %v of %s", i, c.Outcome, c.Row.Key, want[i], ledger.Key(batch[i].EventID, batch[i].Template))
		}
	}
	if _, err := l.ClaimMany(ctx, []ledger.Notification{other, other}, time.Minute); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("a batch naming one row twice: %v, want ErrInvalid", err)
	}
	bad := other
	bad.Recipient = ""
	if _, err := l.ClaimMany(ctx, []ledger.Notification{email(user), bad}, time.Minute); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("a batch with an invalid notification: %v, want ErrInvalid", err)
	}

	// fresh is sent; other is released and claimed again, and a mark at
	// another attempt does not apply to it.
	freshRow, otherRow := got[0].Row, got[4].Row
	if err := l.Release(ctx, []ledger.Mark{{ID: otherRow.ID, Attempt: otherRow.Attempts}}); err != nil {
		t.Fatal(err)
	}
	again := claim(t, l, other, time.Minute, ledger.Won)
	if again.Attempts != otherRow.Attempts || again.MessageID != otherRow.MessageID {
		t.Fatalf("claimed after its release: %+v, want attempt %d again", again, otherRow.Attempts)
	}
	applied, err := l.MarkSentMany(ctx, []ledger.Mark{{ID: freshRow.ID, Attempt: freshRow.Attempts}, {ID: otherRow.ID, Attempt: otherRow.Attempts + 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 1 || applied[0] != freshRow.ID {
		t.Fatalf("marked %v, want only %s", applied, freshRow.ID)
	}
	if r, err := l.Get(ctx, freshRow.ID); err != nil || r.Status != ledger.StatusSent || r.SentAt == nil {
		t.Fatalf("fresh row %+v, %v: want sent", r, err)
	}
	if r, err := l.Get(ctx, otherRow.ID); err != nil || r.Status != ledger.StatusSending {
		t.Fatalf("other row %+v, %v: want still sending for its new claim", r, err)
	}
}
