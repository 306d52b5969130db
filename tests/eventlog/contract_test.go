package eventlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/published"
)

// contractPath is the AsyncAPI document of the Kafka topics: what
// downstream consumers are promised.
const contractPath = "../../docs/asyncapi.yaml"

// contract holds the payload schema of each event message of the
// AsyncAPI document, by event type (the message's name is its wire name),
// and the messages' examples.
type contract struct {
	payloads map[string]*jsonschema.Schema
	examples []contractExample
}

type contractExample struct {
	where   string
	typ     string
	payload any
}

// ecmaEscape matches the \uXXXX escapes of ECMA-262 regular expressions,
// which JSON Schema patterns are, and which Go's syntax spells \x{XXXX}.
// The document's patterns escape no backslash before a u.
var ecmaEscape = regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`)

func compilePattern(s string) (jsonschema.Regexp, error) {
	return regexp.Compile(ecmaEscape.ReplaceAllString(s, `\x{$1}`))
}

// loadContract compiles the payload schema of every message of the
// document, as JSON Schema draft 7 (AsyncAPI's default schema format), so
// formats are asserted.
func loadContract(tb testing.TB) *contract {
	tb.Helper()
	b, err := os.ReadFile(contractPath)
	if err != nil {
		tb.Fatal(err)
	}
	var tree any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		tb.Fatalf("%s: %v", contractPath, err)
	}
	asJSON, err := json.Marshal(tree)
	if err != nil {
		tb.Fatalf("%s as JSON: %v", contractPath, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(asJSON))
	if err != nil {
		tb.Fatal(err)
	}
	const url = "asyncapi.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseRegexpEngine(compilePattern)
	if err := c.AddResource(url, doc); err != nil {
		tb.Fatal(err)
	}
	var d struct {
		Components struct {
			Messages map[string]struct {
				Name     string `json:"name"`
				Examples []struct {
					Name    string `json:"name"`
					Payload any    `json:"payload"`
				} `json:"examples"`
			} `json:"messages"`
		} `json:"components"`
	}
	if err := json.Unmarshal(asJSON, &d); err != nil {
		tb.Fatal(err)
	}
	out := &contract{payloads: map[string]*jsonschema.Schema{}}
	for key, m := range d.Components.Messages {
		s, err := c.Compile(url + "#/components/messages/" + key + "/payload")
		if err != nil {
			tb.Fatalf("%s: message %s: %v", contractPath, key, err)
		}
		out.payloads[m.Name] = s
		for _, ex := range m.Examples {
			out.examples = append(out.examples, contractExample{where: key + " example " + ex.Name, typ: m.Name, payload: ex.Payload})
		}
	}
	return out
}

// check validates a published message against its message's payload
// schema, and its product metadata against what the document says of it in
// words. Errors say what is wrong, in one line.
func (c *contract) check(m message) error {
	s, ok := c.payloads[m.env.Type]
	if !ok {
		return fmt.Errorf("asyncapi.yaml has no message named %s", m.env.Type)
	}
	value, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.value))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(value); err != nil {
		return errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	if m.env.Type == (product.Created{}).EventType() || m.env.Type == (product.Updated{}).EventType() {
		return metadataLimits(m.env.Data)
	}
	return nil
}

// metadataLimits checks the limits the Metadata schema of the document
// states in words, because JSON Schema has no keyword for them: at most
// maxMetadata bytes, nested at most maxMetadataDepth levels.
func metadataLimits(data json.RawMessage) error {
	var d struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.Metadata == nil {
		return err
	}
	if len(d.Metadata) > maxMetadata {
		return fmt.Errorf("metadata is %d bytes, over the %d the contract promises", len(d.Metadata), maxMetadata)
	}
	dec := json.NewDecoder(bytes.NewReader(d.Metadata))
	dec.UseNumber() // 1e400 is a number, just not a float64
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	if deepest > maxMetadataDepth {
		return fmt.Errorf("metadata is nested %d levels deep, over the %d the contract promises", deepest, maxMetadataDepth)
	}
	return nil
}

// TestContractExamples: the document's own examples satisfy its schemas,
// so the schemas compile and are not stricter than what they illustrate.
func TestContractExamples(t *testing.T) {
	c := loadContract(t)
	if len(c.examples) == 0 {
		t.Fatal("no examples found")
	}
	for _, ex := range c.examples {
		value, err := json.Marshal(ex.payload)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.payloads[ex.typ].Validate(inst); err != nil {
			t.Errorf("%s: %v", ex.where, err)
		}
	}
}

// TestContractRefusesWhatReadersCannotHold: the contract check refuses the
// values this package exists to keep out of the log, so that a reader
// that happens to accept one still has the contract catching it.
func TestContractRefusesWhatReadersCannotHold(t *testing.T) {
	c := loadContract(t)
	const order = `"order_id":"0193e1b0-5a6b-7c8d-9e0f-1a2b3c4d5e6f"`
	item := func(price string, quantity int) string {
		return fmt.Sprintf(`{"product_id":"0193e0ff-12ab-7cde-8f01-23456789abcd","sku":"MUG-1","name":"Mug","quantity":%d,"price":%s}`, quantity, price)
	}
	for _, tc := range []struct {
		typ, data string
		ok        bool
	}{
		{"order.cancelled", `{` + order + `,"reason":"changed my mind\nsorry","refunded":false}`, true},
		{"order.cancelled", `{` + order + `,"reason":"a\u0000b","refunded":false}`, false},
		{"order.cancelled", `{` + order + `,"reason":"a\u0085b","refunded":false}`, false},
		{"order.cancelled", `{` + order + `,"reason":"` + repeat("é", maxReason+1) + `","refunded":false}`, false},
		{"order.created", `{` + order + `,"user_id":"0193e1a2-4b5c-7d6e-8f90-a1b2c3d4e5f6","items":[` + item("1000000000", 1) + `],"total":1000000000}`, true},
		{"order.created", `{` + order + `,"user_id":"0193e1a2-4b5c-7d6e-8f90-a1b2c3d4e5f6","items":[` + item("1000000000", 2) + `],"total":2000000000}`, false},
		{"order.created", `{` + order + `,"user_id":"0193e1a2-4b5c-7d6e-8f90-a1b2c3d4e5f6","items":[` + item("1.5", 10001) + `],"total":15001.5}`, false},
	} {
		err := c.check(envelopeOf(t, tc.typ, tc.data))
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: check says %v, want ok=%v", tc.typ, show(tc.data), err, tc.ok)
		}
	}
	for _, meta := range []struct {
		json string
		ok   bool
	}{
		{nested(maxMetadataDepth), true},
		{nested(maxMetadataDepth + 1), false},
		{sized(maxMetadata, ""), true},
		{sized(maxMetadata+1, ""), false},
		{`{"n":1e400}`, false},
		{`{"n":-1.5e308,"text":"line\nbreak\ttab"}`, true},
		{`{"a\u0000":1}`, false},
		{`{"a":["\u009f"]}`, false},
	} {
		data := `{"product_id":"0193e0ff-12ab-7cde-8f01-23456789abcd","metadata":` + meta.json + `}`
		err := c.check(envelopeOf(t, "product.updated", data))
		if (err == nil) != meta.ok {
			t.Errorf("metadata %s: check says %v, want ok=%v", show(meta.json), err, meta.ok)
		}
	}
}

// envelopeOf is the message the Publisher writes for an event of typ
// with data, on the order or product topic.
func envelopeOf(t *testing.T, typ, data string) message {
	t.Helper()
	stream := "order-0193e1b0-5a6b-7c8d-9e0f-1a2b3c4d5e6f"
	if strings.HasPrefix(typ, "product.") {
		stream = "product-0193e0ff-12ab-7cde-8f01-23456789abcd"
	}
	env := published.NewEnvelope(&eventstore.Event{
		EventData: eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: typ, Data: json.RawMessage(data),
			Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "c", Timestamp: time.Now()}},
		StreamID: stream,
	})
	value, err := json.Marshal(env)
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return message{env: env, value: value}
}
