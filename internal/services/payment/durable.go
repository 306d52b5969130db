package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var _ Processor = (*DurableTestProcessor)(nil)

// DurableTestProcessor is the TestProcessor with its charges and refunds
// kept in PostgreSQL (schema test_payments), so that they outlive the
// process that made them: a fault-injection run kills eventshop and then
// asks the provider what was charged. Cards behave as at the
// TestProcessor. It is a stand-in for a provider, not one: local runs
// and tests only (PAYMENT_TEST_DATABASE_URL).
type DurableTestProcessor struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

const durableSchema = `
CREATE SCHEMA IF NOT EXISTS test_payments;
CREATE TABLE IF NOT EXISTS test_payments.charges (
	idempotency_key text PRIMARY KEY,
	seq             bigserial,
	order_id        text NOT NULL,
	amount_cents    bigint NOT NULL,
	currency        text NOT NULL,
	last4           text NOT NULL,
	charge_id       text UNIQUE,   -- null for a decline
	decline         text           -- the decline's reason
);
CREATE INDEX IF NOT EXISTS charges_order ON test_payments.charges (order_id);
CREATE TABLE IF NOT EXISTS test_payments.refunds (
	idempotency_key text PRIMARY KEY,
	refund_id       text NOT NULL,
	charge_id       text NOT NULL REFERENCES test_payments.charges (charge_id),
	amount_cents    bigint NOT NULL
);`

// OpenDurableTestProcessor connects to url and creates its tables.
func OpenDurableTestProcessor(ctx context.Context, url string) (*DurableTestProcessor, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("test payments database: %w", err)
	}
	if _, err := pool.Exec(ctx, durableSchema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("test payments database: %w", err)
	}
	return &DurableTestProcessor{pool: pool, now: time.Now}, nil
}

// Close closes the connections.
func (p *DurableTestProcessor) Close() { p.pool.Close() }

// Charge is TestProcessor.Charge, kept in the database: the first
// outcome stored under a key is the one every repeat gets.
func (p *DurableTestProcessor) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	params, err := checkCharge(ctx, req)
	if err != nil {
		return Charge{}, err
	}
	if err := ValidateCard(req.Card, p.now()); err != nil {
		return Charge{}, err
	}
	out := testOutcome(req, params)
	var chargeID, decline *string
	if out.err == nil {
		chargeID = &out.charge.ID
	} else {
		reason := out.err.(*DeclinedError).Reason
		decline = &reason
	}
	if _, err := p.pool.Exec(ctx, `INSERT INTO test_payments.charges
		(idempotency_key, order_id, amount_cents, currency, last4, charge_id, decline)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING`,
		req.IdempotencyKey, req.OrderID, req.AmountCents, req.Currency, params.last4, chargeID, decline); err != nil {
		return Charge{}, fmt.Errorf("charge order %s: %w", req.OrderID, err)
	}
	var first chargeParams
	if err := p.pool.QueryRow(ctx, `SELECT order_id, amount_cents, currency, last4, charge_id, decline
		FROM test_payments.charges WHERE idempotency_key = $1`, req.IdempotencyKey).
		Scan(&first.orderID, &first.amount, &first.currency, &first.last4, &chargeID, &decline); err != nil {
		return Charge{}, fmt.Errorf("charge order %s: %w", req.OrderID, err)
	}
	switch {
	case first != params:
		return Charge{}, fmt.Errorf("charge order %s: %w", req.OrderID, ErrKeyReused)
	case decline != nil:
		return Charge{}, &DeclinedError{Reason: *decline}
	}
	return Charge{ID: *chargeID, AmountCents: first.amount, Last4: first.last4}, nil
}

// Refund is TestProcessor.Refund, kept in the database.
func (p *DurableTestProcessor) Refund(ctx context.Context, chargeID string, amountCents int64, idempotencyKey string) (Refund, error) {
	if err := checkRefund(ctx, chargeID, amountCents, idempotencyKey); err != nil {
		return Refund{}, err
	}
	var r Refund
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var charged int64
		if err := tx.QueryRow(ctx, `SELECT amount_cents FROM test_payments.charges WHERE charge_id = $1 FOR UPDATE`, chargeID).
			Scan(&charged); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("refund %s: %w", chargeID, ErrUnknownCharge)
		} else if err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT refund_id, charge_id, amount_cents FROM test_payments.refunds WHERE idempotency_key = $1`,
			idempotencyKey).Scan(&r.ID, &r.ChargeID, &r.AmountCents)
		switch {
		case err == nil && (r.ChargeID != chargeID || r.AmountCents != amountCents):
			return fmt.Errorf("refund %s: %w", chargeID, ErrKeyReused)
		case err == nil:
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var refunded int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount_cents), 0) FROM test_payments.refunds WHERE charge_id = $1`, chargeID).
			Scan(&refunded); err != nil {
			return err
		}
		if left := charged - refunded; amountCents > left {
			return fmt.Errorf("refund %s: %w: %d cents requested, %d left", chargeID, ErrRefundTooLarge, amountCents, left)
		}
		r = Refund{ID: "re_" + uuid.NewString(), ChargeID: chargeID, AmountCents: amountCents}
		_, err = tx.Exec(ctx, `INSERT INTO test_payments.refunds (idempotency_key, refund_id, charge_id, amount_cents) VALUES ($1, $2, $3, $4)`,
			idempotencyKey, r.ID, chargeID, amountCents)
		return err
	})
	if err != nil {
		return Refund{}, err
	}
	return r, nil
}

// ChargesOf returns the successful charges made for orderID, oldest
// first.
func (p *DurableTestProcessor) ChargesOf(ctx context.Context, orderID string) ([]Charge, error) {
	rows, err := p.pool.Query(ctx, `SELECT charge_id, amount_cents, last4 FROM test_payments.charges
		WHERE order_id = $1 AND charge_id IS NOT NULL ORDER BY seq`, orderID)
	if err != nil {
		return nil, err
	}
	var out []Charge
	for rows.Next() {
		var c Charge
		if err := rows.Scan(&c.ID, &c.AmountCents, &c.Last4); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Charges returns how many distinct successful charges were made.
func (p *DurableTestProcessor) Charges() int {
	return p.count(`SELECT count(*) FROM test_payments.charges WHERE charge_id IS NOT NULL`)
}

// Refunds returns how many distinct refunds were made.
func (p *DurableTestProcessor) Refunds() int {
	return p.count(`SELECT count(*) FROM test_payments.refunds`)
}

func (p *DurableTestProcessor) count(query string) int {
	var n int
	if err := p.pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		return -1
	}
	return n
}
