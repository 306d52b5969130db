package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	netmail "net/mail"
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

// handle does everything for m except the commit. A nil error means m is
// handled; an error means ctx ended (infrastructure failures are retried
// here until it does).
func (n *Notifier) handle(ctx context.Context, w *kafka.Writer, m kafka.Message) error {
	env, err := published.Decode(m.Value)
	if err != nil {
		return n.deadLetter(ctx, w, m, nil, 0, err.Error())
	}
	// A first render, to nobody, tells whether the type gets a mail and
	// whether its data is valid, before any lookup.
	if _, ok, err := n.cfg.Renderer.Render(env, templates.Recipient{}); err != nil {
		return n.deadLetter(ctx, w, m, nil, 0, err.Error())
	} else if !ok {
		return nil
	}
	eventID, err := uuid.Parse(env.ID)
	if err != nil {
		return n.deadLetter(ctx, w, m, nil, 0, "event id: "+err.Error())
	}
	userID, to, reason := n.recipient(ctx, env)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if reason != "" {
		return n.deadLetter(ctx, w, m, nil, 0, reason)
	}
	ml, _, err := n.cfg.Renderer.Render(env, to)
	if err != nil {
		return n.deadLetter(ctx, w, m, nil, 0, err.Error())
	}
	key := ledger.Key(eventID, ml.Template)
	note := ledger.Notification{
		UserID: userID, EventID: eventID, EventType: env.Type, Template: ml.Template,
		Channel: ledger.ChannelEmail, Recipient: to.Email, Subject: ml.Subject,
		MessageID: n.cfg.Sender.MessageID(key),
	}
	busy := 0
	for {
		c, err := n.claims.Claim(ctx, note, n.cfg.Lease)
		if errors.Is(err, ledger.ErrInvalid) {
			return n.deadLetter(ctx, w, m, nil, 0, err.Error())
		}
		if err != nil {
			if err := n.pause(ctx, "claim", err, &busy); err != nil {
				return err
			}
			continue
		}
		switch c.Outcome {
		case ledger.AlreadySent, ledger.AlreadyFailed:
			n.log.InfoContext(ctx, "notifier: duplicate delivery skipped", "key", key, "status", c.Row.Status)
			n.cfg.Observe(ml.Template, OutcomeDuplicate)
			return nil
		case ledger.Busy:
			// Another holder, or the wait before a retry: its lease ends it.
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
			return n.deadLetter(ctx, w, m, &row, row.Attempts, "attempts exhausted")
		}
		// A send that has started runs to its end even when Run is
		// stopping: aborting it after the server took the message would
		// leave the row 'sending', and the next member of the group would
		// send the mail again. A stop waits for it, at most sendTimeout.
		sctx, cancelSend := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
		err = n.cfg.Sender.Send(sctx, mail.Message{
			To: address(to), Subject: ml.Subject, Text: ml.Text, HTML: ml.HTML, MessageID: row.MessageID,
			Headers: map[string]string{"X-Eventshop-Event-ID": env.ID},
		})
		cancelSend()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err == nil:
			// The mail is out: record it even when Run is stopping, so that
			// the next member of the group finds it sent (a redelivery
			// then commits without sending again).
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markSentTimeout)
			_, err := retryLedger(mctx, n, "mark sent", func() (bool, error) {
				return n.cfg.Ledger.MarkSent(mctx, row.ID, row.Attempts)
			})
			cancel()
			if err != nil {
				return err
			}
			n.log.InfoContext(ctx, "notifier: mail sent", "key", key, "attempt", row.Attempts)
			n.cfg.Observe(ml.Template, OutcomeSent)
			return nil
		case errors.Is(err, mail.ErrTemporary) && row.Attempts < n.cfg.MaxAttempts:
			wait := n.backoff(row.Attempts - 1)
			n.log.WarnContext(ctx, "notifier: send failed, retrying", "key", key, "attempt", row.Attempts, "wait", wait, "err", err)
			if _, err2 := retryLedger(ctx, n, "mark retrying", func() (bool, error) {
				return n.cfg.Ledger.MarkRetrying(ctx, row.ID, row.Attempts, err.Error(), wait)
			}); err2 != nil {
				return err2
			}
			n.cfg.Observe(ml.Template, OutcomeRetrying)
			if err := retry.Sleep(ctx, wait); err != nil {
				return err
			}
		default:
			return n.deadLetter(ctx, w, m, &row, row.Attempts, err.Error())
		}
	}
}

// recipient finds who env's mail goes to. A non-empty reason means it never
// will be found and the message is dead-lettered.
func (n *Notifier) recipient(ctx context.Context, env published.Envelope) (uuid.UUID, templates.Recipient, string) {
	named, email, name, err := userOf(env)
	if err != nil {
		return uuid.Nil, templates.Recipient{}, "data: " + err.Error()
	}
	var userID uuid.UUID
	if named != "" {
		id, err := uuid.Parse(named)
		if err != nil {
			return uuid.Nil, templates.Recipient{}, "user_id: " + err.Error()
		}
		userID = id
	}
	if email != "" && userID != uuid.Nil {
		return userID, templates.Recipient{Email: email, Name: name}, ""
	}
	// A lookup that fails is retried until LookupTimeout: the read models
	// are kept by another process and may not have the user or the order
	// yet, which is no reason to give the mail up.
	var lastErr error
	deadline := time.Now().Add(n.cfg.LookupTimeout)
	for attempt := 0; attempt == 0 || time.Now().Before(deadline); attempt++ {
		if attempt > 0 && retry.Sleep(ctx, n.backoff(attempt-1)) != nil {
			return uuid.Nil, templates.Recipient{}, "canceled"
		}
		id := userID
		if id == uuid.Nil {
			if n.cfg.Owner == nil {
				return uuid.Nil, templates.Recipient{}, "event has no user_id and no Owner lookup is configured"
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
			return uuid.Nil, templates.Recipient{}, fmt.Sprintf("user %s has no email address", id)
		}
		return id, to, ""
	}
	return uuid.Nil, templates.Recipient{}, lastErr.Error()
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
