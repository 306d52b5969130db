package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventshop/eventshop/eventstore"
)

var _ eventstore.MultiAppender = (*Store)(nil)

// AppendMulti implements eventstore.MultiAppender in one statement
// (appendGroupSQL), so every part commits in one transaction, with one
// round trip and one WAL flush, and it may share that statement with
// other appends (group.go). Conflicts are resolved as Append resolves
// them: a retry of parts already written succeeds with the first results,
// and a concurrent append that took a version makes the statement run
// again, which then reports the stream whose condition no longer holds.
func (s *Store) AppendMulti(ctx context.Context, parts ...eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	parts, err := eventstore.PrepareAppendMulti(parts, s.now())
	if err != nil {
		return nil, err
	}
	return s.group.run(ctx, parts, func() ([]eventstore.AppendResult, error) { return s.appendMultiAlone(ctx, parts) })
}

// appendMultiAlone is AppendMulti in a statement of its own.
func (s *Store) appendMultiAlone(ctx context.Context, parts []eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.appendMulti(ctx, parts)
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

// appendMulti runs appendGroupSQL once with parts as its one member.
// Errors: *WrongExpectedVersionError for the first part whose condition
// failed, the database's.
func (s *Store) appendMulti(ctx context.Context, parts []eventstore.StreamAppend) ([]eventstore.AppendResult, error) {
	rows, err := s.runGroup(ctx, [][]eventstore.StreamAppend{parts})
	if err != nil {
		return nil, fmt.Errorf("append to %s: %w", streams(parts), err)
	}
	results := make([]eventstore.AppendResult, len(parts))
	missing := false
	for k, r := range rows {
		if p := parts[k]; !p.Expected.Satisfied(r.before) {
			return nil, &eventstore.WrongExpectedVersionError{Stream: p.Stream, Expected: p.Expected, Actual: r.before}
		}
		results[k], missing = r.res, missing || !r.inserted
	}
	if missing {
		return nil, fmt.Errorf("append to %s: nothing inserted, yet every condition held", streams(parts))
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

// streams names the parts' streams in errors.
func streams(parts []eventstore.StreamAppend) string {
	s := parts[0].Stream
	if len(parts) > 1 {
		s += fmt.Sprintf(" and %d more streams", len(parts)-1)
	}
	return s
}
