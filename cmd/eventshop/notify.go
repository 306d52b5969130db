package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/domain/order"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/published"
)

// buildNotifier wires the notifier: the SMTP sender, the templates, the
// ledger, Kafka (KAFKA_BROKERS, or in the local run without it the
// embedded broker), and the lookups of the recipient in the user read
// model and of an order's owner in the order read model (order events
// after order.created carry no user id). The read models must be kept by
// a projector somewhere; the notifier retries a lookup that finds nothing
// yet.
func (a *app) buildNotifier(ctx context.Context, cfg config, log *slog.Logger, local bool) error {
	if err := a.connectSMTP(cfg, log, local); err != nil {
		return err
	}
	render, err := templates.New(templates.Options{ShopName: cfg.ShopName, BaseURL: cfg.ShopURL, Currency: cfg.ShopCurrency})
	if err != nil {
		return fmt.Errorf("SHOP_NAME, SHOP_URL or SHOP_CURRENCY: %w", err)
	}
	if err := a.ensureLedger(ctx, cfg); err != nil {
		return err
	}
	if err := a.ensureKafka(cfg, log, local); err != nil {
		return err
	}
	// The lookups read empty tables until a projector fills them.
	if err := a.setupReadModels(ctx, cfg); err != nil {
		return err
	}
	models := pgread.New(a.pool)
	a.notifier, err = notifier.New(notifier.Config{
		Brokers: a.kafkaBrokers, GroupID: cfg.NotifierGroup, Partitions: cfg.KafkaPartitions,
		Ledger: a.ledger, Renderer: render, Sender: a.sender,
		Recipients: func(ctx context.Context, id uuid.UUID) (templates.Recipient, error) {
			u, err := models.User(ctx, id.String())
			if err != nil {
				return templates.Recipient{}, err
			}
			return templates.Recipient{Email: u.Email, Name: u.FullName}, nil
		},
		Owner: func(ctx context.Context, env published.Envelope) (uuid.UUID, error) {
			id, ok := strings.CutPrefix(env.Subject, order.StreamPrefix)
			if !ok {
				return uuid.Nil, fmt.Errorf("subject %q is not an order stream", env.Subject)
			}
			o, err := models.Order(ctx, id)
			if err != nil {
				return uuid.Nil, err
			}
			return uuid.Parse(o.UserID)
		},
		MaxAttempts: cfg.NotifyMaxAttempts, RetryMin: cfg.NotifyRetryMin, RetryMax: cfg.NotifyRetryMax,
		LookupTimeout: cfg.NotifyLookup, Observe: a.metrics.Notified,
		Logger: log,
	})
	return err
}

// connectSMTP builds the notifier's SMTP sender, to SMTP_ADDR or, in the
// local run without it, to the embedded sink it starts on SMTP_SINK_ADDR.
func (a *app) connectSMTP(cfg config, log *slog.Logger, local bool) error {
	a.smtpAddr = cfg.SMTPAddr
	if a.smtpAddr == "" {
		if !local {
			return errors.New("SMTP_ADDR is required (host:port of the SMTP server)")
		}
		sink, err := smtpsink.Start(smtpsink.Options{Addr: cfg.SMTPSinkAddr, Logger: log})
		if err != nil {
			return fmt.Errorf("embedded SMTP sink on SMTP_SINK_ADDR %s: %w", cfg.SMTPSinkAddr, err)
		}
		a.sink, a.smtpAddr = sink, sink.Addr()
	}
	var err error
	a.sender, err = mail.New(mail.Config{
		Addr: a.smtpAddr, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, TLS: cfg.SMTPTLS,
		From: cfg.SMTPFrom, Timeout: cfg.SMTPTimeout,
	})
	if err != nil {
		return fmt.Errorf("SMTP settings: %w", err)
	}
	return nil
}
