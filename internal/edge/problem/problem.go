// Package problem writes RFC 9457 problem details
// (application/problem+json), the one error format of every HTTP route.
package problem

import (
	"encoding/json"
	"net/http"
)

// Details is a problem body. Extra members (such as "available" for an
// insufficient stock conflict) are merged into the top level.
type Details struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Code   string         `json:"code,omitempty"`
	Errors []FieldError   `json:"errors,omitempty"`
	Extra  map[string]any `json:"-"`
}

// FieldError names a bad field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// New is a problem of status with detail.
func New(status int, detail string) *Details {
	return &Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// MarshalJSON merges Extra into the object; the standard members win.
func (d *Details) MarshalJSON() ([]byte, error) {
	type plain Details
	b, err := json.Marshal((*plain)(d))
	if err != nil || len(d.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	for k, v := range d.Extra {
		m[k] = v
	}
	var std map[string]any
	if err := json.Unmarshal(b, &std); err != nil {
		return nil, err
	}
	for k, v := range std {
		m[k] = v
	}
	return json.Marshal(m)
}

// Write sends d.
func Write(w http.ResponseWriter, d *Details) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d)
}
