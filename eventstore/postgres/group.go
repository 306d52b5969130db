package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

// Group commit. Every append statement is a transaction of its own, and
// each costs a round trip, a parse and plan, a commit and a WAL flush.
// While a store already has its slots' worth of append statements in
// flight, a new append waits in a queue instead of starting another; the
// slot that frees next takes the queued appends into one statement
// (appendGroupSQL), so they share one transaction and one flush. An
// append that finds a slot free runs at once on its own, so a lone
// client waits for nobody and a busy store trades many small commits for
// a few larger ones. A slot that has just committed a group waits a
// moment for its members' next appends (gather).
//
// Each append in a group keeps its own condition: one whose expected
// version does not hold inserts nothing and does not stop the others. It
// then runs again on its own, which reports the conflict (or finds it is
// a retry of events already written) exactly as without a group. A
// statement that fails as a whole (a unique constraint, when a
// concurrent append from another process took a version, or a retry
// brought back an event id; a lost connection) sends every member of the
// group to run on its own, as if there had been no group. A group holds
// one append per stream, so its own members never collide.

// Group limits: members, events and bytes of event data of one
// statement (as much as one append may hold; a single member may take
// all of it), and the longest a slot waits for the members of its last
// group to come back (gather).
const (
	maxGroupMembers = 64
	maxGroupEvents  = eventstore.MaxAppendEvents
	maxGroupBytes   = eventstore.MaxAppendBytes
	maxGather       = time.Millisecond
)

// DefaultGroupSlots is how many append statements a store has in flight
// before further appends wait to share one. Two keep a large append from
// holding up every other, and leave the groups large.
const DefaultGroupSlots = 2

// grouper queues appends for shared statements.
type grouper struct {
	store *Store
	slots int // statements in flight before appends queue; 0: never

	mu     sync.Mutex
	busy   int // slots taken
	closed bool
	queue  []*member
	more   chan struct{} // an append was queued (gather)

	grouped atomic.Int64 // appends committed in a statement with others
}

// member is one queued append: its parts (one stream for Append, several
// for AppendMulti, all or nothing) and, once its group ran, the results.
type member struct {
	ctx    context.Context
	parts  []eventstore.StreamAppend
	events int // its events, and bytes of their data
	bytes  int
	done   chan struct{} // closed when res is set, or the member must run alone
	res    []eventstore.AppendResult
}

// run appends parts in a shared statement when the store's slots are
// taken, and with alone otherwise (or when the group could not commit
// them).
func (g *grouper) run(ctx context.Context, parts []eventstore.StreamAppend, alone func() ([]eventstore.AppendResult, error)) ([]eventstore.AppendResult, error) {
	g.mu.Lock()
	if g.slots <= 0 || g.closed {
		g.mu.Unlock()
		return alone()
	}
	if g.busy < g.slots && len(g.queue) == 0 {
		g.busy++
		g.mu.Unlock()
		defer g.leave()
		return alone()
	}
	m := &member{ctx: ctx, parts: parts, done: make(chan struct{})}
	for _, p := range parts {
		m.events += len(p.Events)
		for _, e := range p.Events {
			m.bytes += len(e.Data)
		}
	}
	g.queue = append(g.queue, m)
	g.mu.Unlock()
	select {
	case g.more <- struct{}{}:
	default:
	}
	select {
	case <-m.done:
	case <-ctx.Done():
		if !g.withdraw(m) {
			// Taken into a statement already: its outcome is as
			// unknown as that of a statement cancelled in flight,
			// unless it is in.
			select {
			case <-m.done:
				if m.res != nil {
					return m.res, nil
				}
			default:
			}
		}
		return nil, fmt.Errorf("append to %s: %w", streams(parts), ctx.Err())
	}
	if m.res != nil {
		return m.res, nil
	}
	return alone()
}

// leave gives back a slot, or hands it to the queued appends: a
// goroutine then runs their statements while any are queued.
func (g *grouper) leave() {
	g.mu.Lock()
	batch := g.take()
	if batch == nil {
		g.busy--
		g.mu.Unlock()
		return
	}
	g.store.wg.Add(1) // before Close waits: Close sets closed under mu first
	g.mu.Unlock()
	go func() {
		defer g.store.wg.Done()
		for batch != nil {
			start := time.Now()
			g.commit(batch)
			took := time.Since(start)
			g.mu.Lock()
			g.gather(len(batch), min(took/2, maxGather))
			batch = g.take()
			if batch == nil {
				g.busy--
			}
			g.mu.Unlock()
		}
	}()
}

// take removes the next group from the queue: the oldest appends, one per
// stream, within the group limits (a later append that does not fit
// waits for the next group). Once the store is closing, it sends
// every queued append to run alone instead, on a pool about to close. It
// needs g.mu.
func (g *grouper) take() []*member {
	if g.closed {
		for _, m := range g.queue {
			close(m.done)
		}
		g.queue = nil
		return nil
	}
	if len(g.queue) == 0 {
		return nil
	}
	var batch, rest []*member
	seen := make(map[string]bool)
	events, bytes := 0, 0
	for _, m := range g.queue {
		full := len(batch) == maxGroupMembers || events+m.events > maxGroupEvents || bytes+m.bytes > maxGroupBytes
		if len(batch) > 0 && (full || clash(seen, m.parts)) {
			rest = append(rest, m)
			continue
		}
		for _, p := range m.parts {
			seen[p.Stream] = true
		}
		batch, events, bytes = append(batch, m), events+m.events, bytes+m.bytes
	}
	g.queue = rest
	return batch
}

// clash says whether parts touch a stream in seen.
func clash(seen map[string]bool, parts []eventstore.StreamAppend) bool {
	for _, p := range parts {
		if seen[p.Stream] {
			return true
		}
	}
	return false
}

// gather waits, up to wait, until want appends are queued. It needs g.mu
// and lets go of it while it waits. The members of a group just committed
// tend to come back with their next appends a moment later: a slot that
// took whatever was queued at once would split them into a group of the
// few that were quick and one of the rest, twice the statements. Waiting
// at most half the last statement's time for as many as it carried keeps
// them together; a lone append never waits (want < 2).
func (g *grouper) gather(want int, wait time.Duration) {
	if want < 2 {
		return
	}
	deadline := time.Now().Add(wait)
	for len(g.queue) < want && !g.closed {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		g.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-g.more:
		case <-t.C:
		}
		t.Stop()
		g.mu.Lock()
	}
}

// withdraw takes m out of the queue if it is still there, and says so.
func (g *grouper) withdraw(m *member) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, q := range g.queue {
		if q == m {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return true
		}
	}
	return false
}

// close makes every later append run alone, and the queued ones too.
func (g *grouper) close() {
	g.mu.Lock()
	g.closed = true
	g.take()
	g.mu.Unlock()
	select {
	case g.more <- struct{}{}:
	default:
	}
}

// commit runs batch's statement and hands each member its results, or
// nil to run alone. The statement is cancelled only when every member
// has given up, or the store closes.
func (g *grouper) commit(batch []*member) {
	s := g.store
	ctx, cancel := context.WithCancel(s.ctx)
	var left atomic.Int32
	left.Store(int32(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, m := range batch {
		stops[i] = context.AfterFunc(m.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	members := make([][]eventstore.StreamAppend, len(batch))
	for i, m := range batch {
		members[i] = m.parts
	}
	results, err := s.appendGroup(ctx, members)
	for _, stop := range stops {
		stop()
	}
	cancel()
	if err == nil {
		s.committed()
		n := 0
		for i, m := range batch {
			if m.res = results[i]; m.res != nil {
				n++
			}
		}
		if len(batch) > 1 {
			g.grouped.Add(int64(n))
		}
	}
	for _, m := range batch {
		close(m.done)
	}
}

// partResult is one part's row of appendGroupSQL: the stream's version
// before the statement, and its result when its events were inserted.
type partResult struct {
	before   int64
	inserted bool
	res      eventstore.AppendResult
}

// appendGroup runs appendGroupSQL once for members, each a list of parts
// that commit all or none. It returns each member's results, nil for a
// member whose conditions did not all hold. Errors: the database's; then
// nothing was inserted.
func (s *Store) appendGroup(ctx context.Context, members [][]eventstore.StreamAppend) ([][]eventstore.AppendResult, error) {
	rows, err := s.runGroup(ctx, members)
	if err != nil {
		return nil, err
	}
	out := make([][]eventstore.AppendResult, len(members))
	for i, parts := range members {
		mine := rows[:len(parts)]
		rows = rows[len(parts):]
		if !mine[0].inserted {
			continue // a member's parts are inserted all or none
		}
		out[i] = make([]eventstore.AppendResult, len(mine))
		for j, r := range mine {
			out[i][j] = r.res
		}
	}
	return out, nil
}

// runGroup runs appendGroupSQL once and returns a row per part, in order.
func (s *Store) runGroup(ctx context.Context, members [][]eventstore.StreamAppend) ([]partResult, error) {
	n := 0
	for _, parts := range members {
		n += len(parts)
	}
	rows, err := s.pool.Query(ctx, appendGroupSQL, groupArgs(members)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]partResult, 0, n)
	for rows.Next() {
		var r partResult
		var version, txID, id *int64
		if err := rows.Scan(&r.before, &version, &txID, &id); err != nil {
			return nil, err
		}
		if version != nil {
			r.inserted = true
			r.res = lastRow(version, txID, id)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("%d results for %d parts", len(out), n)
	}
	return out, nil
}

// groupArgs are the parameters of appendGroupSQL: members are numbered
// from 1, and so are the parts across all of them.
func groupArgs(members [][]eventstore.StreamAppend) []any {
	var names []string
	var expected []int64
	var owner, part, n, versions []int32
	var ids, types, data, corr, cause, actor []string
	var created []time.Time
	for g, parts := range members {
		for _, p := range parts {
			names, expected, owner = append(names, p.Stream), append(expected, int64(p.Expected)), append(owner, int32(g+1))
			k := int32(len(names))
			for i, e := range p.Events {
				part, n = append(part, k), append(n, int32(i+1))
				ids, types, versions, data = append(ids, e.ID.String()), append(types, e.Type), append(versions, int32(e.SchemaVersion)), append(data, string(e.Data))
				m := e.Metadata
				corr, cause, actor, created = append(corr, m.CorrelationID), append(cause, m.CausationID), append(actor, m.ActorID), append(created, m.Timestamp)
			}
		}
	}
	return []any{names, expected, owner, part, n, ids, types, versions, data, corr, cause, actor, created}
}
