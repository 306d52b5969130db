package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RoleSource reads the roles a user holds from the record of truth (the
// user's event stream) with that record's version, which grows with every
// change of the user. Its errors are handed back unchanged.
type RoleSource interface {
	Roles(ctx context.Context, userID string) (roles []string, version int64, err error)
}

// roleTTL is how long a user's cached roles, and a mark of a change under
// way, live in Redis when nothing touches them. It must be far longer than
// any append of a role change can take (see RoleCache).
const roleTTL = 24 * time.Hour

// RoleCache keeps the roles each user holds in Redis, so that
// authenticating a request reads no event stream: VerifyAccess asks for
// them in the same round trip as the token's revocation state. The user's
// stream stays the record of truth; the cache only ever holds what a read
// of that stream gave, and refuses anything that could be older than a
// change under way.
//
// One hash per user, P roles:{id} (P the key prefix):
//
//	r  the roles, a JSON array; present only while they can be trusted
//	v  the stream version r was read at; kept when r is dropped
//	p  a role change is under way and will write the stream at version p
//
// The protocol, which needs no lock and no clock:
//
//   - A command that changes roles calls Changing(user, n) before it
//     appends at version n (n = the version it loaded + 1, so the append
//     either lands at n or fails on the version). Changing drops r and
//     raises p to n, before the event exists: whatever happens next, no
//     request trusts the old roles.
//   - After the append, the command offers the new roles (Offer). That
//     may never happen (a crash, Redis failing at that moment).
//   - A request that finds no r reads the stream (version sv) and offers
//     what it read (VerifyAccess does). The offer is taken only when
//     sv >= p (the change under way is in what was read, or lost its
//     version to another write and must mark again before it can append)
//     and sv >= v (nothing newer was cached meanwhile); it then clears p.
//
// So a change appended whose offer never came (the crash window) leaves p
// set and r absent: the next request reads the stream, which holds the
// change, and caches it. A read that raced the change and missed it read
// sv < p, or was overtaken by a newer offer (sv < v), and is refused. A
// mark whose append never happened leaves p above the stream's version:
// that user's requests read the stream each time (as safe as before, only
// slower) until the stream reaches p or the hash expires.
//
// What the protocol relies on: the hash outlives any append in flight
// (24 hours, renewed by every mark and offer, against a role command that
// gives up after seconds), and Redis keeps what it acknowledged (no
// eviction; AOF, as README's deployment notes ask). Every process that
// changes roles must mark through a RoleCache on the Redis the APIs
// read; a change made without one stays unseen until the hash expires.
type RoleCache struct {
	rdb    redis.UniversalClient
	prefix string
	mark   *redis.Script
	offer  *redis.Script
}

// markLua drops the cached roles and raises the pending version.
//
//	KEYS[1] the user's hash  ARGV[1] the version the change will write  ARGV[2] ttl, ms
const markLua = `
local p = tonumber(redis.call('HGET', KEYS[1], 'p'))
if not p or p < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'p', ARGV[1])
end
redis.call('HDEL', KEYS[1], 'r')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`

// offerLua caches roles read at a version unless a change under way is
// not in them or newer roles are cached. Returns 1 taken, 0 refused.
//
//	KEYS[1] the user's hash  ARGV[1] version read  ARGV[2] roles  ARGV[3] ttl, ms
const offerLua = `
local sv = tonumber(ARGV[1])
local v = tonumber(redis.call('HGET', KEYS[1], 'v'))
local p = tonumber(redis.call('HGET', KEYS[1], 'p'))
if (v and sv < v) or (p and sv < p) then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'r', ARGV[2])
redis.call('HDEL', KEYS[1], 'p')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

// NewRoleCache returns the cache of roles in rdb, its keys under prefix
// (the Service's Config.KeyPrefix).
func NewRoleCache(rdb redis.UniversalClient, prefix string) *RoleCache {
	return &RoleCache{rdb: rdb, prefix: prefix, mark: redis.NewScript(markLua), offer: redis.NewScript(offerLua)}
}

// Changing marks a change of userID's roles that will be appended at
// stream version next: the cached roles are dropped and none read before
// the change are taken any more. Call it before the append and do not
// append when it fails (a wrapped Redis error).
func (c *RoleCache) Changing(ctx context.Context, userID string, next int64) error {
	if err := c.mark.Run(ctx, c.rdb, []string{c.key(userID)}, next, roleTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("auth: mark a role change of user %s: %w", userID, err)
	}
	return nil
}

// Offer caches roles, read from userID's stream at version (or just
// appended there), unless a change under way is not in them or newer
// roles are cached; a refused offer is no error. Errors: a wrapped Redis
// error, after which the next request reads the stream again.
func (c *RoleCache) Offer(ctx context.Context, userID string, roles []string, version int64) error {
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	if err != nil {
		return fmt.Errorf("auth: encode roles of user %s: %w", userID, err)
	}
	if err := c.offer.Run(ctx, c.rdb, []string{c.key(userID)}, version, b, roleTTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("auth: cache roles of user %s: %w", userID, err)
	}
	return nil
}

// key is the user's hash.
func (c *RoleCache) key(userID string) string {
	return c.prefix + "roles:{" + userID + "}"
}

// cached decodes the r field of a user's hash; ok is false when it is
// absent or unreadable, and the stream must be read.
func cached(r *redis.StringCmd) (roles []string, ok bool) {
	b, err := r.Bytes()
	if err != nil {
		return nil, false
	}
	if err := json.Unmarshal(b, &roles); err != nil || roles == nil {
		return nil, false
	}
	return roles, true
}
