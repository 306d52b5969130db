package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/internal/platform/retry"
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
		if err := retry.Sleep(ctx, r.opts.LockPoll); err != nil {
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

// Exclusive runs fn while this process holds the advisory lock of name,
// the same kind of lock that keeps one runner active per projection (the
// names share one key space): it waits for the lock, trying every poll,
// then runs fn with a context that also ends when the lock's connection
// fails, and releases the lock when fn returns. It is how a worker that is
// not a projection, such as a process manager, runs on one process at a
// time. It returns fn's error, or ctx's when ctx ends while it waits.
func Exclusive(ctx context.Context, pool *pgxpool.Pool, name string, poll time.Duration, log *slog.Logger,
	fn func(ctx context.Context) error) error {
	opts := Options{LockPoll: poll, Logger: log}.withDefaults()
	r := &Runner{pool: pool, name: name, opts: opts, log: opts.Logger.With("lock", name)}
	l, err := r.acquireLock(ctx)
	if err != nil {
		return err
	}
	defer l.release()
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() { l.watch(lctx, opts.LockPoll, cancel) })
	defer wg.Wait()
	defer cancel(nil) // stop watching before the lock's connection closes
	return fn(lctx)
}
