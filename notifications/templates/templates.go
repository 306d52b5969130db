// Package templates renders the notifier's emails: one multipart mail (a
// plain-text and an HTML part) for each event a customer is told about.
// It reads the CloudEvents envelope the Kafka publisher writes and decodes
// its data into the domain's own event structs, leniently: unknown fields
// and newer schema versions are tolerated, as the events are the contract
// and they only ever grow.
//
// The plain text is rendered with text/template and the HTML with
// html/template, so customer-controlled strings (a full name, a product
// name, a cancellation reason) are escaped in the HTML part. The templates
// are embedded and parsed once, by New.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"regexp"
	"strings"
	texttemplate "text/template"

	"github.com/eventshop/eventshop/published"
)

// The names of the templates, which are Mail.Template. Together with the
// event id they identify one notification.
const (
	TemplateWelcome           = "welcome"
	TemplateOrderConfirmation = "order_confirmation"
	TemplateReceipt           = "receipt"
	TemplateOrderCompleted    = "order_completed"
	TemplateOrderCancelled    = "order_cancelled"
)

// templateOf maps the event types that get a mail to their template.
var templateOf = map[string]string{
	"user.registered": TemplateWelcome,
	"order.created":   TemplateOrderConfirmation,
	"order.paid":      TemplateReceipt,
	"order.completed": TemplateOrderCompleted,
	"order.cancelled": TemplateOrderCancelled,
}

// DefaultShopName is the shop name used when Options.ShopName is empty.
const DefaultShopName = "eventshop"

// ErrInvalidData is wrapped by Render's errors when the envelope's data
// is not a payload of its event type: it does not decode, or it lacks the
// id the mail is about. Such a message will never render; the notifier
// dead-letters it rather than retrying.
var ErrInvalidData = errors.New("invalid event data")

//go:embed mail/*.tmpl
var files embed.FS

// Options configure a Renderer.
type Options struct {
	// ShopName appears in subjects and signatures; empty means
	// DefaultShopName.
	ShopName string
	// BaseURL, when set, is the shop's absolute http(s) address, linked
	// at the foot of every mail. Empty means no link.
	BaseURL string
	// Currency is written, as is, before every amount: "€" gives
	// "€12.50", "EUR " gives "EUR 12.50". Empty (the default) means no
	// symbol ("12.50"): the domain keeps amounts without a currency, and
	// guessing one would misstate every price.
	Currency string
}

// Recipient is who a mail goes to, as the caller looked them up.
type Recipient struct {
	Email string
	Name  string
}

// Mail is a rendered email, without its envelope (From, To).
type Mail struct {
	// Template is the template's name, one of the Template constants.
	Template string
	// Subject is one line, short and specific.
	Subject string
	// Text is the text/plain part and HTML the text/html part; both say
	// the same thing.
	Text string
	HTML string
}

// Renderer renders mails. It is safe for concurrent use.
type Renderer struct {
	opts Options
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// New parses the embedded templates. Errors: a BaseURL that is not an
// absolute http or https URL; a template that does not parse (a bug).
func New(opts Options) (*Renderer, error) {
	if opts.ShopName == "" {
		opts.ShopName = DefaultShopName
	}
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("templates: base URL %q must be an absolute http(s) URL", opts.BaseURL)
		}
		opts.BaseURL = strings.TrimSuffix(opts.BaseURL, "/")
	}
	r := &Renderer{
		opts: opts,
		text: map[string]*texttemplate.Template{},
		html: map[string]*htmltemplate.Template{},
	}
	for _, name := range templateOf {
		t, err := texttemplate.ParseFS(files, "mail/layout.txt.tmpl", "mail/"+name+".txt.tmpl")
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s text: %w", name, err)
		}
		h, err := htmltemplate.ParseFS(files, "mail/layout.html.tmpl", "mail/"+name+".html.tmpl")
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s html: %w", name, err)
		}
		r.text[name], r.html[name] = t, h
	}
	return r, nil
}

// Render returns the mail for env, addressed to to; ok is false for the
// event types that get no mail, which the notifier ignores. Errors:
// ErrInvalidData, wrapped with the event type and id; a template that
// fails to execute (a bug), wrapped likewise.
func (r *Renderer) Render(env published.Envelope, to Recipient) (Mail, bool, error) {
	name, ok := templateOf[env.Type]
	if !ok {
		return Mail{}, false, nil
	}
	v, err := r.view(env, to)
	if err != nil {
		return Mail{}, false, fmt.Errorf("render %s of event %s: %w", env.Type, env.ID, err)
	}
	m, err := r.execute(name, v)
	if err != nil {
		return Mail{}, false, fmt.Errorf("render %s of event %s: %w", env.Type, env.ID, err)
	}
	return m, true, nil
}

// Check tells, without rendering, what Render would say of env's type and
// data: ok is false for the event types that get no mail, and the error is
// Render's for data that does not make a mail (ErrInvalidData, wrapped).
// A template failing to execute is found only by Render.
func (r *Renderer) Check(env published.Envelope) (ok bool, err error) {
	if _, ok := templateOf[env.Type]; !ok {
		return false, nil
	}
	if _, err := r.view(env, Recipient{}); err != nil {
		return false, fmt.Errorf("render %s of event %s: %w", env.Type, env.ID, err)
	}
	return true, nil
}

// blankLines matches the runs of empty lines that optional sections
// leave behind in the text part.
var blankLines = regexp.MustCompile(`\n{3,}`)

// execute renders template name with v. The subject is defined once, in
// the name's text file, and the HTML part gets it as its title.
func (r *Renderer) execute(name string, v view) (Mail, error) {
	var subject, text, html bytes.Buffer
	t := r.text[name]
	if err := t.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Mail{}, fmt.Errorf("subject: %w", err)
	}
	// One line whatever the data holds: a newline in a subject would be
	// a header injection.
	v.Subject = strings.Join(strings.Fields(subject.String()), " ")
	if err := t.ExecuteTemplate(&text, "layout", v); err != nil {
		return Mail{}, fmt.Errorf("text: %w", err)
	}
	if err := r.html[name].ExecuteTemplate(&html, "layout", v); err != nil {
		return Mail{}, fmt.Errorf("html: %w", err)
	}
	return Mail{
		Template: name,
		Subject:  v.Subject,
		Text:     strings.TrimSpace(blankLines.ReplaceAllString(text.String(), "\n\n")) + "\n",
		HTML:     html.String(),
	}, nil
}
