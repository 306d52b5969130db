package smtpsink_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/standins/smtpsink"
)

func TestDecodesMIME(t *testing.T) {
	html := "<p>Grüße — 12,50 €</p>"
	b64 := base64.StdEncoding.EncodeToString([]byte(html))
	b64 = b64[:10] + "\n" + b64[10:] // base64 bodies come in lines

	for _, c := range []struct {
		name, raw           string
		subject, text, html string
	}{
		{
			name:    "plain without content type",
			raw:     "Subject: hello\n\nline 1\nline 2\n",
			subject: "hello", text: "line 1\nline 2\n",
		},
		{
			name: "encoded subject and quoted-printable text",
			raw: "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_=E2=80=94?= 12,50 =?UTF-8?B?4oKs?=\n" +
				"Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Gr=C3=BC=\n=C3=9Fe =E2=80=94 12,50 =E2=82=AC\n",
			subject: "Grüße — 12,50 €", text: "Grüße — 12,50 €\n",
		},
		{
			name: "latin-1",
			raw: "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\n" +
				"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Gr=FC=DFe\n",
			subject: "Grüße", text: "Grüße\n",
		},
		{
			name: "alternative of quoted-printable text and base64 HTML",
			raw: "Subject: alt\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b1\n\n" +
				"--b1\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Gr=C3=BC=C3=9Fe =E2=80=94 12,50 =E2=82=AC\n" +
				"--b1\nContent-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: base64\n\n" +
				b64 + "\n--b1--\n",
			subject: "alt", text: "Grüße — 12,50 €", html: html,
		},
		{
			name: "mixed with an attachment before the body",
			raw: "Subject: mixed\nContent-Type: multipart/mixed; boundary=outer\n\n" +
				"--outer\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nnot the body\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=inner\n\n" +
				"--inner\nContent-Type: text/plain\n\nthe text\n" +
				"--inner\nContent-Type: text/html\n\n<b>the html</b>\n" +
				"--inner--\n--outer--\n",
			subject: "mixed", text: "the text", html: "<b>the html</b>",
		},
		{
			name:    "multipart without boundary is kept undecoded",
			raw:     "Subject: broken\nContent-Type: multipart/alternative\n\nwhatever\n",
			subject: "broken",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, smtpsink.Options{})
			mustSend(t, s, "ada@example.com", c.raw)
			m := waitFor(t, s, 1)[0]
			if m.Subject != c.subject {
				t.Errorf("Subject = %q, want %q", m.Subject, c.subject)
			}
			if m.TextBody != c.text {
				t.Errorf("TextBody = %q, want %q", m.TextBody, c.text)
			}
			if m.HTMLBody != c.html {
				t.Errorf("HTMLBody = %q, want %q", m.HTMLBody, c.html)
			}
			if string(m.Raw) != crlf(c.raw) {
				t.Errorf("Raw differs from what was sent:\n%q\nwant\n%q", m.Raw, crlf(c.raw))
			}
		})
	}
}

func TestKeepsEnvelopeAndHeaders(t *testing.T) {
	s := start(t, smtpsink.Options{})
	raw := "From: Shop <shop@example.com>\nTo: ada@example.com\nSubject: hi\n" +
		"Message-ID: <abc.123@example.com>\nDate: Mon, 02 Jan 2006 15:04:05 +0100\nX-Event-ID: e-1\n\nhi\n"
	before := time.Now()
	// bob is a Bcc: in the envelope only.
	if err := send(s.Addr(), nil, "bounce@example.com", []string{"ada@example.com", "bob@example.com"}, raw); err != nil {
		t.Fatalf("send: %v", err)
	}
	m := waitFor(t, s, 1)[0]
	if m.ID != "1" || m.From != "bounce@example.com" || strings.Join(m.To, ",") != "ada@example.com,bob@example.com" {
		t.Errorf("ID, envelope = %q, %q → %q", m.ID, m.From, m.To)
	}
	if m.MessageID != "abc.123@example.com" {
		t.Errorf("MessageID = %q", m.MessageID)
	}
	if want := time.Date(2006, 1, 2, 14, 4, 5, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("Date = %v, want %v", m.Date, want)
	}
	if got := m.Header.Get("X-Event-ID"); got != "e-1" {
		t.Errorf("X-Event-ID = %q", got)
	}
	if m.ReceivedAt.Before(before) || m.ReceivedAt.After(time.Now()) {
		t.Errorf("ReceivedAt = %v, not during the test", m.ReceivedAt)
	}
	if m.TLS {
		t.Error("TLS = true for a plaintext connection")
	}
}
