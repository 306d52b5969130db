package ledger

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// RequeuedPrefix starts the last error of a row Requeue reset; the error
// the row failed with follows it.
const RequeuedPrefix = "requeued after failing: "

// requeueSQL resets the failed rows of event $1 and counts its other rows
// that are not final, in one statement. The count reads the snapshot the
// statement started with, in which the rows being reset are still
// 'failed', so they are not counted. Rows in status 'retrying' at attempt
// 0 are not counted either: only Requeue and Release (a first claim given
// back) write that state, so no attempt is in flight on them; they
// wait for a message to claim them, and counting them would make a caller
// wait for a message it has not published yet (a replay interrupted
// between requeueing and publishing, or a second dead letter of the
// event).
//
// Two Requeues racing on a row both try to update it; the second waits for
// the first's row lock and then re-checks status = 'failed' on the row
// as committed, finds it 'retrying' and leaves it, so a row is reset (and
// counted) once.
const requeueSQL = `WITH reset AS (
		UPDATE notifications.ledger SET status = 'retrying', attempts = 0, lease_until = now(),
			last_error = $2 || last_error, updated_at = now()
		WHERE event_id = $1 AND status = 'failed'
		RETURNING id)
	SELECT (SELECT count(*) FROM reset),
		(SELECT count(*) FROM notifications.ledger
			WHERE event_id = $1 AND status IN ('pending', 'sending', 'retrying')
				AND NOT (status = 'retrying' AND attempts = 0))`

// Requeue makes the failed notifications of event eventID claimable
// again, so that the event delivered to the notifier once more is mailed:
// every row of the event in status 'failed' becomes 'retrying' at attempt
// 0 with its lease run out, and its last error is kept after
// RequeuedPrefix. The next Claim of such a row wins at attempt 1 and has
// the notifier's full count of attempts. Rows that were sent are never
// touched, so requeueing an event again, or delivering it again, does not
// mail it twice.
//
// It reports how many rows it reset, and how many other rows of the event
// are not final (pending, sending, or retrying after a failed attempt):
// an attempt may be in flight on those, and one that ends in failure is
// marked failed only after the notifier wrote its dead letter, so a
// caller replaying that dead letter waits for them to settle and calls
// Requeue again. An event with no rows gives 0, 0. It is one statement,
// safe to call concurrently. Errors: the database's.
//
// Attempt numbers start again at 1, so the fence of MarkSent and the
// others cannot tell the new holder from one that held the row at
// attempt 1 before it failed, was taken over, and is somehow still
// running after the requeue and the next claim; that holder has outlived
// its lease by far, the case package ledger already leaves at least once.
func (l *Ledger) Requeue(ctx context.Context, eventID uuid.UUID) (requeued, unsettled int, err error) {
	if err := l.pool.QueryRow(ctx, requeueSQL, eventID, RequeuedPrefix).Scan(&requeued, &unsettled); err != nil {
		return 0, 0, fmt.Errorf("ledger: requeue event %s: %w", eventID, err)
	}
	return requeued, unsettled, nil
}
