package mail

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"

	gomail "github.com/wneessen/go-mail"
)

// Every error Send returns wraps exactly one of these; test with errors.Is.
var (
	// ErrTemporary: the message may go through later. The server could not
	// be reached or answered in time, refused with a 4xx reply, dropped
	// the connection, or the context ended. Misconfiguration that the
	// server did not itself refuse with a 5xx (TLS verification, STARTTLS
	// required but not offered) is temporary too: after the fix, a retry
	// delivers, where a dead letter would need a replay.
	ErrTemporary = errors.New("mail: temporary failure")
	// ErrPermanent: retrying cannot help. The server refused with a 5xx
	// reply (unknown mailbox, message too large, authentication failed),
	// or the message was invalid (bad recipient address, Message-ID or
	// header) and no connection was made.
	ErrPermanent = errors.New("mail: permanent failure")
)

// sendError is a failure of Send, classified as temporary or permanent.
type sendError struct {
	class error  // ErrTemporary or ErrPermanent
	op    string // what failed: "compose", "connect" or "send"
	code  int    // the server's reply code, 0 when it did not answer with one
	err   error
}

func (e *sendError) Error() string {
	kind := "temporary"
	if e.class == ErrPermanent {
		kind = "permanent"
	}
	return fmt.Sprintf("mail: %s: %s failure: %v", e.op, kind, e.err)
}

func (e *sendError) Is(target error) bool { return target == e.class }
func (e *sendError) Unwrap() error        { return e.err }

// ReplyCode returns the SMTP reply code with which the server refused the
// message that err is about (such as 451 or 550), or 0 when err does not
// come from a refusal by the server. It is meant for failure records and
// dead-letter headers; decide on retries with errors.Is.
func ReplyCode(err error) int {
	var e *sendError
	if errors.As(err, &e) {
		return e.code
	}
	return 0
}

// invalid is the error for a message Send refuses to send.
func invalid(format string, args ...any) error {
	return &sendError{class: ErrPermanent, op: "compose", err: fmt.Errorf(format, args...)}
}

// classify turns an error of go-mail or of the network into a sendError.
// A 5xx reply, or a message go-mail could not address, is permanent;
// anything else is temporary, including a connection lost after the
// message data was sent but before the server's reply: the message may
// then have been delivered, and a retry may deliver it twice, which is why
// every message carries a Message-ID a receiver can deduplicate on.
func classify(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The connection was closed under the exchange because ctx ended,
		// so err says only "use of closed network connection".
		return &sendError{class: ErrTemporary, op: op, err: fmt.Errorf("%w: %v", ctxErr, err)}
	}
	e := &sendError{class: ErrTemporary, op: op, code: replyCode(err), err: err}
	var se *gomail.SendError
	if e.code >= 500 || errors.As(err, &se) && (se.Reason == gomail.ErrGetSender ||
		se.Reason == gomail.ErrGetRcpts || se.Reason == gomail.ErrNoUnencoded) {
		e.class = ErrPermanent
	}
	return e
}

// replyCode finds the server's reply code in err: go-mail reports
// refusals during the transaction as a *SendError and those during
// EHLO, STARTTLS and AUTH as the *textproto.Error itself.
func replyCode(err error) int {
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
