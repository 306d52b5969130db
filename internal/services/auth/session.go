package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// rotateLua consumes a refresh token and registers its successor in one
// step, so that of two concurrent rotations of one token exactly one wins.
//
//	KEYS[1] presented token  KEYS[2] family revocation  KEYS[3] successor
//	ARGV[1] family id        ARGV[2] lifetime of the successor and of a revocation, ms
//
// Returns 1 rotated, -1 reused (the family is now revoked), -2 family
// already revoked, 0 unknown (logged out, expired from Redis, never issued).
const rotateLua = `
local v = redis.call('GET', KEYS[1])
if v == 'used' then
  redis.call('SET', KEYS[2], 'reused', 'PX', ARGV[2])
  return -1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -2
end
if v ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], 'used', 'KEEPTTL')
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return 1
`

const (
	rotated       = 1
	rotateReused  = -1
	rotateRevoked = -2
)

// Issue starts a new refresh family for userID and returns an access token
// carrying roles and a refresh token. It returns an error when userID is
// empty or Redis fails; never ErrInvalidToken.
func (s *Service) Issue(ctx context.Context, userID string, roles []string) (Tokens, error) {
	if userID == "" {
		return Tokens{}, errors.New("auth: issue: user id is required")
	}
	fid := uuid.NewString()
	tokens, refresh, err := s.pair(userID, roles, fid)
	if err != nil {
		return Tokens{}, err
	}
	if err := s.rdb.Set(ctx, s.refreshKey(fid, refresh.TokenID), fid, s.refreshTTL).Err(); err != nil {
		return Tokens{}, fmt.Errorf("auth: store refresh token of user %s: %w", userID, err)
	}
	return tokens, nil
}

// Refresh verifies refreshToken and rotates it: the token becomes used and
// a new pair in the same family is returned, its access token carrying the
// roles currentRoles (which must not be nil) gives for the user now.
//
// It returns ErrTokenReused when the token had already been rotated, after
// revoking the whole family; ErrInvalidToken when the token is malformed,
// expired, not a refresh token, logged out or of a revoked family; the
// error of currentRoles unchanged; or a wrapped Redis error.
//
// Two clients racing with one token are treated as reuse: one wins, the
// other revokes the family (no grace window, by design: it is also what a
// thief racing the owner looks like).
func (s *Service) Refresh(ctx context.Context, refreshToken string, currentRoles func(ctx context.Context, userID string) ([]string, error)) (Tokens, error) {
	old, err := s.parse(refreshToken, TypeRefresh)
	if err != nil {
		return Tokens{}, err
	}
	// Asked before consuming the token, so that a failing user store does
	// not burn the caller's session.
	roles, err := currentRoles(ctx, old.UserID)
	if err != nil {
		return Tokens{}, err
	}
	fid := old.FamilyID
	tokens, next, err := s.pair(old.UserID, roles, fid)
	if err != nil {
		return Tokens{}, err
	}
	keys := []string{s.refreshKey(fid, old.TokenID), s.familyKey(fid), s.refreshKey(fid, next.TokenID)}
	res, err := s.rotate.Run(ctx, s.rdb, keys, fid, s.refreshTTL.Milliseconds()).Int()
	if err != nil {
		return Tokens{}, fmt.Errorf("auth: rotate refresh token of user %s: %w", old.UserID, err)
	}
	switch res {
	case rotated:
		return tokens, nil
	case rotateReused:
		return Tokens{}, ErrTokenReused
	case rotateRevoked:
		return Tokens{}, invalid("refresh token family is revoked")
	default:
		return Tokens{}, invalid("refresh token is not active")
	}
}

// VerifyAccess verifies an access token (HS256 signature, exp, nbf, iat,
// iss, aud, type) and returns its claims with the roles its user holds
// now. One Redis round trip asks whether the token was logged out or its
// refresh family revoked, and for the user's cached roles (RoleCache);
// only when none are cached are they read from source, and offered to the
// cache.
//
// It returns ErrInvalidToken, wrapped, for any refused token; source's
// error unchanged; and a wrapped Redis error, which is NOT
// ErrInvalidToken, when the revocation state cannot be read (answer 503).
func (s *Service) VerifyAccess(ctx context.Context, token string, source RoleSource) (Claims, []string, error) {
	now := s.now()
	c, ok := s.verified.get(token, now)
	if !ok {
		var err error
		if c, err = s.parse(token, TypeAccess); err != nil {
			return Claims{}, nil, err
		}
		s.verified.put(token, c, now)
	}
	var blacklisted, familyRevoked *redis.IntCmd
	var roles *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		blacklisted = p.Exists(ctx, s.blacklistKey(c.TokenID))
		if c.FamilyID != "" {
			familyRevoked = p.Exists(ctx, s.familyKey(c.FamilyID))
		}
		roles = p.HGet(ctx, s.roles.key(c.UserID), "r")
		return nil
	})
	// The first failed command's error: redis.Nil only when the revocation
	// checks, which come first, went through and the roles are not cached.
	if err != nil && !errors.Is(err, redis.Nil) {
		return Claims{}, nil, fmt.Errorf("auth: check revocation of access token: %w", err)
	}
	if blacklisted.Val() > 0 {
		return Claims{}, nil, invalid("access token is logged out")
	}
	if familyRevoked != nil && familyRevoked.Val() > 0 {
		return Claims{}, nil, invalid("token family is revoked")
	}
	if held, ok := cached(roles); ok {
		return c, held, nil
	}
	held, version, err := source.Roles(ctx, c.UserID)
	if err != nil {
		return Claims{}, nil, err
	}
	// Best effort: what was read is the truth for this request either way,
	// and a failed offer only means the next request reads again.
	_ = s.roles.Offer(ctx, c.UserID, held, version)
	return c, held, nil
}

// Logout revokes refreshToken and its whole family, and blacklists the
// access token described by access (as returned by VerifyAccess) until it
// expires. It returns ErrInvalidToken when refreshToken does not verify or
// belongs to another user than access.UserID or to another session (token
// family) than the access token (nothing is then revoked), or a wrapped
// Redis error. Logging out twice is not an error.
func (s *Service) Logout(ctx context.Context, refreshToken string, access Claims) error {
	rc, err := s.parse(refreshToken, TypeRefresh)
	if err != nil {
		return err
	}
	if access.UserID == "" || rc.UserID != access.UserID {
		return invalid("refresh token belongs to another user")
	}
	if rc.FamilyID != access.FamilyID {
		// Ending one session with another's tokens would leave the
		// caller's own refresh token working.
		return invalid("refresh token belongs to another session")
	}
	if access.Type != TypeAccess || !isUUID(access.TokenID) || access.ExpiresAt.IsZero() {
		return invalid("logout needs verified access claims")
	}
	ttl := access.ExpiresAt.Sub(s.now())
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.refreshKey(rc.FamilyID, rc.TokenID))
		p.Set(ctx, s.familyKey(rc.FamilyID), "logout", s.refreshTTL)
		if ttl > 0 { // an expired access token needs no blacklist entry
			p.Set(ctx, s.blacklistKey(access.TokenID), "logout", ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: logout user %s: %w", access.UserID, err)
	}
	return nil
}

// pair signs an access and a refresh token of family fid. It returns the
// response body and the refresh token's claims.
func (s *Service) pair(userID string, roles []string, fid string) (Tokens, Claims, error) {
	now := s.now()
	access, _, err := s.sign(userID, roles, fid, TypeAccess, now)
	if err != nil {
		return Tokens{}, Claims{}, err
	}
	refresh, rc, err := s.sign(userID, nil, fid, TypeRefresh, now)
	if err != nil {
		return Tokens{}, Claims{}, err
	}
	return Tokens{
		AccessToken:      access,
		RefreshToken:     refresh,
		TokenType:        "Bearer",
		ExpiresIn:        int(s.accessTTL / time.Second),
		RefreshExpiresIn: int(s.refreshTTL / time.Second),
	}, rc, nil
}
