package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/platform/environ"
	"github.com/eventshop/eventshop/internal/services/auth"
	"github.com/eventshop/eventshop/internal/services/mail"
	"github.com/eventshop/eventshop/internal/services/unpaid"
	"github.com/eventshop/eventshop/notifications/notifier"
	"github.com/eventshop/eventshop/notifications/templates"
	"github.com/eventshop/eventshop/projections"
)

// config is everything the environment can set: packages' own configurations
// as read; the build steps add connections and loggers.
type config struct {
	HTTPAddr string
	// PprofAddr, when set, is a loopback address serving Go's profiles.
	PprofAddr       string
	DatabaseURL     string
	EventStoreURL   string
	RedisURL        string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	AdminEmail      string
	AdminPassword   string
	DataDir         string

	// JWTSecret is the tokens' key (empty: the local run makes one in DATA_DIR).
	JWTSecret string
	Tokens    auth.Config
	Logins    auth.LoginLimits
	// Gateway is the guards in front of every route (see loadLimits).
	Gateway gateway.Config

	PaymentTimeout time.Duration
	// PaymentProcessor names the payment provider (PAYMENT_PROCESSOR);
	// only "test" is built in. Outside the local run it must be set.
	PaymentProcessor string
	// PaymentTestDatabaseURL keeps the test payment processor's charges
	// in a PostgreSQL database instead of the process's memory
	// (PAYMENT_TEST_DATABASE_URL; fault-injection runs).
	PaymentTestDatabaseURL string
	PlacementGrace         time.Duration
	SagaTick               time.Duration
	SnapshotEvery          int
	// Unpaid bounds what one customer may hold in unpaid orders
	// (MAX_UNPAID_ORDERS, MAX_UNPAID_UNITS; 0: no bound).
	Unpaid unpaid.Limits
	// ProjectionPolicies is each projection's policy for an event that keeps
	// failing, by name (PROJECTION_POLICIES); one not named parks.
	ProjectionPolicies map[string]string

	// MongoURL is the catalogue's MongoDB; empty in the local run starts
	// the embedded MongoDB-protocol server on MongoAddr.
	MongoURL      string
	MongoDatabase string
	MongoAddr     string
	// CatalogCacheTTL is how long the read API keeps the product routes'
	// answers (CATALOG_CACHE_TTL; 0: none).
	CatalogCacheTTL time.Duration
	// KafkaBrokers is the Kafka bootstrap list; empty in the local run
	// starts the embedded Kafka-protocol broker on KafkaAddr.
	KafkaBrokers    []string
	KafkaAddr       string
	KafkaPartitions int
	// KafkaRetention and KafkaRetentionMB bound each partition of the
	// embedded broker (0: no bound).
	KafkaRetention   time.Duration
	KafkaRetentionMB int

	// SMTP is the notifier's SMTP server; an empty Addr in the local run
	// starts the embedded sink on SMTPSinkAddr.
	SMTP         mail.Config
	SMTPSinkAddr string
	// Notifier is the notifier's consumer group, retries and lookups.
	Notifier notifier.Config
	// Shop is what the mails say of the shop.
	Shop templates.Options
}

// The gateway's default rate limits per client IP: the general one only
// stops floods; the one on sign-in, sign-up and refresh bounds the password
// hashing one address can cause, yet lets an office behind one NAT sign in.
const (
	defaultRatePerSecond     = 50
	defaultAuthRatePerMinute = 60
)

// defaultDatabaseURL is the local server with trust auth, as `make services` sets up.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/eventshop?sslmode=disable"

// loadConfig reads the configuration from getenv, concern by concern. Its
// error names every variable that is wrong, never a value.
func loadConfig(getenv func(string) string) (config, error) {
	e := environ.New(getenv)
	var cfg config
	cfg.loadProcess(e)
	cfg.loadDatabases(e)
	cfg.loadAuth(e)
	cfg.loadOrders(e)
	cfg.loadLimits(e)
	cfg.loadKafka(e)
	cfg.loadMail(e)
	if err := e.Err(); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// loadProcess reads what every process has: its address, log level,
// shutdown timeout, data directory and first admin.
func (cfg *config) loadProcess(e *environ.Reader) {
	cfg.HTTPAddr = e.Get("HTTP_ADDR", "127.0.0.1:8080")
	cfg.ShutdownTimeout = e.Duration("SHUTDOWN_TIMEOUT", "15s")
	cfg.PprofAddr = e.Get("PPROF_ADDR", "")
	if err := cfg.LogLevel.UnmarshalText([]byte(e.Get("LOG_LEVEL", "info"))); err != nil {
		e.Fail("LOG_LEVEL: want debug, info, warn or error")
	}
	cfg.AdminEmail = e.Get("ADMIN_EMAIL", "")
	cfg.AdminPassword = e.Raw("ADMIN_PASSWORD")
	cfg.DataDir = e.Get("DATA_DIR", ".data")
}

// loadDatabases reads where the event store, the read models, Redis and
// MongoDB are.
func (cfg *config) loadDatabases(e *environ.Reader) {
	cfg.DatabaseURL = e.Get("DATABASE_URL", defaultDatabaseURL)
	cfg.EventStoreURL = e.Get("EVENTSTORE_URL", cfg.DatabaseURL)
	cfg.RedisURL = e.Get("REDIS_URL", "redis://127.0.0.1:6379/0")
	cfg.Tokens.KeyPrefix = e.Get("REDIS_KEY_PREFIX", "eventshop:")
	cfg.Gateway.KeyPrefix = cfg.Tokens.KeyPrefix
	cfg.MongoURL = e.Get("MONGO_URL", "")
	cfg.MongoDatabase = e.Get("MONGO_DATABASE", "eventshop")
	cfg.MongoAddr = e.Get("MONGO_ADDR", "127.0.0.1:27017")
	cfg.CatalogCacheTTL = e.DurationOrOff("CATALOG_CACHE_TTL", "1s")
}

// loadAuth reads the tokens' settings and the limits on failed sign-ins.
func (cfg *config) loadAuth(e *environ.Reader) {
	cfg.JWTSecret = e.Raw("JWT_SECRET")
	cfg.Tokens.Issuer = e.Get("JWT_ISSUER", "eventshop")
	cfg.Tokens.Audience = e.Get("JWT_AUDIENCE", "eventshop-api")
	cfg.Tokens.AccessTTL = e.Duration("ACCESS_TOKEN_TTL", "15m")
	cfg.Tokens.RefreshTTL = e.Duration("REFRESH_TOKEN_TTL", "168h")
	cfg.Logins.PerAccount = e.Int("LOGIN_FAILURES_PER_ACCOUNT", 5)
	cfg.Logins.PerIP = e.Int("LOGIN_FAILURES_PER_IP", 20)
	cfg.Logins.PerAccountTotal = e.Int("LOGIN_FAILURES_PER_ACCOUNT_TOTAL", 50)
	cfg.Logins.Window = e.Duration("LOGIN_FAILURE_WINDOW", "15m")
	cfg.Logins.KnownFor = e.Duration("LOGIN_KNOWN_ADDRESS_TTL", "720h")
	cfg.Gateway.TrustProxy = e.Bool("TRUST_PROXY_HEADERS")
}

// loadOrders reads the order process manager's timings and the
// projections' policies.
func (cfg *config) loadOrders(e *environ.Reader) {
	cfg.PaymentTimeout = e.Duration("ORDER_PAYMENT_TIMEOUT", "15m")
	cfg.PaymentTestDatabaseURL = e.Get("PAYMENT_TEST_DATABASE_URL", "")
	cfg.PaymentProcessor = e.Get("PAYMENT_PROCESSOR", "")
	cfg.PlacementGrace = e.Duration("ORDER_PLACEMENT_GRACE", "60s")
	cfg.SagaTick = e.Duration("SAGA_TICK", "1s")
	cfg.SnapshotEvery = e.Int("SNAPSHOT_EVERY", 1000)
	cfg.Unpaid.Orders = e.Limit("MAX_UNPAID_ORDERS", 5)
	cfg.Unpaid.Units = int64(e.Limit("MAX_UNPAID_UNITS", 100))
	cfg.ProjectionPolicies = map[string]string{}
	for _, kv := range e.List("PROJECTION_POLICIES") {
		name, policy, ok := strings.Cut(kv, "=")
		name, policy = strings.TrimSpace(name), strings.TrimSpace(policy)
		if err := projections.CheckPolicy(policy); !ok || name == "" || err != nil {
			e.Fail(fmt.Sprintf("PROJECTION_POLICIES: %q: want name=park or name=halt, comma-separated", kv))
			continue
		}
		cfg.ProjectionPolicies[name] = policy
	}
}

// loadLimits reads the gateway's admission control, request timeout, rate
// limits, body limit and CORS origins.
func (cfg *config) loadLimits(e *environ.Reader) {
	g := &cfg.Gateway
	g.MaxInFlight = e.Limit("MAX_IN_FLIGHT", gateway.DefaultMaxInFlight())
	g.MaxQueue = e.Limit("MAX_QUEUE", 4*g.MaxInFlight)
	g.QueueWait = e.Duration("MAX_QUEUE_WAIT", gateway.DefaultQueueWait.String())
	if g.RequestTimeout = e.Duration("REQUEST_TIMEOUT", "5s"); g.RequestTimeout < 3*time.Second {
		e.Fail("REQUEST_TIMEOUT: at least 3s: a read may wait 2s for X-Min-Position, then must answer")
	}
	g.PerSecond = e.Limit("RATE_LIMIT_PER_SECOND", defaultRatePerSecond)
	g.AuthPerMinute = e.Limit("AUTH_RATE_LIMIT_PER_MINUTE", defaultAuthRatePerMinute)
	// The burst defaults to two seconds' worth of the rate.
	g.Burst = e.Int("RATE_LIMIT_BURST", max(2*g.PerSecond, 1))
	g.MaxBodyBytes = int64(e.Int("MAX_BODY_BYTES", edge.MaxBodyBytes))
	if g.MaxBodyBytes > edge.MaxBodyBytes {
		// The write API reads JSON bodies through its own 1 MiB limit
		// (API.md), so a larger gateway limit would promise what it cannot
		// keep.
		e.Fail(fmt.Sprintf("MAX_BODY_BYTES: at most %d (1 MiB, the write API's own limit)", edge.MaxBodyBytes))
	}
	for _, o := range e.List("CORS_ALLOWED_ORIGINS") {
		if err := gateway.CheckOrigin(o); err != nil {
			e.Fail("CORS_ALLOWED_ORIGINS: " + strings.TrimPrefix(err.Error(), "gateway: "))
		}
		g.AllowedOrigins = append(g.AllowedOrigins, o)
	}
}

// loadKafka reads where Kafka is.
func (cfg *config) loadKafka(e *environ.Reader) {
	cfg.KafkaBrokers = e.List("KAFKA_BROKERS")
	cfg.KafkaAddr = e.Get("KAFKA_ADDR", "127.0.0.1:9092")
	cfg.KafkaPartitions = e.Int("KAFKA_PARTITIONS", 3)
	cfg.KafkaRetention = e.DurationOrOff("KAFKA_RETENTION", "168h")
	cfg.KafkaRetentionMB = e.Limit("KAFKA_RETENTION_MB", 256)
}

// brokers is KAFKA_BROKERS, or else the local run's embedded broker on
// KAFKA_ADDR, for the commands that read what a running system publishes.
func (cfg config) brokers() []string {
	if len(cfg.KafkaBrokers) > 0 {
		return cfg.KafkaBrokers
	}
	return []string{cfg.KafkaAddr}
}

// loadMail reads the notifier's SMTP server, retries and shop.
func (cfg *config) loadMail(e *environ.Reader) {
	cfg.SMTP = mail.Config{
		Addr: e.Get("SMTP_ADDR", ""), Username: e.Get("SMTP_USERNAME", ""), Password: e.Raw("SMTP_PASSWORD"),
		TLS: e.Get("SMTP_TLS", ""), From: e.Get("SMTP_FROM", "eventshop <no-reply@eventshop.local>"),
		Timeout: e.Duration("SMTP_TIMEOUT", "10s"),
	}
	cfg.SMTPSinkAddr = e.Get("SMTP_SINK_ADDR", "127.0.0.1:1025")
	cfg.Notifier = notifier.Config{
		GroupID: e.Get("NOTIFIER_GROUP", "eventshop-notifier"), MaxAttempts: e.Int("NOTIFY_MAX_ATTEMPTS", 5),
		RetryMin: e.Duration("NOTIFY_RETRY_MIN", "1s"), RetryMax: e.Duration("NOTIFY_RETRY_MAX", "1m"),
		LookupTimeout: e.Duration("NOTIFY_LOOKUP_TIMEOUT", "2m"), Lanes: e.Int("NOTIFIER_LANES", notifier.DefaultLanes),
		Batch: e.Int("NOTIFIER_BATCH", notifier.DefaultBatch),
	}
	cfg.Shop = templates.Options{
		ShopName: e.Get("SHOP_NAME", "eventshop"), BaseURL: e.Get("SHOP_URL", ""), Currency: e.Raw("SHOP_CURRENCY"),
	}
}
