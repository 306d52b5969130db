package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/standins/kafkabroker"
	"github.com/eventshop/eventshop/internal/standins/smtpsink"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

// app is the system wired together. What is built depends on the mode:
// the event store and command handlers always; Redis and the tokens when
// an API is served; the read models' pool for every role; the catalogue's
// MongoDB when reads are served or projections run. Then each role's own:
// the write API and order process manager (buildWriteSide), the runners
// and the Kafka publisher (buildProjector), the read API and the
// notification ledger, for GET /api/notifications (buildReadSide), the
// notifier, its ledger and SMTP sender (buildNotifier). The local run
// starts the embedded MongoDB-protocol server, Kafka-protocol broker and
// SMTP sink when MONGO_URL, KAFKA_BROKERS and SMTP_ADDR are not set.
type app struct {
	store  store
	cmd    commands.Handlers
	pm     *commands.ProcessManager
	redis  *redis.Client    // nil unless an API is served or roles change (cacheRoles)
	tokens *auth.Service    // nil unless an API is served
	api    *writeapi.Server // nil unless the write API is served
	// authenticate is the signed-in routes' middleware, when an API is
	// served.
	authenticate func(http.Handler) http.Handler
	pool         *pgxpool.Pool       // the read models and checkpoints, on DATABASE_URL
	mongo        *mongo.Client       // the catalogue's server
	catalog      *mongoread.Store    // the catalogue
	pub          *kafkapub.Publisher // nil unless projections run
	runners      []*projections.Runner
	reads        *readapi.Server
	metrics      *metrics.Metrics

	ledger   *ledger.Ledger     // the notifier's; nil unless reads are served or it runs
	notifier *notifier.Notifier // nil unless it runs
	sender   *mail.Sender       // the notifier's SMTP sender

	ferret *ferret.Server      // the embedded MongoDB-protocol server, if started
	broker *kafkabroker.Broker // the embedded Kafka-protocol broker, if started
	sink   *smtpsink.Sink      // the embedded SMTP sink, if started
	// mongoURI, kafkaBrokers and smtpAddr are what the process connects
	// to, for the start banner.
	mongoURI     string
	kafkaBrokers []string
	smtpAddr     string
}

// buildApp connects to what m needs and wires it, one step per role m
// runs, after what every role shares. Whatever fails, what was opened is
// closed again.
func buildApp(ctx context.Context, cfg config, log *slog.Logger, m mode) (a *app, err error) {
	a = &app{}
	a.metrics = metrics.New(metrics.Config{Logger: log, Projections: a.reports})
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()
	if a.store, err = openStore(ctx, cfg.EventStoreURL, log); err != nil {
		return a, err
	}
	a.cmd = commands.New(commands.Config{
		Store: a.store, Payments: payment.NewTestProcessor(), Log: log,
		PaymentTimeout: cfg.PaymentTimeout, ClaimGrace: cfg.PlacementGrace,
	})
	if m.write || m.read {
		if err := a.connectAuth(ctx, cfg, m.local); err != nil {
			return a, err
		}
	}
	if m.write || m.read || m.project || m.notify {
		// The read models, the checkpoints and the locks that keep one
		// process manager and one runner per projection active. The pool
		// connects lazily.
		if a.pool, err = pgxpool.New(ctx, cfg.DatabaseURL); err != nil {
			return a, fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
		}
	}
	if m.read || m.project {
		if err := a.connectCatalog(ctx, cfg, log, m.local); err != nil {
			return a, err
		}
	}
	return a, a.buildRoles(ctx, cfg, log, m)
}

// buildRoles takes the build step of each role m runs.
func (a *app) buildRoles(ctx context.Context, cfg config, log *slog.Logger, m mode) error {
	if m.write {
		a.buildWriteSide(cfg, log)
	}
	if m.project {
		if err := a.buildProjector(ctx, cfg, log, m.local, !m.noPublish); err != nil {
			return err
		}
	}
	if m.read {
		if err := a.buildReadSide(ctx, cfg, log); err != nil {
			return err
		}
	}
	if m.notify {
		return a.buildNotifier(ctx, cfg, log, m.local)
	}
	return nil
}

// connectAuth connects to Redis and builds the tokens and the
// authentication the read and write APIs share.
func (a *app) connectAuth(ctx context.Context, cfg config, local bool) error {
	secret, err := jwtSecret(cfg, local)
	if err != nil {
		return err
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL %s: want redis://host:port/db", redactURL(cfg.RedisURL))
	}
	a.redis = redis.NewClient(opts)
	if err := a.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	a.tokens, err = auth.New(auth.Config{
		Secret: secret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, KeyPrefix: cfg.RedisPrefix,
	}, a.redis)
	if err != nil {
		return fmt.Errorf("JWT_SECRET: %w", err)
	}
	a.authenticate = edge.Authenticate(a.tokens, a.cmd.Users)
	return a.cacheRoles(cfg)
}

// connectCatalog connects to the catalogue's MongoDB (starting the
// embedded server in the local run without MONGO_URL), which the read API
// reads and a projector writes, and checks PROJECTION_POLICIES against
// the projections there are.
func (a *app) connectCatalog(ctx context.Context, cfg config, log *slog.Logger, local bool) error {
	var err error
	a.mongoURI = cfg.MongoURL
	if a.mongoURI == "" {
		if !local {
			return errors.New("MONGO_URL is required (mongodb://host:27017)")
		}
		a.ferret, err = ferret.Start(ctx, ferret.Options{Addr: cfg.MongoAddr, PostgreSQLURL: cfg.DatabaseURL, Logger: log})
		if err != nil {
			return fmt.Errorf("embedded MongoDB-protocol server on MONGO_ADDR %s: %w", cfg.MongoAddr, err)
		}
		a.mongoURI = a.ferret.URI()
	}
	if a.mongo, err = mongo.Connect(options.Client().ApplyURI(a.mongoURI)); err != nil {
		return fmt.Errorf("MONGO_URL %s: %w", redactURL(a.mongoURI), err)
	}
	a.catalog = mongoread.New(a.mongo.Database(cfg.MongoDatabase))
	for name := range cfg.ProjectionPolicies {
		if !slices.Contains(a.projectionNames(), name) {
			return fmt.Errorf("PROJECTION_POLICIES: no projection %q; there are %s", name, strings.Join(a.projectionNames(), ", "))
		}
	}
	return nil
}

// ensureKafka sets kafkaBrokers to KAFKA_BROKERS, or in the local run
// without it starts the embedded Kafka-protocol broker, once.
func (a *app) ensureKafka(cfg config, log *slog.Logger, local bool) error {
	if len(a.kafkaBrokers) > 0 {
		return nil
	}
	a.kafkaBrokers = cfg.KafkaBrokers
	if len(a.kafkaBrokers) > 0 {
		return nil
	}
	if !local {
		return errors.New("KAFKA_BROKERS is required (host:9092,...)")
	}
	var err error
	a.broker, err = kafkabroker.Start(kafkabroker.Options{Addr: cfg.KafkaAddr,
		DataDir: filepath.Join(cfg.DataDir, "kafka"), Logger: log})
	if err != nil {
		return fmt.Errorf("embedded Kafka-protocol broker on KAFKA_ADDR %s: %w", cfg.KafkaAddr, err)
	}
	a.kafkaBrokers = a.broker.Addrs()
	return nil
}

// ensureLedger opens the notifier's ledger on the read models' database
// and applies its migrations, once.
func (a *app) ensureLedger(ctx context.Context, cfg config) error {
	if a.ledger != nil {
		return nil
	}
	l := ledger.New(a.pool)
	if err := l.Migrate(ctx); err != nil {
		return fmt.Errorf("notification ledger on DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
	}
	a.ledger = l
	return nil
}

// setupReadModels creates the read models' tables on the read models'
// database, for a process that reads them before a projector has filled
// them.
func (a *app) setupReadModels(ctx context.Context, cfg config) error {
	for _, p := range pgread.New(a.pool).Projections() {
		if err := projections.Setup(ctx, a.pool, p); err != nil {
			return fmt.Errorf("read models on DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
		}
	}
	return nil
}

// pmFailures is the order process manager's list of failing orders, in
// the read models' database.
func (a *app) pmFailures() projections.Failures {
	return projections.Failures{Pool: a.pool, Worker: processManagerLock}
}

// projectionNames names every projection of the system, whichever
// process runs it: the read models and the Kafka publisher.
func (a *app) projectionNames() []string {
	names := []string{pgread.UsersProjection{}.Name(), pgread.OrdersProjection{}.Name(), mongoread.ProjectionName, kafkapub.Name}
	for _, r := range a.runners {
		if !slices.Contains(names, r.Name()) {
			names = append(names, r.Name())
		}
	}
	return names
}

// reports is the projections' stored reports, as the metrics show them;
// nil without the read models' pool.
func (a *app) reports(ctx context.Context) ([]metrics.ProjectionReport, error) {
	if a.pool == nil {
		return nil, nil
	}
	reps, err := projections.Reports(ctx, a.pool, a.projectionNames())
	if err != nil {
		return nil, err
	}
	return projectionMetrics(reps), nil
}

// projectionMetrics is what the metrics show of reps.
func projectionMetrics(reps []projections.Report) []metrics.ProjectionReport {
	out := make([]metrics.ProjectionReport, len(reps))
	for i, r := range reps {
		out[i] = metrics.ProjectionReport{
			Name: r.Name, Position: r.Position.Commit, LagEvents: r.LagEvents, LagTime: r.LagTime,
			Up:      r.State == projections.StateLive || r.State == projections.StateCatchingUp,
			Failing: r.State == projections.StateFailing || r.State == projections.StateHalted,
			Parked:  r.Parked,
		}
	}
	return out
}

// Close closes what buildApp opened. Stop the runners first.
func (a *app) Close() error {
	var errs []error
	if a.pub != nil {
		errs = append(errs, a.pub.Close())
	}
	if a.broker != nil {
		a.broker.Close()
	}
	if a.sink != nil {
		errs = append(errs, a.sink.Close())
	}
	if a.mongo != nil {
		errs = append(errs, a.mongo.Disconnect(context.Background()))
	}
	if a.ferret != nil {
		a.ferret.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.redis != nil {
		errs = append(errs, a.redis.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	return errors.Join(errs...)
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
	secret, err := auth.SecretFile(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("DATA_DIR: %w", err)
	}
	return secret, nil
}
