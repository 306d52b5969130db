package commands

import (
	"sync"

	"github.com/eventshop/eventshop/eventstore"
)

// cached is a folded state kept between commands.
type cached struct {
	state   any
	pos     eventstore.Position
	version int64
	snapped int64 // the version of the stream's newest snapshot known, -1 for none
}

// stateCache keeps folded states so a command reads only the events after
// them. It is bounded; when full, an arbitrary entry goes. A cached state
// is only a starting point: load always reads what came after it.
type stateCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cached
}

func newStateCache(max int) *stateCache { return &stateCache{max: max, m: map[string]cached{}} }

func (c *stateCache) get(stream string) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[stream]
	return e, ok
}

// put keeps e unless the cache holds a newer state of the stream. With
// every > 0 it reports whether e is due for a snapshot: every events or
// more past the newest snapshot known of the stream, which it then counts
// as taken.
func (c *stateCache) put(stream string, e cached, every int64) (snapshotDue bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[stream]
	if ok && old.version > e.version {
		return false
	}
	if ok {
		e.snapped = max(e.snapped, old.snapped)
	} else if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	if every > 0 && e.version-e.snapped >= every {
		e.snapped, snapshotDue = e.version, true
	}
	c.m[stream] = e
	return snapshotDue
}

func (c *stateCache) drop(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, stream)
}

// keyedMutex serialises work per key within this process.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{m: map[string]*keyLock{}} }

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
