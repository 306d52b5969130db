package domain

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds shared by every aggregate's events.
const (
	// MaxIDLength bounds an identifier an event carries: an aggregate id
	// (a UUID, 36 characters) or a payment provider's charge or refund id.
	MaxIDLength = 128
	// MaxReasonLength bounds a reason: why stock moved, why an order was
	// cancelled, why the system released or fenced something.
	MaxReasonLength = 500
)

// ValidText reports whether s is valid UTF-8 without control characters
// (C0, DEL and C1, as unicode.IsControl has them); a multiline text may
// hold tab, line feed and carriage return. NUL matters most: PostgreSQL
// text and jsonb (and so FerretDB) refuse it.
func ValidText(s string, multiline bool) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\t' || r == '\n' || r == '\r'))
	}) < 0
}

// StorableText is s with every NUL replaced by U+FFFD. PostgreSQL text and
// jsonb (and so FerretDB) refuse NUL, which text written before ValidText
// bounded it may hold (product descriptions, categories, warehouses,
// reasons); a read model keeps such text through StorableText, so that the
// event still applies.
func StorableText(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// Require records that field is required when s is blank, and reports
// whether it is there.
func (f *Fields) Require(field, s string) bool {
	if strings.TrimSpace(s) == "" {
		f.Add(field, "is required")
		return false
	}
	return true
}

// CheckText checks a text field: valid UTF-8, no control characters (but
// tab and line breaks when multiline), at most max characters.
func (f *Fields) CheckText(field, s string, max int, multiline bool) {
	switch {
	case !utf8.ValidString(s):
		f.Add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > max:
		f.Add(field, "must be at most %d characters", max)
	case !ValidText(s, multiline) && multiline:
		f.Add(field, "must not contain control characters other than tab and line breaks")
	case !ValidText(s, multiline):
		f.Add(field, "must not contain control characters")
	}
}

// CheckName checks a required, one-line text field of at most max
// characters.
func (f *Fields) CheckName(field, name string, max int) {
	if f.Require(field, name) {
		f.CheckText(field, name, max, false)
	}
}

// CheckID checks a required identifier (see MaxIDLength).
func (f *Fields) CheckID(field, id string) { f.CheckName(field, id, MaxIDLength) }

// CheckRange checks min <= v <= max.
func (f *Fields) CheckRange(field string, v, min, max int64) {
	switch {
	case v < min:
		f.Add(field, "must be at least %d", min)
	case v > max:
		f.Add(field, "must be at most %d", max)
	}
}

// CheckCents checks an amount: 0 to MaxCents, or above 0 when positive (a
// price).
func (f *Fields) CheckCents(field string, c Cents, positive bool) {
	switch {
	case positive && (c <= 0 || c > MaxCents):
		f.Add(field, "must be greater than 0 and at most %s", MaxCents)
	case c < 0 || c > MaxCents:
		f.Add(field, "must be between 0 and %s", MaxCents)
	}
}

// CheckObject checks free-form JSON a client owns (a product's metadata):
// one JSON object of at most maxBytes, nested at most maxDepth deep, whose
// keys and strings are text (multiline, see ValidText) and whose numbers
// are finite float64s, so every reader can hold it whatever it decodes
// it into.
func (f *Fields) CheckObject(field string, raw json.RawMessage, maxBytes, maxDepth int) {
	if msg := checkObject(raw, maxBytes, maxDepth); msg != "" {
		f.Add(field, "%s", msg)
	}
}

func checkObject(raw []byte, maxBytes, maxDepth int) string {
	const notObject = "must be a JSON object"
	switch {
	case len(raw) > maxBytes:
		return "must be at most " + strconv.Itoa(maxBytes) + " bytes"
	case !utf8.Valid(raw):
		// The decoder would replace bad bytes silently; the stored text
		// would still hold them.
		return "must be valid UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	depth, tokens := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF && tokens > 0 && depth == 0 {
			return ""
		}
		if err != nil {
			return notObject
		}
		tokens++
		if (tokens == 1 && tok != json.Delim('{')) || (tokens > 1 && depth == 0) {
			return notObject // not an object, or something after it
		}
		switch t := tok.(type) {
		case json.Delim:
			if t == '{' || t == '[' {
				if depth++; depth > maxDepth {
					return "must be nested at most " + strconv.Itoa(maxDepth) + " deep"
				}
			} else {
				depth--
			}
		case string:
			if !ValidText(t, true) {
				return "must not contain control characters other than tab and line breaks"
			}
		case json.Number:
			if v, err := strconv.ParseFloat(t.String(), 64); err != nil || math.IsInf(v, 0) {
				return "must hold only numbers within the range of a 64-bit float"
			}
		}
	}
}
