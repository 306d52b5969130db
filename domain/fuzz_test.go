package domain_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/eventshop/eventshop/domain"
)

// FuzzRegistryDecode: decoding stored data never panics, and an event
// that decodes is a fixed point of the codec: encoded and decoded again it
// is the same value, and encodes to the same bytes. (The first decode may
// normalise what was stored: embedded JSON compacted, bad UTF-8 replaced.)
// The seed corpus is every stored sample and its broken twin, plus
// testdata/fuzz/FuzzRegistryDecode.
func FuzzRegistryDecode(f *testing.F) {
	reg := merged()
	wires := registeredTypes(reg)
	for _, s := range storedEvents {
		f.Add(uint8(slices.Index(wires, s.wire)), []byte(s.stored))
	}
	for wire, b := range broken {
		data, err := json.Marshal(b.event)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(slices.Index(wires, wire)), data)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		wire := wires[int(which)%len(wires)]
		first, err := reg.Decode(wire, 1, data)
		if err != nil {
			return
		}
		b1 := encode(t, first)
		second, err := reg.Decode(wire, 1, b1)
		if err != nil {
			t.Fatalf("%s %s decoded, but its encoding %s does not: %v", wire, data, b1, err)
		}
		b2 := encode(t, second)
		third, err := reg.Decode(wire, 1, b2)
		if err != nil {
			t.Fatalf("%s: %s does not decode: %v", wire, b2, err)
		}
		if !bytes.Equal(b1, b2) || !reflect.DeepEqual(second, third) {
			t.Fatalf("%s %s: not a fixed point:\n %s %#v\n %s %#v", wire, data, b1, second, b2, third)
		}
	})
}

func registeredTypes(reg domain.Registry) []string {
	var out []string
	for wire := range reg {
		out = append(out, wire)
	}
	slices.Sort(out)
	return out
}

func encode(t *testing.T, e domain.Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("encode %#v: %v", e, err)
	}
	return b
}
