package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// maxTokenLen bounds what is parsed; our tokens are a few hundred bytes.
const maxTokenLen = 8 << 10

// tokenClaims is the JWT payload of both token types.
type tokenClaims struct {
	jwt.RegisteredClaims
	Roles    []string `json:"roles,omitempty"`
	FamilyID string   `json:"fid,omitempty"`
	Type     string   `json:"typ"`
}

// sign returns a signed token of type typ and the claims it carries.
func (s *Service) sign(userID string, roles []string, fid, typ string, now time.Time) (string, Claims, error) {
	ttl, header := s.accessTTL, headerTypeAccess
	if typ == TypeRefresh {
		ttl, header = s.refreshTTL, headerTypeRefresh
	}
	c := Claims{
		UserID:   userID,
		Roles:    roles,
		TokenID:  uuid.NewString(),
		FamilyID: fid,
		Type:     typ,
		// Truncated as the "exp" claim is, so the returned Claims says
		// exactly what a later verification of the token will say.
		ExpiresAt: now.Add(ttl).Truncate(time.Second),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{s.audience},
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        c.TokenID,
		},
		Roles:    roles,
		FamilyID: fid,
		Type:     typ,
	})
	t.Header["typ"] = header
	signed, err := t.SignedString(s.secret)
	if err != nil {
		return "", Claims{}, errors.New("auth: sign token") // never echo key material
	}
	return signed, c, nil
}

// parse verifies token's signature and claims and that it is of type want.
// It does not look at Redis. Every failure is an ErrInvalidToken.
func (s *Service) parse(token, want string) (Claims, error) {
	if token == "" {
		return Claims{}, invalid("empty token")
	}
	if len(token) > maxTokenLen {
		return Claims{}, invalid("token too long")
	}
	var tc tokenClaims
	t, err := s.parser.ParseWithClaims(token, &tc, s.key)
	if err != nil {
		return Claims{}, invalid(jwtReason(err))
	}
	if !t.Valid {
		return Claims{}, invalid("not valid")
	}
	wantHeader := headerTypeAccess
	if want == TypeRefresh {
		wantHeader = headerTypeRefresh
	}
	if h, _ := t.Header["typ"].(string); h != wantHeader || tc.Type != want {
		return Claims{}, invalid("wrong token type")
	}
	// The parser allows clockSkew past "exp"; expiry itself is exact.
	exp := tc.ExpiresAt.Time
	if !s.now().Before(exp) {
		return Claims{}, invalid("token is expired")
	}
	if tc.Subject == "" {
		return Claims{}, invalid("missing subject")
	}
	// jti and fid become parts of Redis keys: only accept what we issue.
	if !isUUID(tc.ID) {
		return Claims{}, invalid("bad token id")
	}
	if (want == TypeRefresh || tc.FamilyID != "") && !isUUID(tc.FamilyID) {
		return Claims{}, invalid("bad family id")
	}
	return Claims{
		UserID:    tc.Subject,
		Roles:     tc.Roles,
		TokenID:   tc.ID,
		FamilyID:  tc.FamilyID,
		Type:      tc.Type,
		ExpiresAt: exp,
	}, nil
}

// key is the jwt.Keyfunc. The parser already pins HS256; checking again
// here keeps the secret from ever being handed to another algorithm.
func (s *Service) key(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || t.Method.Alg() != jwt.SigningMethodHS256.Alg() {
		return nil, errors.New("unexpected signing method")
	}
	return s.secret, nil
}

// jwtReason names why the jwt package refused a token, without any of the
// token's text.
func jwtReason(err error) string {
	reasons := []struct {
		err    error
		reason string
	}{
		{jwt.ErrTokenMalformed, "malformed token"},
		{jwt.ErrTokenSignatureInvalid, "bad signature or algorithm"},
		{jwt.ErrTokenUnverifiable, "unverifiable token"},
		{jwt.ErrTokenExpired, "token is expired"},
		{jwt.ErrTokenNotValidYet, "token is not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "token issued in the future"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenRequiredClaimMissing, "missing required claim"},
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "invalid claims"
}

// isUUID accepts only the canonical 36-character form that uuid.NewString
// produces (uuid.Validate alone also takes "{...}" and "urn:uuid:" forms).
func isUUID(s string) bool {
	return len(s) == 36 && uuid.Validate(s) == nil
}
