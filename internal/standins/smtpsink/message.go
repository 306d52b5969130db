package smtpsink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// maxMIMEDepth bounds how deep multiparts may nest before the parser gives
// up, so a hostile message cannot make it recurse without end.
const maxMIMEDepth = 8

// Message is one message the sink kept.
//
// From and To are the SMTP envelope (MAIL FROM and RCPT TO), which is where
// a message actually went: Bcc recipients appear only there. The header
// fields are decoded from the message; any of them is empty (or Date zero)
// when the header is missing or cannot be parsed.
type Message struct {
	ID         string      // assigned by the sink: "1", "2", … in order of receipt
	From       string      // envelope sender, "" for a null sender (<>)
	To         []string    // envelope recipients
	Header     mail.Header // every header as sent, not decoded
	Subject    string      // Subject, RFC 2047 encoded words decoded
	MessageID  string      // Message-ID without the angle brackets
	Date       time.Time   // Date
	TextBody   string      // first text/plain part, decoded to UTF-8, "\r\n" turned into "\n"
	HTMLBody   string      // first text/html part, likewise
	Raw        []byte      // the message exactly as received after DATA
	TLS        bool        // whether it came over TLS (STARTTLS or implicit)
	ReceivedAt time.Time
}

// parse decodes the headers and the text and HTML bodies of raw. It returns
// as much as it could decode along with an error for the rest: the sink
// keeps a message it cannot parse.
func parse(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, fmt.Errorf("read header: %w", err)
	}
	m := Message{Header: msg.Header}
	var errs []error
	dec := mime.WordDecoder{}
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		m.Subject = msg.Header.Get("Subject")
		errs = append(errs, fmt.Errorf("decode subject: %w", err))
	}
	m.MessageID = strings.Trim(strings.TrimSpace(msg.Header.Get("Message-Id")), "<>")
	if d, err := msg.Header.Date(); err == nil {
		m.Date = d
	}
	b := bodies{}
	if err := b.walk(msg.Header, msg.Body, 0); err != nil {
		errs = append(errs, err)
	}
	m.TextBody, m.HTMLBody = b.text, b.html
	return m, errors.Join(errs...)
}

// header is what walk needs of a message's header (mail.Header) or a
// part's (textproto.MIMEHeader).
type header interface{ Get(key string) string }

// bodies collects the first text/plain and first text/html part found,
// depth first, skipping attachments.
type bodies struct {
	text, html         string
	haveText, haveHTML bool
}

func (b *bodies) walk(h header, body io.Reader, depth int) error {
	mediaType, params := "text/plain", map[string]string{}
	if ct := h.Get("Content-Type"); ct != "" {
		var err error
		if mediaType, params, err = mime.ParseMediaType(ct); err != nil {
			return fmt.Errorf("content type %q: %w", ct, err)
		}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		return b.walkMultipart(params["boundary"], body, depth)
	}
	if disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition")); disp == "attachment" {
		return nil
	}
	var dst *string
	switch {
	case mediaType == "text/plain" && !b.haveText:
		dst, b.haveText = &b.text, true
	case mediaType == "text/html" && !b.haveHTML:
		dst, b.haveHTML = &b.html, true
	default:
		return nil
	}
	r, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("decode %s body: %w", mediaType, err)
	}
	*dst = strings.ReplaceAll(toUTF8(params["charset"], data), "\r\n", "\n")
	return nil
}

func (b *bodies) walkMultipart(boundary string, body io.Reader, depth int) error {
	if depth >= maxMIMEDepth {
		return fmt.Errorf("multipart nested deeper than %d levels", maxMIMEDepth)
	}
	if boundary == "" {
		return errors.New("multipart without boundary")
	}
	mr := multipart.NewReader(body, boundary)
	var errs []error
	for {
		// NextRawPart, because NextPart would decode quoted-printable
		// itself but not base64; decodeTransfer handles both alike.
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read multipart: %w", err))
			break
		}
		if err := b.walk(p.Header, p, depth+1); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// decodeTransfer undoes a Content-Transfer-Encoding.
func decodeTransfer(cte string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return r, nil
	case "quoted-printable":
		return quotedprintable.NewReader(r), nil
	case "base64":
		// The decoder skips the line breaks between base64 lines.
		return base64.NewDecoder(base64.StdEncoding, r), nil
	default:
		return nil, fmt.Errorf("unknown Content-Transfer-Encoding %q", cte)
	}
}

// toUTF8 converts a body in charset to UTF-8. Only the charsets a mailer
// uses for text are handled: UTF-8 (and its subset US-ASCII) and
// ISO-8859-1; bytes of any other charset are kept, with invalid UTF-8
// replaced by U+FFFD.
func toUTF8(charset string, data []byte) string {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "latin1":
		var sb strings.Builder
		for _, c := range data {
			sb.WriteRune(rune(c))
		}
		return sb.String()
	default:
		if utf8.Valid(data) {
			return string(data)
		}
		return strings.ToValidUTF8(string(data), "\uFFFD")
	}
}

func cloneHeader(h mail.Header) mail.Header {
	if h == nil {
		return nil
	}
	out := make(mail.Header, len(h))
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}
