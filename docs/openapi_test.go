package docs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	goyaml "github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"gopkg.in/yaml.v3"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/docs"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/projections"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

// serveRoutes are the routes cmd/eventshop/serve.go mounts itself, beside
// the root router's (edge.NewRouter: health, readiness, metrics, docs) and
// the write and read APIs': /dev/mail, in the local run only, and
// documented as such.
var serveRoutes = []string{"GET /dev/mail"}

// model parses openapi.yaml once for the package's tests.
var model = sync.OnceValues(func() (*libopenapi.DocumentModel[v3.Document], error) {
	doc, err := libopenapi.NewDocument(docs.OpenAPIYAML())
	if err != nil {
		return nil, err
	}
	return doc.BuildV3Model()
})

func openAPI(t *testing.T) *v3.Document {
	t.Helper()
	m, err := model()
	if err != nil {
		t.Fatalf("openapi.yaml does not build as an OpenAPI 3 model: %v", err)
	}
	return &m.Model
}

// TestOpenAPIDocument: the document is OpenAPI 3.1, valid against the
// specification's schema, and every reference in it resolves.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := libopenapi.NewDocument(docs.OpenAPIYAML())
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi: %q, want 3.1.0", v)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("build the model: %v", err)
	}
	for _, err := range m.Index.GetReferenceIndexErrors() {
		t.Errorf("reference: %v", err)
	}
	if res := m.Index.GetResolver(); res != nil {
		for _, err := range res.GetResolvingErrors() {
			t.Errorf("unresolved: %v", err)
		}
		for _, c := range res.GetInfiniteCircularReferences() {
			t.Errorf("infinite circular reference: %s", c.GenerateJourneyPath())
		}
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("not a valid OpenAPI 3.1 document: %s: %s", e.Message, e.Reason)
			for _, s := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s (line %d)", s.Reason, s.KeywordLocation, s.Line)
			}
		}
	}
}

// operations lists the document's operations as "METHOD /path".
func operations(d *v3.Document) map[string]*v3.Operation {
	out := map[string]*v3.Operation{}
	for p, item := range d.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			out[strings.ToUpper(method)+" "+p] = op
		}
	}
	return out
}

// mounted builds the real write and read APIs' routers, with every
// optional route of the read API switched on (as `eventshop serve` has
// them) on the root router, and lists what they mount as "METHOD
// /pattern", with the routes serve.go adds.
func mounted(t *testing.T) []string {
	t.Helper()
	authenticate := edge.Authenticate(nil, nil)
	api := writeapi.New(writeapi.Config{Authenticate: authenticate})
	reads := readapi.New(readapi.Config{
		Catalog:       mongoread.New(nil),
		Checkpoint:    func(context.Context, string) (eventstore.Position, error) { return eventstore.Start, nil },
		Orders:        noOrders{},
		Streams:       noStreams{},
		Projections:   []string{"users.v1"},
		Admin:         projections.Admin{},
		Failures:      projections.Failures{},
		Notifications: noNotifications{},
	})
	r := edge.NewRouter(edge.RootConfig{Metrics: http.NotFoundHandler(), Docs: true})
	api.Routes(r)
	reads.Routes(r, authenticate)
	var out []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, serveRoutes...)
	sort.Strings(out)
	return slices.Compact(out)
}

type noOrders struct{}

func (noOrders) Order(context.Context, commands.Actor, string) (order.State, commands.Result, error) {
	return order.State{}, commands.Result{}, nil
}

type noStreams struct{}

func (noStreams) ReadStream(context.Context, string, eventstore.Direction, int64, int) ([]eventstore.Event, error) {
	return nil, nil
}

type noNotifications struct{}

func (noNotifications) List(context.Context, ledger.Query) ([]ledger.Notification, int, error) {
	return nil, 0, nil
}

// TestOpenAPIRoutes: every route the binary mounts is documented, and every
// documented operation is mounted.
func TestOpenAPIRoutes(t *testing.T) {
	ops := operations(openAPI(t))
	routes := mounted(t)
	if len(routes) < 30 {
		t.Fatalf("only %d routes mounted: %v", len(routes), routes)
	}
	for _, r := range routes {
		if _, ok := ops[r]; !ok {
			t.Errorf("%s is mounted but not documented in openapi.yaml", r)
		}
	}
	for op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("%s is documented but not mounted", op)
		}
	}
}

// TestOpenAPIOperations holds every operation to the conventions of API.md.
func TestOpenAPIOperations(t *testing.T) {
	d := openAPI(t)
	ids := map[string]string{}
	for name, op := range operations(d) {
		t.Run(name, func(t *testing.T) {
			_, path, _ := strings.Cut(name, " ")
			if op.OperationId == "" {
				t.Error("no operationId")
			} else if other, dup := ids[op.OperationId]; dup {
				t.Errorf("operationId %s is also %s's", op.OperationId, other)
			}
			ids[op.OperationId] = name
			if op.Summary == "" || len(op.Tags) == 0 {
				t.Error("no summary or no tag")
			}
			codes := map[string]*v3.Response{}
			for code, resp := range op.Responses.Codes.FromOldest() {
				codes[code] = resp
			}
			if _, ok := codes["500"]; !ok {
				t.Error("no 500")
			}
			// The gateway: a body limit and admission control on every
			// route, a rate limit on all but the probes and the scrape.
			if _, ok := codes["413"]; !ok {
				t.Error("no 413 (the gateway's body limit)")
			}
			if _, ok := codes["503"]; !ok {
				t.Error("no 503 (the gateway's admission control and request deadline)")
			}
			limited := !slices.Contains([]string{"/healthz", "/readyz", "/metrics"}, path)
			if _, ok := codes["429"]; limited != ok {
				t.Errorf("rate limited %v, but 429 documented %v", limited, ok)
			}
			signedIn := op.Security == nil // the document's default: bearerAuth
			if _, ok := codes["401"]; signedIn && !ok {
				t.Error("a signed-in route without 401")
			}
			for code, resp := range codes {
				if resp.Headers.GetOrZero("X-Correlation-ID") == nil {
					t.Errorf("%s does not document X-Correlation-ID", code)
				}
				// promhttp answers a scrape over its limit in plain text.
				if code >= "400" && name != "GET /metrics" {
					if resp.Content.GetOrZero("application/problem+json") == nil || resp.Content.Len() != 1 {
						t.Errorf("%s is not application/problem+json alone", code)
					}
				}
			}
			correlated := false
			for _, p := range op.Parameters {
				correlated = correlated || (p.In == "header" && p.Name == "X-Correlation-ID")
				if p.In == "path" && !strings.Contains(path, "{"+p.Name+"}") {
					t.Errorf("path parameter %s is not in the path", p.Name)
				}
			}
			if !correlated {
				t.Error("no X-Correlation-ID parameter")
			}
			if rb := op.RequestBody; rb != nil {
				mt := rb.Content.GetOrZero("application/json")
				if mt == nil || rb.Content.Len() != 1 {
					t.Fatal("a request body that is not application/json alone")
				}
				// The server decodes every body strictly.
				strict(t, "request body", mt.Schema.Schema())
			}
		})
	}
}

// strict fails unless every object in s refuses unknown members, as the
// server's decoder does.
func strict(t *testing.T, where string, s *base.Schema) {
	t.Helper()
	if s == nil {
		return
	}
	if slices.Contains(s.Type, "object") && (s.Properties != nil && s.Properties.Len() > 0) {
		if s.AdditionalProperties == nil || !s.AdditionalProperties.IsB() || s.AdditionalProperties.B {
			t.Errorf("%s: an object schema without additionalProperties: false", where)
		}
	}
	for name, p := range s.Properties.FromOldest() {
		strict(t, where+"."+name, p.Schema())
	}
	if s.Items != nil && s.Items.IsA() {
		strict(t, where+"[]", s.Items.A.Schema())
	}
}

// TestOpenAPIExamples: every example in the document matches its schema,
// so the reference shows nothing the API would not say.
func TestOpenAPIExamples(t *testing.T) {
	d := openAPI(t)
	sv := schema_validation.NewSchemaValidator()
	n := 0
	check := func(where string, schema *base.Schema, value *goyaml.Node) {
		t.Helper()
		raw, err := nodeJSON(value)
		if err != nil {
			t.Errorf("%s: example: %v", where, err)
			return
		}
		n++
		if ok, errs := sv.ValidateSchemaBytes(schema, raw); !ok {
			for _, e := range errs {
				t.Errorf("%s: example does not match its schema: %s", where, e.Reason)
				for _, f := range e.SchemaValidationErrors {
					t.Errorf("  %s: %s (%s)", f.FieldPath, f.Reason, f.KeywordLocation)
				}
			}
		}
	}
	media := func(where string, mt *v3.MediaType) {
		if mt == nil || mt.Schema == nil {
			return
		}
		s := mt.Schema.Schema()
		if mt.Example != nil {
			check(where, s, mt.Example)
		}
		for name, ex := range mt.Examples.FromOldest() {
			check(where+" example "+name, s, ex.Value)
		}
	}
	for name, op := range operations(d) {
		if op.RequestBody != nil {
			for ct, mt := range op.RequestBody.Content.FromOldest() {
				media(name+" request "+ct, mt)
			}
		}
		for code, resp := range op.Responses.Codes.FromOldest() {
			for ct, mt := range resp.Content.FromOldest() {
				media(name+" "+code+" "+ct, mt)
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d examples checked", n)
	}
}

// nodeJSON is a YAML example as JSON.
func nodeJSON(n *goyaml.Node) ([]byte, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// TestOpenAPIJSON: the JSON served is the YAML document, member for
// member, and money keeps its two decimals.
func TestOpenAPIJSON(t *testing.T) {
	js, err := docs.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(docs.OpenAPIYAML(), &fromYAML); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromJSON)
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("openapi.json differs from openapi.yaml")
	}
	if !regexp.MustCompile(`"price":12\.50\b`).Match(js) {
		t.Error(`openapi.json lost the two decimals of a price example ("price":12.50)`)
	}
	doc, err := libopenapi.NewDocument(js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.BuildV3Model(); err != nil {
		t.Fatalf("openapi.json does not build: %v", err)
	}
}

func TestYAMLToJSONRefuses(t *testing.T) {
	for _, src := range []string{"a: .inf", "a: 1\na: 2", "a: &x [*x]", "<<: {a: 1}", "? [1]\n: 2"} {
		if _, err := docs.YAMLToJSON([]byte(src)); err == nil {
			t.Errorf("%q converted", src)
		}
	}
	got, err := docs.YAMLToJSON([]byte("a: [1, 2.50, -0.5e3, 0x10, true, null, '3', 2026-11-27]\nb: &b {c: d}\ne: *b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":[1,2.50,-0.5e3,16,true,null,"3","2026-11-27"],"b":{"c":"d"},"e":{"c":"d"}}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
