package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/jackc/pgx/v5"
)

// Check is one invariant's verdict after a scenario.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// check verifies what must hold after a scenario whose flows are done:
// every acknowledged order is there (paid if its payment was
// acknowledged), every retry with a key got the same answer, nothing is
// oversold and each product's reserved stock is what its live orders
// hold, no order outlives its payment deadline, and no request got a 500.
func (s *shop) check(ctx context.Context, flows []*flow, timeout time.Duration, fives []string, loadEnd time.Time) []Check {
	var out []Check
	add := func(name string, err error, ok string) {
		c := Check{Name: name, OK: err == nil, Detail: ok}
		if err != nil {
			c.Detail = err.Error()
		}
		out = append(out, c)
	}

	// Same key, same answer.
	var split []string
	for _, f := range flows {
		placed := 0
		for k := range f.answers {
			if strings.HasPrefix(k, "place:") {
				placed++
			}
		}
		if placed > 1 {
			split = append(split, fmt.Sprintf("key %s answered with %d orders", f.orderKey, placed))
		}
	}
	add("same key, same answer", errIf(split), fmt.Sprintf("%d keys", len(flows)))

	// Every acknowledged write is there.
	var views []orderView
	acked, paid := 0, 0
	for _, f := range flows {
		if f.order != "" {
			acked++
		}
		if f.paidAck {
			paid++
		}
	}
	err := eventually(ctx, func() error {
		var err error
		if views, err = s.orders(ctx); err != nil {
			return err
		}
		byID := map[string]orderView{}
		for _, v := range views {
			byID[v.ID] = v
		}
		var missing []string
		for _, f := range flows {
			v, ok := byID[f.order]
			switch {
			case f.order == "":
			case !ok:
				missing = append(missing, "order "+f.order+" acknowledged, not listed")
			case f.paidAck && v.Status != "paid":
				missing = append(missing, "order "+f.order+" payment acknowledged, status "+v.Status)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %s", errNotYet, join(missing, 5))
		}
		return nil
	})
	add("acknowledged writes present", err, fmt.Sprintf("%d orders, %d payments acknowledged; %d orders listed", acked, paid, len(views)))

	// No order pending past its deadline, and the stock is what the
	// orders hold: checked once every order of the scenario is past its
	// deadline, so that the expiries have had to happen.
	sleep(ctx, time.Until(loadEnd.Add(timeout+5*time.Second)))
	err = eventually(ctx, func() error {
		views, err := s.orders(ctx)
		if err != nil {
			return err
		}
		held := map[string]int64{}
		var late []string
		for _, v := range views {
			if v.Status == "pending" && time.Since(v.CreatedAt) > timeout+5*time.Second {
				late = append(late, fmt.Sprintf("%s pending since %s", v.ID, v.CreatedAt.Format(time.TimeOnly)))
			}
			if v.Status == "pending" || v.Status == "paid" {
				for _, it := range v.Items {
					held[it.ProductID] += it.Quantity
				}
			}
		}
		if len(late) > 0 {
			return fmt.Errorf("%w: %s", errNotYet, join(late, 3))
		}
		var wrong []string
		for _, p := range s.products {
			inv, err := s.inventory(ctx, p)
			if err != nil {
				return err
			}
			if inv.Available < 0 || inv.Reserved > inv.Quantity || inv.Quantity != s.quantity[p] || inv.Reserved != held[p] {
				wrong = append(wrong, fmt.Sprintf("product %s: %+v, orders hold %d", p, inv, held[p]))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%w: %s", errNotYet, join(wrong, 3))
		}
		return nil
	})
	add("nothing oversold, stock = orders, none pending late", err, fmt.Sprintf("%d products", len(s.products)))

	add("no 500", errIf(fives), "none")
	return out
}

// checkCharges asks the payment provider (its database) for every charge
// and checks each is the payment its order records, or refunded in full:
// no card is charged for nothing, whatever happened between charging it
// and recording the charge.
func (s *shop) checkCharges(ctx context.Context, paymentsURL string) Check {
	c := Check{Name: "every charge recorded or voided"}
	conn, err := pgx.Connect(ctx, paymentsURL)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	defer conn.Close(ctx)
	n := 0
	err = eventually(ctx, func() error {
		views, err := s.orders(ctx)
		if err != nil {
			return err
		}
		payment := map[string]string{}
		for _, v := range views {
			if v.Payment != nil {
				payment[v.ID] = v.Payment.ID
			}
		}
		rows, err := conn.Query(ctx, `SELECT c.charge_id, c.order_id, c.amount_cents, coalesce(sum(r.amount_cents), 0)
			FROM test_payments.charges c LEFT JOIN test_payments.refunds r USING (charge_id)
			WHERE c.charge_id IS NOT NULL GROUP BY c.charge_id, c.order_id, c.amount_cents`)
		if err != nil {
			return err
		}
		var stray []string
		n = 0
		for rows.Next() {
			var charge, order string
			var amount, refunded int64
			if err := rows.Scan(&charge, &order, &amount, &refunded); err != nil {
				return err
			}
			n++
			if payment[order] != charge && refunded != amount {
				stray = append(stray, fmt.Sprintf("%s of order %s (%d cents, %d refunded)", charge, order, amount, refunded))
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(stray) > 0 {
			return fmt.Errorf("%w: %d charges neither recorded nor refunded: %s", errNotYet, len(stray), join(stray, 3))
		}
		return nil
	})
	c.OK = err == nil
	c.Detail = fmt.Sprintf("%d charges at the provider", n)
	if err != nil {
		c.Detail = err.Error()
	}
	return c
}

// checkMails checks what the SMTP sink (in this process, so a kill -9 of
// eventshop loses nothing it received) got: every order's confirmation
// arrived, and a paid order's receipt too; no mail came twice under two
// Message-IDs (one mail is one event for one recipient,
// X-Eventshop-Event-ID). A resend under the same Message-ID is the
// documented exception (sent, and eventshop died before recording it):
// each lane of the notifier has at most a batch of mails in that state,
// so a run may resend at most maxResent (the lanes times the batch times
// the deaths); more means
// the ledger let through a mail it knew was sent (every resend carries
// the same Message-ID, the ledger's).
func (s *shop) checkMails(ctx context.Context, sink *smtpsink.Sink, maxResent int) Check {
	c := Check{Name: "every mail sent, none twice"}
	resent := 0
	err := eventually(ctx, func() error {
		views, err := s.orders(ctx)
		if err != nil {
			return err
		}
		msgs := sink.Messages()
		ids := map[string]string{} // event and recipient → Message-ID
		perOrder := map[string]int{}
		var twice []string
		resent = 0
		for _, m := range msgs {
			key := m.Header.Get("X-Eventshop-Event-ID") + " " + strings.Join(m.To, ",")
			switch prev, seen := ids[key]; {
			case !seen:
				ids[key] = m.MessageID
				if _, id, ok := strings.Cut(m.TextBody, "Order id: "); ok && len(id) >= 36 {
					perOrder[id[:36]]++
				}
			case prev == m.MessageID:
				resent++
			default:
				twice = append(twice, fmt.Sprintf("event %s sent as %s and %s", key, prev, m.MessageID))
			}
		}
		if len(twice) > 0 {
			return fmt.Errorf("%d mails sent twice: %s", len(twice), join(twice, 3))
		}
		if resent > maxResent {
			return fmt.Errorf("%d mails resent under the same Message-ID; at most %d may be (a mail per lane per death)", resent, maxResent)
		}
		var missing []string
		for _, v := range views {
			want := 1
			if v.Status == "paid" {
				want = 2
			}
			if perOrder[v.ID] < want {
				missing = append(missing, fmt.Sprintf("order %s (%s): %d mails", v.ID, v.Status, perOrder[v.ID]))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: %d orders without their mails: %s", errNotYet, len(missing), join(missing, 3))
		}
		c.Detail = fmt.Sprintf("%d mails for %d orders; %d resent under the same Message-ID (at most %d may be)", len(msgs), len(views), resent, maxResent)
		return nil
	})
	c.OK = err == nil
	if err != nil {
		c.Detail = err.Error()
	}
	return c
}

func errIf(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	return fmt.Errorf("%d: %s", len(problems), join(problems, 3))
}
