package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	netmail "net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/internal/platform/retry"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/published"
)

// markSentTimeout bounds recording a sent mail once Run is stopping.
const markSentTimeout = 10 * time.Second

// sendTimeout bounds one send, which Run stopping lets finish.
const sendTimeout = 30 * time.Second

// job is a message whose mail is to be sent: its recipient found, its mail
// rendered, its ledger row ready to claim.
type job struct {
	m    kafka.Message
	env  published.Envelope
	to   templates.Recipient
	ml   templates.Mail
	note ledger.Notification
}

// key is the ledger key of j's mail.
func (j *job) key() string { return ledger.Key(j.note.EventID, j.note.Template) }

// sentMail is a mail sent and not yet recorded sent.
type sentMail struct {
	j   *job
	row ledger.Notification
}

// handleBatch does everything for ms, messages of one lane in the order
// they were fetched, except the commit. Their mails are claimed in one
// statement, sent in order, and recorded sent in one statement. Before a
// mail waits (busy, a failed send), and once the batch's claims are half
// their lease old, what was sent is recorded and the claims not tried yet
// are given back, to be claimed again in turn: a claim never waits out its
// lease. A nil error means every message is handled; an error means ctx
// ended (infrastructure failures are retried until it does).
func (n *Notifier) handleBatch(ctx context.Context, w *kafka.Writer, ms []kafka.Message) error {
	var (
		jobs []*job
		keys = map[string]bool{}
	)
	for i, m := range ms {
		// Only the batch's first message waits for a lookup that finds
		// nothing yet: the mails before one that must wait are sent first.
		j, later, err := n.prepare(ctx, w, m, i == 0)
		if err != nil {
			return err
		}
		if j != nil && keys[j.key()] {
			// One statement claims a row once: the same mail twice (a
			// message and its replay) goes in the next batch.
			later = true
		}
		if later {
			if err := n.sendAll(ctx, w, jobs); err != nil {
				return err
			}
			return n.handleBatch(ctx, w, ms[i:])
		}
		if j == nil {
			continue
		}
		keys[j.key()] = true
		jobs = append(jobs, j)
	}
	return n.sendAll(ctx, w, jobs)
}

// prepare decodes m, finds its recipient and renders its mail. It returns
// nil when m is handled already: a type that gets no mail, or a message
// dead-lettered since it will never make one. When wait is false and the
// read models do not have the recipient yet, it reports later instead
// of waiting for them.
func (n *Notifier) prepare(ctx context.Context, w *kafka.Writer, m kafka.Message, wait bool) (j *job, later bool, err error) {
	env, err := published.Decode(m.Value)
	if err != nil {
		return nil, false, n.deadLetter(ctx, w, m, nil, 0, err.Error())
	}
	// Whether the type gets a mail and its data is valid, before any
	// lookup.
	if ok, err := n.cfg.Renderer.Check(env); err != nil {
		return nil, false, n.deadLetter(ctx, w, m, nil, 0, err.Error())
	} else if !ok {
		return nil, false, nil
	}
	eventID, err := uuid.Parse(env.ID)
	if err != nil {
		return nil, false, n.deadLetter(ctx, w, m, nil, 0, "event id: "+err.Error())
	}
	patience := n.cfg.LookupTimeout
	if !wait {
		patience = 0
	}
	userID, to, reason, later := n.recipient(ctx, env, patience)
	if ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	if later {
		return nil, true, nil
	}
	if reason != "" {
		return nil, false, n.deadLetter(ctx, w, m, nil, 0, reason)
	}
	ml, _, err := n.cfg.Renderer.Render(env, to)
	if err != nil {
		return nil, false, n.deadLetter(ctx, w, m, nil, 0, err.Error())
	}
	j = &job{m: m, env: env, to: to, ml: ml, note: ledger.Notification{
		UserID: userID, EventID: eventID, EventType: env.Type, Template: ml.Template,
		Channel: ledger.ChannelEmail, Recipient: to.Email, Subject: ml.Subject,
	}}
	j.note.MessageID = n.cfg.Sender.MessageID(j.key())
	if err := ledger.Validate(j.note); err != nil {
		return nil, false, n.deadLetter(ctx, w, m, nil, 0, err.Error())
	}
	return j, false, nil
}

// sendAll claims the mails of jobs at once and sends them in order.
func (n *Notifier) sendAll(ctx context.Context, w *kafka.Writer, jobs []*job) error {
	if len(jobs) == 0 {
		return nil
	}
	notes := make([]ledger.Notification, len(jobs))
	for i, j := range jobs {
		notes[i] = j.note
	}
	var (
		claims  []ledger.Claimed
		claimed time.Time // no later than the database's start of the claims' lease
	)
	tries := 0
	for {
		var err error
		claimed = time.Now()
		claims, err = n.claimMany(ctx, notes)
		if err == nil {
			break
		}
		if errors.Is(err, ledger.ErrInvalid) {
			// Each mail on its own then: the invalid one is dead-lettered.
			claims = make([]ledger.Claimed, len(jobs))
			break
		}
		if err := n.pause(ctx, "claim", err, &tries); err != nil {
			return err
		}
	}
	var sent []sentMail
	next := 0 // jobs[next:] are not tried yet
	// settle records what was sent, then gives back the claims not tried
	// yet: before any wait, once the claims are half their lease old, and
	// on the way out. What it gives back is claimed again in turn.
	settle := func() error {
		err := n.recordSent(ctx, sent)
		sent = nil
		n.release(ctx, jobs[next:], claims[next:])
		return err
	}
	for i, j := range jobs {
		next = i
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), settle())
		}
		if time.Since(claimed) > n.cfg.Lease/2 {
			if err := settle(); err != nil {
				return err
			}
		}
		next = i + 1
		var c *ledger.Claimed
		if claims[i].Outcome != 0 {
			c = &claims[i]
		}
		if err := n.deliver(ctx, w, j, c, &sent, settle); err != nil {
			return errors.Join(err, settle())
		}
	}
	return settle()
}

// claimMany claims ns, letting a claim that has started finish when Run
// stops: a claim cut off by the stop may be made all the same, and then
// nobody would know to give it back. The caller checks ctx after it.
func (n *Notifier) claimMany(ctx context.Context, ns []ledger.Notification) ([]ledger.Claimed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markSentTimeout)
	defer cancel()
	return n.claims.ClaimMany(cctx, ns, n.cfg.Lease)
}

// release gives back the claims of jobs that were won and not tried, once:
// a give-back whose outcome is unknown must not be repeated, since by
// then another claim may hold the row at the same attempt. One that fails
// leaves the claims to their holder's end or their lease.
func (n *Notifier) release(ctx context.Context, jobs []*job, claims []ledger.Claimed) {
	ms := ledger.WonMarks(claims[:len(jobs)])
	for i := range jobs {
		claims[i].Outcome = 0 // claimed again in turn
	}
	if len(ms) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markSentTimeout)
	defer cancel()
	if err := n.cfg.Ledger.Release(rctx, ms); err != nil {
		n.log.WarnContext(ctx, "notifier: giving claims back failed; their lease frees them", "claims", len(ms), "err", err)
	}
}

// recordSent records the mails of sent sent, even when Run is stopping,
// so that the next member of the group finds them sent (a redelivery
// then commits without sending again). Errors: ctx's, when recording has
// not succeeded within markSentTimeout after ctx ended.
func (n *Notifier) recordSent(ctx context.Context, sent []sentMail) error {
	if len(sent) == 0 {
		return nil
	}
	ms := make([]ledger.Mark, len(sent))
	for i, s := range sent {
		ms[i] = ledger.Mark{ID: s.row.ID, Attempt: s.row.Attempts}
	}
	// Retried while Run lives, as the claims are: a mail sent and not
	// recorded is sent again by whoever handles its message next.
	mctx, cancel := afterStop(ctx, markSentTimeout)
	defer cancel()
	var applied []uuid.UUID
	if _, err := retryLedger(mctx, n, "mark sent", func() (bool, error) {
		var err error
		applied, err = n.cfg.Ledger.MarkSentMany(mctx, ms)
		return true, err
	}); err != nil {
		return err
	}
	for _, s := range sent {
		if !slices.Contains(applied, s.row.ID) {
			n.log.WarnContext(ctx, "notifier: ledger row taken over", "op", "mark sent", "key", s.j.key())
		}
		n.log.InfoContext(ctx, "notifier: mail sent", "key", s.j.key(), "attempt", s.row.Attempts)
		n.cfg.Observe(s.j.ml.Template, OutcomeSent)
	}
	return nil
}

// afterStop is a context that ends d after ctx does.
func afterStop(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d, cancel) })
	return c, func() { stop(); cancel() }
}

// deliver sends j's mail through the ledger's protocol, from the claim
// first when it is not nil, and otherwise from a claim of its own. A mail
// sent at the batch's claim is added to sent, to be recorded with the
// batch's; deliver calls settle (which records sent and gives the batch's
// other claims back) before it waits, and after sending from a claim of
// its own. A nil error means j's message is handled; an error means ctx
// ended.
func (n *Notifier) deliver(ctx context.Context, w *kafka.Writer, j *job, first *ledger.Claimed, sent *[]sentMail, settle func() error) (err error) {
	key := j.key()
	// smooth: sent at the batch's claim, no wait so far.
	smooth := first != nil
	busy := 0
	for {
		var c ledger.Claimed
		if first != nil {
			c, first = *first, nil
		} else if cs, err := n.claimMany(ctx, []ledger.Notification{j.note}); err == nil {
			c = cs[0]
			if ctx.Err() != nil {
				n.release(ctx, []*job{j}, cs)
				return ctx.Err()
			}
		} else if errors.Is(err, ledger.ErrInvalid) {
			if err := settle(); err != nil {
				return err
			}
			return n.deadLetter(ctx, w, j.m, nil, 0, err.Error())
		} else if err != nil {
			smooth = false
			if err := settle(); err != nil {
				return err
			}
			if err := n.pause(ctx, "claim", err, &busy); err != nil {
				return err
			}
			continue
		}
		switch c.Outcome {
		case ledger.AlreadySent, ledger.AlreadyFailed:
			n.log.InfoContext(ctx, "notifier: duplicate delivery skipped", "key", key, "status", c.Row.Status)
			n.cfg.Observe(j.ml.Template, OutcomeDuplicate)
			return nil
		case ledger.Busy:
			// Another holder, or the wait before a retry: its lease ends it.
			smooth = false
			if err := settle(); err != nil {
				return err
			}
			if err := retry.Sleep(ctx, n.backoff(busy)); err != nil {
				return err
			}
			busy++
			continue
		}
		busy = 0
		row := c.Row
		if row.Attempts > n.cfg.MaxAttempts {
			// Attempts ran out before a crash let the row be dead-lettered.
			if err := settle(); err != nil {
				return err
			}
			return n.deadLetter(ctx, w, j.m, &row, row.Attempts, "attempts exhausted")
		}
		// A send that has started runs to its end even when Run is
		// stopping: aborting it after the server took the message would
		// leave the row 'sending', and the next member of the group would
		// send the mail again. A stop waits for it, at most sendTimeout.
		sctx, cancelSend := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		err = n.cfg.Sender.Send(sctx, mail.Message{
			To: address(j.to), Subject: j.ml.Subject, Text: j.ml.Text, HTML: j.ml.HTML, MessageID: row.MessageID,
			Headers: map[string]string{"X-Eventshop-Event-ID": j.env.ID},
		})
		cancelSend()
		if err == nil {
			*sent = append(*sent, sentMail{j: j, row: row})
			if !smooth {
				// Claimed on its own or after a wait: recorded at once.
				return settle()
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		smooth = false
		if err := settle(); err != nil {
			return err
		}
		if !errors.Is(err, mail.ErrTemporary) || row.Attempts >= n.cfg.MaxAttempts {
			return n.deadLetter(ctx, w, j.m, &row, row.Attempts, err.Error())
		}
		wait := n.backoff(row.Attempts - 1)
		n.log.WarnContext(ctx, "notifier: send failed, retrying", "key", key, "attempt", row.Attempts, "wait", wait, "err", err)
		if _, err2 := retryLedger(ctx, n, "mark retrying", func() (bool, error) {
			return n.cfg.Ledger.MarkRetrying(ctx, row.ID, row.Attempts, err.Error(), wait)
		}); err2 != nil {
			return err2
		}
		n.cfg.Observe(j.ml.Template, OutcomeRetrying)
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// recipient finds who env's mail goes to, waiting up to patience for the
// read models to have it. A non-empty reason means it never will be found
// and the message is dead-lettered; later, that it was not found and
// patience is 0.
func (n *Notifier) recipient(ctx context.Context, env published.Envelope, patience time.Duration) (uuid.UUID, templates.Recipient, string, bool) {
	named, email, name, err := userOf(env)
	if err != nil {
		return uuid.Nil, templates.Recipient{}, "data: " + err.Error(), false
	}
	var userID uuid.UUID
	if named != "" {
		id, err := uuid.Parse(named)
		if err != nil {
			return uuid.Nil, templates.Recipient{}, "user_id: " + err.Error(), false
		}
		userID = id
	}
	if email != "" && userID != uuid.Nil {
		return userID, templates.Recipient{Email: email, Name: name}, "", false
	}
	// A lookup that fails is retried for patience: the read models
	// are kept by another process and may not have the user or the order
	// yet, which is no reason to give the mail up.
	var lastErr error
	deadline := time.Now().Add(patience)
	for attempt := 0; attempt == 0 || time.Now().Before(deadline); attempt++ {
		if attempt > 0 && retry.Sleep(ctx, n.backoff(attempt-1)) != nil {
			return uuid.Nil, templates.Recipient{}, "canceled", false
		}
		id := userID
		if id == uuid.Nil {
			if n.cfg.Owner == nil {
				return uuid.Nil, templates.Recipient{}, "event has no user_id and no Owner lookup is configured", false
			}
			var err error
			if id, err = n.cfg.Owner(ctx, env); err != nil {
				lastErr = fmt.Errorf("owner: %w", err)
				n.log.DebugContext(ctx, "notifier: owner lookup failed, retrying", "event", env.ID, "err", err)
				continue
			}
		}
		to, err := n.cfg.Recipients(ctx, id)
		if err != nil {
			lastErr = fmt.Errorf("recipient %s: %w", id, err)
			n.log.DebugContext(ctx, "notifier: recipient lookup failed, retrying", "user", id, "err", err)
			continue
		}
		if to.Email == "" {
			return uuid.Nil, templates.Recipient{}, fmt.Sprintf("user %s has no email address", id), false
		}
		return id, to, "", false
	}
	if patience == 0 {
		return uuid.Nil, templates.Recipient{}, "", true
	}
	return uuid.Nil, templates.Recipient{}, lastErr.Error(), false
}

// userOf reads whom env's event names, decoding its data into the
// domain's own event, the one codec of each event type: a registration
// names the user with the address and name, an order's creation its
// customer; other events name nobody (the Owner lookup finds them).
// Errors: the data does not decode.
func userOf(env published.Envelope) (id, email, name string, err error) {
	switch env.Type {
	case user.Registered{}.EventType():
		var e user.Registered
		err = json.Unmarshal(env.Data, &e)
		return e.UserID, e.Email, e.FullName, err
	case order.Created{}.EventType():
		var e order.Created
		err = json.Unmarshal(env.Data, &e)
		return e.UserID, "", "", err
	}
	return "", "", "", nil
}

// deadLetter writes m to the dead-letter topic, then marks row failed when
// there is one. The order matters: a crash in between leaves the row
// unfailed, so the redelivery dead-letters again (a duplicate dead letter)
// rather than finding it failed and losing the dead letter.
func (n *Notifier) deadLetter(ctx context.Context, w *kafka.Writer, m kafka.Message, row *ledger.Notification, attempts int, reason string) error {
	n.log.ErrorContext(ctx, "notifier: dead-lettering message", "topic", m.Topic, "partition", m.Partition,
		"offset", m.Offset, "attempts", attempts, "reason", reason)
	// The original headers are kept, but not dlq_* ones of an earlier
	// dead-lettering (a replayed message failing again): the new ones say
	// where this one came from.
	headers := make([]kafka.Header, 0, len(m.Headers)+5)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "dlq_") {
			headers = append(headers, h)
		}
	}
	dl := kafka.Message{Key: m.Key, Value: m.Value, Headers: append(headers,
		kafka.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderDLQAttempts, Value: []byte(strconv.Itoa(attempts))},
		kafka.Header{Key: HeaderDLQTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderDLQPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderDLQOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)}
	tries := 0
	for {
		err := w.WriteMessages(ctx, dl)
		if err == nil {
			break
		}
		if err := n.pause(ctx, "write dead letter", err, &tries); err != nil {
			return err
		}
	}
	if row == nil {
		n.cfg.Observe("", OutcomeDeadLettered)
		return nil
	}
	n.cfg.Observe(row.Template, OutcomeDeadLettered)
	_, err := retryLedger(ctx, n, "mark failed", func() (bool, error) {
		return n.cfg.Ledger.MarkFailed(ctx, row.ID, row.Attempts, reason)
	})
	return err
}

// retryLedger calls f until it returns no error or ctx ends: a database
// outage must not dead-letter messages. A false result (a newer claim took
// the row over) is logged and left alone.
func retryLedger(ctx context.Context, n *Notifier, what string, f func() (bool, error)) (bool, error) {
	tries := 0
	for {
		ok, err := f()
		if err == nil {
			if !ok {
				n.log.WarnContext(ctx, "notifier: ledger row taken over", "op", what)
			}
			return ok, nil
		}
		if err := n.pause(ctx, what, err, &tries); err != nil {
			return false, err
		}
	}
}

// pause logs an infrastructure error and waits before the next try.
func (n *Notifier) pause(ctx context.Context, what string, err error, tries *int) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	n.log.WarnContext(ctx, "notifier: "+what+" failed, retrying", "err", err)
	d := n.backoff(*tries)
	*tries++
	return retry.Sleep(ctx, d)
}

// backoff is RetryMin doubled i times, at most RetryMax.
func (n *Notifier) backoff(i int) time.Duration {
	return retry.Backoff(n.cfg.RetryMin, n.cfg.RetryMax, i)
}

// address formats to as an RFC 5322 address.
func address(to templates.Recipient) string {
	return (&netmail.Address{Name: to.Name, Address: to.Email}).String()
}
