package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	vconfig "github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/eventshop/eventshop/docs"
)

// Every request the end-to-end tests send through (*server).do, and its
// answer, is checked against docs/openapi.yaml:
//
//   - the answer must be documented for its route: its status, its
//     headers (the required ones present, every one present valid), its
//     content type and its body; strict mode, so a member or header the
//     server sends but the document does not name fails too. Money members
//     must be written with two decimals (API.md), which a JSON Schema
//     cannot say.
//   - a request the document refuses may only be refused by the server:
//     the tests send malformed and invalid requests on purpose, so a
//     refused request passes as long as the server refused it too (4xx),
//     but one the server accepted (2xx, 304) means the document is
//     stricter than the API.
//   - a path the document does not have must be answered 404, a method it
//     does not have for a path 405, both as problems; so must a documented
//     route that the process does not serve (the split deployment, see
//     servedBy).
//
// The document describes every route the binary mounts, /dev/mail (local
// run only) included. Left out, explicitly:
//
//   - CORS preflights (OPTIONS with Origin and
//     Access-Control-Request-Method), which the gateway answers before any
//     route, as OpenAPI documents usually leave them out, and the 431 that
//     net/http answers to oversized headers, in plain text, before any
//     route (the document's introduction describes it);
//   - in strict mode, the headers the gateway puts on every answer
//     (gatewayHeaders), which the document describes once, in its
//     introduction, rather than on each of its 300 responses.

// contract is docs/openapi.yaml, ready to validate against.
type contract struct {
	v        validator.Validator
	doc      *v3.Document
	schemas  schema_validation.SchemaValidator
	notFound *base.Schema // the problem of a path the document does not have
	notAllow *base.Schema // the problem of a method the document does not have
}

// openAPIContract builds the validator once per test binary.
var openAPIContract = sync.OnceValues(func() (*contract, error) {
	doc, err := libopenapi.NewDocument(docs.OpenAPIYAML())
	if err != nil {
		return nil, fmt.Errorf("parse docs/openapi.yaml: %w", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("build docs/openapi.yaml: %w", err)
	}
	v, errs := validator.NewValidator(doc,
		vconfig.WithFormatAssertions(),
		vconfig.WithStrictMode(),
		vconfig.WithStrictIgnoredHeadersExtra(gatewayHeaders...),
		// Free-form by design: a product's metadata, as its vendor set it.
		vconfig.WithStrictIgnorePaths("$.body.metadata.**", "$.body.items[*].metadata.**",
			// GET /openapi.json: the document itself, not described member by member.
			"$.body.info.**", "$.body.paths.**", "$.body.paths['/openapi.json']", "$.body.components.**"),
	)
	if len(errs) > 0 {
		return nil, fmt.Errorf("validator of docs/openapi.yaml: %v", errs)
	}
	c := &contract{v: v, doc: &m.Model, schemas: schema_validation.NewSchemaValidator()}
	for name, dst := range map[string]**base.Schema{"NotFoundProblem": &c.notFound, "MethodNotAllowedProblem": &c.notAllow} {
		proxy := m.Model.Components.Schemas.GetOrZero(name)
		if proxy == nil {
			return nil, fmt.Errorf("docs/openapi.yaml has no schema %s", name)
		}
		*dst = proxy.Schema()
	}
	return c, nil
})

// gatewayHeaders are the headers the gateway (internal/edge/gateway) sets on
// every answer, or every rate-limited one, or every one to an allowed CORS
// origin; the document's introduction describes them, and declares
// RateLimit-* on each 429, where they matter.
var gatewayHeaders = []string{
	"content-security-policy", "x-frame-options", "referrer-policy", "x-content-type-options",
	"strict-transport-security", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
	"access-control-allow-origin", "access-control-expose-headers", "access-control-allow-methods",
	"access-control-allow-headers", "access-control-max-age", "access-control-request-method",
	"access-control-request-headers",
}

// preflight reports whether req is a CORS preflight.
func preflight(req *http.Request) bool {
	return req.Method == http.MethodOptions && req.Header.Get("Origin") != "" &&
		req.Header.Get("Access-Control-Request-Method") != ""
}

// servedBy reports whether a process of mode (the subcommand it was started
// with) serves the documented operation op ("GET /api/orders"). The local
// run serves everything; the split deployment's write API the commands,
// sign-in and health, its read API the reads and the admin routes.
func servedBy(mode, op string) bool {
	method, path, _ := strings.Cut(op, " ")
	if path == "/healthz" || path == "/readyz" || path == "/metrics" {
		return true
	}
	read := (method == http.MethodGet && strings.HasPrefix(path, "/api/") &&
		path != "/api/auth/me" && !strings.HasSuffix(path, "/health")) ||
		strings.HasPrefix(path, "/api/admin/")
	switch mode {
	case "serve":
		return true
	case "writeapi":
		return strings.HasPrefix(path, "/api/") && !read
	case "readapi":
		return read
	}
	return false
}

// checkContract checks one exchange of s with the program against the
// document; reqBody is the body sent, r the answer. A mismatch fails the
// test (without stopping it), naming the route, the status and what did
// not match.
func (s *server) checkContract(req *http.Request, reqBody []byte, r *response) {
	s.t.Helper()
	c, err := openAPIContract()
	if err != nil {
		s.t.Fatalf("openapi: %v", err)
	}
	if preflight(req) {
		return // answered by the gateway's CORS handler; not in the document
	}
	if r.status == http.StatusRequestHeaderFieldsTooLarge {
		return // answered by net/http before any route; the document's introduction says so
	}
	vreq, err := http.NewRequest(req.Method, req.URL.String(), bytes.NewReader(reqBody))
	if err != nil {
		s.t.Fatal(err)
	}
	vreq.Header = req.Header.Clone()
	vresp := &http.Response{
		StatusCode: r.status, Header: r.header.Clone(), Request: vreq,
		Body: io.NopCloser(bytes.NewReader(r.raw)), ContentLength: int64(len(r.raw)),
	}
	exchange := fmt.Sprintf("%s %s → %d", r.method, r.path, r.status)

	item, missing, tmpl := paths.FindPath(vreq, c.doc, nil)
	switch op := r.method + " " + tmpl; {
	case item == nil:
		s.wantRouterProblem(c, exchange, r, http.StatusNotFound, c.notFound, "a path docs/openapi.yaml does not have")
		return
	case len(missing) > 0:
		s.wantRouterProblem(c, exchange, r, http.StatusMethodNotAllowed, c.notAllow, "a method docs/openapi.yaml does not have for "+tmpl)
		return
	case !servedBy(s.mode, op):
		want := c.notFound
		if r.status == http.StatusMethodNotAllowed {
			want = c.notAllow
		}
		s.wantRouterProblem(c, exchange, r, r.status, want, op+", which `eventshop "+s.mode+"` does not serve")
		return
	default:
		exchange = fmt.Sprintf("%s (%s) → %d", r.path, op, r.status)
	}

	if ok, errs := c.v.ValidateHttpResponse(vreq, vresp); !ok {
		s.t.Errorf("openapi: %s: the answer does not match docs/openapi.yaml:%s\n  answer: %s", exchange, describe(errs), clip(r.raw))
	}
	if bad := moneyNotTwoDecimals(r); len(bad) > 0 {
		s.t.Errorf("openapi: %s: money not written with two decimals: %s", exchange, strings.Join(bad, ", "))
	}
	if accepted := r.status < 300 || r.status == http.StatusNotModified; accepted {
		vreq.URL.RawQuery = declaredQuery(item, r.method, vreq.URL.Query()).Encode()
		vreq.Body = io.NopCloser(bytes.NewReader(withoutNulls(reqBody)))
		if ok, errs := c.v.ValidateHttpRequestSync(vreq); !ok {
			s.t.Errorf("openapi: %s: the server accepted a request docs/openapi.yaml refuses:%s\n  request body: %s", exchange, describe(errs), clip(reqBody))
		}
	}
}

// withoutNulls is a JSON body as the server reads it: members whose value
// is null left out (the document's conventions: null is absent). Anything
// that is not a JSON object is returned as it is.
func withoutNulls(body []byte) []byte {
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&v) != nil || dec.More() {
		return body
	}
	var drop func(any) any
	drop = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, m := range x {
				if m == nil {
					delete(x, k)
				} else {
					x[k] = drop(m)
				}
			}
		case []any:
			for i := range x {
				x[i] = drop(x[i])
			}
		}
		return x
	}
	out, err := json.Marshal(drop(v))
	if err != nil {
		return body
	}
	return out
}

// declaredQuery is q as the server reads it for the operation method of
// item: the parameters the document names, those sent empty left out (the
// document's conventions: others are ignored, and empty is absent).
func declaredQuery(item *v3.PathItem, method string, q url.Values) url.Values {
	op := item.GetOperations().GetOrZero(strings.ToLower(method))
	if op == nil {
		return q
	}
	out := url.Values{}
	for _, p := range slices.Concat(item.Parameters, op.Parameters) {
		if p.In != "query" {
			continue
		}
		for _, v := range q[p.Name] {
			if v != "" {
				out.Add(p.Name, v)
			}
		}
	}
	return out
}

// wantRouterProblem checks an answer to a request outside the document (or
// outside what the process serves): status, as a problem matching schema.
func (s *server) wantRouterProblem(c *contract, exchange string, r *response, status int, schema *base.Schema, what string) {
	s.t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		s.t.Errorf("openapi: %s: %s must be answered %d problem+json, got %d %q: %s",
			exchange, what, status, r.status, r.header.Get("Content-Type"), clip(r.raw))
		return
	}
	if ok, errs := c.schemas.ValidateSchemaBytes(schema, r.raw); !ok {
		s.t.Errorf("openapi: %s: %s: the problem does not match its schema:%s", exchange, what, describe(errs))
	}
}

// describe lists validation errors, one per line, with the failing
// locations.
func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s: %s", e.Message, e.Reason)
		for _, f := range e.SchemaValidationErrors {
			where := f.FieldPath
			if where == "" {
				where = strings.Join(f.InstancePath, ".")
			}
			fmt.Fprintf(&b, "\n      %s: %s", where, f.Reason)
		}
	}
	return b.String()
}

// clip shortens a body for a failure message.
func clip(b []byte) string {
	const max = 600
	b = bytes.TrimSpace(b)
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// moneyMembers are the members that hold money in the API's answers
// (products, orders, order lines, payments, order events), outside a
// product's free-form metadata and but for a page's total.
var moneyMembers = map[string]bool{"price": true, "total": true, "amount": true}

var twoDecimals = regexp.MustCompile(`^-?[0-9]+\.[0-9]{2}$`)

// moneyNotTwoDecimals lists the money members of a JSON answer not written
// with exactly two decimals.
func moneyNotTwoDecimals(r *response) []string {
	if ct := r.header.Get("Content-Type"); ct != "application/json" || len(r.raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{"the body is not JSON: " + err.Error()}
	}
	var bad []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "metadata" {
					continue
				}
				// A page's total counts its items.
				_, page := x["page"]
				if n, ok := c.(json.Number); ok && moneyMembers[k] && !(k == "total" && page) && !twoDecimals.MatchString(n.String()) {
					bad = append(bad, path+"."+k+" = "+n.String())
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("$", v)
	return bad
}

// TestE2EOpenAPIGaps sends, through do (so checkContract validates each
// exchange), requests the other end-to-end tests do not: the readiness
// probe, and refusals of routes whose other answers they cover.
func TestE2EOpenAPIGaps(t *testing.T) {
	t.Parallel()
	s := newE2E(t)
	admin := s.admin()
	customer := s.newUser(admin, "gaps-customer")
	vendor := s.newUser(admin, "gaps-vendor", "vendor")
	p := s.product(vendor, 5, "4.20")
	o := s.order(customer, line{p, 1})
	ghost := uuid.NewString()
	junk := map[string]any{"nope": true}

	want(t, s.get("/readyz", ""), http.StatusOK)
	for _, tc := range []struct {
		method, path, token string
		body                any
		status              int
		hdr                 []string
	}{
		{http.MethodGet, "/api/auth/me", "not-a-token", nil, http.StatusUnauthorized, nil},
		{http.MethodPost, "/api/auth/refresh", "", rawBody(`{"refresh_token":`), http.StatusBadRequest, nil},
		{http.MethodPost, "/api/auth/refresh", "", map[string]any{"refresh_token": 7}, http.StatusUnprocessableEntity, nil},
		{http.MethodPost, "/api/auth/logout", customer.token, junk, http.StatusBadRequest, nil},
		{http.MethodPost, "/api/auth/logout", customer.token, map[string]any{"refresh_token": "x"}, http.StatusUnauthorized, nil},
		{http.MethodPost, "/api/auth/login", "", map[string]any{"email": "x@example.org", "password": "p"}, http.StatusUnsupportedMediaType, []string{"Content-Type", "text/plain"}},
		{http.MethodGet, "/api/users?limit=0", admin.token, nil, http.StatusUnprocessableEntity, nil},
		{http.MethodGet, "/api/users/" + customer.id, customer.token, nil, http.StatusBadRequest, []string{"X-Min-Position", "soon"}},
		{http.MethodGet, "/api/users/" + customer.id, "", nil, http.StatusUnauthorized, nil},
		{http.MethodPost, "/api/users/" + customer.id + "/roles", customer.token, map[string]any{"role": "admin"}, http.StatusForbidden, nil},
		{http.MethodDelete, "/api/users/" + ghost + "/roles/vendor", admin.token, nil, http.StatusNotFound, nil},
		{http.MethodGet, "/api/products/" + p, "", nil, http.StatusBadRequest, []string{"X-Min-Position", "x.y"}},
		{http.MethodPatch, "/api/products/" + p, customer.token, map[string]any{"name": "Mine"}, http.StatusForbidden, nil},
		{http.MethodDelete, "/api/products/" + p, vendor.token, nil, http.StatusBadRequest, []string{"If-Match", "banana"}},
		{http.MethodDelete, "/api/products/" + ghost, admin.token, nil, http.StatusNotFound, nil},
		{http.MethodPost, "/api/products/" + ghost + "/inventory", admin.token, map[string]any{"adjustment": 1, "reason": "count"}, http.StatusNotFound, nil},
		{http.MethodGet, "/api/orders/" + o, customer.token, nil, http.StatusBadRequest, []string{"X-Min-Position", "-1"}},
		{http.MethodPost, "/api/orders/" + o + "/pay", customer.token, card(goodCard), http.StatusBadRequest, []string{"If-Match", "banana"}},
		{http.MethodPost, "/api/orders/" + o + "/complete", customer.token, nil, http.StatusForbidden, nil},
		{http.MethodPost, "/api/orders/" + o + "/complete", admin.token, nil, http.StatusConflict, nil},
		{http.MethodPost, "/api/orders/" + ghost + "/cancel", admin.token, nil, http.StatusNotFound, nil},
		{http.MethodGet, "/api/orders/" + ghost + "/history", customer.token, nil, http.StatusNotFound, nil},
		{http.MethodGet, "/api/notifications?limit=101", customer.token, nil, http.StatusUnprocessableEntity, nil},
		{http.MethodGet, "/api/notifications?user_id=" + admin.id, customer.token, nil, http.StatusForbidden, nil},
		{http.MethodGet, "/api/admin/projections", customer.token, nil, http.StatusForbidden, nil},
	} {
		wantProblem(t, s.do(tc.method, tc.path, tc.token, tc.body, tc.hdr...), tc.status)
	}
}
