package mail_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

func TestSentMailArrivesIntact(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()}) // TLS defaults to none on loopback
	id := s.MessageID("order.created/0190a1b2")
	text := "Grüße — 12,50 €\nZeile zwei, mit einer sehr langen Zeile, die über sechsundsiebzig Zeichen hinausgeht, damit quoted-printable sie umbrechen muss.\n"
	html := "<p>Grüße — <b>12,50 €</b></p>"
	before := time.Now().Add(-time.Second) // Date has whole seconds
	err := s.Send(context.Background(), mail.Message{
		To:        "Jürgen Groß <ada@example.com>",
		Subject:   "Bestellung bestätigt — 12,50 €",
		Text:      text,
		HTML:      html,
		MessageID: id,
		Headers:   map[string]string{"X-Eventshop-Event-ID": "evt-1"},
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := waitFor(t, sink, 1)[0]
	if m.From != "no-reply@eventshop.local" || len(m.To) != 1 || m.To[0] != "ada@example.com" {
		t.Errorf("envelope %q → %q", m.From, m.To)
	}
	if got := m.Header.Get("From"); got != `"eventshop" <no-reply@eventshop.local>` {
		t.Errorf("From header %q", got)
	}
	if to, err := netmail.ParseAddress(m.Header.Get("To")); err != nil || to.Name != "Jürgen Groß" || to.Address != "ada@example.com" {
		t.Errorf("To header %q: %v", m.Header.Get("To"), err)
	}
	if m.Subject != "Bestellung bestätigt — 12,50 €" {
		t.Errorf("Subject %q", m.Subject)
	}
	if m.MessageID != id {
		t.Errorf("Message-ID %q, want %q", m.MessageID, id)
	}
	if m.TextBody != text {
		t.Errorf("text body %q, want %q", m.TextBody, text)
	}
	if m.HTMLBody != html {
		t.Errorf("HTML body %q, want %q", m.HTMLBody, html)
	}
	if got := m.Header.Get("X-Eventshop-Event-ID"); got != "evt-1" {
		t.Errorf("X-Eventshop-Event-ID %q", got)
	}
	if mt, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); mt != "multipart/alternative" {
		t.Errorf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	if m.Date.Before(before) || m.Date.After(time.Now()) {
		t.Errorf("Date %v is not the time of sending", m.Date)
	}
	for _, line := range strings.Split(string(m.Raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("raw message has a %d-byte line", len(line))
		}
	}
	if strings.Contains(string(m.Raw), "go-mail") {
		t.Error("message advertises the mail library")
	}
}

func TestSingleBodyMessages(t *testing.T) {
	for _, c := range []struct {
		name, text, html, mediaType string
	}{
		{"text only", "just text", "", "text/plain"},
		{"HTML only", "", "<p>just html</p>", "text/html"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			s := newSender(t, mail.Config{Addr: sink.Addr()})
			if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Subject: c.name, Text: c.text, HTML: c.html}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			m := waitFor(t, sink, 1)[0]
			if mt, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); mt != c.mediaType {
				t.Errorf("Content-Type %q, want %s", m.Header.Get("Content-Type"), c.mediaType)
			}
			// A single-part body runs to the end of the message, whose last
			// line ends in CRLF.
			if strings.TrimSuffix(m.TextBody, "\n") != c.text || strings.TrimSuffix(m.HTMLBody, "\n") != c.html {
				t.Errorf("bodies %q, %q", m.TextBody, m.HTMLBody)
			}
			if !strings.HasSuffix(m.MessageID, "@eventshop.local") {
				t.Errorf("generated Message-ID %q is not at the From domain", m.MessageID)
			}
		})
	}
}

func TestServerDownIsTemporaryAndRetrySucceeds(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr(), Timeout: 2 * time.Second})
	if err := sink.SetDown(true); err != nil {
		t.Fatal(err)
	}
	msg := mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi", MessageID: s.MessageID("k1")}
	startAt := time.Now()
	err := s.Send(context.Background(), msg)
	if !errors.Is(err, mail.ErrTemporary) || errors.Is(err, mail.ErrPermanent) {
		t.Fatalf("Send while down: %v, want only ErrTemporary", err)
	}
	if took := time.Since(startAt); took > 2*time.Second {
		t.Errorf("refused connection took %v to report", took)
	}
	if err := sink.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatalf("retry after up: %v", err)
	}
	if msgs := waitFor(t, sink, 1); len(msgs) != 1 || msgs[0].MessageID != msg.MessageID {
		t.Errorf("got %d messages after the retry", len(msgs))
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr, _ := silentServer(t)
	s := newSender(t, mail.Config{Addr: addr, Timeout: timeout})
	startAt := time.Now()
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Text: "hi"})
	took := time.Since(startAt)
	if !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Send to a silent server: %v, want ErrTemporary", err)
	}
	if took < timeout || took > 10*timeout {
		t.Errorf("gave up after %v, want about the %v timeout", took, timeout)
	}
}

func TestContextEndAbortsSend(t *testing.T) {
	addr, accepted := silentServer(t)
	s := newSender(t, mail.Config{Addr: addr, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, mail.Message{To: "ada@example.com", Text: "hi"}) }()
	// Cancel once Send is connected and waiting for the greeting, which
	// go-mail would wait for until its one-minute deadline.
	select {
	case <-accepted:
	case err := <-done:
		t.Fatalf("Send returned before connecting: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, mail.ErrTemporary) {
			t.Errorf("Send with a cancelled context: %v, want context.Canceled and ErrTemporary", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send ignored the cancelled context and waited for the one-minute timeout")
	}
}

func TestServerRefusals(t *testing.T) {
	for _, c := range []struct {
		code      int
		permanent bool
	}{
		{421, false}, {451, false}, {452, false},
		{550, true}, {552, true}, {554, true},
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			s := newSender(t, mail.Config{Addr: sink.Addr()})
			sink.FailNext(1, c.code, "refused for the test")
			msg := mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi", MessageID: s.MessageID("k")}
			err := s.Send(context.Background(), msg)
			if errors.Is(err, mail.ErrPermanent) != c.permanent || errors.Is(err, mail.ErrTemporary) == c.permanent {
				t.Fatalf("Send: %v; want permanent=%v", err, c.permanent)
			}
			if got := mail.ReplyCode(err); got != c.code {
				t.Errorf("ReplyCode = %d, want %d", got, c.code)
			}
			if err := s.Send(context.Background(), msg); err != nil {
				t.Fatalf("next Send: %v", err)
			}
			if msgs := sink.Messages(); len(msgs) != 1 {
				t.Errorf("sink kept %d messages, want the one accepted", len(msgs))
			}
			// The refused message's connection is not kept.
			if got := sink.Sessions(); got != 2 {
				t.Errorf("%d connections, want 2", got)
			}
		})
	}
}

func TestOversizedMessageIsPermanent(t *testing.T) {
	sink := startSink(t, smtpsink.Options{MaxMessageBytes: 4 << 10})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Text: strings.Repeat("Grüße ", 2000)})
	if !errors.Is(err, mail.ErrPermanent) || mail.ReplyCode(err) != 552 {
		t.Errorf("oversized: %v (code %d), want ErrPermanent with 552", err, mail.ReplyCode(err))
	}
}

func TestInvalidMessageIsPermanentWithoutConnecting(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	// Down: had Send connected, it would have failed as temporary.
	if err := sink.SetDown(true); err != nil {
		t.Fatal(err)
	}
	ok := mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi"}
	for _, c := range []struct {
		name   string
		change func(*mail.Message)
	}{
		{"no at sign", func(m *mail.Message) { m.To = "ada.example.com" }},
		{"empty recipient", func(m *mail.Message) { m.To = "" }},
		{"two recipients", func(m *mail.Message) { m.To = "ada@example.com, bob@example.com" }},
		{"header injection in recipient", func(m *mail.Message) { m.To = "ada@example.com\r\nBcc: eve@example.com" }},
		{"no body", func(m *mail.Message) { m.Text = "" }},
		{"Message-ID without at", func(m *mail.Message) { m.MessageID = "abc" }},
		{"Message-ID with space", func(m *mail.Message) { m.MessageID = "a b@example.com" }},
		{"Message-ID with line break", func(m *mail.Message) { m.MessageID = "a@b\r\nBcc: eve@example.com" }},
		{"reserved header", func(m *mail.Message) { m.Headers = map[string]string{"bcc": "eve@example.com"} }},
		{"header name with colon", func(m *mail.Message) { m.Headers = map[string]string{"X-A:": "1"} }},
		{"header value with line break", func(m *mail.Message) { m.Headers = map[string]string{"X-A": "1\r\nBcc: eve@example.com"} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := ok
			c.change(&m)
			err := s.Send(context.Background(), m)
			if !errors.Is(err, mail.ErrPermanent) || errors.Is(err, mail.ErrTemporary) {
				t.Errorf("Send: %v, want only ErrPermanent", err)
			}
		})
	}
}

func TestConcurrentSendsArriveOnce(t *testing.T) {
	const n = 20
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.Send(context.Background(), mail.Message{
				To:        fmt.Sprintf("user%d@example.com", i),
				Subject:   fmt.Sprintf("mail %d", i),
				Text:      fmt.Sprintf("body %d", i),
				MessageID: s.MessageID(fmt.Sprint(i)),
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Send: %v", err)
		}
	}
	msgs := waitFor(t, sink, n)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.MessageID]++
		var i int
		if _, err := fmt.Sscanf(m.Subject, "mail %d", &i); err != nil || m.MessageID != s.MessageID(fmt.Sprint(i)) ||
			m.To[0] != fmt.Sprintf("user%d@example.com", i) || m.TextBody != fmt.Sprintf("body %d\n", i) {
			t.Errorf("message %q to %q with id %q mixes up two sends", m.Subject, m.To, m.MessageID)
		}
	}
	if len(msgs) != n || len(seen) != n {
		t.Errorf("%d messages with %d distinct ids, want %d of each", len(msgs), len(seen), n)
	}
}

func TestMessageIDIsStablePerKey(t *testing.T) {
	s := newSender(t, mail.Config{Addr: "127.0.0.1:1025"})
	a, b := s.MessageID("order.created/1"), s.MessageID("order.created/2")
	if a != s.MessageID("order.created/1") || a == b {
		t.Errorf("MessageID: %q, %q", a, b)
	}
	if !strings.HasSuffix(a, "@eventshop.local") || len(a) != 32+len("@eventshop.local") {
		t.Errorf("MessageID %q: want 32 hex characters at the From domain", a)
	}
}

// TestPing: Ping answers whether the server listens, without sending.
func TestPing(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping of a listening sink: %v", err)
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("Ping left %d messages", n)
	}
	if err := sink.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping of a sink that is down succeeded")
	}
}

// TestConnectionsAreKept: messages sent one after another share one
// connection, until it has carried MaxPerConn.
func TestConnectionsAreKept(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	n := mail.MaxPerConn + 1
	for i := range n {
		msg := mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi", MessageID: s.MessageID(fmt.Sprint(i))}
		if err := s.Send(context.Background(), msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := int64(1 + i/mail.MaxPerConn); sink.Sessions() != want {
			t.Fatalf("after %d messages: %d connections, want %d", i+1, sink.Sessions(), want)
		}
	}
	if msgs := waitFor(t, sink, n); len(msgs) != n {
		t.Errorf("sink kept %d messages, want %d", len(msgs), n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), mail.Message{To: "ada@example.com", Text: "after Close"}); err != nil {
		t.Errorf("Send after Close: %v", err)
	}
}

// TestKeptConnectionDroppedByServer: a server that closed a kept
// connection costs nothing but a new one; the message arrives once.
func TestKeptConnectionDroppedByServer(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	msg := mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi"}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	// Down and up again: the server drops every connection.
	if err := sink.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if err := sink.SetDown(false); err != nil {
		t.Fatal(err)
	}
	msg.MessageID = s.MessageID("second")
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatalf("Send after the server dropped the kept connection: %v", err)
	}
	msgs := waitFor(t, sink, 2)
	if len(msgs) != 2 || msgs[1].MessageID != msg.MessageID || sink.Sessions() != 2 {
		t.Errorf("%d messages over %d connections, want 2 over 2", len(msgs), sink.Sessions())
	}
}

// TestKeptConnectionHonoursContext: a Send whose context has ended sends
// nothing on a kept connection, and the connection is not kept again.
func TestKeptConnectionHonoursContext(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	s := newSender(t, mail.Config{Addr: sink.Addr()})
	msg := mail.Message{To: "ada@example.com", Subject: "hi", Text: "hi"}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Send(ctx, msg); !errors.Is(err, context.Canceled) || !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Send with an ended context: %v, want context.Canceled and ErrTemporary", err)
	}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if msgs := waitFor(t, sink, 2); len(msgs) != 2 || sink.Sessions() != 2 {
		t.Errorf("%d messages over %d connections, want 2 over 2", len(msgs), sink.Sessions())
	}
}

// BenchmarkSend: messages one after another to the sink, over kept
// connections and, as the baseline, over a connection each (a closed
// Sender keeps none).
func BenchmarkSend(b *testing.B) {
	sink, err := smtpsink.Start(smtpsink.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	for _, c := range []struct {
		name string
		keep bool
	}{{"kept connections", true}, {"a connection each", false}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := mail.New(mail.Config{Addr: sink.Addr(), From: from})
			if err != nil {
				b.Fatal(err)
			}
			if !c.keep {
				_ = s.Close()
			}
			msg := mail.Message{To: "ada@example.com", Subject: "Your order", Text: "Thank you.", HTML: "<p>Thank you.</p>"}
			for b.Loop() {
				if err := s.Send(context.Background(), msg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = s.Close()
			sink.Reset()
		})
	}
}
