package domain_test

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/domain"
)

func TestCentsString(t *testing.T) {
	tests := []struct {
		c    domain.Cents
		want string
	}{
		{0, "0.00"},
		{5, "0.05"},
		{50, "0.50"},
		{1999, "19.99"},
		{2000, "20.00"},
		{-150, "-1.50"},
		{-5, "-0.05"},
		{domain.MaxCents, "1000000000.00"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("Cents(%d).String() = %q, want %q", int64(tt.c), got, tt.want)
		}
		b, err := json.Marshal(tt.c)
		if err != nil || string(b) != tt.want {
			t.Errorf("json.Marshal(Cents(%d)) = %s, %v; want %s", int64(tt.c), b, err, tt.want)
		}
	}
}

func TestParseCents(t *testing.T) {
	tests := []struct {
		in      string
		want    domain.Cents
		wantErr bool
	}{
		{in: "19.99", want: 1999},
		{in: "0.5", want: 50},
		{in: "0.50", want: 50},
		{in: "20", want: 2000},
		{in: "20.0", want: 2000},
		{in: "0", want: 0},
		{in: "0.01", want: 1},
		{in: "-1.5", want: -150},
		{in: "1e2", want: 10000},
		{in: "1E2", want: 10000},
		{in: "1e+2", want: 10000},
		{in: "-1e2", want: -10000},
		{in: "1.5e1", want: 1500},
		{in: "1.999e1", want: 1999},
		{in: "1e-2", want: 1},
		{in: "1500e-3", want: 150},
		{in: "1.50e0", want: 150},
		{in: "1e9", want: domain.MaxCents},
		{in: "1000000000", want: domain.MaxCents},
		{in: "1000000000.00", want: domain.MaxCents},
		{in: "999999999.99", want: domain.MaxCents - 1},
		{in: "-1000000000.00", want: -domain.MaxCents},
		{in: "0001.50", want: 150},
		{in: "-0", want: 0},
		{in: "0e999999999999999999999", want: 0},

		{in: "19.999", wantErr: true},
		{in: "0.001", wantErr: true},
		{in: "1.005e0", wantErr: true},
		{in: "1e-3", wantErr: true},
		// A float would round these to whole cents; they are refused.
		{in: "0.0100000001e0", wantErr: true},
		{in: "999999999.99000001e0", wantErr: true},
		{in: "1000000000.01", wantErr: true},
		{in: "-1000000000.01", wantErr: true},
		// Stored totals beyond the bound decode (UnmarshalJSON) but are no
		// client input.
		{in: "10000000000000.00", wantErr: true},
		{in: "92233720368547758.07", wantErr: true},
		{in: "1e+-2", wantErr: true},
		{in: "1e-+2", wantErr: true},
		{in: "1.e", wantErr: true},
		{in: "1e11", wantErr: true},
		{in: "1e300", wantErr: true},
		{in: "1e-300", wantErr: true},
		{in: "9999999999999", wantErr: true},
		{in: "99999999999999999999999", wantErr: true},
		{in: "", wantErr: true},
		{in: "null", wantErr: true},
		{in: `"19.99"`, wantErr: true},
		{in: "abc", wantErr: true},
		{in: "1.2.3", wantErr: true},
		{in: "1.x", wantErr: true},
		{in: ".5", wantErr: true},
		{in: "-", wantErr: true},
		{in: "--1", wantErr: true},
		{in: "+1", wantErr: true},
		{in: "1_000", wantErr: true},
		{in: "e5", wantErr: true},
		{in: "1e", wantErr: true},
		{in: "1e2e3", wantErr: true},
		{in: "1.-5", wantErr: true},
		{in: "true", wantErr: true},
		{in: "[1]", wantErr: true},
	}
	for _, tt := range tests {
		got, err := domain.ParseCents(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseCents(%q) = %d, want an error", tt.in, int64(got))
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseCents(%q) = %d, %v; want %d", tt.in, int64(got), err, int64(tt.want))
		}
	}
}

func TestCentsJSON(t *testing.T) {
	type body struct {
		Price domain.Cents `json:"price"`
	}
	tests := []struct {
		in      string
		want    domain.Cents
		out     string // the re-encoded body
		wantErr bool
	}{
		{in: `{"price": 19.99}`, want: 1999, out: `{"price":19.99}`},
		{in: `{"price": 0.5}`, want: 50, out: `{"price":0.50}`},
		{in: `{"price": 20}`, want: 2000, out: `{"price":20.00}`},
		{in: `{"price": 1e2}`, want: 10000, out: `{"price":100.00}`},
		{in: `{"price": -0.05}`, want: -5, out: `{"price":-0.05}`},
		{in: `{"price":  7.1 }`, want: 710, out: `{"price":7.10}`},

		{in: `{"price": 19.999}`, wantErr: true},
		{in: `{"price": "19.99"}`, wantErr: true},
		{in: `{"price": null}`, wantErr: true},
		{in: `{"price": true}`, wantErr: true},
		{in: `{"price": {}}`, wantErr: true},
		{in: `{"price": 1e300}`, wantErr: true},
	}
	for _, tt := range tests {
		var b body
		err := json.Unmarshal([]byte(tt.in), &b)
		if tt.wantErr {
			if err == nil {
				t.Errorf("Unmarshal(%s) = %d, want an error", tt.in, int64(b.Price))
			}
			continue
		}
		if err != nil || b.Price != tt.want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", tt.in, int64(b.Price), err, int64(tt.want))
			continue
		}
		out, err := json.Marshal(b)
		if err != nil || string(out) != tt.out {
			t.Errorf("Marshal(%d) = %s, %v; want %s", int64(b.Price), out, err, tt.out)
		}
		var again body
		if err := json.Unmarshal(out, &again); err != nil || again != b {
			t.Errorf("round trip of %s = %d, %v", out, int64(again.Price), err)
		}
	}
}

func TestCentsJSONRoundTripEveryAmountNearBoundaries(t *testing.T) {
	var amounts []domain.Cents
	for c := domain.Cents(-1000); c <= 1000; c++ {
		amounts = append(amounts, c)
	}
	amounts = append(amounts, domain.MaxCents, domain.MaxCents-1, -domain.MaxCents, 123456789)
	for _, c := range amounts {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(%d): %v", int64(c), err)
		}
		if !strings.Contains(string(b), ".") || len(string(b))-strings.Index(string(b), ".") != 3 {
			t.Fatalf("Marshal(%d) = %s, want two decimals", int64(c), b)
		}
		var got domain.Cents
		if err := json.Unmarshal(b, &got); err != nil || got != c {
			t.Fatalf("Unmarshal(%s) = %d, %v; want %d", b, int64(got), err, int64(c))
		}
	}
}

// Decoding takes every amount a writer could have stored: MarshalJSON
// writes any int64, and events are forever. Only what is not an amount of
// cents in the int64 range is refused.
func TestCentsDecodesEveryStoredAmount(t *testing.T) {
	tests := []struct {
		in      string
		want    domain.Cents
		wantErr bool
	}{
		// The order total of issue 12: 10,000 units at the largest price.
		{in: "10000000000000.00", want: 1_000_000_000_000_000},
		{in: "100000000000", want: 10_000_000_000_000},
		{in: "1000000000.01", want: domain.MaxCents + 1},
		{in: "-1000000000.01", want: -domain.MaxCents - 1},
		{in: "92233720368547758.07", want: math.MaxInt64},
		{in: "-92233720368547758.08", want: math.MinInt64},
		{in: "9.223372036854775807e16", want: math.MaxInt64},
		{in: "-9223372036854775808e-2", want: math.MinInt64},
		{in: "92233720368547758.0700", want: math.MaxInt64},
		{in: "0.00", want: 0},
		{in: "1e16", want: 1_000_000_000_000_000_000},
		{in: "12.5e1", want: 12500},

		{in: "92233720368547758.08", wantErr: true},
		{in: "-92233720368547758.09", wantErr: true},
		{in: "1e17", wantErr: true},
		{in: "184467440737095516.16", wantErr: true},
		{in: "99999999999999999999999999", wantErr: true},
		{in: "1e300", wantErr: true},
		{in: "0.001", wantErr: true},
		{in: "1.005", wantErr: true},
		{in: `"1.00"`, wantErr: true},
		{in: "null", wantErr: true},
		{in: "{}", wantErr: true},
	}
	for _, tt := range tests {
		var got domain.Cents
		err := json.Unmarshal([]byte(tt.in), &got)
		if tt.wantErr {
			if err == nil {
				t.Errorf("Unmarshal(%s) = %d, want an error", tt.in, int64(got))
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", tt.in, int64(got), err, int64(tt.want))
		}
	}
}

func TestCentsJSONRoundTripAtTheInt64Edges(t *testing.T) {
	for _, c := range []domain.Cents{math.MaxInt64, math.MinInt64, math.MinInt64 + 1, math.MaxInt64 - 99, -domain.MaxCents - 1, domain.MaxCents * 10_000} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal(%d): %v", int64(c), err)
		}
		var got domain.Cents
		if err := json.Unmarshal(b, &got); err != nil || got != c {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", b, int64(got), err, int64(c))
		}
	}
	if got := domain.Cents(math.MinInt64).String(); got != "-92233720368547758.08" {
		t.Errorf("String of MinInt64 = %q", got)
	}
}

func TestCentsTimes(t *testing.T) {
	tests := []struct {
		c    domain.Cents
		n    int64
		want domain.Cents
		ok   bool
	}{
		{1999, 2, 3998, true},
		{domain.MaxCents, 1, domain.MaxCents, true},
		{domain.MaxCents / 10_000, 10_000, domain.MaxCents, true},
		{domain.MaxCents/10_000 + 1, 10_000, 0, false},
		{domain.MaxCents, 2, 0, false},
		{1, int64(domain.MaxCents) + 1, 0, false},
		{-domain.MaxCents, 1, -domain.MaxCents, true},
		{domain.MaxCents, -1, -domain.MaxCents, true},
		{-5, -3, 15, true},
		{0, math.MaxInt64, 0, true},
		{math.MaxInt64, 0, 0, true},
		{math.MinInt64, 1, 0, false},
		{math.MaxInt64, math.MaxInt64, 0, false},
		{math.MinInt64, math.MinInt64, 0, false},
		{1 << 32, 1 << 32, 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.c.Times(tt.n)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Cents(%d).Times(%d) = %d, %v; want %d, %v", int64(tt.c), tt.n, int64(got), ok, int64(tt.want), tt.ok)
		}
	}
}

func TestFormatCents(t *testing.T) {
	huge, _ := new(big.Int).SetString("-123456789012345678901234", 10)
	tests := []struct {
		v    *big.Int
		want string
	}{
		{big.NewInt(0), "0.00"},
		{big.NewInt(5), "0.05"},
		{big.NewInt(-150), "-1.50"},
		{new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(10_000)), "922337203685477580700.00"},
		{huge, "-1234567890123456789012.34"},
	}
	for _, tt := range tests {
		if got := domain.FormatCents(tt.v); got != tt.want {
			t.Errorf("FormatCents(%s) = %q, want %q", tt.v, got, tt.want)
		}
	}
	// The same format as Cents.String wherever both apply.
	for _, c := range []domain.Cents{0, 1, -1, 1999, -1999, domain.MaxCents, math.MaxInt64, math.MinInt64} {
		if a, b := domain.FormatCents(big.NewInt(int64(c))), c.String(); a != b {
			t.Errorf("FormatCents(%d) = %q, String = %q", int64(c), a, b)
		}
	}
}
