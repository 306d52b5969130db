package ledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/platform/retry"
)

// holdCheck is how often a hold checks its connection, and how long it
// waits before connecting again when the connection is lost.
const holdCheck = time.Second

// Hold marks this process's claims as its own: it takes a PostgreSQL
// advisory lock with a key of its own, on a connection of its own, and
// returns a ledger whose claims record that key as the row's holder. A
// row whose holder no longer holds its lock (the process was killed, its
// connection closed) can be claimed at once by anyone, without waiting
// out its lease; a living holder's lease holds as before. The hold keeps
// its lock until ctx ends or release is called, taking it again whenever
// its connection is lost (a PostgreSQL restart ends every lock). Between
// the loss and the retake its rows look abandoned; a claim by another
// process in that window can send a mail the holder is sending too, with
// the same Message-ID, as when a lease runs out.
//
// Errors: the database's, when the first lock cannot be taken.
func (l *Ledger) Hold(ctx context.Context, log *slog.Logger) (held *Ledger, release func(), err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, nil, fmt.Errorf("ledger: hold: %w", err)
	}
	// Positive and below 2^62, so that (classid << 32 | objid) in
	// pg_locks gives it back without overflow.
	key := int64(binary.BigEndian.Uint64(b[:]) >> 2)
	cfg := l.pool.Config().ConnConfig.Copy()
	conn, err := lockHolder(ctx, cfg, key)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for retry.Sleep(ctx, holdCheck) == nil {
			if conn != nil {
				pctx, cancelPing := context.WithTimeout(ctx, 5*time.Second)
				err := conn.Ping(pctx)
				cancelPing()
				if err == nil || ctx.Err() != nil {
					continue
				}
				conn.Close(context.Background())
				conn = nil
				log.WarnContext(ctx, "ledger: the hold's connection was lost; taking the lock again", "err", err)
			}
			if c, err := lockHolder(ctx, cfg, key); err == nil {
				conn = c
				log.InfoContext(ctx, "ledger: hold taken again")
			}
		}
		if conn != nil {
			// Unlocked before release returns: closing alone leaves the
			// lock to the server process's exit, a moment later.
			uctx, cancelUnlock := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", key)
			cancelUnlock()
			conn.Close(context.Background())
		}
	})
	return &Ledger{pool: l.pool, holder: key}, func() { cancel(); wg.Wait() }, nil
}

// lockHolder connects with cfg and takes the advisory lock key on the
// connection, for as long as it stays open.
func lockHolder(ctx context.Context, cfg *pgx.ConnConfig, key int64) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger: hold: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("ledger: hold: %w", err)
	}
	return conn, nil
}
