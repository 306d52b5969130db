package mail

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// TLS modes of Config.TLS.
const (
	// TLSNone sends in plaintext, even when the server offers STARTTLS.
	TLSNone = "none"
	// TLSStartTLS upgrades the connection with STARTTLS and fails (as a
	// temporary error) when the server does not offer it: a server that
	// stops offering it may be an attacker stripping it.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte, as on port 465.
	TLSImplicit = "tls"
)

// DefaultTimeout applies when Config.Timeout is zero or negative.
const DefaultTimeout = 10 * time.Second

// Config configures a Sender. Only Addr and From are required.
type Config struct {
	// Addr is the SMTP server as host:port (SMTP_ADDR).
	Addr string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN. New refuses them over TLSNone unless the server is on
	// loopback.
	Username string
	Password string
	// TLS is TLSNone, TLSStartTLS or TLSImplicit. Empty means TLSNone when
	// Addr's host is loopback ("localhost" or a loopback IP, such as the
	// local run's sink, which has no TLS) and TLSStartTLS otherwise, so
	// that mail to a real relay is never sent in the clear by default.
	TLS string
	// TLSConfig optionally adds trusted roots (a private CA) or other
	// settings; it is cloned. ServerName defaults to Addr's host, and
	// MinVersion to TLS 1.2.
	TLSConfig *tls.Config
	// From is the RFC 5322 sender, such as
	// "eventshop <no-reply@eventshop.local>"; its address is also the
	// envelope sender and its domain the right side of Message-IDs.
	From string
	// Timeout bounds connecting (including the TLS handshake) and each
	// SMTP command after it; default DefaultTimeout. A Send to a server
	// that does not answer fails after about Timeout.
	Timeout time.Duration
	// HelloName is the name sent with EHLO; default the host name.
	HelloName string
}

// String formats c with the password redacted, so a logged or printed
// Config does not leak it.
func (c Config) String() string {
	return fmt.Sprintf("mail.Config{Addr:%q Username:%q Password:%s TLS:%q From:%q Timeout:%s HelloName:%q}",
		c.Addr, c.Username, redact(c.Password), c.TLS, c.From, c.Timeout, c.HelloName)
}

// GoString is String, so that %#v redacts the password too.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog log c with the password redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("username", c.Username),
		slog.String("password", redact(c.Password)),
		slog.String("tls", c.TLS),
		slog.String("from", c.From),
		slog.Duration("timeout", c.Timeout),
		slog.String("hello_name", c.HelloName),
	)
}

func redact(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}

// tlsMode returns the effective TLS mode for host.
func tlsMode(mode, host string) (string, error) {
	switch mode {
	case TLSNone, TLSStartTLS, TLSImplicit:
		return mode, nil
	case "":
		if isLoopback(host) {
			return TLSNone, nil
		}
		return TLSStartTLS, nil
	default:
		return "", fmt.Errorf("mail: TLS mode %q: want %q, %q or %q", mode, TLSNone, TLSStartTLS, TLSImplicit)
	}
}

// isLoopback reports whether host names this machine without a lookup.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig returns the TLS settings for host built on base.
func tlsConfig(base *tls.Config, host string) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}
