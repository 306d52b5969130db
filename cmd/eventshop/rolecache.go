package main

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/internal/services/auth"
)

// cacheRoles has every role change of the command handlers go through the
// roles cache the APIs read in Redis (auth.RoleCache), connecting to
// REDIS_URL when nothing has yet: every process that changes roles must,
// or the APIs would go on trusting the old roles (create-admin too).
func (a *app) cacheRoles(cfg config) error {
	if a.redis == nil {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL %s: want redis://host:port/db", redactURL(cfg.RedisURL))
		}
		a.redis = redis.NewClient(opts)
	}
	a.cmd.Users.CacheRoles(auth.NewRoleCache(a.redis, cfg.RedisPrefix))
	return nil
}
