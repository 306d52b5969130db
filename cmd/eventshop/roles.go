package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/internal/edge/idempotency"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

// buildWriteSide builds the write API and the order process manager.
func (a *app) buildWriteSide(cfg config, log *slog.Logger) {
	a.api = writeapi.New(writeapi.Config{
		Authenticate: a.authenticate, Users: a.cmd.Users, Catalog: a.cmd.Catalog, Orders: a.cmd.Orders, Auth: a.tokens, Log: log, TrustProxy: cfg.Gateway.TrustProxy,
		Logins:      auth.NewLoginLimiter(a.redis, cfg.Tokens.KeyPrefix, cfg.Logins),
		Idempotency: idempotency.New(a.redis, idempotency.Config{KeyPrefix: cfg.Tokens.KeyPrefix}),
	})
	a.pm = commands.NewProcessManager(a.cmd.Orders, cfg.SagaTick, a.pmFailures(), a.pmView())
}

// buildProjector builds a runner for each read model and, when publish,
// for the Kafka publisher, connecting to KAFKA_BROKERS (or in the local
// run without it starting the embedded broker).
func (a *app) buildProjector(ctx context.Context, cfg config, log *slog.Logger, local, publish bool) error {
	opts := func(name string) projections.Options {
		return projections.Options{Logger: log, Policy: cfg.ProjectionPolicies[name], Progress: a.progress}
	}
	for _, p := range pgread.New(a.pool).Projections() {
		a.runners = append(a.runners, projections.NewRunner(a.pool, a.store, p, opts(p.Name())))
	}
	a.runners = append(a.runners, projections.NewSinkRunner(a.pool, a.store, a.catalog.Projection(), opts(mongoread.ProjectionName)))
	if !publish {
		return nil
	}
	if err := a.ensureKafka(cfg, local); err != nil {
		return err
	}
	var err error
	a.pub, err = kafkapub.New(kafkapub.Config{Brokers: a.kafkaBrokers, Partitions: cfg.KafkaPartitions, Logger: log})
	if err != nil {
		return fmt.Errorf("KAFKA_BROKERS: %w", err)
	}
	a.runners = append(a.runners, projections.NewSinkRunner(a.pool, a.store, a.pub, opts(kafkapub.Name)))
	return nil
}

// buildReadSide builds the read API over the read models (whose tables
// it creates: it answers from empty ones until a projector fills them),
// the catalogue and the notification ledger.
func (a *app) buildReadSide(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := errors.Join(a.setupReadModels(ctx, cfg), a.ensureLedger(ctx, cfg)); err != nil {
		return err
	}
	admin := projections.Admin{Pool: a.pool}
	a.reads = readapi.New(readapi.Config{
		Reads: pgread.New(a.pool), Catalog: pgread.NewCatalog(a.pool), Log: a.store, Logger: log, Checkpoint: admin.Checkpoint,
		Orders: a.cmd.Orders, Streams: a.store, Projections: a.projectionNames(), Admin: admin,
		Failures: a.pmFailures(), Notifications: a.ledger, CatalogCacheTTL: cfg.CatalogCacheTTL,
		Progress: a.progress,
	})
	return nil
}
