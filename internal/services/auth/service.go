package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
)

// MinSecretLen is the shortest HS256 secret New accepts (RFC 7518 §3.2).
const MinSecretLen = 32

// Token types, as found in the "typ" claim.
const (
	TypeAccess  = "access"
	TypeRefresh = "refresh"
)

// JWT header "typ" values. Access tokens follow RFC 9068; refresh tokens get
// their own media type so that one kind can never pass for the other even
// if a claim check were forgotten.
const (
	headerTypeAccess  = "at+jwt"
	headerTypeRefresh = "rt+jwt"
)

// clockSkew is tolerated on "nbf" and "iat" only, so that a token issued by
// one instance is accepted at once by another whose clock is a little
// behind. Expiry is exact: a logged-out token's blacklist entry then only
// needs to live until "exp".
const clockSkew = 30 * time.Second

// Config configures a Service. Secret, Issuer and Audience are required.
type Config struct {
	Secret     []byte           // HS256 key; New fails if shorter than MinSecretLen bytes
	Issuer     string           // "iss" of issued tokens, required on verification
	Audience   string           // "aud" of issued tokens, required on verification
	AccessTTL  time.Duration    // default DefaultAccessTTL when zero
	RefreshTTL time.Duration    // default DefaultRefreshTTL when zero
	KeyPrefix  string           // prefix of every Redis key, e.g. "eventshop:"
	Now        func() time.Time // default time.Now
}

// Tokens is the JSON body of the login and refresh responses.
type Tokens struct {
	AccessToken      string `json:"access_token"`
	RefreshToken     string `json:"refresh_token"`
	TokenType        string `json:"token_type"`         // always "Bearer"
	ExpiresIn        int    `json:"expires_in"`         // access token lifetime, seconds
	RefreshExpiresIn int    `json:"refresh_expires_in"` // refresh token lifetime, seconds
}

// Claims is what a verified token says.
type Claims struct {
	UserID    string   // "sub"
	Roles     []string // "roles"; empty in refresh tokens
	TokenID   string   // "jti", a random UUID
	FamilyID  string   // "fid": the refresh family the token belongs to
	Type      string   // TypeAccess or TypeRefresh
	ExpiresAt time.Time
}

// Service issues, rotates, verifies and revokes tokens.
//
// Redis keys (P is Config.KeyPrefix; {fid} is a cluster hash tag so every
// key of one family lives in one slot and the rotation script may touch
// them together):
//
//	P rt:{fid}:jti   refresh token state: fid while usable, "used" once
//	                 rotated (kept to tell reuse from unknown); TTL = refresh lifetime
//	P rtfam:{fid}    present when the family is revoked (reuse or logout);
//	                 TTL = refresh lifetime, the longest any member can live
//	P atbl:jti       logged-out access token; TTL = its remaining lifetime
//	P roles:{id}     the roles user id holds, cached (see RoleCache)
//
// A Service is safe for concurrent use.
type Service struct {
	secret     []byte
	issuer     string
	audience   string
	accessTTL  time.Duration
	refreshTTL time.Duration
	prefix     string
	now        func() time.Time
	rdb        redis.UniversalClient
	parser     *jwt.Parser
	rotate     *redis.Script
	roles      *RoleCache
	verified   verified // access tokens already verified
}

// New checks cfg, fills in its defaults and returns a Service storing its
// state in rdb. It returns an error when the secret is shorter than
// MinSecretLen, the issuer or audience is empty, a TTL is negative or rdb
// is nil.
func New(cfg Config, rdb redis.UniversalClient) (*Service, error) {
	switch {
	case len(cfg.Secret) < MinSecretLen:
		return nil, fmt.Errorf("auth: secret must be at least %d bytes", MinSecretLen)
	case cfg.Issuer == "":
		return nil, errors.New("auth: issuer is required")
	case cfg.Audience == "":
		return nil, errors.New("auth: audience is required")
	case cfg.AccessTTL < 0 || cfg.RefreshTTL < 0:
		return nil, errors.New("auth: token lifetimes must not be negative")
	case rdb == nil:
		return nil, errors.New("auth: redis client is required")
	}
	s := &Service{
		// Copied so that a caller reusing its slice cannot change the key.
		secret:     append([]byte(nil), cfg.Secret...),
		issuer:     cfg.Issuer,
		audience:   cfg.Audience,
		accessTTL:  cfg.AccessTTL,
		refreshTTL: cfg.RefreshTTL,
		prefix:     cfg.KeyPrefix,
		now:        cfg.Now,
		rdb:        rdb,
		rotate:     redis.NewScript(rotateLua),
		roles:      NewRoleCache(rdb, cfg.KeyPrefix),
	}
	if s.accessTTL == 0 {
		s.accessTTL = DefaultAccessTTL
	}
	if s.refreshTTL == 0 {
		s.refreshTTL = DefaultRefreshTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(s.now),
		jwt.WithStrictDecoding(),
	)
	return s, nil
}

func (s *Service) refreshKey(fid, jti string) string {
	return s.prefix + "rt:{" + fid + "}:" + jti
}

func (s *Service) familyKey(fid string) string {
	return s.prefix + "rtfam:{" + fid + "}"
}

func (s *Service) blacklistKey(jti string) string {
	return s.prefix + "atbl:" + jti
}
