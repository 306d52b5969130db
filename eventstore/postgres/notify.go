package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/platform/retry"
)

// committed wakes this process's subscriptions at once and asks the notify
// loop to tell other processes.
func (s *Store) committed() {
	s.wake.Wake()
	select {
	case s.dirty <- struct{}{}:
	default: // a notification is already due; it covers this append too
	}
}

// notifyLoop sends one NOTIFY for any number of appends that committed
// while the previous one was in flight or within notifySpacing of it. NOTIFY is not part of the append
// transaction: in PostgreSQL a notifying commit takes a cluster-wide lock
// until it is flushed, which would serialise every append. The loop's own
// connection runs with synchronous_commit off, as a lost notification only
// delays readers until their next poll.
func (s *Store) notifyLoop() {
	defer s.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	backoff := newBackoff()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.dirty:
		}
		for {
			if conn == nil {
				c, err := s.connect("off")
				if err != nil {
					s.log.Warn("event store notifier: connect", "err", err)
					if !backoff.wait(s.ctx) {
						return
					}
					continue
				}
				conn = c
			}
			if _, err := conn.Exec(s.ctx, "SELECT pg_notify($1, '')", s.channel); err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.log.Warn("event store notifier: notify", "err", err)
				conn.Close(context.Background())
				conn = nil
				if !backoff.wait(s.ctx) {
					return
				}
				continue
			}
			backoff.reset()
			break
		}
		if retry.Sleep(s.ctx, notifySpacing) != nil {
			return
		}
	}
}

// listen starts the listen loop and the shared reader (see tail) with the
// first subscription. Errors: eventstore.ErrClosed once the store is
// closed.
func (s *Store) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return eventstore.ErrClosed
	}
	if !s.listening {
		s.listening = true
		s.wg.Add(1)
		go s.listenLoop()
		s.wg.Go(s.tail.follow)
	}
	return nil
}

// listenLoop wakes this process's subscriptions whenever any process
// appends. After a reconnect it wakes them too, since notifications may
// have been missed while it was away.
func (s *Store) listenLoop() {
	defer s.wg.Done()
	backoff := newBackoff()
	for s.ctx.Err() == nil {
		conn, err := s.connect("")
		if err == nil {
			_, err = conn.Exec(s.ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize())
		}
		if err == nil {
			backoff.reset()
			s.wake.Wake()
			for {
				if _, err = conn.WaitForNotification(s.ctx); err != nil {
					break
				}
				s.wake.Wake()
			}
		}
		if conn != nil {
			conn.Close(context.Background())
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("event store listener: connection lost, reconnecting", "err", err)
		if !backoff.wait(s.ctx) {
			return
		}
	}
}

// connect opens a connection outside the pool, with the pool's settings.
func (s *Store) connect(syncCommit string) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	if syncCommit != "" {
		cfg.RuntimeParams["synchronous_commit"] = syncCommit
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// backoff counts the failed attempts in a row since the last reset.
type backoff struct{ n int }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.n = 0 }

// wait sleeps 50 ms doubled per failed attempt before, at most 5 s; false
// if ctx ended.
func (b *backoff) wait(ctx context.Context) bool {
	d := retry.Backoff(50*time.Millisecond, 5*time.Second, b.n)
	b.n++
	return retry.Sleep(ctx, d) == nil
}
