package smtpsink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Limits of every SMTP connection. A client idle for longer than
// connTimeout is disconnected, so an abandoned connection does not pin a
// goroutine forever.
const (
	maxRecipients = 100
	connTimeout   = time.Minute
)

// listenLocked binds addr and serves on it with a fresh server: a go-smtp
// Server cannot serve again once closed.
func (s *Sink) listenLocked(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("smtpsink: listen on %s: %w", addr, err)
	}
	if s.opts.ImplicitTLS {
		l = tls.NewListener(l, s.opts.TLSConfig)
	}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = maxRecipients
	srv.ReadTimeout, srv.WriteTimeout = connTimeout, connTimeout
	srv.ErrorLog = errorLog{s.log}
	if !s.opts.ImplicitTLS {
		srv.TLSConfig = s.opts.TLSConfig
	}
	// The sink listens on loopback only, so plaintext AUTH gives nothing
	// away, and tests need not set up TLS to exercise credentials.
	srv.AllowInsecureAuth = true

	served := make(chan struct{})
	s.srv, s.lis, s.served = srv, l, served
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil {
			s.log.Error("smtp server stopped", "err", err)
		}
	}()
	return nil
}

// stopLocked closes the server and waits until it accepts no more
// connections. The listener is closed here too: Close on a go-smtp Server
// only closes the listeners its Serve has registered, which may not have
// happened yet.
func (s *Sink) stopLocked() error {
	if s.srv == nil {
		return nil
	}
	_ = s.srv.Close() // only fails when already closed
	err := s.lis.Close()
	<-s.served
	s.srv, s.lis, s.served = nil, nil, nil
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("smtpsink: close listener: %w", err)
	}
	return nil
}

// errorLog adapts slog to the logger go-smtp reports connection errors to.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.log.Warn(fmt.Sprint(v...)) }
