package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/user"
)

func TestValidText(t *testing.T) {
	tests := []struct {
		s                  string
		oneLine, multiline bool
	}{
		{"", true, true},
		{"Ann's mug — 12,50 €", true, true},
		{"日本語 🙂", true, true},
		{"\u2028 line separator is not a control character", true, true},
		{"tab\there", false, true},
		{"line\nfeed", false, true},
		{"carriage\rreturn", false, true},
		{"nul\x00", false, false},
		{"bell\x07", false, false},
		{"escape\x1b[0m", false, false},
		{"unit separator\x1f", false, false},
		{"del\x7f", false, false},
		{"c1 \u0080", false, false},
		{"c1 \u009f", false, false},
		{"vertical tab\v", false, false},
		{"form feed\f", false, false},
		{"bad \xff utf-8", false, false},
		{"cut \xc3", false, false},
	}
	for _, tt := range tests {
		if got := domain.ValidText(tt.s, false); got != tt.oneLine {
			t.Errorf("ValidText(%q, one line) = %v, want %v", tt.s, got, tt.oneLine)
		}
		if got := domain.ValidText(tt.s, true); got != tt.multiline {
			t.Errorf("ValidText(%q, multiline) = %v, want %v", tt.s, got, tt.multiline)
		}
	}
}

func TestFieldChecks(t *testing.T) {
	tests := []struct {
		name  string
		check func(*domain.Fields)
		bad   bool
	}{
		{"text at the limit in runes", func(f *domain.Fields) { f.CheckText("x", strings.Repeat("é", 5), 5, false) }, false},
		{"text over the limit", func(f *domain.Fields) { f.CheckText("x", strings.Repeat("é", 6), 5, false) }, true},
		{"empty text", func(f *domain.Fields) { f.CheckText("x", "", 5, false) }, false},
		{"name blank", func(f *domain.Fields) { f.CheckName("x", " \t", 5) }, true},
		{"name with a line break", func(f *domain.Fields) { f.CheckName("x", "a\nb", 5) }, true},
		{"id", func(f *domain.Fields) { f.CheckID("x", "0193e1a2-4b5c-7d6e-8f90-a1b2c3d4e5f6") }, false},
		{"id at the limit", func(f *domain.Fields) { f.CheckID("x", strings.Repeat("i", domain.MaxIDLength)) }, false},
		{"id over the limit", func(f *domain.Fields) { f.CheckID("x", strings.Repeat("i", domain.MaxIDLength+1)) }, true},
		{"id empty", func(f *domain.Fields) { f.CheckID("x", "") }, true},
		{"range at min", func(f *domain.Fields) { f.CheckRange("x", 1, 1, 3) }, false},
		{"range at max", func(f *domain.Fields) { f.CheckRange("x", 3, 1, 3) }, false},
		{"range below", func(f *domain.Fields) { f.CheckRange("x", 0, 1, 3) }, true},
		{"range above", func(f *domain.Fields) { f.CheckRange("x", 4, 1, 3) }, true},
		{"price at the bound", func(f *domain.Fields) { f.CheckCents("x", domain.MaxCents, true) }, false},
		{"price a cent over", func(f *domain.Fields) { f.CheckCents("x", domain.MaxCents+1, true) }, true},
		{"price 0", func(f *domain.Fields) { f.CheckCents("x", 0, true) }, true},
		{"amount 0", func(f *domain.Fields) { f.CheckCents("x", 0, false) }, false},
		{"amount at the bound", func(f *domain.Fields) { f.CheckCents("x", domain.MaxCents, false) }, false},
		{"amount a cent over", func(f *domain.Fields) { f.CheckCents("x", domain.MaxCents+1, false) }, true},
		{"amount negative", func(f *domain.Fields) { f.CheckCents("x", -1, false) }, true},
		{"object", func(f *domain.Fields) { f.CheckObject("x", json.RawMessage(`{"a":[1,{"b":"c"}]}`), 100, 3) }, false},
		{"object at the size limit", func(f *domain.Fields) { f.CheckObject("x", json.RawMessage(`{"a":1}`), 7, 3) }, false},
		{"object over the size limit", func(f *domain.Fields) { f.CheckObject("x", json.RawMessage(`{"a":1}`), 6, 3) }, true},
		{"object over the depth limit", func(f *domain.Fields) { f.CheckObject("x", json.RawMessage(`{"a":[1,{"b":[]}]}`), 100, 3) }, true},
		{"object with an escaped NUL key", func(f *domain.Fields) { f.CheckObject("x", json.RawMessage(`{"\u0000":1}`), 100, 3) }, true},
		{"array", func(f *domain.Fields) { f.CheckObject("x", json.RawMessage(`[]`), 100, 3) }, true},
		{"nothing", func(f *domain.Fields) { f.CheckObject("x", nil, 100, 3) }, true},
	}
	for _, tt := range tests {
		var f domain.Fields
		tt.check(&f)
		if bad := len(f) > 0; bad != tt.bad {
			t.Errorf("%s: field errors %v, want bad=%v", tt.name, f, tt.bad)
		}
		if len(f) > 1 {
			t.Errorf("%s: %d errors for one field: %v", tt.name, len(f), f)
		}
	}
}

func TestValidateNamesEachFieldOnce(t *testing.T) {
	err := domain.Validate(user.Registered{Email: "ada@example.com", FullName: "Ada", Roles: []string{"customer"}},
		user.CredentialsSet{PasswordHash: "h"})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeInvalid || fmt.Sprint(de.Fields) != "[{user_id is required}]" {
		t.Errorf("Validate = %#v", err)
	}
	if err := domain.Validate(); err != nil {
		t.Errorf("Validate of nothing = %v", err)
	}
}

func TestStreamUnreadable(t *testing.T) {
	cause := errors.New("decode order.paid: json: cannot unmarshal number")
	err := domain.StreamUnreadable("order-o1", "0193e1a3-0000-7000-8000-000000000001", "order.paid", 3, cause)
	if !errors.Is(err, &domain.Error{Code: domain.CodeConflict, Reason: domain.ReasonStreamUnreadable}) {
		t.Fatalf("%v is not a stream_unreadable conflict", err)
	}
	for _, want := range []string{"order-o1", "0193e1a3-0000-7000-8000-000000000001", "order.paid", "version 3"} {
		if !strings.Contains(err.Detail, want) {
			t.Errorf("detail %q does not name %s", err.Detail, want)
		}
	}
	if err.Extra["stream"] != "order-o1" || err.Extra["event_id"] != "0193e1a3-0000-7000-8000-000000000001" {
		t.Errorf("extra %v", err.Extra)
	}
}
