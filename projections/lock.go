package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// errLockLost ends a runner's active period when its lock's connection fails.
var errLockLost = errors.New("projection lock lost: its connection failed")

// lockKey is the advisory lock key of the projection name. A 64-bit hash
// makes two names sharing a key (and so one waiting for the other)
// vanishingly unlikely.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("eventshop/projections/" + name))
	return int64(h.Sum64())
}

// lock is a session advisory lock held on a connection of its own.
type lock struct {
	conn *pgx.Conn
}

// acquireLock waits until it holds the advisory lock of the projection,
// trying every LockPoll, and reconnecting when its connection fails. It
// returns ctx's error when ctx ends first.
func (r *Runner) acquireLock(ctx context.Context) (*lock, error) {
	key := lockKey(r.name)
	var conn *pgx.Conn
	for attempt := 0; ; attempt++ {
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
			if err != nil && ctx.Err() == nil {
				r.log.Warn("projection lock: connect", "projection", r.name, "error", err)
			}
			conn = c
		}
		if conn != nil {
			var got bool
			err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got)
			if err == nil && got {
				return &lock{conn: conn}, nil
			}
			if err != nil {
				conn.Close(context.WithoutCancel(ctx))
				conn = nil
			}
		}
		if err := sleep(ctx, r.opts.LockPoll); err != nil {
			if conn != nil {
				conn.Close(context.WithoutCancel(ctx))
			}
			return nil, err
		}
	}
}

// watch checks the lock's connection every interval until ctx ends, and
// calls lost when the connection fails: the session, and with it the
// lock, may be gone, and another instance may take over.
func (l *lock) watch(ctx context.Context, interval time.Duration, lost func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		err := l.conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			lost(fmt.Errorf("%w: %v", errLockLost, err))
			return
		}
	}
}

// release ends the session, which releases the lock.
func (l *lock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.conn.Close(ctx)
}

// sleep waits d or until ctx ends, and then returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
