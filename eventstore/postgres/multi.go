package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventshop/eventshop/eventstore"
)

var _ eventstore.MultiAppender = (*Store)(nil)

// AppendMulti implements eventstore.MultiAppender in one statement
// (appendMultiSQL), so every part commits in one transaction, with one
// round trip and one WAL flush. Conflicts are resolved as Append resolves
// them: a retry of parts already written succeeds with the first results,
// and a concurrent append that took a version makes the statement run
// again, which then reports the stream whose condition no longer holds.
func (s *Store) AppendMulti(ctx context.Context, parts ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	parts, err := eventstore.PrepareAppendMulti(parts, s.now())
	if err != nil {
		return nil, err
	}
	args := appendMultiArgs(parts)
	for attempt := 1; ; attempt++ {
		res, err := s.appendMulti(ctx, parts, args)
		if err == nil {
			s.committed()
			return res, nil
		}
		var pgErr *pgconn.PgError
		wrong := errors.Is(err, eventstore.ErrWrongExpectedVersion)
		if !wrong && (!errors.As(err, &pgErr) || pgErr.Code != "23505") {
			return nil, err
		}
		// A condition or a unique constraint failed: a retry of parts
		// already written, an event id used again, or a concurrent append.
		res, found, reused, werr := s.writtenMulti(ctx, parts)
		switch {
		case werr != nil:
			return nil, fmt.Errorf("append to %s: %w", streams(parts), werr)
		case found:
			return res, nil
		case wrong:
			return nil, err
		case pgErr.ConstraintName == "events_event_id_key" && reused:
			return nil, fmt.Errorf("append to %s: %w", streams(parts), eventstore.ErrDuplicateEventID)
		case attempt == maxAnyAttempts:
			return nil, fmt.Errorf("append to %s: lost the race for the next version %d times: %w", streams(parts), attempt, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// appendMulti runs appendMultiSQL once. Errors: *WrongExpectedVersionError
// for the first part whose condition failed, the database's.
func (s *Store) appendMulti(ctx context.Context, parts []eventstore.StreamAppend, args []any) ([]eventstore.AppendResult, error) {
	rows, err := s.pool.Query(ctx, appendMultiSQL, args...)
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", streams(parts), err)
	}
	defer rows.Close()
	results := make([]eventstore.AppendResult, 0, len(parts))
	var wrong error
	for rows.Next() {
		var before int64
		var version, txID, id *int64
		if err := rows.Scan(&before, &version, &txID, &id); err != nil {
			return nil, fmt.Errorf("append to %s: %w", streams(parts), err)
		}
		k := len(results)
		if version == nil {
			if p := parts[k]; wrong == nil && !p.Expected.Satisfied(before) {
				wrong = &eventstore.WrongExpectedVersionError{Stream: p.Stream, Expected: p.Expected, Actual: before}
			}
			results = append(results, eventstore.AppendResult{})
			continue
		}
		results = append(results, eventstore.AppendResult{Version: *version, Position: eventstore.Position{Commit: uint64(*txID), Prepare: uint64(*id)}})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("append to %s: %w", streams(parts), err)
	}
	if wrong != nil {
		return nil, wrong
	}
	if len(results) != len(parts) {
		return nil, fmt.Errorf("append to %s: %d results for %d parts", streams(parts), len(results), len(parts))
	}
	return results, nil
}

// writtenMulti says whether every part is already written as a retry
// would find it (writtenSQL per part), with the first results; reused
// says some of the event ids exist at all.
func (s *Store) writtenMulti(ctx context.Context, parts []eventstore.StreamAppend) (results []eventstore.AppendResult, found, reused bool, err error) {
	results = make([]eventstore.AppendResult, len(parts))
	found = true
	for k, p := range parts {
		res, ok, r, err := s.written(ctx, p.Stream, p.Expected, eventIDs(p.Events))
		if err != nil {
			return nil, false, false, err
		}
		results[k], found, reused = res, found && ok, reused || r
	}
	return results, found, reused, nil
}

// appendMultiArgs are the parameters of appendMultiSQL.
func appendMultiArgs(parts []eventstore.StreamAppend) []any {
	names := make([]string, len(parts))
	expected := make([]int64, len(parts))
	var part, n, versions []int32
	var ids, types, data, corr, cause, actor []string
	var created []time.Time
	for k, p := range parts {
		names[k], expected[k] = p.Stream, int64(p.Expected)
		for i, e := range p.Events {
			part, n = append(part, int32(k+1)), append(n, int32(i+1))
			ids, types, versions, data = append(ids, e.ID.String()), append(types, e.Type), append(versions, int32(e.SchemaVersion)), append(data, string(e.Data))
			m := e.Metadata
			corr, cause, actor, created = append(corr, m.CorrelationID), append(cause, m.CausationID), append(actor, m.ActorID), append(created, m.Timestamp)
		}
	}
	return []any{names, expected, part, n, ids, types, versions, data, corr, cause, actor, created}
}

// streams names the parts' streams in errors.
func streams(parts []eventstore.StreamAppend) string {
	s := parts[0].Stream
	if len(parts) > 1 {
		s += fmt.Sprintf(" and %d more streams", len(parts)-1)
	}
	return s
}
