package postgres

import "strings"

// searchQuery is the text of the to_tsquery that searches for text: each
// of its words, separated by white space, a quoted lexeme that
// to_tsquery's parser and the search configuration normalise as they
// normalise the products' text (a word of several parts, like "e-mail",
// becomes the phrase of its parts); all of them required ("&"); the last
// also matched as a prefix (":*"), for a word still being typed. Quoting
// makes every character a word's own: nothing in text is an operator of
// to_tsquery.
//
// Words the configuration drops (English stop words such as "the", and
// text with no letters or digits) drop out of the query; a query left
// with nothing matches nothing.
func searchQuery(text string) string {
	words := strings.Fields(text)
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteString(" & ")
		}
		b.WriteByte('\'')
		b.WriteString(strings.NewReplacer(`'`, `''`, `\`, `\\`).Replace(w))
		b.WriteByte('\'')
		if i == len(words)-1 {
			b.WriteString(":*")
		}
	}
	return b.String()
}
