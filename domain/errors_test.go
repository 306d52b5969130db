package domain_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/domain"
)

func TestErrorIs(t *testing.T) {
	stock := domain.Conflict("insufficient_stock", "product %s has %d available", "p1", 2)
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"same code", stock, &domain.Error{Code: domain.CodeConflict}, true},
		{"other code", stock, &domain.Error{Code: domain.CodeInvalid}, false},
		{"same reason", stock, &domain.Error{Reason: "insufficient_stock"}, true},
		{"other reason", stock, &domain.Error{Reason: "order_not_pending"}, false},
		{"code and reason", stock, &domain.Error{Code: domain.CodeConflict, Reason: "insufficient_stock"}, true},
		{"right code, wrong reason", stock, &domain.Error{Code: domain.CodeConflict, Reason: "last_admin"}, false},
		{"wrong code, right reason", stock, &domain.Error{Code: domain.CodeNotFound, Reason: "insufficient_stock"}, false},
		{"empty target matches any domain error", stock, &domain.Error{}, true},
		{"wrapped", fmt.Errorf("reserve stock p1: %w", stock), &domain.Error{Reason: "insufficient_stock"}, true},
		{"wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", stock)), &domain.Error{Code: domain.CodeConflict}, true},
		{"joined", errors.Join(io.EOF, stock), &domain.Error{Code: domain.CodeConflict}, true},
		{"not a domain error", io.EOF, &domain.Error{}, false},
		{"not a domain target", stock, io.EOF, false},
		{"not found by code", domain.NotFound("order", "o1"), &domain.Error{Code: domain.CodeNotFound}, true},
		{"not found by reason", domain.NotFound("order", "o1"), &domain.Error{Reason: "order_not_found"}, true},
		{"not found, other aggregate", domain.NotFound("order", "o1"), &domain.Error{Reason: "product_not_found"}, false},
		{"validation by code", invalidName(), &domain.Error{Code: domain.CodeInvalid}, true},
		{"validation by reason", invalidName(), &domain.Error{Reason: "validation_failed"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tt.err, tt.target, got, tt.want)
			}
		})
	}
}

func invalidName() error {
	var f domain.Fields
	f.Add("name", "is required")
	return f.Err()
}

func TestErrorAsKeepsContext(t *testing.T) {
	err := fmt.Errorf("cancel order: %w", domain.Conflict("order_not_cancellable", "order %s is %s", "o1", "completed"))
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("errors.As found no *domain.Error in %v", err)
	}
	if de.Code != domain.CodeConflict || de.Reason != "order_not_cancellable" || de.Detail != "order o1 is completed" {
		t.Errorf("got %+v", de)
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"detail", domain.Conflict("last_admin", "user %s is the last admin", "u1"), "last_admin: user u1 is the last admin"},
		{"not found", domain.NotFound("product", "p1"), "product_not_found: product p1 does not exist"},
		{"fields", func() error {
			var f domain.Fields
			f.Add("sku", "is required")
			f.Add("price", "must be greater than %d", 0)
			return f.Err()
		}(), "validation_failed: sku: is required; price: must be greater than 0"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: Error() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNotFound(t *testing.T) {
	err := domain.NotFound("user", "u1")
	if err.Code != domain.CodeNotFound || err.Reason != "user_not_found" || len(err.Fields) != 0 {
		t.Errorf("NotFound = %+v", err)
	}
}

func TestFieldsErr(t *testing.T) {
	var none domain.Fields
	if err := none.Err(); err != nil {
		t.Fatalf("empty Fields.Err() = %v (%T), want a nil error", err, err)
	}
	var f domain.Fields
	f.Add("a", "bad %d", 1)
	f.Add("b", "bad")
	var de *domain.Error
	if !errors.As(f.Err(), &de) {
		t.Fatalf("Fields.Err() is not a *domain.Error")
	}
	want := []domain.FieldError{{Field: "a", Message: "bad 1"}, {Field: "b", Message: "bad"}}
	if de.Code != domain.CodeInvalid || de.Reason != "validation_failed" || fmt.Sprint(de.Fields) != fmt.Sprint(want) {
		t.Errorf("Fields.Err() = %+v", de)
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		wantMsg string // "" means valid
	}{
		{"ok", "Ada", ""},
		{"ascii at max", "Ada Byron!", ""},
		{"unicode at max", strings.Repeat("é", 10), ""},
		{"empty", "", "is required"},
		{"blank", " \t\n ", "is required"},
		{"too long in runes", strings.Repeat("é", 11), "must be at most 10 characters"},
		{"newline", "Ada\nByron", "must not contain control characters"},
		{"nul", "Ada\x00", "must not contain control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f domain.Fields
			f.CheckName("full_name", tt.value, 10)
			if tt.wantMsg == "" {
				if len(f) != 0 {
					t.Errorf("CheckName(%q) = %v, want valid", tt.value, f)
				}
				return
			}
			if len(f) != 1 || f[0].Field != "full_name" || f[0].Message != tt.wantMsg {
				t.Errorf("CheckName(%q) = %v, want full_name: %s", tt.value, f, tt.wantMsg)
			}
		})
	}
}
