package smtpsink_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

// start runs a sink on a free loopback port for the test's duration.
func start(t *testing.T, opts smtpsink.Options) *smtpsink.Sink {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	s, err := smtpsink.Start(opts)
	if err != nil {
		t.Fatalf("start sink: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close sink: %v", err)
		}
	})
	return s
}

// send delivers raw (written with "\n" line ends) to addr as from → to
// over one SMTP connection, authenticating with auth when it is not nil.
// A refusal by the server comes back as *smtp.SMTPError.
func send(addr string, auth sasl.Client, from string, to []string, raw string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(crlf(raw))); err != nil {
		return err
	}
	return c.Quit()
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// mustSend is send that fails the test on an error.
func mustSend(t *testing.T, s *smtpsink.Sink, to string, raw string) {
	t.Helper()
	if err := send(s.Addr(), nil, "shop@example.com", []string{to}, raw); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// waitFor waits until the sink holds n messages.
func waitFor(t *testing.T, s *smtpsink.Sink, n int) []smtpsink.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := s.Wait(ctx, func(m []smtpsink.Message) bool { return len(m) >= n })
	if err != nil {
		t.Fatalf("wait for %d messages: %v (have %d)", n, err, len(msgs))
	}
	return msgs
}

// replyCode is the code of an SMTP refusal, or 0 for any other error.
func replyCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func simple(subject, body string) string {
	return "From: shop@example.com\nTo: ada@example.com\nSubject: " + subject + "\n\n" + body + "\n"
}
