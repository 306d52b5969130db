package domain

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Cents is an amount of money in integer cents. In JSON it is a number
// with two decimals (19.99), as the public contract wants; decoding refuses
// more than two decimals rather than rounding.
type Cents int64

// MaxCents bounds any single amount (one billion in currency units), so
// sums over order lines cannot overflow.
const MaxCents Cents = 100_000_000_000

// String formats c as "19.99".
func (c Cents) String() string {
	sign := ""
	v := int64(c)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// MarshalJSON writes c as a JSON number with two decimals.
func (c Cents) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalJSON reads a JSON number with at most two decimals.
func (c *Cents) UnmarshalJSON(b []byte) error {
	v, err := ParseCents(string(bytes.TrimSpace(b)))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCents reads "19.99", "20", "-1.5" or "1e2". Errors: more than two
// decimals, not a number, or beyond MaxCents.
func ParseCents(s string) (Cents, error) {
	if s == "" || s == "null" || strings.HasPrefix(s, "\"") {
		return 0, fmt.Errorf("money: want a number, got %s", s)
	}
	in := s
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		// Exponent forms are legal JSON numbers; accept them when exact.
		// The point is moved in the text, as a float would round
		// "0.0100000001e0" to one cent instead of refusing it.
		plain, ok := shiftPoint(s[:i], s[i+1:])
		if !ok {
			return 0, fmt.Errorf("money: %s is not a number with at most two decimals", in)
		}
		s = plain
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(digits, ".")
	if whole == "" || len(frac) > 2 || len(whole) > 12 {
		return 0, fmt.Errorf("money: %s must be a number with at most two decimals", in)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err1 := strconv.ParseUint(whole, 10, 64)
	f, err2 := strconv.ParseUint(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("money: %s is not a number", in)
	}
	v := Cents(w*100 + f)
	if v > MaxCents {
		return 0, fmt.Errorf("money: %s is too large", in)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// shiftPoint writes mantissa×10^exp as a plain decimal without trailing
// zeros in its fraction; false when either part is not a number or the
// exponent is beyond any amount MaxCents allows.
func shiftPoint(mantissa, exp string) (string, bool) {
	e, err := strconv.Atoi(exp)
	if err != nil || e < -20 || e > 20 {
		return "", false
	}
	sign := ""
	if strings.HasPrefix(mantissa, "-") {
		sign, mantissa = "-", mantissa[1:]
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits, point := whole+frac, len(whole)+e
	if whole == "" || strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return "", false
	}
	if point < 0 {
		digits, point = strings.Repeat("0", -point)+digits, 0
	}
	if point > len(digits) {
		digits += strings.Repeat("0", point-len(digits))
	}
	w := strings.TrimLeft(digits[:point], "0")
	if w == "" {
		w = "0"
	}
	return sign + w + "." + strings.TrimRight(digits[point:], "0"), true
}
