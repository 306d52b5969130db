package mail_test

import (
	"testing"

	"github.com/eventshop/eventshop/internal/services/mail"
)

func TestNewRefusesBadConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  mail.Config
	}{
		{"no address", mail.Config{From: from}},
		{"no port", mail.Config{Addr: "smtp.example.com", From: from}},
		{"bad port", mail.Config{Addr: "smtp.example.com:smtp", From: from}},
		{"port out of range", mail.Config{Addr: "smtp.example.com:70000", From: from}},
		{"no host", mail.Config{Addr: ":25", From: from}},
		{"no From", mail.Config{Addr: "127.0.0.1:1025"}},
		{"bad From", mail.Config{Addr: "127.0.0.1:1025", From: "eventshop"}},
		{"From domain literal", mail.Config{Addr: "127.0.0.1:1025", From: "a@[127.0.0.1]"}},
		{"unknown TLS mode", mail.Config{Addr: "127.0.0.1:1025", From: from, TLS: "ssl"}},
		{"password without username", mail.Config{Addr: "127.0.0.1:1025", From: from, Password: "x"}},
		{"credentials in plaintext to a remote host", mail.Config{
			Addr: "smtp.example.com:587", From: from, TLS: mail.TLSNone, Username: "u", Password: "p"}},
		{"HelloName with a line break", mail.Config{Addr: "127.0.0.1:1025", From: from, HelloName: "a\r\nMAIL FROM:<x>"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := mail.New(c.cfg); err == nil {
				t.Errorf("New(%v) accepted it", c.cfg)
			}
		})
	}
}

func TestNewAcceptsCredentialsOverTLSOrLoopback(t *testing.T) {
	for _, cfg := range []mail.Config{
		{Addr: "smtp.example.com:587", From: from, Username: "u", Password: "p"}, // default: STARTTLS
		{Addr: "smtp.example.com:465", From: from, TLS: mail.TLSImplicit, Username: "u", Password: "p"},
		{Addr: "localhost:1025", From: from, TLS: mail.TLSNone, Username: "u", Password: "p"},
	} {
		if _, err := mail.New(cfg); err != nil {
			t.Errorf("New(%v): %v", cfg, err)
		}
	}
}
