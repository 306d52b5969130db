package mail

import (
	"crypto/rand"
	netmail "net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// reservedHeaders are the fields compose writes itself; a caller's value
// would clash with them or, for Cc and Bcc, show recipients that the
// envelope does not have.
var reservedHeaders = map[string]bool{
	"from": true, "sender": true, "to": true, "cc": true, "bcc": true,
	"subject": true, "date": true, "message-id": true, "return-path": true,
	"mime-version": true, "content-type": true, "content-transfer-encoding": true,
	"content-disposition": true,
}

// compose builds the go-mail message for m, or returns an ErrPermanent
// error saying what about m is invalid. Error texts never quote the
// recipient: they end up in logs.
func (s *Sender) compose(m Message) (*gomail.Msg, error) {
	to, err := netmail.ParseAddress(m.To)
	if err != nil {
		return nil, invalid("invalid recipient address: %w", err)
	}
	if m.Text == "" && m.HTML == "" {
		return nil, invalid("message has neither a text nor an HTML body")
	}
	id := strings.TrimSpace(m.MessageID)
	if id == "" {
		id = rand.Text() + "@" + s.idDomain
	}
	if id, err = messageID(id); err != nil {
		return nil, err
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent()) // UTF-8, quoted-printable
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(id) // adds the angle brackets
	for name, value := range m.Headers {
		if err := checkHeader(name, value); err != nil {
			return nil, err
		}
		msg.SetGenHeader(gomail.Header(name), value)
	}
	switch {
	case m.Text != "" && m.HTML != "":
		// Plain text first: in multipart/alternative the last part is
		// the preferred one.
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// messageID checks a caller's Message-ID and returns it without angle
// brackets. RFC 5322 allows more (quoted and domain literals); this takes
// the dot-atom form every mailer uses.
func messageID(id string) (string, error) {
	if strings.HasPrefix(id, "<") && strings.HasSuffix(id, ">") {
		id = id[1 : len(id)-1]
	}
	left, right, ok := strings.Cut(id, "@")
	if !ok || len(id) > 250 || !isDotAtom(left) || !isDotAtom(right) {
		return "", invalid("Message-ID %q: want left@right of letters, digits, dots and !#$%%&'*+-/=?^_`{|}~", id)
	}
	return id, nil
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text: atext runs
// separated by single dots.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0) {
			return false
		}
	}
	return true
}

// checkHeader refuses a field name that is not RFC 5322 ftext, one the
// Sender writes itself, and a value with a line break (go-mail would encode
// it rather than let it start a new field, but it is a bug either way).
func checkHeader(name, value string) error {
	if name == "" {
		return invalid("empty header name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return invalid("header name %q: want printable ASCII without colon", name)
		}
	}
	if reservedHeaders[strings.ToLower(name)] {
		return invalid("header %q is set by the sender itself", name)
	}
	if strings.ContainsAny(value, "\r\n") {
		return invalid("header %q: value has a line break", name)
	}
	return nil
}
