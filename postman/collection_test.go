// Package postman holds the Postman collection of the demo flow; its test
// holds the collection to the OpenAPI document, so a request the API does
// not document cannot creep in.
package postman

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// collection is the part of a Postman v2.1 collection the test reads.
type collection struct {
	Info struct {
		Schema string `json:"schema"`
	} `json:"info"`
	Item     []item `json:"item"`
	Variable []struct {
		Key string `json:"key"`
	} `json:"variable"`
}

type item struct {
	Name    string `json:"name"`
	Item    []item `json:"item"`
	Request *struct {
		Method string `json:"method"`
		URL    struct {
			Raw   string   `json:"raw"`
			Host  []string `json:"host"`
			Path  []string `json:"path"`
			Query []struct {
				Key string `json:"key"`
			} `json:"query"`
		} `json:"url"`
	} `json:"request"`
}

// operation is one operation of the OpenAPI document, with the names of
// its query parameters.
type operation struct {
	Parameters []struct {
		Name string `yaml:"name"`
		In   string `yaml:"in"`
		Ref  string `yaml:"$ref"`
	} `yaml:"parameters"`
}

// openAPI is the part of the document the test reads.
type openAPI struct {
	OpenAPI    string                          `yaml:"openapi"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Parameters map[string]struct {
			Name string `yaml:"name"`
			In   string `yaml:"in"`
		} `yaml:"parameters"`
	} `yaml:"components"`
}

func load(t *testing.T, path string, v any, unmarshal func([]byte, any) error) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// requests flattens the collection's folders.
func requests(items []item) []item {
	var out []item
	for _, it := range items {
		if it.Request != nil {
			out = append(out, it)
		}
		out = append(out, requests(it.Item)...)
	}
	return out
}

var (
	variable = regexp.MustCompile(`^\{\{[A-Za-z0-9_]+\}\}$`)
	template = regexp.MustCompile(`^\{[A-Za-z0-9_]+\}$`)
)

// matches reports whether the collection's path segments fit the
// document's path template.
func matches(segments []string, path string) bool {
	want := strings.Split(strings.Trim(path, "/"), "/")
	if len(want) != len(segments) {
		return false
	}
	for i, w := range want {
		got := segments[i]
		switch {
		case template.MatchString(w):
			if !variable.MatchString(got) {
				return false
			}
		case w != got:
			return false
		}
	}
	return true
}

// TestCollectionFollowsOpenAPI: every request of the collection is an
// operation of docs/openapi.yaml — method, path and query parameters —
// sent to {{baseUrl}}, and every variable it uses is declared.
func TestCollectionFollowsOpenAPI(t *testing.T) {
	var c collection
	load(t, "eventshop.postman_collection.json", &c, json.Unmarshal)
	var doc openAPI
	load(t, "../docs/openapi.yaml", &doc, yaml.Unmarshal)
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("docs/openapi.yaml is OpenAPI %q, want 3.1", doc.OpenAPI)
	}
	if !strings.Contains(c.Info.Schema, "v2.1") {
		t.Errorf("collection schema %q, want Postman v2.1", c.Info.Schema)
	}
	declared := map[string]bool{}
	for _, v := range c.Variable {
		declared[v.Key] = true
	}
	var env struct {
		Values []struct {
			Key string `json:"key"`
		} `json:"values"`
	}
	load(t, "eventshop.postman_environment.json", &env, json.Unmarshal)
	for _, v := range env.Values {
		declared[v.Key] = true
	}

	reqs := requests(c.Item)
	if len(reqs) < 20 {
		t.Fatalf("the collection has %d requests, want the whole demo flow", len(reqs))
	}
	uses := regexp.MustCompile(`\{\{([A-Za-z0-9_]+)\}\}`)
	raw, _ := os.ReadFile("eventshop.postman_collection.json")
	for _, m := range uses.FindAllStringSubmatch(string(raw), -1) {
		if !declared[m[1]] {
			t.Errorf("variable {{%s}} is used but declared neither in the collection nor the environment", m[1])
		}
	}
	for _, r := range reqs {
		u := r.Request.URL
		if !slices.Equal(u.Host, []string{"{{baseUrl}}"}) || !strings.HasPrefix(u.Raw, "{{baseUrl}}/") {
			t.Errorf("%s: URL %s is not under {{baseUrl}}", r.Name, u.Raw)
		}
		var op *operation
		for path, ops := range doc.Paths {
			if !matches(u.Path, path) {
				continue
			}
			node, ok := ops[strings.ToLower(r.Request.Method)]
			if !ok {
				continue
			}
			op = &operation{}
			if err := node.Decode(op); err != nil {
				t.Fatalf("%s %s: %v", r.Request.Method, path, err)
			}
		}
		if op == nil {
			t.Errorf("%s: %s /%s is not an operation of docs/openapi.yaml", r.Name, r.Request.Method, strings.Join(u.Path, "/"))
			continue
		}
		for _, q := range u.Query {
			found := false
			for _, p := range op.Parameters {
				if p.Ref != "" {
					ref := doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
					p.Name, p.In = ref.Name, ref.In
				}
				found = found || (p.In == "query" && p.Name == q.Key)
			}
			if !found {
				t.Errorf("%s: query parameter %q is not documented for %s", r.Name, q.Key, r.Request.Method)
			}
		}
	}
}
