package postgres

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/eventshop/eventshop/eventstore"
)

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, dir eventstore.Direction, from int64, count int) ([]eventstore.Event, error) {
	if err := eventstore.ValidateReadStream(stream, dir, from, count); err != nil {
		return nil, err
	}
	q := `SELECT ` + columns + ` FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`
	// A forward read from past the start also reads the event before
	// from: when it is there, the stream exists, and a read that finds
	// nothing new (a cached state catching up) costs one query, not two.
	start, limit, sentinel := from, count, false
	if dir == eventstore.Forwards && from > 0 {
		start, limit, sentinel = from-1, count+1, true
	}
	if dir == eventstore.Backwards {
		q = `SELECT ` + columns + ` FROM events WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3`
		if from == eventstore.StreamEnd {
			start = math.MaxInt64
		}
	}
	events, err := s.query(ctx, limit, q, stream, start, limit)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if sentinel && len(events) > 0 {
		return events[1:], nil // versions have no gaps: the first is from-1
	}
	if len(events) == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1)`, stream).Scan(&exists); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if !exists {
			return nil, eventstore.ErrStreamNotFound
		}
	}
	return events, nil
}

// visibleBelow is the first transaction id that may still be in progress:
// every transaction below it has committed or aborted, so rows below it
// are final and nothing will ever be inserted among them.
const visibleBelow = `(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)`

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, from eventstore.Position, count int) ([]eventstore.Event, error) {
	events, _, err := s.readAll(ctx, from, count)
	return events, err
}

// heldSQL asks whether any event follows a position. It reads the first
// entry of the global order's index after it: written as EXISTS, the
// planner drops the order and, guessing a third of the table matches a
// row comparison, scans the table instead, which is every event when
// nothing follows (the usual answer for a reader that has caught up).
const heldSQL = `SELECT count(*) > 0 FROM (SELECT 1 FROM events WHERE (tx_id, id) > ($1, $2) ORDER BY tx_id, id LIMIT 1) AS next`

// Held reports whether committed events after after exist that ReadAll
// does not return yet, because a transaction that began before theirs is
// still open (in any database of the server: transaction ids are the
// server's). They become readable when it ends.
func (s *Store) Held(ctx context.Context, after eventstore.Position) (bool, error) {
	var held bool
	err := s.pool.QueryRow(ctx, heldSQL, int64(after.Commit), int64(after.Prepare)).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("events after %s: %w", after, err)
	}
	return held, nil
}

// readAllSQL reads a page of the global log after ($1, $2), at most $3
// events every reader may see, and, after them, the first event that
// exists but is held back (its transaction id is not below the oldest
// still in progress), marked by a negated row id. One statement, so that
// a reader that has caught up learns whether to read again soon (see
// Held) without a second round trip; the two parts read one snapshot.
// The page's rows come in order (one part's); where the held event comes
// among them is not promised, and readAll takes it out wherever it is,
// rather than have the server sort every page again. The held part's scan
// starts at the later of ($1, $2) and the oldest transaction in progress,
// in one row comparison: given both bounds, the index scan started at the
// reader's position and walked every committed event behind it, which
// for a reader catching up on a long log was the whole backlog, each page.
const readAllSQL = `(SELECT ` + columns + ` FROM events
		WHERE (tx_id, id) > ($1, $2) AND tx_id < ` + visibleBelow + `
		ORDER BY tx_id, id LIMIT $3)
	UNION ALL
	(SELECT -id, tx_id, event_id, stream_id, version, type, schema_version, data,
		correlation_id, causation_id, actor_id, created_at FROM events
		WHERE (tx_id, id) > (GREATEST($1, ` + visibleBelow + ` - 1),
			CASE WHEN $1 >= ` + visibleBelow + ` THEN $2 ELSE 9223372036854775807 END)
		ORDER BY tx_id, id LIMIT 1)`

// readAll reads the global log after from. held reports that the page came
// back short because events of transactions younger than one still in
// progress exist; they become readable when it ends.
func (s *Store) readAll(ctx context.Context, from eventstore.Position, count int) (events []eventstore.Event, held bool, err error) {
	if err := eventstore.ValidateCount(count); err != nil {
		return nil, false, err
	}
	if from.Commit > math.MaxInt64 || from.Prepare > math.MaxInt64 {
		return nil, false, &eventstore.ValidationError{Field: "position", Reason: "not a position of this store"}
	}
	s.reads.Add(1)
	events, err = s.query(ctx, count+1, readAllSQL, int64(from.Commit), int64(from.Prepare), count)
	if err != nil {
		return nil, false, fmt.Errorf("read all from %s: %w", from, err)
	}
	if i := slices.IndexFunc(events, func(e eventstore.Event) bool { return int64(e.Position.Prepare) < 0 }); i >= 0 {
		events, held = slices.Delete(events, i, i+1), true
	}
	if len(events) < count {
		s.noteHeld(ctx, held && len(events) == 0)
	}
	return events, held && len(events) < count, nil
}

// query runs an event query (selecting columns) and reads its rows.
func (s *Store) query(ctx context.Context, capacity int, sql string, args ...any) ([]eventstore.Event, error) {
	rows, err := s.pool.Query(ctx, sql, append([]any{binaryColumns}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	binary := allBinary(rows.FieldDescriptions())
	// Start small for the common short read; a page that fills that up
	// is likely a full page of catch-up, so grow once to the whole count.
	out := make([]eventstore.Event, 0, min(capacity, 64))
	for rows.Next() {
		if len(out) == cap(out) && cap(out) < capacity {
			out = slices.Grow(out, capacity-len(out))
		}
		var e eventstore.Event
		if binary {
			err = decodeRow(rows.RawValues(), &e)
		} else {
			err = scanRow(rows, &e)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SubscribeAll implements eventstore.Store.
func (s *Store) SubscribeAll(ctx context.Context, from eventstore.Position, filter eventstore.Filter) (*eventstore.Subscription, error) {
	if err := s.listen(); err != nil {
		return nil, err
	}
	return eventstore.NewStoreSubscription(ctx, s.ctx, eventstore.CatchUp(from, filter, 1000, s.poll, s.tail.wake, s.readShared)), nil
}

var _ eventstore.Counter = (*Store)(nil)

// CountAfter implements eventstore.Counter with one query over the global
// order index, reading no event data. It counts every committed event
// after from, also those ReadAll holds back while an older transaction on
// the server is still open: a reader is behind them too.
func (s *Store) CountAfter(ctx context.Context, from eventstore.Position, filter eventstore.Filter, limit int64) (int64, eventstore.Position, error) {
	if limit < 1 {
		return 0, from, &eventstore.ValidationError{Field: "limit", Reason: "must be at least 1"}
	}
	if from.Commit > math.MaxInt64 || from.Prepare > math.MaxInt64 {
		return 0, from, &eventstore.ValidationError{Field: "position", Reason: "not a position of this store"}
	}
	var (
		n    int64
		last []int64
	)
	err := s.pool.QueryRow(ctx, `SELECT count(*), max(ARRAY[tx_id, id]) FROM (
			SELECT tx_id, id FROM events
			WHERE (tx_id, id) > ($1, $2)
				AND (cardinality($3::text[]) = 0 OR stream_id LIKE ANY($3))
				AND (cardinality($4::text[]) = 0 OR type LIKE ANY($4))
			ORDER BY tx_id, id LIMIT $5) AS t`,
		int64(from.Commit), int64(from.Prepare), likePrefixes(filter.StreamPrefixes), likePrefixes(filter.EventTypePrefixes), limit,
	).Scan(&n, &last)
	if err != nil {
		return 0, from, fmt.Errorf("count events after %s: %w", from, err)
	}
	if n == 0 || len(last) != 2 {
		return 0, from, nil
	}
	return n, eventstore.Position{Commit: uint64(last[0]), Prepare: uint64(last[1])}, nil
}

// likePrefixes turns prefixes into LIKE patterns matching what starts
// with them, their own wildcards escaped.
func likePrefixes(prefixes []string) []string {
	out := make([]string, len(prefixes))
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	for i, p := range prefixes {
		out[i] = esc.Replace(p) + "%"
	}
	return out
}
