package smtpsink_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

func ids(msgs []smtpsink.Message) string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return strings.Join(out, ",")
}

// lines is n bytes of text in 100-byte lines: SMTP limits line length.
func lines(n int) string {
	return strings.Repeat(strings.Repeat("x", 99)+"\n", n/100)
}

func TestKeepsTheNewestMaxMessages(t *testing.T) {
	s := start(t, smtpsink.Options{MaxMessages: 3})
	for i := range 5 {
		mustSend(t, s, "ada@example.com", simple(fmt.Sprint(i), "x"))
	}
	msgs := waitFor(t, s, 3)
	if got := ids(s.Messages()); got != "3,4,5" {
		t.Errorf("kept ids %s, want 3,4,5 (have %d from Wait)", got, len(msgs))
	}
}

func TestMaxTotalBytesDropsOldestButKeepsNewest(t *testing.T) {
	body := lines(400)
	// Each message holds its raw bytes (~480) plus its decoded text (~400).
	s := start(t, smtpsink.Options{MaxTotalBytes: 2000})
	for i := range 4 {
		mustSend(t, s, "ada@example.com", simple(fmt.Sprint(i), body))
	}
	if got := ids(s.Messages()); got != "3,4" {
		t.Errorf("kept ids %s, want 3,4", got)
	}
	mustSend(t, s, "ada@example.com", simple("big", lines(3000)))
	if got := ids(s.Messages()); got != "5" {
		t.Errorf("after a message larger than the budget kept %s, want only it (5)", got)
	}
}

func TestRefusesOversizedMessage(t *testing.T) {
	s := start(t, smtpsink.Options{MaxMessageBytes: 1024})
	err := send(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, simple("big", lines(2048)))
	if replyCode(err) != 552 {
		t.Fatalf("oversized message: err = %v, want a 552 reply", err)
	}
	mustSend(t, s, "ada@example.com", simple("small", "x"))
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Subject != "small" {
		t.Errorf("kept %d messages (%s), want only the small one", len(msgs), ids(msgs))
	}
}

func TestFailNextRefusesThatManyMessages(t *testing.T) {
	for _, code := range []int{451, 550} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			s := start(t, smtpsink.Options{})
			s.FailNext(2, code, "not now")
			for i := range 2 {
				err := send(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, simple("refused", "x"))
				if replyCode(err) != code || !strings.Contains(err.Error(), "not now") {
					t.Fatalf("message %d: err = %v, want %d not now", i, err, code)
				}
			}
			mustSend(t, s, "ada@example.com", simple("accepted", "x"))
			if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Subject != "accepted" {
				t.Errorf("kept %d messages, want only the accepted one", len(msgs))
			}
		})
	}
}

func TestFailNextRejectsNonErrorCode(t *testing.T) {
	s := start(t, smtpsink.Options{})
	defer func() {
		if recover() == nil {
			t.Error("FailNext(1, 250, …) did not panic")
		}
	}()
	s.FailNext(1, 250, "")
}

func TestSetDownRefusesConnectionsUntilUp(t *testing.T) {
	s := start(t, smtpsink.Options{})
	addr := s.Addr()
	if err := s.SetDown(true); err != nil {
		t.Fatalf("SetDown(true): %v", err)
	}
	err := send(addr, nil, "shop@example.com", []string{"ada@example.com"}, simple("down", "x"))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("send while down: err = %v, want connection refused", err)
	}
	if err := s.SetDown(false); err != nil {
		t.Fatalf("SetDown(false): %v", err)
	}
	if s.Addr() != addr {
		t.Errorf("Addr changed from %s to %s", addr, s.Addr())
	}
	mustSend(t, s, "ada@example.com", simple("up", "x"))
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Subject != "up" {
		t.Errorf("kept %d messages, want the one sent after up", len(msgs))
	}
}

func TestWait(t *testing.T) {
	s := start(t, smtpsink.Options{})
	go func() {
		// The errors show in the Wait below timing out.
		for _, subj := range []string{"first", "second"} {
			_ = send(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, simple(subj, "x"))
		}
	}()
	msgs := waitFor(t, s, 2)
	if msgs[0].Subject != "first" || msgs[1].Subject != "second" {
		t.Errorf("subjects %q, %q", msgs[0].Subject, msgs[1].Subject)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	msgs, err := s.Wait(ctx, func(m []smtpsink.Message) bool { return len(m) > 2 })
	if !errors.Is(err, context.DeadlineExceeded) || len(msgs) != 2 {
		t.Errorf("Wait for a third message: %d messages, err %v; want the 2 seen and DeadlineExceeded", len(msgs), err)
	}
}

func TestCloseWakesWait(t *testing.T) {
	s, err := smtpsink.Start(smtpsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Wait(context.Background(), func(m []smtpsink.Message) bool { return len(m) > 0 })
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, smtpsink.ErrClosed) {
		t.Errorf("Wait after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.SetDown(false); !errors.Is(err, smtpsink.ErrClosed) {
		t.Errorf("SetDown after Close = %v, want ErrClosed", err)
	}
	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Error("a closed sink still accepts connections")
	}
}

func TestMessagesAreCopies(t *testing.T) {
	s := start(t, smtpsink.Options{})
	mustSend(t, s, "ada@example.com", simple("hi", "x"))
	got := s.Messages()
	got[0].To[0] = "mallory@example.com"
	got[0].Header["Subject"][0] = "changed"
	got[0].Subject = "changed"
	m := s.Messages()[0]
	if m.To[0] != "ada@example.com" || m.Header.Get("Subject") != "hi" || m.Subject != "hi" {
		t.Errorf("changing a returned message changed the sink: %q %q %q", m.To, m.Header.Get("Subject"), m.Subject)
	}
}

func TestResetForgetsMessagesButNotIDs(t *testing.T) {
	s := start(t, smtpsink.Options{})
	mustSend(t, s, "ada@example.com", simple("one", "x"))
	s.Reset()
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages after Reset", n)
	}
	mustSend(t, s, "ada@example.com", simple("two", "x"))
	if got := ids(s.Messages()); got != "2" {
		t.Errorf("ids after Reset = %s, want 2", got)
	}
}

func TestAuth(t *testing.T) {
	s := start(t, smtpsink.Options{Auth: func(u, p string) bool { return u == "shop" && p == "s3cret" }})
	to := []string{"ada@example.com"}
	if err := send(s.Addr(), nil, "shop@example.com", to, simple("anon", "x")); replyCode(err) != 502 {
		t.Errorf("without AUTH: err = %v, want 502", err)
	}
	if err := send(s.Addr(), sasl.NewPlainClient("", "shop", "wrong"), "shop@example.com", to, simple("bad", "x")); replyCode(err) != 535 {
		t.Errorf("wrong password: err = %v, want 535", err)
	}
	if err := send(s.Addr(), sasl.NewPlainClient("", "shop", "s3cret"), "shop@example.com", to, simple("good", "x")); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].Subject != "good" {
		t.Errorf("kept %d messages, want only the authenticated one", len(msgs))
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := smtpsink.Start(smtpsink.Options{ImplicitTLS: true}); err == nil {
		t.Error("ImplicitTLS without TLSConfig: no error")
	}
	s := start(t, smtpsink.Options{})
	if _, err := smtpsink.Start(smtpsink.Options{Addr: s.Addr()}); err == nil {
		t.Error("Start on a taken address: no error")
	}
}
