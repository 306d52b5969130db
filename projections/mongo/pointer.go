package mongo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/singleflight"
)

// pointerReadTimeout bounds one read of the pointer document. The read is
// shared by every request that waits for it, so it does not end with the
// context of the request that happened to start it.
const pointerReadTimeout = 10 * time.Second

// pointer caches the name of the live collection, as the pointer document
// gave it, for ttl. The document is read by one read at a time
// (singleflight), and no lock is held while it is: a request that needs a
// newer name than the cached one waits for the read in flight only as
// long as its own context allows.
type pointer struct {
	db    *mongo.Database
	ttl   time.Duration
	reads singleflight.Group

	mu   sync.Mutex
	name string
	at   time.Time // when the read that gave name began; zero: none yet
}

// reading is the name one read of the pointer document gave, and when
// that read began.
type reading struct {
	name string
	at   time.Time
}

// get returns the live collection's name, "" when there is none yet, as
// a read that began at most ttl ago gave it. Errors: the context's, the
// database's.
func (p *pointer) get(ctx context.Context) (string, error) {
	return p.since(ctx, time.Now().Add(-p.ttl))
}

// fresh returns the live collection's name as a read that began after
// the call gave it. Errors: the context's, the database's.
func (p *pointer) fresh(ctx context.Context) (string, error) {
	return p.since(ctx, time.Now())
}

// since returns the name given by a read that began at or after t: the
// cached one, or else that of the read in flight. A read in flight that
// began before t will not do, but the next one begins after it ends, so
// at most two are waited for.
func (p *pointer) since(ctx context.Context, t time.Time) (string, error) {
	for {
		p.mu.Lock()
		cached := reading{p.name, p.at}
		p.mu.Unlock()
		if !cached.at.IsZero() && !cached.at.Before(t) {
			return cached.name, nil
		}
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("catalogue: read %s: %w", MetaCollection, err)
		}
		ch := p.reads.DoChan("", func() (any, error) { return p.read(ctx) })
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("catalogue: read %s: %w", MetaCollection, ctx.Err())
		case res := <-ch:
			if res.Err != nil {
				return "", res.Err
			}
			if r := res.Val.(reading); !r.at.Before(t) {
				return r.name, nil
			}
		}
	}
}

// read reads the pointer document and caches what it names. It keeps
// ctx's values but not its end: other requests may be waiting for it.
func (p *pointer) read(ctx context.Context) (reading, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pointerReadTimeout)
	defer cancel()
	at := time.Now()
	m, err := readMeta(ctx, p.db)
	if err != nil {
		return reading{}, err
	}
	p.set(m.Collection, at)
	return reading{m.Collection, at}, nil
}

// set caches name as the live collection, as read (or swapped in) at at,
// unless the cache holds the answer of a later read already.
func (p *pointer) set(name string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if at.Before(p.at) {
		return
	}
	p.name, p.at = name, at
}
