// Package unpaid bounds what one customer may hold in unpaid orders: how
// many orders at once, and how many units across them. Every unit in an
// unpaid order is stock other shoppers cannot buy until the order is paid,
// cancelled or expires, so without a bound one account could hold a
// product's whole stock, again and again.
//
// The holds live in Redis, per customer: a sorted set of the customer's
// unpaid orders scored by the time their hold ends (the payment deadline),
// and a hash of their units, both under one hash tag so that a cluster
// keeps them together:
//
//	<prefix>unpaid:{<customer>}:orders   order id → end of hold (ms)
//	<prefix>unpaid:{<customer>}:units    order id → units
//
// A hold ends when the order is paid or cancelled (Free) or at its end,
// whichever comes first, so a Free lost to a crash costs the customer a
// slot until the deadline, never for good.
package unpaid

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limits are the bounds per customer; zero means no bound.
type Limits struct {
	Orders int   // unpaid orders at once
	Units  int64 // units across them
}

// Refusal says which bound a hold would break.
type Refusal string

const (
	// TooManyOrders: the customer has Limits.Orders unpaid orders.
	TooManyOrders Refusal = "orders"
	// TooManyUnits: the order's units with those already held exceed
	// Limits.Units.
	TooManyUnits Refusal = "units"
)

// holdScript drops the customer's holds that have ended, then adds the
// order unless a bound would break; an order held already is accepted
// again as it is (a retried placement). ARGV: order id, units, end of
// hold (ms), now (ms), max orders, max units. It returns 1, or -1/-2 for
// too many orders/units.
const holdScript = `
local gone = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[4])
if #gone > 0 then
  redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", ARGV[4])
  redis.call("HDEL", KEYS[2], unpack(gone))
end
if redis.call("ZSCORE", KEYS[1], ARGV[1]) then
  return 1
end
local maxOrders = tonumber(ARGV[5])
if maxOrders > 0 and redis.call("ZCARD", KEYS[1]) >= maxOrders then
  return -1
end
local maxUnits = tonumber(ARGV[6])
if maxUnits > 0 then
  local sum = tonumber(ARGV[2])
  for _, v in ipairs(redis.call("HVALS", KEYS[2])) do
    sum = sum + tonumber(v)
  end
  if sum > maxUnits then
    return -2
  end
end
redis.call("ZADD", KEYS[1], ARGV[3], ARGV[1])
redis.call("HSET", KEYS[2], ARGV[1], ARGV[2])
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[1], last[2])
redis.call("PEXPIREAT", KEYS[2], last[2])
return 1`

// Redis keeps the holds. It is safe for concurrent use; each call is one
// round trip, atomic in Redis.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	limits Limits
	hold   *redis.Script
	now    func() time.Time
}

// New returns holds under prefix with limits.
func New(rdb redis.UniversalClient, prefix string, limits Limits) *Redis {
	return &Redis{rdb: rdb, prefix: prefix, limits: limits, hold: redis.NewScript(holdScript), now: time.Now}
}

// Limits returns the bounds r enforces.
func (r *Redis) Limits() Limits { return r.limits }

func (r *Redis) keys(customer string) []string {
	base := r.prefix + "unpaid:{" + customer + "}:"
	return []string{base + "orders", base + "units"}
}

// Hold counts order orderID, of units units, against customer until
// until, unless that breaks a bound: then it returns the Refusal and
// holds nothing. Errors are Redis's.
func (r *Redis) Hold(ctx context.Context, customer, orderID string, units int64, until time.Time) (Refusal, error) {
	n, err := r.hold.Run(ctx, r.rdb, r.keys(customer), orderID, units, until.UnixMilli(), r.now().UnixMilli(),
		r.limits.Orders, r.limits.Units).Int64()
	switch {
	case err != nil:
		return "", fmt.Errorf("hold unpaid order: %w", err)
	case n == -1:
		return TooManyOrders, nil
	case n == -2:
		return TooManyUnits, nil
	}
	return "", nil
}

// Free stops counting orderID against customer. Errors are Redis's; the
// hold then ends at its deadline.
func (r *Redis) Free(ctx context.Context, customer, orderID string) error {
	k := r.keys(customer)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, k[0], orderID)
		p.HDel(ctx, k[1], orderID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("free unpaid order: %w", err)
	}
	return nil
}
