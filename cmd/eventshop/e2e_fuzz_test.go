package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/orderedmap"
)

// TestAPIFuzz sends generated requests to every operation of
// docs/openapi.yaml, against a healthy server under light load: valid,
// boundary and invalid path ids, query parameters, bodies (from each
// operation's schema, then broken one way or another), headers and
// tokens. Two properties hold for every answer: it is not a 5xx, and it
// conforms to the document (every exchange goes through checkContract,
// which also fails a request the document refuses but the server
// accepted).
//
// FUZZ_API_REQUESTS sets how many requests (default 3,000; `make
// fuzz-api` runs a long one), FUZZ_API_SEED the seed (default 1; `make
// fuzz-api` draws one); the seed is logged so that a failing run can be
// repeated. FUZZ_DEBUG="POST /api/orders"
// logs each request of that operation with its answer.
func TestAPIFuzz(t *testing.T) {
	t.Parallel()
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("FUZZ_API_REQUESTS")); err == nil && v > 0 {
		n = v
	}
	// make test tries the same inputs every run, so that its verdict
	// does not depend on luck; make fuzz-api picks a new seed each time.
	seed := uint64(1)
	if v, err := strconv.ParseUint(os.Getenv("FUZZ_API_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("FUZZ_API_SEED=%d FUZZ_API_REQUESTS=%d", seed, n)

	// All of it comes from one address: the per-IP limits would soon
	// refuse the fixtures' own sign-ins.
	s := newE2E(t, "RATE_LIMIT_PER_SECOND", "0", "AUTH_RATE_LIMIT_PER_MINUTE", "0", "LOGIN_FAILURES_PER_IP", "1000000")
	c, err := openAPIContract()
	if err != nil {
		t.Fatal(err)
	}
	f := newFuzzer(t, s, c.doc, seed)

	// Light load beside the fuzzer: a shopper browsing and ordering.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { f.shop(stop) })
	defer func() { close(stop); wg.Wait() }()

	for i := range n {
		op := f.ops[f.r.IntN(len(f.ops))]
		f.send(op)
		if t.Failed() && i > 200 {
			break // the first failures tell the story; thousands more would not
		}
	}
	f.report()
}

// fuzzOp is one documented operation.
type fuzzOp struct {
	method, path string
	params       []*v3.Parameter
	body         *base.Schema // nil: no JSON body
}

// fuzzer generates requests from the document.
type fuzzer struct {
	t    *testing.T
	s    *server
	r    *rand.Rand
	ops  []fuzzOp
	accs map[string]*account // admin, vendor, customer, other
	ids  map[string][]string // kind → ids that exist
	mu   sync.Mutex
	seen map[string]map[int]int // operation → status → count
}

func newFuzzer(t *testing.T, s *server, doc *v3.Document, seed uint64) *fuzzer {
	f := &fuzzer{t: t, s: s, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seen: map[string]map[int]int{}}
	for path, item := range doc.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			o := fuzzOp{method: strings.ToUpper(method), path: path, params: slices.Concat(item.Parameters, op.Parameters)}
			if rb := op.RequestBody; rb != nil && rb.Content != nil {
				if mt := rb.Content.GetOrZero("application/json"); mt != nil && mt.Schema != nil {
					o.body = mt.Schema.Schema()
				}
			}
			f.ops = append(f.ops, o)
		}
	}
	slices.SortFunc(f.ops, func(a, b fuzzOp) int { return strings.Compare(a.method+a.path, b.method+b.path) })

	admin := s.admin()
	vendor := s.newUser(admin, "fuzz-vendor", "vendor")
	customer := s.newUser(admin, "fuzz-customer")
	other := s.newUser(admin, "fuzz-other")
	f.accs = map[string]*account{"admin": admin, "vendor": vendor, "customer": customer, "other": other}
	// Bodies name p, paths name q: a fuzzed DELETE of q must not leave
	// every order refused for want of a product on sale.
	p, q := s.product(vendor, 100_000, "3.50"), s.product(vendor, 10, "1.25")
	pending := s.order(customer, line{p, 1})
	paid := s.order(customer, line{p, 1})
	want(t, s.pay(customer, paid, goodCard), http.StatusOK)
	f.ids = map[string][]string{
		"product": {q}, "body:product": {p}, "body:vendor": {vendor.id}, "body:user": {customer.id, other.id},
		"order":      {pending, paid},
		"user":       {vendor.id, customer.id, other.id}, // never the admin: a fuzzed role change must not lock the run out
		"projection": {"catalog.v1", "orders.v1", "users.v1", "kafka.v1"},
		"role":       {"customer", "vendor", "admin"},
		"file":       {"docs.js", "swagger-ui.css", "favicon-32x32.png", "openapi.yaml", "../go.mod", "..%2Fgo.mod"},
	}
	return f
}

// send makes one request of op and checks that its answer is not a 5xx;
// do checks it against the document.
func (f *fuzzer) send(op fuzzOp) {
	path := op.path
	q := url.Values{}
	var hdr []string
	for _, p := range op.params {
		sc := schemaOf(p.Schema)
		switch p.In {
		case "path":
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(f.pathValue(p.Name, op.path)))
		case "query":
			if f.r.IntN(2) == 0 {
				continue
			}
			for range 1 + f.r.IntN(2)/max(1, f.r.IntN(4)) { // sometimes repeated
				q.Add(p.Name, f.scalar(sc, p.Name))
			}
		case "header":
			if f.r.IntN(3) == 0 {
				hdr = append(hdr, p.Name, f.headerValue(p.Name, sc))
			}
		}
	}
	if f.r.IntN(10) == 0 {
		q.Add(f.pick("x", "page", "sort", "utm_source", "__proto__"), f.pick("1", "", "%00", strings.Repeat("a", 5000)))
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	token, extra := f.credentials()
	hdr = append(hdr, extra...)
	var body any
	if op.body != nil || f.r.IntN(10) == 0 {
		body = f.requestBody(op.body)
	}
	if ct := f.r.IntN(20); body != nil && ct == 0 {
		hdr = append(hdr, "Content-Type", f.pick("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "multipart/form-data"))
	}

	r := f.s.do(op.method, path, token, body, hdr...)
	if os.Getenv("FUZZ_DEBUG") == op.method+" "+op.path {
		f.t.Logf("DEBUG %v → %d %s", body, r.status, clip(r.raw))
	}
	key := op.method + " " + op.path
	f.mu.Lock()
	if f.seen[key] == nil {
		f.seen[key] = map[int]int{}
	}
	f.seen[key][r.status]++
	f.mu.Unlock()
	if r.status >= 500 {
		f.t.Errorf("fuzz: %s (%s) → %d: %s\n  body sent: %v", path, key, r.status, clip(r.raw), body)
	}
	if r.status < 300 && (op.path == "/api/auth/logout" || strings.HasSuffix(op.path, "/roles") || strings.Contains(op.path, "/roles/")) {
		f.signInAgain() // a session or a role the fixtures stand on may be gone
	}
}

// signInAgain gives every fixture account a fresh session.
func (f *fuzzer) signInAgain() {
	for name, a := range f.accs {
		f.accs[name] = f.s.signIn(a.email, a.password)
	}
}

// report logs, per operation, how many requests got each status.
func (f *fuzzer) report() {
	total := 0
	var b strings.Builder
	for _, key := range slices.Sorted(maps.Keys(f.seen)) {
		var parts []string
		for _, st := range slices.Sorted(maps.Keys(f.seen[key])) {
			parts = append(parts, fmt.Sprintf("%d×%d", st, f.seen[key][st]))
			total += f.seen[key][st]
		}
		fmt.Fprintf(&b, "\n  %-55s %s", key, strings.Join(parts, " "))
	}
	f.t.Logf("fuzz: %d requests over %d of %d operations:%s", total, len(f.seen), len(f.ops), b.String())
	if len(f.seen) < len(f.ops) && total >= 10*len(f.ops) {
		f.t.Errorf("fuzz: only %d of %d operations were tried", len(f.seen), len(f.ops))
	}
}

// shop is the light load beside the fuzzer: browse, order and pay, until
// stop.
func (f *fuzzer) shop(stop <-chan struct{}) {
	c := &http.Client{Timeout: 30 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		resp, err := c.Get(f.s.base + "/api/products?limit=5&sort=price_asc")
		if err != nil {
			continue
		}
		if resp.Body.Close(); resp.StatusCode >= 500 {
			f.t.Errorf("fuzz: the shopper's listing got %d", resp.StatusCode)
		}
	}
}

// pathValue is an id for a path parameter: one that exists, an unknown
// one, or something that is not an id at all.
func (f *fuzzer) pathValue(name, path string) string {
	kind := "product"
	switch {
	case name == "role":
		kind = "role"
	case name == "file":
		kind = "file"
	case name == "name":
		kind = "projection"
	case name == "event_id":
		kind = "none"
	case strings.HasPrefix(path, "/api/orders"):
		kind = "order"
	case strings.HasPrefix(path, "/api/users"):
		kind = "user"
	}
	switch f.r.IntN(4) {
	case 0, 1:
		if ids := f.ids[kind]; len(ids) > 0 {
			return ids[f.r.IntN(len(ids))]
		}
		return uuid.NewString()
	case 2:
		return uuid.NewString()
	}
	if v := f.nasty(); v != "" {
		return v
	}
	return "-" // an empty segment is another path ("//"), which the document cannot name
}

// nasty is a string that no parameter should take.
func (f *fuzzer) nasty() string {
	return f.pick("", " ", "0", "-1", "null", "undefined", "true", "NaN", "1e400", "9223372036854775808",
		"%00", "\x00", "../../etc/passwd", "..", ".", "'; DROP TABLE events; --", `{"$gt": ""}`, "<script>",
		strings.Repeat("a", 3000), "ÿ", "😀", "\u202e", "0193E1A2-4B5C-7D6E-8F90-A1B2C3D4E5F6",
		"0193e1a24b5c7d6e8f90a1b2c3d4e5f6", "{0193e1a2-4b5c-7d6e-8f90-a1b2c3d4e5f6}", "00000000-0000-0000-0000-000000000000",
		"1,2", "a b", "%", "\\", "*")
}

func (f *fuzzer) pick(options ...string) string { return options[f.r.IntN(len(options))] }

// credentials is the Authorization to send: a fixture's token, none, or
// a broken or forged one, sometimes with other headers that matter.
func (f *fuzzer) credentials() (token string, hdr []string) {
	switch f.r.IntN(12) {
	case 0:
		return "", nil
	case 1:
		return "", []string{"Authorization", f.pick("Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "bearer x.y.z", "Bearer "+strings.Repeat("A", 9000))}
	case 2:
		// alg none, and a token signed with another key.
		return f.pick("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZXMiOlsiYWRtaW4iXX0.",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4Iiwicm9sZXMiOlsiYWRtaW4iXSwiZXhwIjo0MTAyNDQ0ODAwfQ.2fXlxGpmjlFBc8sl8-M9l6qvXwqQyNq1m2y3Xz1w0nE",
			f.accs["customer"].token+"x", f.accs["admin"].refresh), nil
	}
	a := f.accs[f.pick("admin", "vendor", "customer", "other")]
	return a.token, nil
}

// headerValue is a value for a documented header parameter.
func (f *fuzzer) headerValue(name string, sc *base.Schema) string {
	var v string
	switch strings.ToLower(name) {
	case "if-match":
		v = f.pick(`"0"`, `"1"`, "0", "*", `W/"0"`, `"-1"`, `"99999999999999999999"`, f.nasty())
	case "idempotency-key":
		v = f.pick(uuid.NewString(), "key-1", strings.Repeat("k", 300), "é", f.nasty())
	case "x-min-position":
		v = f.pick("0", "1", "0/0", "999999999999", "-5", f.nasty())
	default:
		v = f.scalar(sc, name)
	}
	if strings.ContainsAny(v, "\x00\r\n\x7f") {
		return "x" // net/http refuses to send these
	}
	return v
}

// scalar is a query or header value for schema sc: valid, at a bound, or
// invalid.
func (f *fuzzer) scalar(sc *base.Schema, name string) string {
	if f.r.IntN(4) == 0 {
		return f.nasty()
	}
	v := f.value(sc, name, 0)
	if f.r.IntN(3) == 0 {
		v = f.mutate(v, sc)
	}
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// requestBody is a body for schema sc (nil: a body where none is
// documented): valid, broken, or not JSON at all.
func (f *fuzzer) requestBody(sc *base.Schema) any {
	switch f.r.IntN(10) {
	case 0:
		return rawBody(f.pick("", "{", "[]", "null", "0", `"x"`, "{}{}", `{"a":1,"a":2}`, "\xff\xfe",
			strings.Repeat("[", 2000)+strings.Repeat("]", 2000), `{"items":[{"product_id":"x","quantity":1e999}]}`))
	case 1:
		return map[string]any{}
	}
	if sc == nil {
		return map[string]any{"x": f.nasty()}
	}
	v := f.value(sc, "", 0)
	if f.r.IntN(2) == 0 {
		v = f.mutate(v, sc)
	}
	return v
}

// value is a value valid for sc, as far as a generator can tell.
func (f *fuzzer) value(sc *base.Schema, name string, depth int) any {
	sc = flatten(sc)
	if sc == nil || depth > 6 {
		return nil
	}
	if sc.Example != nil && f.r.IntN(3) == 0 {
		var v any
		if sc.Example.Decode(&v) == nil {
			return v
		}
	}
	if len(sc.Enum) > 0 {
		var v any
		if sc.Enum[f.r.IntN(len(sc.Enum))].Decode(&v) == nil {
			return v
		}
	}
	switch typeOf(sc) {
	case "object":
		obj := map[string]any{}
		if sc.Properties != nil {
			for prop, ps := range sc.Properties.FromOldest() {
				if slices.Contains(sc.Required, prop) || f.r.IntN(2) == 0 {
					obj[prop] = f.value(ps.Schema(), prop, depth+1)
				}
			}
		}
		return obj
	case "array":
		var items []any
		n := f.r.IntN(3)
		if sc.MinItems != nil {
			n = max(n, int(*sc.MinItems))
		}
		for range n {
			if sc.Items != nil && sc.Items.A != nil {
				items = append(items, f.value(sc.Items.A.Schema(), name, depth+1))
			}
		}
		return items
	case "integer", "number":
		lo, hi := 0.0, 100.0
		if sc.Minimum != nil {
			lo = *sc.Minimum
		}
		if sc.ExclusiveMinimum != nil && sc.ExclusiveMinimum.IsB() {
			lo = sc.ExclusiveMinimum.B + 1
		}
		if sc.Maximum != nil {
			hi = min(*sc.Maximum, lo+1000)
		}
		if f.r.IntN(4) != 0 {
			hi = min(hi, lo+5) // mostly small: a quantity, a page, a month
		}
		if hi < lo {
			hi = lo
		}
		if typeOf(sc) == "integer" {
			return int64(lo) + f.r.Int64N(int64(hi-lo)+1)
		}
		return float64(int64((lo+f.r.Float64()*(hi-lo))*100)) / 100
	case "boolean":
		return f.r.IntN(2) == 0
	}
	switch {
	case sc.Format == "uuid":
		kind := "body:" + strings.TrimSuffix(name, "_id")
		if ids := f.ids[kind]; len(ids) > 0 && f.r.IntN(4) != 0 {
			return ids[f.r.IntN(len(ids))]
		}
		return uuid.NewString()
	case sc.Format == "email":
		return uniqueEmail("fuzz")
	case sc.Format == "date-time":
		return time.Now().UTC().Format(time.RFC3339)
	case sc.Format == "uri":
		return "https://example.com/" + strconv.Itoa(f.r.IntN(100)) + ".png"
	case name == "password":
		return testPassword
	}
	n := 1 + f.r.IntN(12)
	if sc.MinLength != nil {
		n = max(n, int(*sc.MinLength))
	}
	if sc.MaxLength != nil {
		n = min(n, int(*sc.MaxLength))
	}
	return strings.Repeat(f.pick("a", "B", "é", "7", "-", " "), n)
}

// mutate breaks v one way: a wrong type, a bound crossed, a member
// missing or extra, or a value no field should take.
func (f *fuzzer) mutate(v any, sc *base.Schema) any {
	sc = flatten(sc)
	switch x := v.(type) {
	case map[string]any:
		out := maps.Clone(x)
		keys := slices.Sorted(maps.Keys(out))
		switch f.r.IntN(5) {
		case 0:
			if len(keys) > 0 {
				delete(out, keys[f.r.IntN(len(keys))])
			}
		case 1:
			out[f.pick("extra", "ID", "__proto__", "roles", "version", "user_id", "status")] = f.pick("admin", "1", "paid")
		case 2:
			if len(keys) > 0 {
				k := keys[f.r.IntN(len(keys))]
				out[strings.ToUpper(k)] = out[k] // a name in another case
				delete(out, k)
			}
		default:
			if len(keys) > 0 && sc != nil && sc.Properties != nil {
				k := keys[f.r.IntN(len(keys))]
				if ps := sc.Properties.GetOrZero(k); ps != nil {
					out[k] = f.mutate(out[k], ps.Schema())
				}
			}
		}
		return out
	case []any:
		switch f.r.IntN(3) {
		case 0:
			return []any{}
		case 1:
			out := slices.Clone(x)
			for range 200 {
				out = append(out, slices.Concat(x, []any{nil})[0])
			}
			return out
		}
		if len(x) > 0 {
			var is *base.Schema
			if sc != nil && sc.Items != nil && sc.Items.A != nil {
				is = sc.Items.A.Schema()
			}
			out := slices.Clone(x)
			out[0] = f.mutate(out[0], is)
			return out
		}
		return "not an array"
	case int64:
		return []any{int64(0), int64(-1), x - 1, x + 1, int64(1) << 62, 1.5, "12", nil, true}[f.r.IntN(9)]
	case float64:
		return []any{0.0, -0.01, 0.001, 1e15, 1e308, -x, "1.00", nil}[f.r.IntN(8)]
	case string:
		return []any{"", strings.Repeat(x+"x", 2000), f.nasty(), 42, nil, []any{x}}[f.r.IntN(6)]
	case bool:
		return []any{"true", 1, nil}[f.r.IntN(3)]
	}
	return f.nasty()
}

// schemaOf resolves a proxy, nil for none.
func schemaOf(p *base.SchemaProxy) *base.Schema {
	if p == nil {
		return nil
	}
	return p.Schema()
}

// flatten merges allOf into one schema and takes the first of oneOf or
// anyOf: enough to generate values.
func flatten(sc *base.Schema) *base.Schema {
	if sc == nil {
		return nil
	}
	if len(sc.OneOf) > 0 {
		return flatten(sc.OneOf[0].Schema())
	}
	if len(sc.AnyOf) > 0 {
		return flatten(sc.AnyOf[0].Schema())
	}
	if len(sc.AllOf) == 0 {
		return sc
	}
	out := *sc
	out.AllOf = nil
	for _, part := range sc.AllOf {
		p := flatten(part.Schema())
		if p == nil {
			continue
		}
		if p.Properties != nil {
			// A new map: the document's schemas are shared with the validator.
			merged := orderedmap.New[string, *base.SchemaProxy]()
			for _, from := range []*orderedmap.Map[string, *base.SchemaProxy]{out.Properties, p.Properties} {
				if from != nil {
					for k, v := range from.FromOldest() {
						merged.Set(k, v)
					}
				}
			}
			out.Properties = merged
		}
		out.Required = slices.Concat(out.Required, p.Required)
		if len(out.Type) == 0 {
			out.Type = p.Type
		}
	}
	return &out
}

// typeOf is sc's first non-null type.
func typeOf(sc *base.Schema) string {
	for _, t := range sc.Type {
		if t != "null" {
			return t
		}
	}
	switch {
	case sc.Properties != nil:
		return "object"
	case sc.Minimum != nil || sc.Maximum != nil || sc.ExclusiveMinimum != nil || sc.MultipleOf != nil:
		return "number" // a $ref with bounds beside it, such as a price
	}
	return ""
}
