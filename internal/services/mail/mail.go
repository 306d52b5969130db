// Package mail sends email over SMTP for the notifier. A Sender delivers
// messages with github.com/wneessen/go-mail, as multipart/alternative (text
// and HTML) in UTF-8, and sorts every failure into ErrTemporary (retry) or
// ErrPermanent (dead-letter). It keeps a few connections open between
// messages (see maxIdle), so a message costs a NOOP and the transaction
// rather than a connection, a greeting, EHLO, and STARTTLS and AUTH where
// they are used.
//
// A message carries a Message-ID the caller derives from the
// notification's unique key (see Sender.MessageID). A failure that leaves
// it unknown whether the server took the message is reported as temporary,
// so a retry may deliver a second copy with the same Message-ID, which a
// receiver can deduplicate.
//
// The password is never logged and never part of an error.
package mail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// The connections a Sender keeps between messages.
const (
	// maxIdle is how many open connections wait for the next message:
	// enough for a notifier's lanes sending at once (NOTIFIER_LANES, 8 in
	// the Kubernetes manifests).
	maxIdle = 8
	// idleTimeout is how long one may wait before it is closed; a server
	// may close it sooner, which the NOOP before reuse finds.
	idleTimeout = 30 * time.Second
	// maxPerConn is how many messages a connection carries before it is
	// closed, since some servers refuse more per connection.
	maxPerConn = 50
	// quitTimeout bounds the wait for the answer to QUIT, which comes
	// after a Send's message was delivered or on the way to the next.
	quitTimeout = time.Second
)

// Message is one email to send.
type Message struct {
	To      string // one RFC 5322 address, such as "Ada <ada@example.com>"
	Subject string
	Text    string // text/plain body
	HTML    string // text/html body; with Text, the two are alternatives
	// MessageID is the Message-ID, with or without angle brackets, as
	// "left@right" of printable ASCII with no spaces. Empty means a
	// random one.
	MessageID string
	// Headers are extra header fields, such as "X-Eventshop-Event-ID".
	// The fields the Sender writes itself (From, To, Cc, Bcc, Sender,
	// Subject, Date, Message-ID, MIME and Content-* fields) are refused.
	Headers map[string]string
}

// Sender sends messages through one SMTP server. It is safe for concurrent
// use; a Send has a connection to itself, one left open by an earlier Send
// or a new one. Close closes the open ones.
type Sender struct {
	addr        string
	client      *gomail.Client
	from        *netmail.Address
	idDomain    string // right side of generated Message-IDs
	implicitTLS bool
	tlsConfig   *tls.Config
	dialer      net.Dialer
	timeout     time.Duration

	mu     sync.Mutex
	idle   []*conn // the oldest first
	closed bool
}

// New checks cfg and returns a Sender. It does not connect: an unreachable
// server shows up per Send as ErrTemporary.
//
// It fails when Addr is not host:port, From is not an address, TLS is not
// a known mode, a Password comes without a Username, credentials would go
// in plaintext to a host other than loopback, or HelloName is not one word.
func New(cfg Config) (*Sender, error) {
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("mail: SMTP address %q: want host:port", cfg.Addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("mail: SMTP address %q: bad port", cfg.Addr)
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail: From %q: %w", cfg.From, err)
	}
	idDomain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	if !isDotAtom(idDomain) {
		return nil, fmt.Errorf("mail: From %q: domain cannot name a Message-ID", cfg.From)
	}
	mode, err := tlsMode(cfg.TLS, host)
	if err != nil {
		return nil, err
	}
	if cfg.Password != "" && cfg.Username == "" {
		return nil, fmt.Errorf("mail: a password is set but no username")
	}
	if cfg.Username != "" && mode == TLSNone && !isLoopback(host) {
		return nil, fmt.Errorf("mail: refusing to send credentials in plaintext to %s; set TLS to %q or %q",
			host, TLSStartTLS, TLSImplicit)
	}
	if strings.ContainsAny(cfg.HelloName, " \t\r\n") {
		return nil, fmt.Errorf("mail: HelloName %q: must be one word", cfg.HelloName)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	s := &Sender{
		addr:        cfg.Addr,
		from:        from,
		idDomain:    idDomain,
		implicitTLS: mode == TLSImplicit,
		tlsConfig:   tlsConfig(cfg.TLSConfig, host),
		dialer:      net.Dialer{Timeout: timeout},
		timeout:     timeout,
	}
	policy := gomail.NoTLS // TLSImplicit: s.dial does the handshake
	if mode == TLSStartTLS {
		policy = gomail.TLSMandatory
	}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSPolicy(policy),
		gomail.WithTLSConfig(s.tlsConfig),
		gomail.WithDialContextFunc(s.dial),
		// A new connection needs no liveness probe (take probes a kept
		// one), and a transaction ends with its data, so the reset after
		// delivery has no purpose; a failed RSET would even report a
		// delivered message as failed.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
	}
	if cfg.HelloName != "" {
		opts = append(opts, gomail.WithHELO(cfg.HelloName))
	}
	if cfg.Username != "" {
		// PLAIN and not discovery: go-mail's discovery leaves PLAIN out
		// on an implicit TLS connection it did not dial itself. go-mail's
		// PLAIN refuses to run unencrypted except to localhost.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	if s.client, err = gomail.NewClient(host, opts...); err != nil {
		return nil, fmt.Errorf("mail: configure SMTP client: %w", err)
	}
	return s, nil
}

// MessageID returns the Message-ID for key, without angle brackets: the
// first 128 bits of sha256(key) in hex, at the From domain. The same key
// always gives the same id, so a notification retried, or sent again by a
// restarted notifier, carries the id of its first attempt.
func (s *Sender) MessageID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + "@" + s.idDomain
}

// Send delivers m. It returns nil once the server accepted the message;
// otherwise an error wrapping ErrTemporary or ErrPermanent (see there), and
// ctx's error when ctx ended first. ctx ending aborts the exchange at once;
// without a deadline in ctx, Send still gives up on a server that stops
// answering after Config.Timeout per step.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := s.compose(m)
	if err != nil {
		return err
	}
	c, err := s.take(ctx)
	if err != nil {
		return classify(ctx, "connect", err)
	}
	err = s.client.SendWithSMTPClient(c.client, msg)
	if !c.unbind() || err != nil {
		// ctx closed it, or it failed in a state not worth finding out.
		c.close()
	} else {
		s.put(c)
	}
	if err != nil {
		return classify(ctx, "send", err)
	}
	return nil
}

// take returns a connection bound to ctx: the newest kept one that answers
// a NOOP, or else a new one.
func (s *Sender) take(ctx context.Context) (*conn, error) {
	for c := s.pop(); c != nil; c = s.pop() {
		c.bind(ctx)
		err := c.client.UpdateDeadline(s.timeout)
		if err == nil {
			err = c.client.Noop()
		}
		if err == nil {
			return c, nil
		}
		// The server hung up while it waited: nothing was sent on it,
		// so another connection may carry the message.
		c.unbind()
		c.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	c := &conn{ctx: ctx}
	client, err := s.client.DialToSMTPClientWithContext(context.WithValue(ctx, connKey{}, c))
	if err != nil {
		// go-mail leaves the connection open after a failed EHLO,
		// STARTTLS or AUTH.
		c.unbind()
		c.close()
		return nil, err
	}
	c.client, c.ctx = client, nil
	return c, nil
}

// pop takes the newest kept connection, closing those kept too long; nil
// when none is left.
func (s *Sender) pop() *conn {
	s.mu.Lock()
	var expired []*conn
	for len(s.idle) > 0 && time.Since(s.idle[0].since) > idleTimeout {
		expired, s.idle = append(expired, s.idle[0]), s.idle[1:]
	}
	var c *conn
	if n := len(s.idle); n > 0 {
		c, s.idle = s.idle[n-1], s.idle[:n-1]
	}
	s.mu.Unlock()
	for _, e := range expired {
		s.quit(e)
	}
	return c
}

// put keeps c, which just delivered a message, for the next Send, or
// closes it when it has carried maxPerConn, maxIdle are kept already or
// the Sender is closed.
func (s *Sender) put(c *conn) {
	c.sent++
	c.since = time.Now()
	s.mu.Lock()
	keep := !s.closed && c.sent < maxPerConn && len(s.idle) < maxIdle
	if keep {
		s.idle = append(s.idle, c)
	}
	s.mu.Unlock()
	if !keep {
		s.quit(c)
	}
}

// quit says QUIT on c and closes it, waiting at most quitTimeout (or
// Config.Timeout when shorter) for the answer.
func (s *Sender) quit(c *conn) {
	if c.client.UpdateDeadline(min(s.timeout, quitTimeout)) == nil {
		_ = s.client.CloseWithSMTPClient(c.client)
	}
	c.close()
}

// Close closes the connections kept open; a Send after it still works,
// on a connection of its own.
func (s *Sender) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range idle {
		s.quit(c)
	}
	return nil
}

// Ping connects to the server and hangs up, for readiness checks: it
// fails when nothing listens at the address. It speaks no SMTP.
func (s *Sender) Ping(ctx context.Context) error {
	conn, err := s.dialer.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("mail: connect to %s: %w", s.addr, err)
	}
	return conn.Close()
}

// dial connects for go-mail, does the handshake itself in TLSImplicit mode
// (go-mail only does it when it dials), and binds the connection to the
// Send's context.
func (s *Sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := s.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if s.implicitTLS {
		tc := tls.Client(nc, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		c.nc = nc
		c.bind(c.ctx)
	}
	return nc, nil
}

type connKey struct{}

// conn is a connection to the server and go-mail's client on it.
//
// While a Send uses it, it is bound to the Send's context: go-mail honours
// a context only while dialing and then relies on deadlines alone, so the
// binding closes the connection when the context ends, which unblocks
// whatever read or write is in progress. Only the Send's goroutine uses
// it then (dial runs inside the Send's call chain).
type conn struct {
	ctx    context.Context // of the Send dialing it
	nc     net.Conn
	client *smtp.Client
	stop   func() bool // of the binding
	sent   int         // messages delivered on it
	since  time.Time   // when it was last kept
}

func (c *conn) bind(ctx context.Context) {
	nc := c.nc
	c.stop = context.AfterFunc(ctx, func() { _ = nc.Close() })
}

// unbind ends the binding and reports whether the connection is still
// open (the context did not close it).
func (c *conn) unbind() bool {
	if c.stop == nil {
		return true
	}
	stopped := c.stop()
	c.stop = nil
	return stopped
}

func (c *conn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
	}
}
