package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/gateway"
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

	// The gateway in front of every route (internal/gateway): rate limits
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

func loadConfig(getenv func(string) string) (config, error) {
	var errs []string
	getenv = withFiles(getenv, &errs)
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	dur := func(key, def string) time.Duration {
		d, err := time.ParseDuration(get(key, def))
		if err != nil || d <= 0 {
			errs = append(errs, key+": want a positive duration such as "+def)
		}
		return d
	}
	num := func(key string, def int) int {
		n, err := strconv.Atoi(get(key, strconv.Itoa(def)))
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Sprintf("%s: want a positive whole number such as %d", key, def))
		}
		return n
	}
	// rate is a limit where 0 turns it off.
	rate := func(key string, def int) int {
		n, err := strconv.Atoi(get(key, strconv.Itoa(def)))
		if err != nil || n < 0 {
			errs = append(errs, fmt.Sprintf("%s: want a whole number such as %d, or 0 for no limit", key, def))
		}
		return n
	}
	cfg := config{
		HTTPAddr:        get("HTTP_ADDR", "127.0.0.1:8080"),
		DatabaseURL:     get("DATABASE_URL", defaultDatabaseURL),
		RedisURL:        get("REDIS_URL", "redis://127.0.0.1:6379/0"),
		RedisPrefix:     get("REDIS_KEY_PREFIX", "eventshop:"),
		ShutdownTimeout: dur("SHUTDOWN_TIMEOUT", "15s"),
		JWTSecret:       getenv("JWT_SECRET"),
		JWTIssuer:       get("JWT_ISSUER", "eventshop"),
		JWTAudience:     get("JWT_AUDIENCE", "eventshop-api"),
		AccessTTL:       dur("ACCESS_TOKEN_TTL", "15m"),
		RefreshTTL:      dur("REFRESH_TOKEN_TTL", "168h"),
		PaymentTimeout:  dur("ORDER_PAYMENT_TIMEOUT", "15m"),
		PlacementGrace:  dur("ORDER_PLACEMENT_GRACE", "60s"),
		SagaTick:        dur("SAGA_TICK", "1s"),
		LoginPerAccount: num("LOGIN_FAILURES_PER_ACCOUNT", 5),
		LoginPerIP:      num("LOGIN_FAILURES_PER_IP", 20),
		LoginWindow:     dur("LOGIN_FAILURE_WINDOW", "15m"),
		TrustProxy:      get("TRUST_PROXY_HEADERS", "false") == "true",

		RateLimitPerSecond:     rate("RATE_LIMIT_PER_SECOND", defaultRatePerSecond),
		AuthRateLimitPerMinute: rate("AUTH_RATE_LIMIT_PER_MINUTE", defaultAuthRatePerMinute),
		MaxBodyBytes:           int64(num("MAX_BODY_BYTES", edge.MaxBodyBytes)),

		AdminEmail:      get("ADMIN_EMAIL", ""),
		AdminPassword:   getenv("ADMIN_PASSWORD"),
		DataDir:         get("DATA_DIR", ".data"),
		MongoURL:        get("MONGO_URL", ""),
		MongoDatabase:   get("MONGO_DATABASE", "eventshop"),
		MongoAddr:       get("MONGO_ADDR", "127.0.0.1:27017"),
		KafkaAddr:       get("KAFKA_ADDR", "127.0.0.1:9092"),
		KafkaPartitions: num("KAFKA_PARTITIONS", 3),

		SMTPAddr:          get("SMTP_ADDR", ""),
		SMTPSinkAddr:      get("SMTP_SINK_ADDR", "127.0.0.1:1025"),
		SMTPUsername:      get("SMTP_USERNAME", ""),
		SMTPPassword:      getenv("SMTP_PASSWORD"),
		SMTPTLS:           get("SMTP_TLS", ""),
		SMTPFrom:          get("SMTP_FROM", "eventshop <no-reply@eventshop.local>"),
		SMTPTimeout:       dur("SMTP_TIMEOUT", "10s"),
		NotifierGroup:     get("NOTIFIER_GROUP", "eventshop-notifier"),
		NotifyMaxAttempts: num("NOTIFY_MAX_ATTEMPTS", 5),
		NotifyRetryMin:    dur("NOTIFY_RETRY_MIN", "1s"),
		NotifyRetryMax:    dur("NOTIFY_RETRY_MAX", "1m"),
		NotifyLookup:      dur("NOTIFY_LOOKUP_TIMEOUT", "2m"),
		ShopName:          get("SHOP_NAME", "eventshop"),
		ShopURL:           get("SHOP_URL", ""),
		ShopCurrency:      getenv("SHOP_CURRENCY"),
	}
	cfg.ProjectionPolicies = map[string]string{}
	for _, kv := range strings.Split(get("PROJECTION_POLICIES", ""), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, policy, ok := strings.Cut(kv, "=")
		name, policy = strings.TrimSpace(name), strings.TrimSpace(policy)
		if err := projections.CheckPolicy(policy); !ok || name == "" || err != nil {
			errs = append(errs, fmt.Sprintf("PROJECTION_POLICIES: %q: want name=park or name=halt, comma-separated", kv))
			continue
		}
		cfg.ProjectionPolicies[name] = policy
	}
	for _, b := range strings.Split(get("KAFKA_BROKERS", ""), ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.KafkaBrokers = append(cfg.KafkaBrokers, b)
		}
	}
	// The burst defaults to two seconds' worth of the rate.
	cfg.RateLimitBurst = num("RATE_LIMIT_BURST", max(2*cfg.RateLimitPerSecond, 1))
	if cfg.MaxBodyBytes > edge.MaxBodyBytes {
		// The write API reads JSON bodies through its own 1 MiB limit
		// (API.md), so a larger gateway limit would promise what it cannot
		// keep.
		errs = append(errs, fmt.Sprintf("MAX_BODY_BYTES: at most %d (1 MiB, the write API's own limit)", edge.MaxBodyBytes))
	}
	for _, o := range strings.Split(get("CORS_ALLOWED_ORIGINS", ""), ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if err := gateway.CheckOrigin(o); err != nil {
			errs = append(errs, "CORS_ALLOWED_ORIGINS: "+strings.TrimPrefix(err.Error(), "gateway: "))
		}
		cfg.CORSAllowedOrigins = append(cfg.CORSAllowedOrigins, o)
	}
	cfg.EventStoreURL = get("EVENTSTORE_URL", cfg.DatabaseURL)
	if err := cfg.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, "LOG_LEVEL: want debug, info, warn or error")
	}
	if len(errs) > 0 {
		return config{}, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
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
