package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

const from = "eventshop <no-reply@eventshop.local>"

// startSink runs an SMTP sink on a free loopback port for the test.
func startSink(t *testing.T, opts smtpsink.Options) *smtpsink.Sink {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	s, err := smtpsink.Start(opts)
	if err != nil {
		t.Fatalf("start sink: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newSender returns a Sender for cfg with From and a short Timeout filled
// in when unset.
func newSender(t *testing.T, cfg mail.Config) *mail.Sender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = from
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	s, err := mail.New(cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	return s
}

// waitFor waits until the sink holds n messages.
func waitFor(t *testing.T, s *smtpsink.Sink, n int) []smtpsink.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := s.Wait(ctx, func(m []smtpsink.Message) bool { return len(m) >= n })
	if err != nil {
		t.Fatalf("wait for %d messages: %v (have %d)", n, err, len(msgs))
	}
	return msgs
}

// silentServer accepts TCP connections and never says a word, like a
// relay that hangs. It returns its address and a channel that receives
// once per connection accepted.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done, acc := make(chan struct{}), make(chan struct{}, 100)
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			acc <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String(), acc
}

// testTLS returns a server config with a fresh self-signed certificate for
// 127.0.0.1 and localhost, and a client config that trusts only it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "smtpsink test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{RootCAs: roots}
}
