package eventlog

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/eventshop/eventshop/domain"
)

// The bounds the write side promises (API.md, docs/asyncapi.yaml). They are
// written out here rather than taken from the domain's constants: the
// generator probes the promise, so a constant moved by mistake is found, not
// followed.
const (
	maxMoney         domain.Cents = 100_000_000_000 // 1,000,000,000.00
	maxStock                      = 1_000_000_000
	maxLines                      = 100
	maxLineUnits                  = 10_000
	maxSKU                        = 64
	maxName                       = 200
	maxDescription                = 5000
	maxCategory                   = 100
	maxWarehouse                  = 100
	maxReason                     = 500
	maxEmail                      = 254
	maxFullName                   = 200
	maxImages                     = 20
	maxImageURL                   = 2048
	maxMetadata                   = 16 << 10
	maxMetadataDepth              = 32
)

// choices is where the generator's decisions come from: a seeded PRNG in
// TestEventLog, the fuzzer's bytes in FuzzCommands.
type choices interface {
	// intn returns a number in [0, n); n is at least 1.
	intn(n int) int
	// dry reports whether the source has run out (the fuzzer's bytes are
	// used up); a PRNG never does.
	dry() bool
}

// seeded is a PCG stream: the same seed makes the same decisions.
type seeded struct{ r *rand.Rand }

func newSeeded(seed uint64) seeded {
	return seeded{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (s seeded) intn(n int) int { return s.r.IntN(n) }
func (seeded) dry() bool        { return false }

// fuzzBytes makes each decision from the next byte (two for more than 256
// choices, four for more than 65,536), scaled to the range, so a mutated
// byte changes one decision and a short input makes a short run. Once the
// bytes are used up every decision is 0, the first, plainest choice.
type fuzzBytes struct {
	b       []byte
	emptied bool
}

func (f *fuzzBytes) intn(n int) int {
	width := 1
	if n > 1<<8 {
		width = 2
	}
	if n > 1<<16 {
		width = 4
	}
	var v uint64
	for range width {
		v <<= 8
		if len(f.b) == 0 {
			f.emptied = true
			continue
		}
		v |= uint64(f.b[0])
		f.b = f.b[1:]
	}
	return int(v * uint64(n) >> (8 * width))
}

func (f *fuzzBytes) dry() bool { return f.emptied || len(f.b) == 0 }

// recorder passes on the decisions of another source and keeps the bytes
// that make fuzzBytes decide the same, so that a seeded run can become a
// FuzzCommands input.
type recorder struct {
	choices
	bytes []byte
}

func (r *recorder) intn(n int) int {
	v := r.choices.intn(n)
	width := 1
	if n > 1<<8 {
		width = 2
	}
	if n > 1<<16 {
		width = 4
	}
	// The least x with x·n / 256^width ≥ v: fuzzBytes reads it back as v.
	span := uint64(1) << (8 * width)
	x := (uint64(v)*span + uint64(n) - 1) / uint64(n)
	for i := width - 1; i >= 0; i-- {
		r.bytes = append(r.bytes, byte(x>>(8*i)))
	}
	return v
}

// gen makes the values of one run's commands. Each command puts one of its
// fields (now and then all, or none) at the edge: at a bound, one beyond,
// or holding a character text fields may not hold; the other fields get
// plain values, so that most commands get far enough to write.
//
// Edge values are chosen by kind, and among the kinds of one field the
// generator takes those it has used least in the run (pickCase): a bounded
// run meets every edge of every field, and so fails whichever single bound
// is missing, rather than only the likely ones.
type gen struct {
	c     choices
	nonce string           // makes emails and SKUs unique to the run
	n     int              // counts the unique values made
	used  map[string][]int // per key, how often each case came up
	// wild is set while a command has every field at the edge: such a
	// command is refused anyway, so its edges are random rather than
	// taking the turns of those that can be stored.
	wild bool
}

func (g *gen) intn(n int) int { return g.c.intn(n) }

// chance is true in pct percent of the decisions.
func (g *gen) chance(pct int) bool { return g.intn(100) < pct }

func pick[T any](g *gen, xs ...T) T { return xs[g.intn(len(xs))] }

// pickCase picks one of the n cases of key, among those used least so far
// in the run; which of those is the source's decision (none when there is
// one), so the fuzzer still steers it.
func (g *gen) pickCase(key string, n int) int {
	if g.wild {
		return g.intn(n)
	}
	if g.used == nil {
		g.used = map[string][]int{}
	}
	counts := g.used[key]
	if len(counts) != n {
		counts = make([]int, n)
		g.used[key] = counts
	}
	least := slices.Min(counts)
	var tied []int
	for i, c := range counts {
		if c == least {
			tied = append(tied, i)
		}
	}
	i := tied[0]
	if len(tied) > 1 {
		i = tied[g.intn(len(tied))]
	}
	counts[i]++
	return i
}

// pickBy is pick with the balance of pickCase.
func pickBy[T any](g *gen, key string, xs ...T) T { return xs[g.pickCase(key, len(xs))] }

// cases counts the cases the run has met so far, and lists those no
// command has used, as key#case.
func (g *gen) cases() (n int, unused []string) {
	for _, key := range slices.Sorted(maps.Keys(g.used)) {
		for i, c := range g.used[key] {
			n++
			if c == 0 {
				unused = append(unused, fmt.Sprintf("%s#%d", key, i))
			}
		}
	}
	return n, unused
}

// focus says which field of a command is at the edge.
type focus int

const (
	noEdge   focus = -1
	allEdges focus = -2
)

// focus picks which of the n fields of command key is at the edge, in
// turn, with a turn for none and one for all.
func (g *gen) focus(key string, n int) focus {
	switch r := g.pickCase("focus/"+key, n+2); r {
	case n:
		return noEdge
	case n + 1:
		g.wild = true
		return allEdges
	default:
		return focus(r)
	}
}

func (f focus) on(i int) bool { return f == allEdges || int(f) == i }

// unique returns a value no other call in this process returns: letters
// and digits only, so it fits a SKU or an email's local part.
func (g *gen) unique() string {
	g.n++
	return fmt.Sprintf("R%sN%d", g.nonce, g.n)
}

// specials are the characters at the edge of what text may hold, by
// class.
var specials = [][]string{
	{"\x00"}, // NUL, which PostgreSQL text and jsonb cannot hold
	{"\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f"}, // the other C0 controls
	{"\x7f"},                                                  // DEL
	{"\u0080", "\u0085", "\u009f"},                            // C1 controls, which are UTF-8 text to most checks
	{"\n", "\r\n", "\r", "\t"},                                // what multi-line text may hold
	{"\ufeff", "\u200f", "\u202e", "\u2028"},                  // format characters and a separator: allowed
	{"\ufffd", "\xff", "\xed\xa0\x80"},                        // U+FFFD, and the bytes JSON encodes as U+FFFD
	{"e\u0301", "\U0001f469\u200d\U0001f469\u200d\U0001f467"}, // one character of several runes
}

// special is a character at the edge for field, of each class in turn.
func (g *gen) special(field string) string {
	return pick(g, specials[g.pickCase("special/"+field, len(specials))]...)
}

// wide are runes of two, three and four bytes in UTF-8.
var wide = []string{"é", "€", "中", "\U0001d11e"}

var words = []string{"Blue mug", "Ceramic plate 12", "Ünïcödé tea", "שלום עולם", "名前の商品", "Grüße 🎉", "x"}

// repeat is n copies of unit.
func repeat(unit string, n int) string { return strings.Repeat(unit, max(n, 0)) }

// inject puts special into s at where: 0 the start, 1 the middle (on a
// rune boundary), 2 the end.
func inject(s, special string, where int) string {
	at := 0
	switch where {
	case 1:
		runes := 0
		for i := range s {
			if runes == utf8.RuneCountInString(s)/2 {
				at = i
				break
			}
			runes++
		}
	case 2:
		at = len(s)
	}
	return s[:at] + special + s[at:]
}

// text is free text for field, of at most max runes; edge puts it at or
// beyond the bound, or gives it a special character.
func (g *gen) text(field string, max int, edge bool) string {
	if !edge {
		return pick(g, words...)
	}
	switch c := g.pickCase("text/"+field, 12); c {
	case 0:
		return pick(g, "", " ", "\t", "  \n ")
	case 1:
		return repeat("x", max)
	case 2:
		return repeat("x", max+1)
	case 3:
		return repeat(pickBy(g, "wide/"+field, wide...), max)
	case 4:
		return repeat(pickBy(g, "wide/"+field, wide...), max+1)
	case 5:
		// At the bound once trimmed.
		return "  " + repeat("z", max) + " \n"
	default:
		// Half the cases hold a special character, at the start, in
		// the middle or at the end of short text or of text at the
		// bound (one character more when it is several runes).
		text := pick(g, words...)
		if c >= 9 {
			text = repeat("y", max-1)
		}
		return inject(text, g.special(field), c%3)
	}
}

// sku is a SKU, unique to the run unless the edge makes it otherwise.
func (g *gen) sku(edge bool) string {
	id := g.unique()
	if !edge {
		return id
	}
	return pickBy(g, "sku",
		func() string { return id + repeat("9", maxSKU-len(id)) },
		func() string { return id + repeat("9", maxSKU+1-len(id)) },
		func() string { return " " + strings.ToLower(id) + " " },
		func() string { return pick(g, "", "-"+id, "."+id, id+" x", id+"/x", id+"é") },
		func() string { return inject(id, g.special("sku"), 1) },
		func() string { return inject(id, g.special("sku"), 2) },
	)()
}

// email is an address, unique to the run unless the edge makes it
// otherwise.
func (g *gen) email(edge bool) string {
	local := strings.ToLower(g.unique())
	const domainPart = "@example.com"
	if !edge {
		return local + domainPart
	}
	// At the bound, or one beyond: a local part of 64 octets, the most
	// SMTP carries, and a domain of 63-octet labels.
	long := func(extra int) string {
		l := local + repeat("x", 64-len(local))
		d := repeat("a", 63) + "." + repeat("b", 63) + "." + repeat("d", extra)
		return l + "@" + d + repeat("c", maxEmail-len(l)-1-len(d)-len(".com")+extra) + ".com"
	}
	return pickBy(g, "email",
		func() string { return long(0) },
		func() string { return long(1) },
		func() string { return "  " + strings.ToUpper(local) + "@Example.COM " },
		func() string { return inject(local, g.special("email"), 0) + domainPart },
		func() string { return inject(local, g.special("email"), 1) + domainPart },
		func() string { return inject(local, g.special("email"), 2) + domainPart },
		func() string { return local + "@" + inject("example", g.special("email"), 1) + ".com" },
		func() string {
			return pick(g, local, local+"@localhost", local+"@example.", domainPart, local+"@"+domainPart,
				`"`+local+` x"`+domainPart, "Name <"+local+domainPart+">")
		},
		func() string { return "ünï" + local + "@exämple.com" },
		func() string { return local + domainPart + "\r\nBcc: x" + domainPart },
	)()
}

// price is an amount of money; at the edge it is one of the amounts at
// either bound, or one that a line or an order can multiply or add past
// the upper bound.
func (g *gen) price(edge bool) domain.Cents {
	if !edge {
		return domain.Cents(1 + g.intn(100_000))
	}
	return pickBy(g, "price",
		1, maxMoney, maxMoney+1,
		maxMoney/2+1,            // two of these cross the bound
		maxMoney/maxLineUnits+1, // so do maxLineUnits of these
		maxMoney/3, 0, -1)
}

// stock is the quantity a product is listed with.
func (g *gen) stock(edge bool) int64 {
	if !edge {
		return int64(1_000_000 + g.intn(1_000_000))
	}
	return pickBy[int64](g, "stock", 0, 1, maxStock, maxStock+1, -1)
}

// lineUnits is the quantity of an order line.
func (g *gen) lineUnits(edge bool) int64 {
	if !edge {
		return int64(1 + g.intn(5))
	}
	return pickBy[int64](g, "units", 1, maxLineUnits, maxLineUnits+1, 0, -1)
}

// metadata is a product's metadata; nil means not sent. The values just
// beyond a bound are cases of their own, so that every run has them.
func (g *gen) metadata(edge bool) json.RawMessage {
	if !edge {
		return pick(g, json.RawMessage(nil), json.RawMessage(`{}`), json.RawMessage(`{"colour":"blue","size":3,"tags":["a","b"]}`))
	}
	return json.RawMessage(pickBy(g, "metadata",
		func() string { return nested(maxMetadataDepth) },
		func() string { return nested(maxMetadataDepth + 1) },
		func() string { return sized(maxMetadata, pick(g, "", "   ")) },
		func() string { return sized(maxMetadata+1, "") },
		func() string { return `{"n":1e400}` },
		func() string {
			return pick(g, `{"n":-1e400}`, `{"n":1e-400}`, `{"n":123456789012345678901234567890}`, `{"n":-1.7976931348623157e308}`)
		},
		func() string { return pick(g, `{"a\u0000b":1}`, `{"a":"\u0000"}`, `{"a":["x\u0000"]}`) },
		func() string {
			return pick(g, `{"a":"\u0085"}`, `{"a":"\u001f"}`, `{"a":"\u007f"}`, "{\"a\":\"\u0085\"}")
		},
		func() string { return pick(g, `{"a":"line\nbreak"}`, `{"\t":1}`, `{"a":"\r\n"}`) },
		func() string {
			return pick(g,
				"{\"a\":\"\x01\"}",                       // a raw control character: not JSON
				"{\"a\":\"\xff\"}",                       // not UTF-8
				`{"a":"\ud800"}`, `{"a":"\udfff\ud800"}`, // lone surrogates
				`[]`, `null`, `"x"`, `1`, ``, `{`, `{"a":1}{}`)
		},
		func() string { return pick(g, `  {"a":1}  `, `{"a":1,"a":2}`, `{"":{}}`, `{"$set":{"a.b":1}}`) },
		func() string { return `{"text":` + strconv.Quote(inject("a note", g.special("metadata"), 1)) + `}` },
	)())
}

// nested is a JSON object nested depth levels deep, the object itself being
// level 1, alternating objects and arrays.
func nested(depth int) string {
	s := "1"
	for level := depth; level >= 1; level-- {
		if level%2 == 1 {
			s = `{"l":` + s + `}`
		} else {
			s = "[" + s + "]"
		}
	}
	return s
}

// sized is a JSON object of exactly n bytes, space of them leading white
// space, which the stored (compacted) form drops.
func sized(n int, space string) string {
	const frame = `{"pad":""}`
	return space + `{"pad":"` + repeat("m", n-len(frame)-len(space)) + `"}`
}

// imageURL is one image URL.
func (g *gen) imageURL(edge bool) string {
	base := "https://img.example.com/" + g.unique() + ".png"
	if !edge {
		return base
	}
	return pickBy(g, "image",
		func() string { return base + "?" + repeat("q", maxImageURL-len(base)-1) },
		func() string { return base + "?" + repeat("q", maxImageURL-len(base)) },
		func() string {
			return pick(g, "ftp://img.example.com/a.png", "javascript:alert(1)", "/relative.png", "https://", "data:image/png;base64,AAAA",
				"HTTPS://IMG.EXAMPLE.COM/"+g.unique()+".PNG", "https://img.example.com/"+pick(g, wide...)+".png")
		},
		// Most cases hold a special character, in the host, the path or
		// the query.
		func() string { return "https://img" + g.special("image") + ".example.com/" + g.unique() + ".png" },
		func() string { return inject(base, g.special("image"), 1) },
		func() string { return inject(base, g.special("image"), 2) },
		func() string { return inject(base, "?q="+g.special("image"), 2) },
		func() string { return inject(base, "#"+g.special("image"), 2) },
		func() string { return inject(base, "/"+g.special("image")+"/", 1) },
	)()
}

// images is a list of image URLs; at the edge it has the most URLs or one
// more, or one URL at the edge.
func (g *gen) images(edge bool) []string {
	if !edge {
		return pick(g, []string(nil), []string{}, []string{g.imageURL(false)})
	}
	// One URL more than the most, all plain; or one URL at the edge, alone
	// or among the most, so that the list itself is within its bound.
	n, odd := maxImages+1, -1
	switch g.pickCase("images", 5) {
	case 1, 2:
		n, odd = 1, 0
	case 3, 4:
		n, odd = maxImages, g.intn(maxImages)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = g.imageURL(i == odd)
	}
	return out
}

// show writes a generated string for a transcript: a short one quoted in
// full (so NUL shows as \x00), a long one by its ends and its size.
func show(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	head, mid, tail := cut(s)
	if mid != "" {
		mid = strconv.Quote(mid) + "…"
	}
	return fmt.Sprintf("%s…%s%s (%d runes, %d bytes)", strconv.Quote(head), mid, strconv.Quote(tail), utf8.RuneCountInString(s), len(s))
}

// cut returns the first 24 and the last 12 runes of s, and, when a rune a
// terminal would not show lies between them, that rune with a few around
// it: it is usually the point of the value.
func cut(s string) (head, mid, tail string) {
	r := []rune(s)
	n := len(r)
	if n <= 48 {
		return s, "", ""
	}
	if i := slices.IndexFunc(r, func(c rune) bool { return !unicode.IsPrint(c) || c == utf8.RuneError }); i > 24 && i < n-12 {
		mid = string(r[max(i-4, 24):min(i+5, n-12)])
	}
	return string(r[:24]), mid, string(r[n-12:])
}
