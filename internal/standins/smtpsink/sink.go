// Package smtpsink is an SMTP server that accepts every message and keeps
// the most recent ones in memory instead of delivering them. It stands in
// for a mail relay in the local run (127.0.0.1:1025) and in tests: a test
// reads what arrived with Messages or waits for it with Wait, and makes the
// server refuse mail with FailNext or SetDown to exercise a sender's
// retries. Handler serves the captured mail as JSON for a developer.
//
// The sink relays nothing and, unless Options.Auth is set, asks for no
// credentials: it must only listen on loopback.
package smtpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Defaults applied by Start to zero (or negative) Options fields.
const (
	DefaultAddr            = "127.0.0.1:0" // a free loopback port; see Sink.Addr
	DefaultMaxMessages     = 1000
	DefaultMaxMessageBytes = 10 << 20
	DefaultMaxTotalBytes   = 256 << 20
)

// ErrClosed is returned by Wait and SetDown once the sink is closed.
var ErrClosed = errors.New("smtpsink: closed")

// Options configures a Sink. The zero value of every field means its
// default.
type Options struct {
	// Addr is the host:port to listen on; default DefaultAddr.
	Addr string
	// MaxMessages is how many messages are kept; when one more arrives the
	// oldest is dropped. Default DefaultMaxMessages.
	MaxMessages int
	// MaxMessageBytes is the largest message accepted; a larger one is
	// refused with 552 and not kept. Default DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// MaxTotalBytes bounds the memory held by kept messages (raw plus
	// decoded bodies); the oldest are dropped to stay under it, though the
	// newest message is always kept. Default DefaultMaxTotalBytes.
	MaxTotalBytes int64
	// TLSConfig, when set, makes the sink offer STARTTLS with it.
	TLSConfig *tls.Config
	// ImplicitTLS makes the sink speak TLS from the first byte, as on port
	// 465, instead of offering STARTTLS. It requires TLSConfig.
	ImplicitTLS bool
	// Auth, when set, makes the sink offer AUTH PLAIN and refuse MAIL FROM
	// with 502 until the client has authenticated. It reports whether the
	// credentials are right; wrong ones are answered with 535.
	Auth func(username, password string) bool
	// Logger receives one line per message kept (id, size and number of
	// recipients, never addresses or bodies) and server errors; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Sink is a running SMTP server and the messages it kept. It is safe for
// concurrent use.
type Sink struct {
	opts Options
	log  *slog.Logger
	addr string // resolved listen address, kept across SetDown

	mu      sync.Mutex
	msgs    []Message // oldest first
	bytes   int64     // sum of size(m) over msgs
	seq     uint64
	changed chan struct{} // closed and replaced whenever msgs changes
	fail    int           // how many more messages to refuse
	failErr smtp.SMTPError
	srv     *smtp.Server // nil while down
	lis     net.Listener
	served  chan struct{} // closed when srv.Serve returned
	closed  bool

	sessions atomic.Int64 // connections served since Start
}

// Start listens on opts.Addr and serves SMTP until Close. The address is
// bound before Start returns, so a client may connect at once.
//
// It fails when the address cannot be bound or ImplicitTLS is set without a
// TLSConfig.
func Start(opts Options) (*Sink, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.MaxMessages <= 0 {
		opts.MaxMessages = DefaultMaxMessages
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxTotalBytes <= 0 {
		opts.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if opts.ImplicitTLS && opts.TLSConfig == nil {
		return nil, errors.New("smtpsink: ImplicitTLS needs a TLSConfig")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Sink{
		opts:    opts,
		log:     log.With("component", "smtpsink"),
		changed: make(chan struct{}),
	}
	if err := s.listenLocked(opts.Addr); err != nil {
		return nil, err
	}
	s.addr = s.lis.Addr().String()
	return s, nil
}

// Addr returns the address the sink listens on, with the port resolved
// when Options.Addr asked for port 0. It stays the same across SetDown.
func (s *Sink) Addr() string { return s.addr }

// Sessions is how many connections the sink has served since Start.
func (s *Sink) Sessions() int64 { return s.sessions.Load() }

// Close stops the server, drops its connections and wakes every Wait. The
// kept messages stay readable. Close is idempotent and returns no error
// other than one from closing the listener.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.changed)
	return s.stopLocked()
}

// SetDown takes the server down or brings it back up. Down, the sink stops
// listening and drops open connections, so a client gets "connection
// refused" as from a crashed relay; up, it listens again on the same
// address. Calling it for the state the sink is already
// in does nothing. A message whose data was accepted before SetDown(true)
// is kept.
//
// It returns ErrClosed after Close, and an error when the address cannot
// be bound again (another process took the port in between).
func (s *Sink) SetDown(down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case down && s.srv != nil:
		return s.stopLocked()
	case !down && s.srv == nil:
		return s.listenLocked(s.addr)
	}
	return nil
}

// FailNext makes the sink refuse the next n messages, answering their
// DATA with code and text, and not keep them. A 4xx code is a temporary
// failure a sender should retry, a 5xx code a permanent one. Each message
// counts once, whatever the connection it came on; a later call replaces
// the count, and n <= 0 clears it.
//
// FailNext panics when code is not in 400..599: that is a bug in the test
// calling it.
func (s *Sink) FailNext(n int, code int, text string) {
	if code < 400 || code > 599 {
		panic(fmt.Sprintf("smtpsink: FailNext code %d is not a 4xx or 5xx reply", code))
	}
	if text == "" {
		text = "Refused by smtpsink.FailNext"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = max(n, 0)
	s.failErr = smtp.SMTPError{
		Code:         code,
		EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0},
		Message:      text,
	}
}

// Reset forgets every kept message. Ids keep counting up, so an id never
// names two messages of one sink.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs, s.bytes = nil, 0
	s.notifyLocked()
}

// Messages returns the kept messages, oldest first. The slice, the
// recipients and the headers are copies; Raw is shared with the sink and
// must not be modified.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

// Wait calls cond with the kept messages (as Messages returns them) now and
// after every change, until cond returns true, and then returns those
// messages. Tests use it instead of polling:
//
//	msgs, err := sink.Wait(ctx, func(m []smtpsink.Message) bool { return len(m) == 2 })
//
// When ctx ends first it returns the last messages seen with ctx's error
// wrapped, so a failing test can show what did arrive; when the sink is
// closed first, ErrClosed.
func (s *Sink) Wait(ctx context.Context, cond func([]Message) bool) ([]Message, error) {
	for {
		s.mu.Lock()
		msgs, changed, closed := s.snapshotLocked(), s.changed, s.closed
		s.mu.Unlock()
		if cond(msgs) {
			return msgs, nil
		}
		if closed {
			return msgs, ErrClosed
		}
		select {
		case <-ctx.Done():
			return msgs, fmt.Errorf("smtpsink: wait for messages: %w", ctx.Err())
		case <-changed:
		}
	}
}

// refuseNext reports the reply for a message that FailNext or Close says
// must be refused, or nil when it may be kept.
func (s *Sink) refuseNext() *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Sink closed"}
	}
	if s.fail > 0 {
		s.fail--
		e := s.failErr
		return &e
	}
	return nil
}

// keep stores m, giving it its id and receipt time, and drops the oldest
// messages beyond the limits.
func (s *Sink) keep(m Message) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	m.ID = strconv.FormatUint(s.seq, 10)
	m.ReceivedAt = time.Now()
	s.msgs = append(s.msgs, m)
	s.bytes += size(m)
	drop := 0
	for len(s.msgs)-drop > s.opts.MaxMessages ||
		(s.bytes > s.opts.MaxTotalBytes && len(s.msgs)-drop > 1) {
		s.bytes -= size(s.msgs[drop])
		drop++
	}
	// slices.Delete zeroes the tail, so dropped messages are freed.
	s.msgs = slices.Delete(s.msgs, 0, drop)
	s.notifyLocked()
	return m
}

func size(m Message) int64 { return int64(len(m.Raw) + len(m.TextBody) + len(m.HTMLBody)) }

// notifyLocked wakes every Wait. After Close the channel is closed for
// good, so there is no one left to wake.
func (s *Sink) notifyLocked() {
	if s.closed {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Sink) snapshotLocked() []Message {
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		m.To = slices.Clone(m.To)
		m.Header = cloneHeader(m.Header)
		out[i] = m
	}
	return out
}
