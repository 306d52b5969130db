// Package layers holds the code to its layers: each package imports only
// from layers at or below its own, the two APIs never import each other,
// and production code never imports test support.
package layers

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/eventshop/eventshop/"

// layers ranks every package by the longest prefix of its path: a package
// may import one of the same or a lower rank. The published-event
// contract stands beside the projections, since the Kafka publisher writes
// it; the HTTP edge above them. A package no prefix covers
// fails the test, so a new folder is placed before it lands.
var layers = map[string]int{
	"domain":                    0,
	"eventstore":                1,
	"internal/platform":         1,
	"internal/services":         1,
	"commands":                  2,
	"projections":               2,
	"internal/edge":             3,
	"docs":                      3,
	"published":                 2,
	"readapi":                   4,
	"writeapi":                  4,
	"notifications":             4,
	"cmd":                       5,
	"internal/standins":         5,
	"internal/testsupport":      6,
	"eventstore/eventstoretest": 6,
	"domain/domaintest":         6,
	"internal/platform/pgmigrate/pgmigratetest": 6,
	"deploy":     6,
	"benchmarks": 6,
	"tests":      6,
	"postman":    6,
}

// apart are pairs of packages of one rank that must not import each
// other (either way).
var apart = [][2]string{{"readapi", "writeapi"}}

func rank(t *testing.T, pkg string) (int, string) {
	best, r := "", -1
	for prefix, n := range layers {
		if (pkg == prefix || strings.HasPrefix(pkg, prefix+"/")) && len(prefix) > len(best) {
			best, r = prefix, n
		}
	}
	if r < 0 {
		t.Errorf("package %s is in no layer: give its folder a rank in layers", pkg)
	}
	return r, best
}

type listed struct {
	ImportPath string
	Imports    []string
}

func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		n++
		from := strings.TrimPrefix(p.ImportPath, module)
		if from == p.ImportPath {
			continue
		}
		rf, lf := rank(t, from)
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			rt, lt := rank(t, to)
			if rt > rf {
				t.Errorf("%s (%s, layer %d) imports %s (%s, layer %d), a higher layer", from, lf, rf, to, lt, rt)
			}
			if lt == "internal/testsupport" && rf < layers["internal/testsupport"] {
				t.Errorf("%s is production code and imports test support %s", from, to)
			}
			for _, a := range apart {
				if (lf == a[0] && lt == a[1]) || (lf == a[1] && lt == a[0]) {
					t.Errorf("%s imports %s: %s and %s stand side by side on the edge", from, to, a[0], a[1])
				}
			}
		}
	}
	if n < 40 {
		t.Fatalf("go list named %d packages; the module has more", n)
	}
}
