package domain

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// Cents is an amount of money in integer cents. In JSON it is a number
// with two decimals (19.99), as the public contract wants; decoding refuses
// more than two decimals rather than rounding.
//
// Decoding is lenient about size: it takes any amount in the int64 range,
// because MarshalJSON writes any int64 and a stored event must decode
// forever, whatever bound the writer applied. Commands bound amounts where
// they are decided (MaxCents); ParseCents bounds client input.
type Cents int64

// MaxCents bounds every amount the system writes: a price, a line total
// (price × quantity), an order total, a payment, a refund (one billion in
// currency units).
const MaxCents Cents = 100_000_000_000

// String formats c as "19.99".
func (c Cents) String() string {
	// The magnitude as uint64: -MinInt64 does not fit an int64.
	v := uint64(c)
	if c < 0 {
		v = -v
	}
	return formatCents(c < 0, v/100, v%100)
}

// FormatCents formats an amount of cents of any size as Cents.String
// does: for amounts computed from stored values that may overflow int64,
// such as a line total rendered from an old event.
func FormatCents(v *big.Int) string {
	whole, cents := new(big.Int).QuoRem(new(big.Int).Abs(v), big.NewInt(100), new(big.Int))
	return formatCents(v.Sign() < 0, whole, cents.Uint64())
}

// formatCents is the one money format: sign, whole units, two decimals.
func formatCents(negative bool, whole any, cents uint64) string {
	sign := ""
	if negative {
		sign = "-"
	}
	return fmt.Sprintf("%s%v.%02d", sign, whole, cents)
}

// Times returns c × n and true when the product lies within ±MaxCents;
// otherwise (overflow included) 0 and false. It is how a line total is
// computed and bounded.
func (c Cents) Times(n int64) (Cents, bool) {
	a, b := uint64(c), uint64(n)
	if c < 0 {
		a = -a
	}
	if n < 0 {
		b = -b
	}
	hi, lo := bits.Mul64(a, b)
	if hi != 0 || lo > uint64(MaxCents) {
		return 0, false
	}
	if (c < 0) != (n < 0) {
		return -Cents(lo), true
	}
	return Cents(lo), true
}

// MarshalJSON writes c as a JSON number with two decimals.
func (c Cents) MarshalJSON() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalJSON reads a JSON number with at most two decimals, of any
// size in the int64 range (see Cents). Errors: not such a number.
func (c *Cents) UnmarshalJSON(b []byte) error {
	v, err := parseCents(string(bytes.TrimSpace(b)), math.MinInt64, math.MaxInt64)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseCents reads client input such as "19.99", "20", "-1.5" or "1e2",
// strictly: at most ±MaxCents. Errors: more than two decimals, not a
// number, or beyond MaxCents.
func ParseCents(s string) (Cents, error) { return parseCents(s, -MaxCents, MaxCents) }

// maxCentsDigits is the most digits an amount in cents can have within
// int64 (9,223,372,036,854,775,807 has 19), so an amount of that many
// digits still fits a uint64.
const maxCentsDigits = 19

// parseCents is the one money parser: a JSON number (exponent forms
// included) that is an exact amount of cents within [lo, hi]. The
// decimal point is moved in the text rather than through a float, which
// would round "0.0100000001e0" to one cent instead of refusing it.
func parseCents(s string, lo, hi Cents) (Cents, error) {
	in := s
	negative := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mantissa, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	whole, frac, _ := strings.Cut(mantissa, ".")
	e, expOK := exponent(exp)
	if whole == "" || !digitsOnly(whole) || !digitsOnly(frac) || (hasExp && !expOK) {
		return 0, fmt.Errorf("money: %s is not a number", in)
	}
	// The value is digits × 10^scale.
	digits, scale := strings.TrimLeft(whole+frac, "0"), e-len(frac)
	for strings.HasSuffix(digits, "0") {
		digits, scale = digits[:len(digits)-1], scale+1
	}
	var magnitude uint64
	if digits != "" {
		if scale < -2 {
			return 0, fmt.Errorf("money: %s must be a number with at most two decimals", in)
		}
		zeros := scale + 2
		if len(digits)+zeros > maxCentsDigits {
			return 0, fmt.Errorf("money: %s is too large", in)
		}
		magnitude, _ = strconv.ParseUint(digits, 10, 64) // at most 19 digits: it fits
		for range zeros {
			magnitude *= 10
		}
	}
	// Bounds compared as magnitudes: -lo of MinInt64 only fits a uint64.
	if (negative && magnitude > -uint64(lo)) || (!negative && magnitude > uint64(hi)) {
		return 0, fmt.Errorf("money: %s is too large", in)
	}
	if negative {
		return Cents(-magnitude), nil
	}
	return Cents(magnitude), nil
}

// exponent reads a JSON exponent ("2", "+2", "-2"); a huge one is clamped,
// which keeps the arithmetic of parseCents in range and changes no
// outcome: a non-zero amount with it is out of range either way.
func exponent(s string) (int, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	if s == "" || !digitsOnly(s) {
		return 0, false
	}
	e := 0
	for _, r := range s {
		e = min(e*10+int(r-'0'), 1<<20)
	}
	if neg {
		e = -e
	}
	return e, true
}

func digitsOnly(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}
