// Package auth issues and verifies the JWT access and refresh tokens of the
// eventshop API, rotates refresh tokens with reuse detection, keeps a logout
// blacklist, throttles failed logins and hashes passwords with argon2id.
//
// Every piece of state lives in Redis under the configured key prefix and
// expires by itself; see the Service and LoginLimiter docs for the layout.
package auth

import (
	"errors"
	"fmt"
)

// ErrInvalidToken is returned for every token that is refused: malformed,
// bad signature, algorithm other than HS256, expired, not yet valid, wrong
// issuer, audience or type, revoked, logged out or blacklisted. Callers
// answer 401. Errors returned are often wrapped; test with errors.Is.
var ErrInvalidToken = errors.New("auth: invalid token")

// ErrTokenReused is returned by Refresh when an already rotated refresh
// token is presented again; its whole family has then been revoked.
// errors.Is(ErrTokenReused, ErrInvalidToken) is true, so callers that only
// know about ErrInvalidToken still answer 401.
var ErrTokenReused error = reusedError{}

type reusedError struct{}

func (reusedError) Error() string { return "auth: refresh token reused; its family is revoked" }

// Is makes a reuse also count as an invalid token.
func (reusedError) Is(target error) bool { return target == ErrInvalidToken }

// invalid wraps ErrInvalidToken with a fixed reason. The reason never holds
// token text or key material: error strings end up in logs.
func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, reason)
}
