package auth

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// maxVerified bounds the access tokens a Service remembers as verified
// (some 300 bytes each).
const maxVerified = 10_000

// verified remembers the claims of access tokens already verified, by the
// SHA-256 of the token, until they expire. A JWT's signature check and
// JSON decoding cost more than all the rest of a request's authentication
// once the roles are cached (profiled: most of it in encoding/json, 67
// allocations a token); hashing the token costs a fraction of that.
// Nothing but exact bytes that passed parse are ever remembered, and
// revocation is still asked of Redis on every request: the same token
// gets the same answer, sooner.
type verified struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]Claims
}

// get returns the claims of token if it was verified and has not expired
// at now.
func (v *verified) get(token string, now time.Time) (Claims, bool) {
	if len(token) > maxTokenLen {
		return Claims{}, false // parse refuses it without hashing it
	}
	sum := sha256.Sum256([]byte(token))
	v.mu.RLock()
	c, ok := v.m[sum]
	v.mu.RUnlock()
	if !ok || !now.Before(c.ExpiresAt) {
		return Claims{}, false
	}
	return c, true
}

// put remembers c, the claims of the verified token. When full it forgets
// the expired tokens, and if that is not enough, arbitrary ones.
func (v *verified) put(token string, c Claims, now time.Time) {
	sum := sha256.Sum256([]byte(token))
	c.Roles = slices.Clip(c.Roles) // shared by every hit: no append may write into it
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[[sha256.Size]byte]Claims)
	}
	if len(v.m) >= maxVerified {
		for k, e := range v.m {
			if !now.Before(e.ExpiresAt) {
				delete(v.m, k)
			}
		}
		for k := range v.m {
			if len(v.m) < maxVerified*3/4 {
				break
			}
			delete(v.m, k)
		}
	}
	v.m[sum] = c
}
