package docs_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/domain/unique"
	"github.com/eventshop/eventshop/domain/user"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/published"
)

// dlqTopic is the notifier's dead-letter topic (API.md).
const dlqTopic = notifier.DefaultDLQTopic

// dlqHeaders are the headers the notifier adds to a dead letter.
var dlqHeaders = []string{notifier.HeaderDLQReason, notifier.HeaderDLQAttempts, notifier.HeaderDLQTopic,
	notifier.HeaderDLQPartition, notifier.HeaderDLQOffset}

// elsewhere names the event types of an aggregate package that are
// appended to another stream than the aggregate's own; every other type of
// a registry below lives in its aggregate's stream. A new type is thus
// taken as published until it is listed here, so it fails the test until
// it is documented or listed.
var elsewhere = map[string]string{
	user.AdminAdded{}.EventType():   user.AdminsStream,
	user.AdminRemoved{}.EventType(): user.AdminsStream,
}

// aggregates are the registries of every domain package, each with the
// stream its events are appended to.
var aggregates = []struct {
	name     string
	registry domain.Registry
	stream   func(id string) string
}{
	{"user", user.Registry(), user.Stream},
	{"product", product.Registry(), product.Stream}, // product.* and inventory.*
	{"order", order.Registry(), order.Stream},
	// Claim streams: user_email-<hash> and product_sku-<hash>.
	{"unique", unique.Registry(), func(string) string { return unique.Stream(user.EmailStreamPrefix, "a@example.com") }},
	{"unique", unique.Registry(), func(string) string { return unique.Stream(product.SKUStreamPrefix, "SKU-1") }},
}

const sampleID = "0193e1a2-4b5c-7d6e-8f90-a1b2c3d4e5f6"

// publishedType is an event type the Publisher writes, with its topic and
// a factory of its Go value.
type publishedType struct {
	topic  string
	stream string
	make   func() domain.Event
}

// publishedTypes derives from the registries and the Publisher's own
// routing and secrecy rules which event types reach Kafka.
func publishedTypes(t *testing.T) map[string]publishedType {
	t.Helper()
	all := domain.Registry{}
	out := map[string]publishedType{}
	for _, a := range aggregates {
		for typ, mk := range a.registry {
			all[typ] = mk
			stream := a.stream(sampleID)
			if s, ok := elsewhere[typ]; ok {
				stream = s
			}
			topic, key, ok := published.Destination(stream, typ)
			if !ok {
				continue
			}
			if key != sampleID {
				t.Errorf("%s (%s): Destination(%s) keys by %q, want the aggregate id", typ, a.name, stream, key)
			}
			out[typ] = publishedType{topic: topic, stream: stream, make: mk}
		}
	}
	for typ := range elsewhere {
		if _, ok := all[typ]; !ok {
			t.Errorf("the test's list of events outside their aggregate's stream names %s, which no registry knows", typ)
		}
	}
	if len(out) == 0 {
		t.Fatal("no published event types found")
	}
	return out
}

// The AsyncAPI 3.0 document, as far as this file checks it. Decoding with
// KnownFields refuses a misspelt or misplaced keyword.
type (
	document struct {
		AsyncAPI           string               `yaml:"asyncapi"`
		ID                 string               `yaml:"id"`
		Info               info                 `yaml:"info"`
		DefaultContentType string               `yaml:"defaultContentType"`
		Servers            map[string]server    `yaml:"servers"`
		Channels           map[string]channel   `yaml:"channels"`
		Operations         map[string]operation `yaml:"operations"`
		Components         components           `yaml:"components"`
	}
	info struct {
		Title          string         `yaml:"title"`
		Version        string         `yaml:"version"`
		Description    string         `yaml:"description"`
		TermsOfService string         `yaml:"termsOfService"`
		Contact        map[string]any `yaml:"contact"`
		License        map[string]any `yaml:"license"`
		Tags           []tag          `yaml:"tags"`
		ExternalDocs   *externalDocs  `yaml:"externalDocs"`
	}
	tag struct {
		Name         string        `yaml:"name"`
		Description  string        `yaml:"description"`
		ExternalDocs *externalDocs `yaml:"externalDocs"`
	}
	externalDocs struct {
		Description string `yaml:"description"`
		URL         string `yaml:"url"`
	}
	server struct {
		Host            string                    `yaml:"host"`
		Protocol        string                    `yaml:"protocol"`
		ProtocolVersion string                    `yaml:"protocolVersion"`
		Pathname        string                    `yaml:"pathname"`
		Title           string                    `yaml:"title"`
		Summary         string                    `yaml:"summary"`
		Description     string                    `yaml:"description"`
		Variables       map[string]serverVariable `yaml:"variables"`
		Security        []any                     `yaml:"security"`
		Tags            []tag                     `yaml:"tags"`
		ExternalDocs    *externalDocs             `yaml:"externalDocs"`
		Bindings        map[string]any            `yaml:"bindings"`
	}
	serverVariable struct {
		Enum        []string `yaml:"enum"`
		Default     string   `yaml:"default"`
		Description string   `yaml:"description"`
		Examples    []string `yaml:"examples"`
	}
	channel struct {
		Address      *string             `yaml:"address"`
		Title        string              `yaml:"title"`
		Summary      string              `yaml:"summary"`
		Description  string              `yaml:"description"`
		Messages     map[string]*message `yaml:"messages"`
		Servers      []ref               `yaml:"servers"`
		Parameters   map[string]any      `yaml:"parameters"`
		Tags         []tag               `yaml:"tags"`
		ExternalDocs *externalDocs       `yaml:"externalDocs"`
		Bindings     map[string]any      `yaml:"bindings"`
	}
	operation struct {
		Action       string         `yaml:"action"`
		Channel      ref            `yaml:"channel"`
		Title        string         `yaml:"title"`
		Summary      string         `yaml:"summary"`
		Description  string         `yaml:"description"`
		Messages     []ref          `yaml:"messages"`
		Security     []any          `yaml:"security"`
		Tags         []tag          `yaml:"tags"`
		ExternalDocs *externalDocs  `yaml:"externalDocs"`
		Bindings     map[string]any `yaml:"bindings"`
		Traits       []any          `yaml:"traits"`
		Reply        map[string]any `yaml:"reply"`
	}
	ref struct {
		Ref string `yaml:"$ref"`
	}
	components struct {
		Schemas           map[string]*schema          `yaml:"schemas"`
		Messages          map[string]*message         `yaml:"messages"`
		CorrelationIDs    map[string]*correlationID   `yaml:"correlationIds"`
		MessageBindings   map[string]*messageBindings `yaml:"messageBindings"`
		Servers           map[string]any              `yaml:"servers"`
		Channels          map[string]any              `yaml:"channels"`
		Operations        map[string]any              `yaml:"operations"`
		Replies           map[string]any              `yaml:"replies"`
		ReplyAddresses    map[string]any              `yaml:"replyAddresses"`
		Parameters        map[string]any              `yaml:"parameters"`
		SecuritySchemes   map[string]any              `yaml:"securitySchemes"`
		ServerVariables   map[string]any              `yaml:"serverVariables"`
		OperationTraits   map[string]any              `yaml:"operationTraits"`
		MessageTraits     map[string]any              `yaml:"messageTraits"`
		ServerBindings    map[string]any              `yaml:"serverBindings"`
		ChannelBindings   map[string]any              `yaml:"channelBindings"`
		OperationBindings map[string]any              `yaml:"operationBindings"`
		ExternalDocs      map[string]any              `yaml:"externalDocs"`
		Tags              map[string]any              `yaml:"tags"`
	}
	correlationID struct {
		Ref         string `yaml:"$ref"`
		Description string `yaml:"description"`
		Location    string `yaml:"location"`
	}
	messageBindings struct {
		Ref   string               `yaml:"$ref"`
		Kafka *kafkaMessageBinding `yaml:"kafka"`
	}
	kafkaMessageBinding struct {
		Key                     *schema `yaml:"key"`
		SchemaIDLocation        string  `yaml:"schemaIdLocation"`
		SchemaIDPayloadEncoding string  `yaml:"schemaIdPayloadEncoding"`
		SchemaLookupStrategy    string  `yaml:"schemaLookupStrategy"`
		BindingVersion          string  `yaml:"bindingVersion"`
	}
	message struct {
		Ref           string           `yaml:"$ref"`
		Name          string           `yaml:"name"`
		Title         string           `yaml:"title"`
		Summary       string           `yaml:"summary"`
		Description   string           `yaml:"description"`
		ContentType   string           `yaml:"contentType"`
		Headers       *schema          `yaml:"headers"`
		Payload       *schema          `yaml:"payload"`
		CorrelationID *correlationID   `yaml:"correlationId"`
		Bindings      *messageBindings `yaml:"bindings"`
		Examples      []example        `yaml:"examples"`
		Tags          []tag            `yaml:"tags"`
		ExternalDocs  *externalDocs    `yaml:"externalDocs"`
		Traits        []any            `yaml:"traits"`
	}
	example struct {
		Name    string         `yaml:"name"`
		Summary string         `yaml:"summary"`
		Headers map[string]any `yaml:"headers"`
		Payload map[string]any `yaml:"payload"`
	}
	// schema is the subset of JSON Schema (draft 7, AsyncAPI's default)
	// the document may use.
	schema struct {
		Ref                  string             `yaml:"$ref"`
		Title                string             `yaml:"title"`
		Description          string             `yaml:"description"`
		Type                 string             `yaml:"type"`
		Format               string             `yaml:"format"`
		Const                any                `yaml:"const"`
		Enum                 []any              `yaml:"enum"`
		Pattern              string             `yaml:"pattern"`
		Minimum              *float64           `yaml:"minimum"`
		Maximum              *float64           `yaml:"maximum"`
		MinLength            *int               `yaml:"minLength"`
		MaxLength            *int               `yaml:"maxLength"`
		MinItems             *int               `yaml:"minItems"`
		MaxItems             *int               `yaml:"maxItems"`
		Properties           map[string]*schema `yaml:"properties"`
		Required             []string           `yaml:"required"`
		AdditionalProperties any                `yaml:"additionalProperties"`
		Items                *schema            `yaml:"items"`
		AllOf                []*schema          `yaml:"allOf"`
		AnyOf                []*schema          `yaml:"anyOf"`
		PropertyNames        *schema            `yaml:"propertyNames"`
		Examples             []any              `yaml:"examples"`
		Default              any                `yaml:"default"`
		Deprecated           bool               `yaml:"deprecated"`
	}
)

// load reads asyncapi.yaml into the typed document (unknown fields
// refused) and into a generic tree for JSON-pointer resolution.
func load(t *testing.T) (*document, any) {
	t.Helper()
	b, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var d document
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	var raw any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	return &d, raw
}

// resolver resolves the document's references and flattens allOf.
type resolver struct {
	t *testing.T
	d *document
}

// schema resolves a component schema reference.
func (r resolver) schema(ref string) *schema {
	r.t.Helper()
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	s := r.d.Components.Schemas[name]
	if !ok || s == nil {
		r.t.Fatalf("schema $ref %q does not name a component schema", ref)
	}
	return s
}

// flatten resolves s's $ref and merges its allOf parts into one schema:
// properties merged (recursively), required united, and a type that the
// parts disagree on reported.
func (r resolver) flatten(s *schema) *schema {
	r.t.Helper()
	if s == nil {
		return nil
	}
	for s.Ref != "" {
		s = r.schema(s.Ref)
	}
	out := *s
	out.AllOf = nil
	for _, part := range s.AllOf {
		out = r.merge(&out, r.flatten(part))
	}
	return &out
}

func (r resolver) merge(a, b *schema) schema {
	r.t.Helper()
	out := *a
	if b.Type != "" {
		if a.Type != "" && a.Type != b.Type {
			r.t.Errorf("allOf parts disagree on the type: %q and %q", a.Type, b.Type)
		}
		out.Type = b.Type
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&out.Format, b.Format}, {&out.Pattern, b.Pattern}, {&out.Description, b.Description}, {&out.Title, b.Title},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if b.Const != nil {
		out.Const = b.Const
	}
	if b.Enum != nil {
		out.Enum = b.Enum
	}
	out.Required = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a.Required), b.Required...))))
	if len(b.Properties) > 0 {
		out.Properties = maps.Clone(a.Properties)
		if out.Properties == nil {
			out.Properties = map[string]*schema{}
		}
		for k, p := range b.Properties {
			if q, ok := out.Properties[k]; ok {
				m := r.merge(r.flatten(q), r.flatten(p))
				out.Properties[k] = &m
			} else {
				out.Properties[k] = p
			}
		}
	}
	if b.Items != nil {
		if a.Items != nil {
			m := r.merge(r.flatten(a.Items), r.flatten(b.Items))
			out.Items = &m
		} else {
			out.Items = b.Items
		}
	}
	return out
}

// message resolves a message or a reference to one (a component message or
// a channel's message).
func (r resolver) message(m *message) *message {
	r.t.Helper()
	for m != nil && m.Ref != "" {
		ref := m.Ref
		if name, ok := strings.CutPrefix(ref, "#/components/messages/"); ok {
			m = r.d.Components.Messages[name]
		} else if rest, ok := strings.CutPrefix(ref, "#/channels/"); ok {
			ch, msg, _ := strings.Cut(rest, "/messages/")
			m = r.d.Channels[ch].Messages[msg]
		} else {
			m = nil
		}
		if m == nil {
			r.t.Fatalf("message $ref %q resolves to no message", ref)
		}
	}
	return m
}

func (r resolver) bindings(b *messageBindings) *messageBindings {
	r.t.Helper()
	if b == nil || b.Ref == "" {
		return b
	}
	name, _ := strings.CutPrefix(b.Ref, "#/components/messageBindings/")
	got := r.d.Components.MessageBindings[name]
	if got == nil {
		r.t.Fatalf("bindings $ref %q resolves to nothing", b.Ref)
	}
	return r.bindings(got)
}

func (r resolver) correlationID(c *correlationID) *correlationID {
	r.t.Helper()
	if c == nil || c.Ref == "" {
		return c
	}
	name, _ := strings.CutPrefix(c.Ref, "#/components/correlationIds/")
	got := r.d.Components.CorrelationIDs[name]
	if got == nil {
		r.t.Fatalf("correlationId $ref %q resolves to nothing", c.Ref)
	}
	return r.correlationID(got)
}

// docMessage is a message of an event channel, resolved.
type docMessage struct {
	key, topic string
	msg        *message
	payload    *schema
}

// eventMessages returns the messages of the event channels by the event
// type their payload's type const names.
func eventMessages(t *testing.T, r resolver) map[string]docMessage {
	t.Helper()
	out := map[string]docMessage{}
	for chKey, ch := range r.d.Channels {
		if ch.Address == nil || !slices.Contains(published.Topics(), *ch.Address) {
			continue
		}
		for key, m := range ch.Messages {
			msg := r.message(m)
			payload := r.flatten(msg.Payload)
			if payload == nil || payload.Properties["type"] == nil {
				t.Errorf("channel %s message %s: no payload with a type property", chKey, key)
				continue
			}
			typ, ok := r.flatten(payload.Properties["type"]).Const.(string)
			if !ok || typ == "" {
				t.Errorf("channel %s message %s: the payload's type has no string const", chKey, key)
				continue
			}
			if prev, dup := out[typ]; dup {
				t.Errorf("event type %s is documented twice: messages %s and %s", typ, prev.key, key)
			}
			out[typ] = docMessage{key: chKey + "/" + key, topic: *ch.Address, msg: msg, payload: payload}
		}
	}
	return out
}

func TestAsyncAPIDocument(t *testing.T) {
	d, _ := load(t)
	if d.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi = %q, want 3.0.0", d.AsyncAPI)
	}
	if d.Info.Title == "" || d.Info.Version == "" || d.Info.Description == "" {
		t.Errorf("info needs a title, a version and a description: %+v", d.Info)
	}
	if d.DefaultContentType != published.ContentType {
		t.Errorf("defaultContentType = %q, want %q", d.DefaultContentType, published.ContentType)
	}

	if s, ok := d.Servers["local"]; !ok || s.Host != "127.0.0.1:9092" {
		t.Errorf("servers.local = %+v, want host 127.0.0.1:9092", s)
	}
	if _, ok := d.Servers["production"]; !ok {
		t.Error("no production server")
	}
	vars := regexp.MustCompile(`\{([^}]*)\}`)
	for name, s := range d.Servers {
		if s.Protocol != "kafka" || s.Host == "" {
			t.Errorf("server %s: protocol %q host %q, want kafka and a host", name, s.Protocol, s.Host)
		}
		for _, m := range vars.FindAllStringSubmatch(s.Host, -1) {
			if _, ok := s.Variables[m[1]]; !ok {
				t.Errorf("server %s: host %s uses variable %s, which it does not declare", name, s.Host, m[1])
			}
		}
	}

	// Channels: exactly the Publisher's topics and the dead-letter topic.
	var addrs []string
	for key, ch := range d.Channels {
		if ch.Address == nil {
			t.Errorf("channel %s has no address", key)
			continue
		}
		if len(ch.Messages) == 0 || ch.Description == "" {
			t.Errorf("channel %s needs messages and a description", key)
		}
		addrs = append(addrs, *ch.Address)
	}
	slices.Sort(addrs)
	want := slices.Sorted(slices.Values(append(published.Topics(), dlqTopic, notifier.DefaultRetryTopic)))
	if !slices.Equal(addrs, want) {
		t.Errorf("channel addresses = %v, want published.Topics(), the DLQ and the retry topic: %v", addrs, want)
	}

	// Operations: every channel is received, with all of its messages, and
	// an operation names only messages of its own channel.
	received := map[string]map[string]bool{}
	for key, op := range d.Operations {
		if op.Action != "receive" {
			t.Errorf("operation %s: action %q, want receive", key, op.Action)
		}
		ch, ok := strings.CutPrefix(op.Channel.Ref, "#/channels/")
		if _, exists := d.Channels[ch]; !ok || !exists {
			t.Errorf("operation %s: channel %q is not a channel of the document", key, op.Channel.Ref)
			continue
		}
		if received[ch] == nil {
			received[ch] = map[string]bool{}
		}
		for _, m := range op.Messages {
			msg, ok := strings.CutPrefix(m.Ref, "#/channels/"+ch+"/messages/")
			if _, exists := d.Channels[ch].Messages[msg]; !ok || !exists {
				t.Errorf("operation %s: message %q is not a message of its channel %s", key, m.Ref, ch)
				continue
			}
			received[ch][msg] = true
		}
	}
	for key, ch := range d.Channels {
		for msg := range ch.Messages {
			if !received[key][msg] {
				t.Errorf("channel %s: no operation receives message %s", key, msg)
			}
		}
	}
}

// TestAsyncAPIRefsResolve: every $ref points inside the document, at
// something, and stands alone (siblings of a $ref are ignored by readers).
func TestAsyncAPIRefsResolve(t *testing.T) {
	_, raw := load(t)
	n := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"]; ok {
				n++
				s, _ := r.(string)
				if _, err := pointer(raw, s); err != nil {
					t.Errorf("%s: $ref %v: %v", path, r, err)
				}
				if len(v) != 1 {
					t.Errorf("%s: $ref %v has siblings, which readers ignore", path, r)
				}
			}
			for k, e := range v {
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(path+"/"+strconv.Itoa(i), e)
			}
		}
	}
	walk("#", raw)
	if n == 0 {
		t.Fatal("no $ref found")
	}
}

// pointer resolves a local JSON pointer reference ("#/a/b") in doc.
func pointer(doc any, ref string) (any, error) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	cur := doc
	for _, tok := range strings.Split(p, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no %q", tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no index %q", tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q is inside a scalar", tok)
		}
	}
	if cur == nil {
		return nil, fmt.Errorf("resolves to null")
	}
	return cur, nil
}

// TestAsyncAPIDocumentsEveryPublishedEvent is the point of this file:
// every event type the Publisher can write has a message on its topic
// whose payload's type is that type and whose data lists exactly the JSON
// fields of the event's Go struct; and nothing else is documented.
func TestAsyncAPIDocumentsEveryPublishedEvent(t *testing.T) {
	d, _ := load(t)
	r := resolver{t, d}
	pub := publishedTypes(t)
	docs := eventMessages(t, r)

	for _, typ := range slices.Sorted(maps.Keys(pub)) {
		p := pub[typ]
		m, ok := docs[typ]
		if !ok {
			t.Errorf("%s is published to %s but has no message in asyncapi.yaml", typ, p.topic)
			continue
		}
		if m.topic != p.topic {
			t.Errorf("%s is published to %s but documented on %s", typ, p.topic, m.topic)
		}
		if m.msg.Name != typ {
			t.Errorf("message %s: name %q, want the wire name %s", m.key, m.msg.Name, typ)
		}
		if m.msg.Title == "" || m.msg.Summary == "" {
			t.Errorf("message %s: needs a title and a summary", m.key)
		}
		data := r.flatten(m.payload.Properties["data"])
		if data == nil {
			t.Errorf("message %s: no data schema", m.key)
			continue
		}
		for _, err := range conform(r, "data", data, reflect.TypeOf(p.make())) {
			t.Errorf("%s (message %s): %s", typ, m.key, err)
		}
		if sub := r.flatten(m.payload.Properties["subject"]); sub == nil || sub.Pattern == "" {
			t.Errorf("message %s: the subject has no pattern", m.key)
		} else if re, err := regexp.Compile(sub.Pattern); err != nil || !re.MatchString(p.stream) {
			t.Errorf("message %s: subject pattern %q does not match the stream %s (%v)", m.key, sub.Pattern, p.stream, err)
		}
	}
	for _, typ := range slices.Sorted(maps.Keys(docs)) {
		if _, ok := pub[typ]; !ok {
			t.Errorf("message %s documents %s, which the Publisher never writes", docs[typ].key, typ)
		}
	}
}

// TestAsyncAPIEventMessages: what every event message shares, against
// the Publisher's constants: the envelope, the headers, the key.
func TestAsyncAPIEventMessages(t *testing.T) {
	d, _ := load(t)
	r := resolver{t, d}
	envelope := reflect.TypeFor[published.Envelope]()
	if errs := conform(r, "Envelope", r.flatten(r.schema("#/components/schemas/Envelope")), envelope); len(errs) > 0 {
		t.Errorf("the Envelope schema does not match published.Envelope:\n%s", strings.Join(errs, "\n"))
	}
	headers := []string{published.HeaderContentType, published.HeaderID, published.HeaderType, published.HeaderSource,
		published.HeaderSubject, published.HeaderCorrelationID, published.HeaderCausationID}
	// The Publisher always sets these; the correlation and causation ids
	// only when they are not empty.
	always := headers[:5]

	for typ, m := range eventMessages(t, r) {
		for _, err := range conform(r, "payload", m.payload, envelope) {
			t.Errorf("message %s: %s", m.key, err)
		}
		for prop, want := range map[string]string{"specversion": published.SpecVersion, "source": published.Source, "datacontenttype": published.DataContentType} {
			if got := r.flatten(m.payload.Properties[prop]).Const; got != want {
				t.Errorf("message %s: %s const %v, want %q", m.key, prop, got, want)
			}
		}
		if m.msg.ContentType != published.ContentType {
			t.Errorf("message %s: contentType %q, want %q", m.key, m.msg.ContentType, published.ContentType)
		}
		h := r.flatten(m.msg.Headers)
		if h == nil {
			t.Errorf("message %s: no headers", m.key)
			continue
		}
		if got := slices.Sorted(maps.Keys(h.Properties)); !slices.Equal(got, slices.Sorted(slices.Values(headers))) {
			t.Errorf("message %s: headers %v, want %v", m.key, got, headers)
		}
		if !slices.Equal(slices.Sorted(slices.Values(h.Required)), slices.Sorted(slices.Values(always))) {
			t.Errorf("message %s: required headers %v, want %v", m.key, h.Required, always)
		}
		for prop, want := range map[string]string{published.HeaderContentType: published.ContentType, published.HeaderSource: published.Source} {
			if p := h.Properties[prop]; p == nil || r.flatten(p).Const != want {
				t.Errorf("message %s: header %s should be the const %q", m.key, prop, want)
			}
		}
		b := r.bindings(m.msg.Bindings)
		if b == nil || b.Kafka == nil || b.Kafka.Key == nil {
			t.Errorf("message %s: no Kafka key binding", m.key)
		} else if k := r.flatten(b.Kafka.Key); k.Type != "string" || k.Format != "uuid" {
			t.Errorf("message %s: key %s/%s, want string/uuid", m.key, k.Type, k.Format)
		}
		if c := r.correlationID(m.msg.CorrelationID); c == nil || c.Location != "$message.header#/"+published.HeaderCorrelationID {
			t.Errorf("message %s (%s): correlationId should point at the %s header", m.key, typ, published.HeaderCorrelationID)
		}
	}
}

// TestAsyncAPIDeadLetters: the DLQ channel describes the headers the
// notifier writes, on top of the original message's, and the retry
// channel those of a replayed dead letter.
func TestAsyncAPIDeadLetters(t *testing.T) {
	d, _ := load(t)
	r := resolver{t, d}
	// The retry topic carries dead letters as they were, plus when they
	// were replayed.
	required := map[string][]string{
		dlqTopic:                   dlqHeaders,
		notifier.DefaultRetryTopic: append(slices.Clone(dlqHeaders), "dlq_replayed_at"),
	}
	found := map[string]bool{}
	for key, ch := range d.Channels {
		if ch.Address == nil || required[*ch.Address] == nil {
			continue
		}
		found[*ch.Address] = true
		for mk, m := range ch.Messages {
			msg := r.message(m)
			h := r.flatten(msg.Headers)
			if h == nil {
				t.Fatalf("channel %s message %s: no headers", key, mk)
			}
			for _, name := range required[*ch.Address] {
				if p := h.Properties[name]; p == nil || r.flatten(p).Description == "" {
					t.Errorf("channel %s message %s: header %s missing or undescribed", key, mk, name)
				}
				if !slices.Contains(h.Required, name) {
					t.Errorf("channel %s message %s: header %s is not required", key, mk, name)
				}
			}
			// The original message's headers stay on it.
			for _, name := range []string{published.HeaderID, published.HeaderType, published.HeaderSubject} {
				if h.Properties[name] == nil {
					t.Errorf("channel %s message %s: the original header %s is not described", key, mk, name)
				}
			}
			if p := r.flatten(msg.Payload); p == nil || p.Properties["data"] == nil {
				t.Errorf("channel %s message %s: the payload should be the original envelope", key, mk)
			}
		}
	}
	for topic := range required {
		if !found[topic] {
			t.Errorf("no channel for %s", topic)
		}
	}
}

// TestAsyncAPIExamples: each example is what the Publisher would write:
// its value decodes with published.Decode, its data decodes into the
// event's Go struct and encodes back to exactly the example's data, and
// its headers repeat the envelope.
func TestAsyncAPIExamples(t *testing.T) {
	d, _ := load(t)
	r := resolver{t, d}
	reg := domain.Registry{}.Merge(user.Registry(), product.Registry(), order.Registry())
	n := 0
	for typ, m := range eventMessages(t, r) {
		for _, ex := range m.msg.Examples {
			n++
			where := fmt.Sprintf("message %s example %q", m.key, ex.Name)
			value, err := json.Marshal(ex.Payload)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			env, err := published.Decode(value)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if env.Type != typ {
				t.Errorf("%s: type %s, want %s", where, env.Type, typ)
			}
			if topic, _, ok := published.Route(env.Subject); !ok || topic != m.topic {
				t.Errorf("%s: subject %s is not a stream of %s", where, env.Subject, m.topic)
			}
			if sub := r.flatten(m.payload.Properties["subject"]); !regexp.MustCompile(sub.Pattern).MatchString(env.Subject) {
				t.Errorf("%s: subject %s does not match %s", where, env.Subject, sub.Pattern)
			}
			checkKeys(t, where+" payload", ex.Payload, m.payload)
			checkKeys(t, where+" headers", ex.Headers, r.flatten(m.msg.Headers))
			for h, want := range map[string]string{
				published.HeaderContentType: published.ContentType, published.HeaderID: env.ID, published.HeaderType: env.Type,
				published.HeaderSource: env.Source, published.HeaderSubject: env.Subject,
				published.HeaderCorrelationID: env.CorrelationID, published.HeaderCausationID: env.CausationID,
			} {
				if got, _ := ex.Headers[h].(string); got != want {
					t.Errorf("%s: header %s = %q, want %q", where, h, got, want)
				}
			}
			ev, err := reg.Decode(env.Type, env.SchemaVersion, env.Data)
			if err != nil {
				t.Errorf("%s: data does not decode: %v", where, err)
				continue
			}
			again, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(again, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(env.Data, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: the data is not what the code writes:\n got %s\nwant %s", where, again, env.Data)
			}
		}
	}
	if n < 2 {
		t.Errorf("%d examples, want a few", n)
	}
}

// checkKeys reports keys of v that s does not declare, and required ones
// it lacks.
func checkKeys(t *testing.T, where string, v map[string]any, s *schema) {
	t.Helper()
	for k := range v {
		if _, ok := s.Properties[k]; !ok {
			t.Errorf("%s: %s is not in the schema", where, k)
		}
	}
	for _, k := range s.Required {
		if _, ok := v[k]; !ok {
			t.Errorf("%s: required %s is missing", where, k)
		}
	}
}

var (
	centsType = reflect.TypeFor[domain.Cents]()
	rawType   = reflect.TypeFor[json.RawMessage]()
	timeType  = reflect.TypeFor[time.Time]()
	marshaler = reflect.TypeFor[json.Marshaler]()
)

// conform compares schema s (flattened) with the JSON encoding/json makes
// of a value of Go type typ: the JSON type, and for a struct exactly its
// JSON field names as properties, the fields without omitempty as
// required, each field recursively. It returns what differs.
func conform(r resolver, path string, s *schema, typ reflect.Type) []string {
	if s == nil {
		return []string{path + ": no schema"}
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := ""
	switch {
	case typ == rawType:
		return nil // any JSON; the schema says what it holds
	case typ == centsType:
		want = "number"
	case typ == timeType:
		if s.Format != "date-time" {
			return []string{fmt.Sprintf("%s: a time, want format date-time, got %q", path, s.Format)}
		}
		want = "string"
	case typ.Implements(marshaler) || reflect.PointerTo(typ).Implements(marshaler):
		return []string{fmt.Sprintf("%s: %s has its own JSON encoding; teach conform its JSON type", path, typ)}
	default:
		switch typ.Kind() {
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "boolean"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "integer"
		case reflect.Float32, reflect.Float64:
			want = "number"
		case reflect.Slice, reflect.Array:
			want = "array"
		case reflect.Map, reflect.Struct:
			want = "object"
		default:
			return []string{fmt.Sprintf("%s: Go type %s has no JSON schema mapping here", path, typ)}
		}
	}
	var errs []string
	if s.Type != want {
		errs = append(errs, fmt.Sprintf("%s: type %q, want %q (Go %s)", path, s.Type, want, typ))
	}
	switch typ.Kind() {
	case reflect.Slice, reflect.Array:
		errs = append(errs, conform(r, path+"[]", r.flatten(s.Items), typ.Elem())...)
	case reflect.Struct:
		if typ == timeType {
			break
		}
		fields, required := jsonFields(typ)
		props := slices.Sorted(maps.Keys(s.Properties))
		if !slices.Equal(props, slices.Sorted(maps.Keys(fields))) {
			errs = append(errs, fmt.Sprintf("%s: properties %v, want the JSON fields of %s: %v", path, props, typ, slices.Sorted(maps.Keys(fields))))
		}
		if got := slices.Sorted(slices.Values(s.Required)); !slices.Equal(got, required) {
			errs = append(errs, fmt.Sprintf("%s: required %v, want the fields of %s without omitempty: %v", path, got, typ, required))
		}
		for name, ft := range fields {
			if p, ok := s.Properties[name]; ok {
				errs = append(errs, conform(r, path+"."+name, r.flatten(p), ft)...)
			}
		}
	}
	return errs
}

// jsonFields returns the JSON names of typ's fields with their types, and
// the sorted names of those encoding/json always writes (no omitempty or
// omitzero).
func jsonFields(typ reflect.Type) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var required []string
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			inner, req := jsonFields(f.Type)
			maps.Copy(fields, inner)
			required = append(required, req...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
		if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(strings.Split(opts, ","), "omitzero") {
			required = append(required, name)
		}
	}
	slices.Sort(required)
	return fields, required
}
