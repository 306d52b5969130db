// Package mail sends email over SMTP for the notifier. A Sender delivers
// one message per connection with github.com/wneessen/go-mail, as
// multipart/alternative (text and HTML) in UTF-8, and sorts every failure
// into ErrTemporary (retry) or ErrPermanent (dead-letter).
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

	gomail "github.com/wneessen/go-mail"
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
// use; each Send uses its own connection.
type Sender struct {
	addr        string
	client      *gomail.Client
	from        *netmail.Address
	idDomain    string // right side of generated Message-IDs
	implicitTLS bool
	tlsConfig   *tls.Config
	dialer      net.Dialer
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
		// Each connection carries one message and is then closed, so
		// neither the liveness probe nor the reset after delivery has a
		// purpose; a failed RSET would even report a delivered message
		// as failed.
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

// Send delivers m over a new connection and closes it. It returns nil once
// the server accepted the message; otherwise an error wrapping ErrTemporary
// or ErrPermanent (see there), and ctx's error when ctx ended first. ctx
// ending aborts the exchange at once; without a deadline in ctx, Send
// still gives up on a server that stops answering after Config.Timeout per
// step.
func (s *Sender) Send(ctx context.Context, m Message) error {
	msg, err := s.compose(m)
	if err != nil {
		return err
	}
	guard := &connGuard{ctx: ctx}
	defer guard.close()
	client, err := s.client.DialToSMTPClientWithContext(context.WithValue(ctx, guardKey{}, guard))
	if err != nil {
		return classify(ctx, "connect", err)
	}
	if err := s.client.SendWithSMTPClient(client, msg); err != nil {
		return classify(ctx, "send", err)
	}
	// The server has taken the message; a failed QUIT cannot undo that,
	// so its error is of no use to the caller.
	_ = s.client.CloseWithSMTPClient(client)
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
// (go-mail only does it when it dials), and hands the connection to the
// Send's connGuard.
func (s *Sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := s.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if s.implicitTLS {
		tc := tls.Client(conn, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	if g, ok := ctx.Value(guardKey{}).(*connGuard); ok {
		g.watch(conn)
	}
	return conn, nil
}

type guardKey struct{}

// connGuard ties a Send's connection to the Send's context. go-mail honours
// the context only while dialing and then relies on deadlines alone, so
// the guard closes the connection when the context ends, which unblocks
// whatever read or write is in progress. It also closes the connection
// when Send returns, which go-mail does not do after a failed EHLO, STARTTLS
// or AUTH.
//
// watch runs in go-mail's dial, inside Send's call chain, so the guard's
// fields are only used by the Send's goroutine.
type connGuard struct {
	ctx  context.Context
	conn net.Conn
	stop func() bool
}

func (g *connGuard) watch(conn net.Conn) {
	g.conn = conn
	g.stop = context.AfterFunc(g.ctx, func() { _ = conn.Close() })
}

func (g *connGuard) close() {
	if g.conn == nil {
		return
	}
	g.stop()
	_ = g.conn.Close() // usually already closed by QUIT
}
