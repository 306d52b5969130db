package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

const password = "pa55-Wörd-do-not-leak"

func checkCredentials(u, p string) bool { return u == "shop" && p == password }

func TestTLSModes(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, c := range []struct {
		mode        string
		sink        smtpsink.Options
		wantTLS     bool
		wantFailure bool
	}{
		{mail.TLSStartTLS, smtpsink.Options{TLSConfig: serverTLS, Auth: checkCredentials}, true, false},
		{mail.TLSImplicit, smtpsink.Options{TLSConfig: serverTLS, ImplicitTLS: true, Auth: checkCredentials}, true, false},
		{mail.TLSNone, smtpsink.Options{TLSConfig: serverTLS, Auth: checkCredentials}, false, false},
		// A server not offering STARTTLS when it is required: maybe an
		// attacker stripped it. Nothing is sent.
		{mail.TLSStartTLS, smtpsink.Options{Auth: checkCredentials}, false, true},
	} {
		t.Run(fmt.Sprintf("%s/server TLS %v", c.mode, c.sink.TLSConfig != nil), func(t *testing.T) {
			sink := startSink(t, c.sink)
			s := newSender(t, mail.Config{
				Addr: sink.Addr(), TLS: c.mode, TLSConfig: clientTLS,
				Username: "shop", Password: password,
			})
			err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi"})
			if c.wantFailure {
				if !errors.Is(err, mail.ErrTemporary) {
					t.Errorf("Send: %v, want ErrTemporary", err)
				}
				if n := len(sink.Messages()); n != 0 {
					t.Errorf("sink got %d messages", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if m := waitFor(t, sink, 1)[0]; m.TLS != c.wantTLS {
				t.Errorf("message came with TLS=%v, want %v", m.TLS, c.wantTLS)
			}
		})
	}
}

func TestUntrustedCertificateIsRefused(t *testing.T) {
	serverTLS, _ := testTLS(t)
	sink := startSink(t, smtpsink.Options{TLSConfig: serverTLS})
	s := newSender(t, mail.Config{Addr: sink.Addr(), TLS: mail.TLSStartTLS}) // system roots only
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Text: "hi"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Send with an untrusted certificate: %v, want a certificate error", err)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink got %d messages", n)
	}
}

func TestWrongPasswordIsPermanentAndNeverShown(t *testing.T) {
	sink := startSink(t, smtpsink.Options{Auth: func(string, string) bool { return false }})
	cfg := mail.Config{Addr: sink.Addr(), From: from, Username: "shop", Password: password}
	s := newSender(t, cfg)
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Text: "hi"})
	if !errors.Is(err, mail.ErrPermanent) || mail.ReplyCode(err) != 535 {
		t.Fatalf("Send with a wrong password: %v, want ErrPermanent with 535", err)
	}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	for name, text := range map[string]string{
		"error": err.Error(), "%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg),
		"%#v": fmt.Sprintf("%#v", cfg), "slog": logged.String(),
	} {
		if strings.Contains(text, password) {
			t.Errorf("%s shows the password: %s", name, text)
		}
	}
	if !strings.Contains(logged.String(), `"username":"shop"`) {
		t.Errorf("slog output lost the other fields: %s", logged.String())
	}
}
