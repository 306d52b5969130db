// Package ledger records every email the notifier sends, in the
// PostgreSQL schema "notifications", so that one event gives at most one
// email per template even when Kafka delivers it again, the notifier
// crashes between sending and committing its offset, or a rebalance hands
// a partition to another instance mid-message. The same rows serve the
// history of GET /api/notifications.
//
// # Protocol
//
// For each (event, template) the notifier calls Claim and sends only when
// the outcome is Won; then it calls MarkSent, or MarkRetrying or
// MarkFailed when the send failed, with the attempt number Claim returned;
// and only then commits the Kafka offset. ClaimMany and MarkSentMany do
// the same for a batch in one statement each, and Release gives back
// claims of a batch that will not be sent soon.
//
// # Why this gives one email per event
//
// It is exactly once as far as the ledger can see, and at least once with
// a stable Message-ID at the one point it cannot see; the argument, case
// by case:
//
//   - Redelivery. The row's key is event_id ":" template and is UNIQUE,
//     so a message delivered again finds its row: AlreadySent (or
//     AlreadyFailed) means skip and commit the offset.
//   - Concurrent consumers. Claim is one INSERT … ON CONFLICT DO UPDATE …
//     WHERE statement: the unique index serialises racing claims of a key
//     and only a claim that inserts the row, or finds it neither sent nor
//     failed and its lease expired, wins. Another instance that got the
//     partition in a rebalance sees Busy while the first holder's lease is
//     live, unless the first holder's process is gone: under Hold a claim
//     names its process by an advisory lock that process holds on a
//     connection of its own, and a row 'sending' for a holder whose lock
//     is no longer held (killed, its connection closed) is claimable at
//     once.
//   - Fencing. A claim that takes over increments attempts, and MarkSent,
//     MarkRetrying and MarkFailed apply only to a row still 'sending' at
//     the caller's attempt. A holder that stalled past its lease and was
//     taken over cannot overwrite the newer holder's outcome; it learns so
//     from the false result. Release undoes a claim that sent nothing,
//     attempt count included, so the next claim is at the same attempt:
//     a holder never marks a claim it gave back, nor repeats a Release
//     whose outcome it does not know.
//   - Crash after the SMTP send, before MarkSent. Nothing can make this
//     window atomic: SMTP has no idempotent submission, so the server may
//     have accepted the message and the ledger cannot know. The row stays
//     'sending', its lease expires (or, under Hold, its holder's lock
//     goes with the process), and the next delivery of the message sends
//     again. That resend carries the same Message-ID (the caller
//     derives it from the key, and the ledger keeps the first claim's
//     value), which is the deduplication key receiving mail systems use.
//     So the guarantee in this window is at least once with a stable
//     Message-ID, not exactly once; choosing a lease longer than a send
//     takes keeps the window to real crashes. A caller that records a
//     batch's mails sent together widens the window to the batch.
//
// Times are the database's (now()), so the clocks of the notifier
// instances do not matter. Status 'pending' is accepted for rows written
// by other tools but Claim never writes it.
package ledger
