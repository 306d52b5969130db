package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/projections"
)

// config is everything the environment can set.
type config struct {
	HTTPAddr        string
	DatabaseURL     string
	EventStoreURL   string
	RedisURL        string
	RedisPrefix     string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration

	JWTSecret      string
	JWTIssuer      string
	JWTAudience    string
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	PaymentTimeout time.Duration
	PlacementGrace time.Duration
	SagaTick       time.Duration
	// ProjectionPolicies is each projection's policy for an event that
	// keeps failing, by name (PROJECTION_POLICIES); a projection not
	// named parks (projections.PolicyPark).
	ProjectionPolicies map[string]string
	LoginPerAccount    int
	LoginPerIP         int
	LoginWindow        time.Duration
	TrustProxy         bool

	// The gateway in front of every route (internal/edge/gateway): rate limits
	// per client IP (0 disables one), CORS origins (none: no CORS), and the
	// body limit.
	RateLimitPerSecond     int
	RateLimitBurst         int
	AuthRateLimitPerMinute int
	CORSAllowedOrigins     []string
	MaxBodyBytes           int64

	AdminEmail    string
	AdminPassword string
	DataDir       string

	// MongoURL is the catalogue's MongoDB; empty in the local run starts
	// the embedded MongoDB-protocol server on MongoAddr.
	MongoURL      string
	MongoDatabase string
	MongoAddr     string
	// KafkaBrokers is the Kafka bootstrap list; empty in the local run
	// starts the embedded Kafka-protocol broker on KafkaAddr.
	KafkaBrokers    []string
	KafkaAddr       string
	KafkaPartitions int

	// SMTPAddr is the notifier's SMTP server; empty in the local run
	// starts the embedded sink on SMTPSinkAddr.
	SMTPAddr     string
	SMTPSinkAddr string
	SMTPUsername string
	SMTPPassword string
	SMTPTLS      string
	SMTPFrom     string
	SMTPTimeout  time.Duration
	// The notifier's consumer group and retries.
	NotifierGroup     string
	NotifyMaxAttempts int
	NotifyRetryMin    time.Duration
	NotifyRetryMax    time.Duration
	NotifyLookup      time.Duration
	// What the mails say of the shop.
	ShopName     string
	ShopURL      string
	ShopCurrency string
}

// The gateway's default rate limits per client IP. The general one only
// stops floods (a page load, or a test suite from one address, stays far
// below it); the one on sign-in, sign-up and refresh bounds the
// password-hashing work and account creation one address can cause, while
// an office behind one NAT address can still sign in. Failed sign-ins have
// their own, tighter limits (LOGIN_FAILURES_PER_*).
const (
	defaultRatePerSecond     = 50
	defaultAuthRatePerMinute = 60
)

// defaultDatabaseURL is the local server with trust auth, as `make services` sets up.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/eventshop?sslmode=disable"

// loadConfig reads the configuration from getenv, concern by concern. Its
// error names every variable that is wrong, never a value.
func loadConfig(getenv func(string) string) (config, error) {
	e := &env{}
	e.getenv = withFiles(getenv, &e.errs)
	var cfg config
	cfg.loadProcess(e)
	cfg.loadDatabases(e)
	cfg.loadAuth(e)
	cfg.loadOrders(e)
	cfg.loadLimits(e)
	cfg.loadKafka(e)
	cfg.loadMail(e)
	if len(e.errs) > 0 {
		return config{}, fmt.Errorf("configuration: %s", strings.Join(e.errs, "; "))
	}
	return cfg, nil
}

// loadProcess reads what every process has: its address, log level,
// shutdown timeout, data directory and first admin.
func (cfg *config) loadProcess(e *env) {
	cfg.HTTPAddr = e.get("HTTP_ADDR", "127.0.0.1:8080")
	cfg.ShutdownTimeout = e.dur("SHUTDOWN_TIMEOUT", "15s")
	if err := cfg.LogLevel.UnmarshalText([]byte(e.get("LOG_LEVEL", "info"))); err != nil {
		e.errs = append(e.errs, "LOG_LEVEL: want debug, info, warn or error")
	}
	cfg.AdminEmail = e.get("ADMIN_EMAIL", "")
	cfg.AdminPassword = e.getenv("ADMIN_PASSWORD")
	cfg.DataDir = e.get("DATA_DIR", ".data")
}

// loadDatabases reads where the event store, the read models, Redis and
// MongoDB are.
func (cfg *config) loadDatabases(e *env) {
	cfg.DatabaseURL = e.get("DATABASE_URL", defaultDatabaseURL)
	cfg.EventStoreURL = e.get("EVENTSTORE_URL", cfg.DatabaseURL)
	cfg.RedisURL = e.get("REDIS_URL", "redis://127.0.0.1:6379/0")
	cfg.RedisPrefix = e.get("REDIS_KEY_PREFIX", "eventshop:")
	cfg.MongoURL = e.get("MONGO_URL", "")
	cfg.MongoDatabase = e.get("MONGO_DATABASE", "eventshop")
	cfg.MongoAddr = e.get("MONGO_ADDR", "127.0.0.1:27017")
}

// loadAuth reads the tokens' settings and the limits on failed sign-ins.
func (cfg *config) loadAuth(e *env) {
	cfg.JWTSecret = e.getenv("JWT_SECRET")
	cfg.JWTIssuer = e.get("JWT_ISSUER", "eventshop")
	cfg.JWTAudience = e.get("JWT_AUDIENCE", "eventshop-api")
	cfg.AccessTTL = e.dur("ACCESS_TOKEN_TTL", "15m")
	cfg.RefreshTTL = e.dur("REFRESH_TOKEN_TTL", "168h")
	cfg.LoginPerAccount = e.num("LOGIN_FAILURES_PER_ACCOUNT", 5)
	cfg.LoginPerIP = e.num("LOGIN_FAILURES_PER_IP", 20)
	cfg.LoginWindow = e.dur("LOGIN_FAILURE_WINDOW", "15m")
	cfg.TrustProxy = e.get("TRUST_PROXY_HEADERS", "false") == "true"
}

// loadOrders reads the order process manager's timings and the
// projections' policies.
func (cfg *config) loadOrders(e *env) {
	cfg.PaymentTimeout = e.dur("ORDER_PAYMENT_TIMEOUT", "15m")
	cfg.PlacementGrace = e.dur("ORDER_PLACEMENT_GRACE", "60s")
	cfg.SagaTick = e.dur("SAGA_TICK", "1s")
	cfg.ProjectionPolicies = map[string]string{}
	for _, kv := range e.list("PROJECTION_POLICIES") {
		name, policy, ok := strings.Cut(kv, "=")
		name, policy = strings.TrimSpace(name), strings.TrimSpace(policy)
		if err := projections.CheckPolicy(policy); !ok || name == "" || err != nil {
			e.errs = append(e.errs, fmt.Sprintf("PROJECTION_POLICIES: %q: want name=park or name=halt, comma-separated", kv))
			continue
		}
		cfg.ProjectionPolicies[name] = policy
	}
}

// loadLimits reads the gateway's rate limits, body limit and CORS origins.
func (cfg *config) loadLimits(e *env) {
	cfg.RateLimitPerSecond = e.rate("RATE_LIMIT_PER_SECOND", defaultRatePerSecond)
	cfg.AuthRateLimitPerMinute = e.rate("AUTH_RATE_LIMIT_PER_MINUTE", defaultAuthRatePerMinute)
	// The burst defaults to two seconds' worth of the rate.
	cfg.RateLimitBurst = e.num("RATE_LIMIT_BURST", max(2*cfg.RateLimitPerSecond, 1))
	cfg.MaxBodyBytes = int64(e.num("MAX_BODY_BYTES", edge.MaxBodyBytes))
	if cfg.MaxBodyBytes > edge.MaxBodyBytes {
		// The write API reads JSON bodies through its own 1 MiB limit
		// (API.md), so a larger gateway limit would promise what it cannot
		// keep.
		e.errs = append(e.errs, fmt.Sprintf("MAX_BODY_BYTES: at most %d (1 MiB, the write API's own limit)", edge.MaxBodyBytes))
	}
	for _, o := range e.list("CORS_ALLOWED_ORIGINS") {
		if err := gateway.CheckOrigin(o); err != nil {
			e.errs = append(e.errs, "CORS_ALLOWED_ORIGINS: "+strings.TrimPrefix(err.Error(), "gateway: "))
		}
		cfg.CORSAllowedOrigins = append(cfg.CORSAllowedOrigins, o)
	}
}

// loadKafka reads where Kafka is.
func (cfg *config) loadKafka(e *env) {
	cfg.KafkaBrokers = e.list("KAFKA_BROKERS")
	cfg.KafkaAddr = e.get("KAFKA_ADDR", "127.0.0.1:9092")
	cfg.KafkaPartitions = e.num("KAFKA_PARTITIONS", 3)
}

// loadMail reads the notifier's SMTP server, retries and shop.
func (cfg *config) loadMail(e *env) {
	cfg.SMTPAddr = e.get("SMTP_ADDR", "")
	cfg.SMTPSinkAddr = e.get("SMTP_SINK_ADDR", "127.0.0.1:1025")
	cfg.SMTPUsername = e.get("SMTP_USERNAME", "")
	cfg.SMTPPassword = e.getenv("SMTP_PASSWORD")
	cfg.SMTPTLS = e.get("SMTP_TLS", "")
	cfg.SMTPFrom = e.get("SMTP_FROM", "eventshop <no-reply@eventshop.local>")
	cfg.SMTPTimeout = e.dur("SMTP_TIMEOUT", "10s")
	cfg.NotifierGroup = e.get("NOTIFIER_GROUP", "eventshop-notifier")
	cfg.NotifyMaxAttempts = e.num("NOTIFY_MAX_ATTEMPTS", 5)
	cfg.NotifyRetryMin = e.dur("NOTIFY_RETRY_MIN", "1s")
	cfg.NotifyRetryMax = e.dur("NOTIFY_RETRY_MAX", "1m")
	cfg.NotifyLookup = e.dur("NOTIFY_LOOKUP_TIMEOUT", "2m")
	cfg.ShopName = e.get("SHOP_NAME", "eventshop")
	cfg.ShopURL = e.get("SHOP_URL", "")
	cfg.ShopCurrency = e.getenv("SHOP_CURRENCY")
}

// env reads variables, collecting in errs what is wrong with them.
type env struct {
	getenv func(string) string
	errs   []string
}

// get is key trimmed, or def when it is empty.
func (e *env) get(key, def string) string {
	if v := strings.TrimSpace(e.getenv(key)); v != "" {
		return v
	}
	return def
}

// dur is a positive duration.
func (e *env) dur(key, def string) time.Duration {
	d, err := time.ParseDuration(e.get(key, def))
	if err != nil || d <= 0 {
		e.errs = append(e.errs, key+": want a positive duration such as "+def)
	}
	return d
}

// num is a positive whole number.
func (e *env) num(key string, def int) int {
	n, err := strconv.Atoi(e.get(key, strconv.Itoa(def)))
	if err != nil || n <= 0 {
		e.errs = append(e.errs, fmt.Sprintf("%s: want a positive whole number such as %d", key, def))
	}
	return n
}

// rate is a limit where 0 turns it off.
func (e *env) rate(key string, def int) int {
	n, err := strconv.Atoi(e.get(key, strconv.Itoa(def)))
	if err != nil || n < 0 {
		e.errs = append(e.errs, fmt.Sprintf("%s: want a whole number such as %d, or 0 for no limit", key, def))
	}
	return n
}

// list is a comma-separated list, each item trimmed, empty ones dropped.
func (e *env) list(key string) []string {
	var out []string
	for _, v := range strings.Split(e.get(key, ""), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// withFiles returns getenv in which any variable NAME may instead be given
// as NAME_FILE, the path of a file holding the value (trailing newlines
// dropped): Docker and Kubernetes secrets are mounted as files. Setting
// both, or a file that cannot be read, adds to errs a message naming the
// variable, never the value.
func withFiles(getenv func(string) string, errs *[]string) func(string) string {
	return func(key string) string {
		path := strings.TrimSpace(getenv(key + "_FILE"))
		if path == "" {
			return getenv(key)
		}
		if getenv(key) != "" {
			*errs = append(*errs, key+" and "+key+"_FILE are both set; set one")
			return ""
		}
		b, err := os.ReadFile(path)
		if err != nil {
			*errs = append(*errs, key+"_FILE: "+err.Error())
			return ""
		}
		return strings.TrimRight(string(b), "\r\n")
	}
}
