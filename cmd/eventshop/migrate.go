package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/projections"
)

// migrate applies the event store's migrations (on EVENTSTORE_URL) and
// creates what the processes keep on DATABASE_URL — the projections'
// checkpoints, the read models' tables and the notification ledger — so a
// deployment can run it once, as a job, before the rest. The processes
// would create the same at start, under the same locks; this makes it one
// step an operator can watch.
func migrate(ctx context.Context, cfg config, log *slog.Logger) error {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("event store migrated", "eventstore", redactURL(cfg.EventStoreURL))
	a := &app{store: store}
	defer a.Close()
	if a.pool, err = pgxpool.New(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	if err := projections.Migrate(ctx, a.pool); err != nil {
		return fmt.Errorf("projections on DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	if err := errors.Join(a.setupReadModels(ctx, cfg), a.ensureLedger(ctx, cfg)); err != nil {
		return err
	}
	log.Info("read models and notification ledger ready", "database", redactURL(cfg.DatabaseURL))
	return nil
}
