package ledger_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/notifications/ledger"
)

// smallLedger returns a migrated ledger in a database of the test's own,
// on a pool of at most 4 connections, and the pool.
func smallLedger(t *testing.T) (*ledger.Ledger, *pgxpool.Pool) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	l := ledger.New(pool)
	if err := l.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, pool
}

// withTemplate returns n for another template of the same event.
func withTemplate(n ledger.Notification, template string) ledger.Notification {
	n.Template = template
	n.MessageID = "<" + ledger.Key(n.EventID, template) + "@eventshop>"
	return n
}

// requeue calls Requeue and fails the test unless it reports want.
func requeue(t *testing.T, l *ledger.Ledger, eventID uuid.UUID, wantRequeued, wantUnsettled int) {
	t.Helper()
	r, u, err := l.Requeue(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	if r != wantRequeued || u != wantUnsettled {
		t.Fatalf("Requeue = %d requeued, %d unsettled; want %d, %d", r, u, wantRequeued, wantUnsettled)
	}
}

func TestRequeueMakesFailedClaimable(t *testing.T) {
	ctx := context.Background()
	l, _ := smallLedger(t)
	n := email(uuid.New())
	for attempt := 1; attempt <= 3; attempt++ {
		row := claimEventually(t, l, n, time.Minute)
		if attempt < 3 {
			ok, err := l.MarkRetrying(ctx, row.ID, attempt, "451 try later", 0)
			mustApply(t, ok, err, true)
		} else {
			ok, err := l.MarkFailed(ctx, row.ID, attempt, "550 no such user")
			mustApply(t, ok, err, true)
		}
	}
	failed := claim(t, l, n, time.Minute, ledger.AlreadyFailed)

	requeue(t, l, n.EventID, 1, 0)
	got, err := l.Get(ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ledger.StatusRetrying || got.Attempts != 0 || got.LastError != ledger.RequeuedPrefix+"550 no such user" ||
		got.SentAt != nil || !got.UpdatedAt.After(failed.UpdatedAt) || got.LeaseUntil.After(time.Now().Add(time.Minute)) {
		t.Fatalf("requeued row = %+v (was %+v)", got, failed)
	}

	// The notifier's next claim wins at once, at attempt 1 with its full
	// budget, and sends the same email (same row, same Message-ID).
	changed := n
	changed.MessageID = "<other@eventshop>"
	won := claim(t, l, changed, time.Minute, ledger.Won)
	if won.ID != failed.ID || won.Attempts != 1 || won.Status != ledger.StatusSending || won.MessageID != n.MessageID {
		t.Fatalf("claim after requeue = %+v", won)
	}
	ok, err := l.MarkSent(ctx, won.ID, 1)
	mustApply(t, ok, err, true)

	// Requeueing again finds nothing to reset: the email goes out once.
	requeue(t, l, n.EventID, 0, 0)
	claim(t, l, n, 0, ledger.AlreadySent)
}

func TestRequeueLeavesSentRows(t *testing.T) {
	ctx := context.Background()
	l, _ := smallLedger(t)
	base := email(uuid.New())
	sentN, failedN := withTemplate(base, "welcome"), withTemplate(base, "receipt")

	s := claim(t, l, sentN, time.Minute, ledger.Won)
	ok, err := l.MarkSent(ctx, s.ID, 1)
	mustApply(t, ok, err, true)
	sent, err := l.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	f := claim(t, l, failedN, time.Minute, ledger.Won)
	ok, err = l.MarkFailed(ctx, f.ID, 1, "boom")
	mustApply(t, ok, err, true)

	requeue(t, l, base.EventID, 1, 0)
	requeue(t, l, base.EventID, 0, 0)
	after, err := l.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != ledger.StatusSent || after.Attempts != 1 || after.SentAt == nil || !after.SentAt.Equal(*sent.SentAt) ||
		!after.UpdatedAt.Equal(sent.UpdatedAt) || after.LastError != "" {
		t.Fatalf("sent row changed by Requeue: %+v, was %+v", after, sent)
	}
	claim(t, l, sentN, 0, ledger.AlreadySent)
	claim(t, l, failedN, time.Minute, ledger.Won)
}

func TestRequeueCountsUnsettled(t *testing.T) {
	ctx := context.Background()
	l, pool := smallLedger(t)
	base := email(uuid.New())

	claim(t, l, withTemplate(base, "sending"), time.Minute, ledger.Won)
	r := claim(t, l, withTemplate(base, "retrying"), time.Minute, ledger.Won)
	ok, err := l.MarkRetrying(ctx, r.ID, 1, "451", time.Hour)
	mustApply(t, ok, err, true)
	failedN := withTemplate(base, "failed")
	f := claim(t, l, failedN, time.Minute, ledger.Won)
	ok, err = l.MarkFailed(ctx, f.ID, 1, "550")
	mustApply(t, ok, err, true)
	s := claim(t, l, withTemplate(base, "sent"), time.Minute, ledger.Won)
	ok, err = l.MarkSent(ctx, s.ID, 1)
	mustApply(t, ok, err, true)
	// 'pending' is written by other tools only.
	if _, err := pool.Exec(ctx, `INSERT INTO notifications.ledger (id, key, user_id, event_id, event_type, template,
		recipient, subject, message_id, status) VALUES ($1, $2, $3, $4, 'order.paid', 'pending', 'a@example.com', 's', 'm', 'pending')`,
		uuid.New(), ledger.Key(base.EventID, "pending"), base.UserID, base.EventID); err != nil {
		t.Fatal(err)
	}
	// Another event's rows do not count.
	other := claim(t, l, email(base.UserID), time.Minute, ledger.Won)
	ok, err = l.MarkFailed(ctx, other.ID, 1, "550")
	mustApply(t, ok, err, true)

	// pending, sending and retrying are unsettled; the row just reset is not.
	requeue(t, l, base.EventID, 1, 3)
	// Nor is it later, while no claim took it: nothing is in flight on it.
	requeue(t, l, base.EventID, 0, 3)
	// Once claimed, an attempt is in flight on it.
	won := claim(t, l, failedN, time.Minute, ledger.Won)
	if won.Attempts != 1 {
		t.Fatalf("claim after requeue: attempts %d, want 1", won.Attempts)
	}
	requeue(t, l, base.EventID, 0, 4)
	if got, err := l.Get(ctx, other.ID); err != nil || got.Status != ledger.StatusFailed {
		t.Fatalf("other event's row = %+v, %v; want it failed still", got, err)
	}
}

func TestRequeueUnknownEvent(t *testing.T) {
	l, _ := smallLedger(t)
	requeue(t, l, uuid.New(), 0, 0)
}

func TestConcurrentRequeuesResetOnce(t *testing.T) {
	ctx := context.Background()
	l, _ := smallLedger(t)
	n := email(uuid.New())
	row := claim(t, l, n, time.Minute, ledger.Won)
	ok, err := l.MarkFailed(ctx, row.ID, 1, "550")
	mustApply(t, ok, err, true)

	const callers = 8
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
	)
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			r, _, err := l.Requeue(ctx, n.EventID)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			total += r
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if total != 1 {
		t.Fatalf("rows reset in all = %d, want 1", total)
	}
	got, err := l.Get(ctx, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastError != ledger.RequeuedPrefix+"550" {
		t.Fatalf("last error %q: reset more than once", got.LastError)
	}
	if won := claim(t, l, n, time.Minute, ledger.Won); won.Attempts != 1 {
		t.Fatalf("claim after requeue: attempts %d, want 1", won.Attempts)
	}
}
