package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/internal/auth"
	"github.com/eventshop/eventshop/internal/idempotency"
	"github.com/eventshop/eventshop/internal/payment"
	"github.com/eventshop/eventshop/projections"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

// app is the system wired together: event store, Redis, command handler,
// process manager and write API; and the read models' pool, their
// projection runners and the read API. Which parts run is the
// subcommand's choice (see mode).
type app struct {
	store   store
	redis   *redis.Client
	cmd     *commands.Handler
	pm      *commands.ProcessManager
	api     *writeapi.Server
	pool    *pgxpool.Pool // the read models, on DATABASE_URL
	runners []*projections.Runner
	reads   *readapi.Server
}

// buildApp connects to the event store and Redis and wires the write side,
// and the read side on DATABASE_URL, where the read models live whatever
// the event store is. local says this is the local run: then a missing
// JWT_SECRET is made once and kept in the data directory; elsewhere it is
// required.
func buildApp(ctx context.Context, cfg config, log *slog.Logger, local bool) (*app, error) {
	secret, err := jwtSecret(cfg, local)
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL %s: want redis://host:port/db", redactURL(cfg.RedisURL))
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	st, err := openStore(ctx, cfg.EventStoreURL, log)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	tokens, err := auth.New(auth.Config{
		Secret: secret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, KeyPrefix: cfg.RedisPrefix,
	}, rdb)
	if err != nil {
		st.Close()
		rdb.Close()
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	h := commands.New(commands.Config{
		Store: st, Payments: payment.NewTestProcessor(), Log: log,
		PaymentTimeout: cfg.PaymentTimeout, ClaimGrace: cfg.PlacementGrace,
	})
	api := writeapi.New(writeapi.Config{
		Commands: h, Auth: tokens, Log: log, TrustProxy: cfg.TrustProxy,
		Logins: auth.NewLoginLimiter(rdb, cfg.RedisPrefix, auth.LoginLimits{
			PerAccount: cfg.LoginPerAccount, PerIP: cfg.LoginPerIP, Window: cfg.LoginWindow,
		}),
		Idempotency: idempotency.New(rdb, idempotency.Config{KeyPrefix: cfg.RedisPrefix}),
	})
	a := &app{store: st, redis: rdb, cmd: h, pm: h.NewProcessManager(cfg.SagaTick), api: api}
	// The pool connects lazily: a process that never touches the read
	// models (writeapi, create-admin) does not need the database.
	a.pool, err = pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	models := pgread.New(a.pool)
	for _, p := range models.Projections() {
		a.runners = append(a.runners, projections.NewRunner(a.pool, st, p, projections.Options{Logger: log}))
	}
	a.reads = readapi.New(readapi.Config{
		Reads: models, Log: st, Errors: api.WriteError, Logger: log,
		Checkpoint: func(ctx context.Context, name string) (eventstore.Position, error) {
			return projections.Checkpoint(ctx, a.pool, name)
		},
	})
	return a, nil
}

// Close closes what buildApp opened. Stop the runners first.
func (a *app) Close() error {
	if a.pool != nil {
		a.pool.Close()
	}
	return errors.Join(a.store.Close(), a.redis.Close())
}

// jwtSecret is JWT_SECRET, or for the local run a random secret made once
// and kept in DATA_DIR/jwt-secret so tokens survive restarts.
func jwtSecret(cfg config, local bool) ([]byte, error) {
	if cfg.JWTSecret != "" {
		if len(cfg.JWTSecret) < 32 {
			return nil, errors.New("JWT_SECRET: want at least 32 characters")
		}
		return []byte(cfg.JWTSecret), nil
	}
	if !local {
		return nil, errors.New("JWT_SECRET is required (at least 32 random characters)")
	}
	path := filepath.Join(cfg.DataDir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	secret := []byte(hex.EncodeToString(buf))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("DATA_DIR: %w", err)
	}
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return nil, fmt.Errorf("DATA_DIR: %w", err)
	}
	return secret, nil
}
