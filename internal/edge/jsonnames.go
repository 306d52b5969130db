package edge

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// exactNames checks that every member name of the JSON value doc names a
// field of t exactly as its json tag (or Go name) spells it, at every
// depth. encoding/json matches member names case-insensitively, so
// without it "PRICE" would set price and a client could send a field
// twice under two spellings. It returns the first name that does not
// match, "" when all do. Members of values that decode themselves
// (json.RawMessage, a json.Unmarshaler) are theirs to judge.
func exactNames(doc any, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return ""
	}
	switch v := doc.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			fields := fieldsOf(t)
			for name, member := range v {
				f, ok := fields[name]
				if !ok {
					return name
				}
				if bad := exactNames(member, f); bad != "" {
					return name + "." + bad
				}
			}
		case reflect.Map:
			for name, member := range v {
				if bad := exactNames(member, t.Elem()); bad != "" {
					return name + "." + bad
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, member := range v {
				if bad := exactNames(member, t.Elem()); bad != "" {
					return bad
				}
			}
		}
	}
	return ""
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// structFields caches fieldsOf.
var structFields sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf maps the JSON names of struct t's fields, as encoding/json
// names them (embedded structs' fields promoted), to their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if m, ok := structFields.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for n, ft := range fieldsOf(et) {
					m[n] = ft
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	structFields.Store(t, m)
	return m
}
