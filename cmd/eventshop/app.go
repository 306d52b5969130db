package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/eventstore/adapter"
	"github.com/eventshop/eventshop/eventstore/snapshots"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/metrics"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/services/payment"
	"github.com/eventshop/eventshop/internal/services/unpaid"
	"github.com/eventshop/eventshop/internal/standins"
	"github.com/eventshop/eventshop/notifications/ledger"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/projections"
	kafkapub "github.com/eventshop/eventshop/projections/kafka"
	mongoread "github.com/eventshop/eventshop/projections/mongo"
	pgread "github.com/eventshop/eventshop/projections/postgres"
	"github.com/eventshop/eventshop/readapi"
	"github.com/eventshop/eventshop/writeapi"
)

// app is the system wired together: what buildApp builds for a mode,
// each role's part nil unless the mode runs it.
type app struct {
	store  adapter.Store
	cmd    commands.Handlers
	pm     *commands.ProcessManager
	redis  *redis.Client    // when an API is served or roles change
	tokens *auth.Service    // when an API is served
	api    *writeapi.Server // when the write API is served
	// authenticate is the signed-in routes' middleware
	authenticate func(http.Handler) http.Handler
	pool         *pgxpool.Pool       // the read models and checkpoints, on DATABASE_URL
	mongo        *mongo.Client       // the catalogue's server
	catalog      *mongoread.Store    // the catalogue
	pub          *kafkapub.Publisher // nil unless projections run
	runners      []*projections.Runner
	// progress is where this process's runners tell its read API what
	// they committed
	progress *projections.Progress
	reads    *readapi.Server
	metrics  *metrics.Metrics

	ledger   *ledger.Ledger // the notifier's, also read by the read API
	notifier *notifier.Notifier
	sender   *mail.Sender                  // the notifier's SMTP sender
	local    *standins.Local               // the stand-ins the local run started
	payments *payment.DurableTestProcessor // PAYMENT_TEST_DATABASE_URL's, if set
	// What the process connects to, for the start banner.
	mongoURI     string
	kafkaBrokers []string
	smtpAddr     string
}

// buildApp connects to what m needs and wires it, one step per role m
// runs, after what every role shares: the event store always; the read
// models' pool for every role; the command handlers (with their
// snapshots in that pool); Redis and the tokens when an API is served;
// the catalogue's MongoDB when projections run. The local run starts the embedded
// stand-ins for MONGO_URL, KAFKA_BROKERS and SMTP_ADDR when not set.
// Whatever fails, what was opened is closed again.
func buildApp(ctx context.Context, cfg config, log *slog.Logger, m mode) (a *app, err error) {
	a = &app{local: &standins.Local{Log: log}, progress: projections.NewProgress()}
	a.metrics = metrics.New(metrics.Config{Logger: log, Projections: a.reports})
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()
	if a.store, err = openStore(ctx, cfg, log); err != nil {
		return a, err
	}
	if m.write || m.read || m.project || m.notify {
		// The read models, the checkpoints and the locks that keep one
		// process manager and one runner per projection active. The pool
		// connects lazily.
		if a.pool, err = pgxpool.New(ctx, cfg.DatabaseURL); err != nil {
			return a, fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
		}
	}
	if m.write {
		if err := checkPaymentProcessor(cfg.PaymentProcessor, m.local, log); err != nil {
			return a, err
		}
	}
	var payments payment.Processor = payment.NewTestProcessor()
	if cfg.PaymentTestDatabaseURL != "" && m.write {
		if a.payments, err = payment.OpenDurableTestProcessor(ctx, cfg.PaymentTestDatabaseURL); err != nil {
			return a, fmt.Errorf("PAYMENT_TEST_DATABASE_URL %s: %w", redactURL(cfg.PaymentTestDatabaseURL), err)
		}
		payments = a.payments
	}
	commandsCfg := commands.Config{
		Store: a.store, Payments: payments, Log: log,
		PaymentTimeout: cfg.PaymentTimeout, ClaimGrace: cfg.PlacementGrace,
	}
	if a.pool != nil && cfg.SnapshotEvery > 0 && m.write {
		snaps := snapshots.New(a.pool)
		if err := snaps.Migrate(ctx); err != nil {
			return a, fmt.Errorf("DATABASE_URL %s: %w", redactURL(cfg.DatabaseURL), err)
		}
		commandsCfg.Snapshots, commandsCfg.SnapshotEvery = snaps, cfg.SnapshotEvery
	}
	a.cmd = commands.New(commandsCfg)
	if m.write || m.read {
		if err := a.connectAuth(ctx, cfg, m.local); err != nil {
			return a, err
		}
	}
	if m.project {
		if err := a.connectCatalog(ctx, cfg, m.local); err != nil {
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
	if err := a.cacheRoles(ctx, cfg); err != nil {
		return err
	}
	tc := cfg.Tokens
	tc.Secret = secret
	if a.tokens, err = auth.New(tc, a.redis); err != nil {
		return fmt.Errorf("JWT_SECRET: %w", err)
	}
	a.authenticate = edge.Authenticate(a.tokens, a.cmd.Users)
	return nil
}

// cacheRoles connects to REDIS_URL and has every role change of the
// command handlers go through the roles cache the APIs read there
// (auth.RoleCache): every process that changes roles must, create-admin
// too, or the APIs would go on trusting the old roles.
func (a *app) cacheRoles(ctx context.Context, cfg config) error {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL %s: want redis://host:port/db", redactURL(cfg.RedisURL))
	}
	opts.ContextTimeoutEnabled = true // a call ends at its request's deadline
	a.redis = redis.NewClient(opts)
	if err := a.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	a.cmd.Users.CacheRoles(auth.NewRoleCache(a.redis, cfg.Tokens.KeyPrefix))
	if cfg.Unpaid.Orders > 0 || cfg.Unpaid.Units > 0 { // both 0: no bound, and no Redis round trip per order
		a.cmd.Orders.LimitUnpaid(unpaid.New(a.redis, cfg.Tokens.KeyPrefix, cfg.Unpaid))
	}
	return nil
}

// connectCatalog connects to the catalogue's MongoDB (starting the
// embedded server in the local run without MONGO_URL), where a projector
// keeps the product documents, and checks PROJECTION_POLICIES against the
// projections there are.
func (a *app) connectCatalog(ctx context.Context, cfg config, local bool) (err error) {
	switch a.mongoURI = cfg.MongoURL; {
	case a.mongoURI == "" && !local:
		return errors.New("MONGO_URL is required (mongodb://host:27017)")
	case a.mongoURI == "":
		if a.mongoURI, err = a.local.MongoDB(ctx, cfg.MongoAddr, cfg.DatabaseURL); err != nil {
			return err
		}
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

// openStore opens the event store on EVENTSTORE_URL.
func openStore(ctx context.Context, cfg config, log *slog.Logger) (adapter.Store, error) {
	s, err := adapter.Open(ctx, cfg.EventStoreURL, log)
	if errors.Is(err, adapter.ErrScheme) {
		return nil, fmt.Errorf("EVENTSTORE_URL %s: %w", redactURL(cfg.EventStoreURL), err)
	}
	return s, err
}

// ensureKafka sets kafkaBrokers to KAFKA_BROKERS, or in the local run
// without it starts the embedded Kafka-protocol broker, once.
func (a *app) ensureKafka(cfg config, local bool) (err error) {
	switch {
	case len(cfg.KafkaBrokers) > 0:
		a.kafkaBrokers = cfg.KafkaBrokers
	case !local:
		return errors.New("KAFKA_BROKERS is required (host:9092,...)")
	default:
		a.kafkaBrokers, err = a.local.Kafka(cfg.KafkaAddr, cfg.DataDir, cfg.KafkaRetention, int64(cfg.KafkaRetentionMB)<<20)
	}
	return err
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
			return fmt.Errorf("read model %s on DATABASE_URL %s: %w", p.Name(), redactURL(cfg.DatabaseURL), err)
		}
	}
	return nil
}

// pmFailures is the order process manager's list of failing orders, in
// the read models' database.
func (a *app) pmFailures() projections.Failures {
	return projections.Failures{Pool: a.pool, Worker: commands.ProcessManagerLock}
}

// pmView is where the order process manager keeps its view, in the read
// models' database.
func (a *app) pmView() projections.WorkerView {
	return projections.WorkerView{Pool: a.pool, Worker: commands.ProcessManagerLock}
}

// projectionNames names every projection of the system, whichever
// process runs it: the read models and the Kafka publisher.
func (a *app) projectionNames() []string {
	names := []string{pgread.UsersProjection{}.Name(), pgread.OrdersProjection{}.Name(), pgread.ProductsProjection{}.Name(), mongoread.ProjectionName, kafkapub.Name}
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
	out := make([]metrics.ProjectionReport, len(reps))
	for i, r := range reps {
		out[i] = metrics.ProjectionReport{
			Name: r.Name, Position: r.Position.Commit, LagEvents: r.LagEvents, LagTime: r.LagTime,
			Up: r.Up(), Failing: r.Failing(), Parked: r.Parked,
		}
	}
	return out, err
}

// Close closes what buildApp opened, the connections after what uses
// them. Stop the runners first.
func (a *app) Close() error {
	var errs []error
	closing := func(open bool, close func() error) {
		if open {
			errs = append(errs, close())
		}
	}
	closing(a.pub != nil, func() error { return a.pub.Close() })
	closing(a.mongo != nil, func() error { return a.mongo.Disconnect(context.Background()) })
	closing(a.sender != nil, func() error { return a.sender.Close() })
	closing(a.local != nil, a.local.Close)
	closing(a.pool != nil, func() error { a.pool.Close(); return nil })
	closing(a.payments != nil, func() error { a.payments.Close(); return nil })
	closing(a.redis != nil, func() error { return a.redis.Close() })
	closing(a.store != nil, func() error { return a.store.Close() })
	return errors.Join(errs...)
}

// checkPaymentProcessor fails closed: the only processor built in is the
// test one, which takes any valid card number and moves no money, so a
// deployment (anything but the local run) must choose it by name, and is
// warned at every start that it did.
func checkPaymentProcessor(name string, local bool, log *slog.Logger) error {
	switch {
	case name == "test" && !local:
		log.Warn("PAYMENT_PROCESSOR=test: orders are paid by the test processor, which accepts any valid card number and moves no money")
	case name == "test", name == "" && local:
	case name == "":
		return errors.New("PAYMENT_PROCESSOR is required outside the local run; the only processor built in is `test`, " +
			"which accepts any valid card number and moves no money: set PAYMENT_PROCESSOR=test to run with it anyway")
	default:
		return fmt.Errorf("PAYMENT_PROCESSOR %q: the only processor built in is `test`", name)
	}
	return nil
}

// jwtSecret is JWT_SECRET (auth.New checks its length), or for the local
// run the secret kept in DATA_DIR/jwt-secret (auth.SecretFile).
func jwtSecret(cfg config, local bool) (secret []byte, err error) {
	switch {
	case cfg.JWTSecret != "":
		return []byte(cfg.JWTSecret), nil
	case !local:
		return nil, errors.New("JWT_SECRET is required (at least 32 random characters)")
	}
	if secret, err = auth.SecretFile(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("DATA_DIR: %w", err)
	}
	return secret, nil
}
