package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	pgread "github.com/eventshop/eventshop/projections/postgres"
)

// buildNotifier wires the notifier: the SMTP sender, the templates, the
// ledger, Kafka (KAFKA_BROKERS, or in the local run without it the
// embedded broker), and the lookups in the user and order read models.
func (a *app) buildNotifier(ctx context.Context, cfg config, log *slog.Logger, local bool) error {
	if err := a.connectSMTP(cfg, local); err != nil {
		return err
	}
	render, err := templates.New(cfg.Shop)
	if err != nil {
		return fmt.Errorf("SHOP_NAME, SHOP_URL or SHOP_CURRENCY: %w", err)
	}
	if err := a.ensureLedger(ctx, cfg); err != nil {
		return err
	}
	if err := a.ensureKafka(cfg, local); err != nil {
		return err
	}
	// The lookups read empty tables until a projector fills them.
	if err := a.setupReadModels(ctx, cfg); err != nil {
		return err
	}
	nc := cfg.Notifier
	nc.Brokers, nc.Partitions, nc.Ledger, nc.Renderer, nc.Sender = a.kafkaBrokers, cfg.KafkaPartitions, a.ledger, render, a.sender
	nc.LookIn(pgread.New(a.pool))
	nc.Observe, nc.Logger = a.metrics.Notified, log
	if a.notifier, err = notifier.New(nc); err != nil {
		return err
	}
	a.metrics.WatchConsumerLag(a.notifier.GroupID(), a.notifier.Lag)
	return nil
}

// connectSMTP builds the notifier's SMTP sender, to SMTP_ADDR or, in the
// local run without it, to the embedded sink it starts on SMTP_SINK_ADDR.
func (a *app) connectSMTP(cfg config, local bool) (err error) {
	sc := cfg.SMTP
	switch {
	case sc.Addr == "" && !local:
		return errors.New("SMTP_ADDR is required (host:port of the SMTP server)")
	case sc.Addr == "":
		if sc.Addr, err = a.local.SMTP(cfg.SMTPSinkAddr); err != nil {
			return err
		}
	}
	a.smtpAddr = sc.Addr
	if a.sender, err = mail.New(sc); err != nil {
		return fmt.Errorf("SMTP settings: %w", err)
	}
	return nil
}
