package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
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

	JWTSecret       string
	JWTIssuer       string
	JWTAudience     string
	AccessTTL       time.Duration
	RefreshTTL      time.Duration
	PaymentTimeout  time.Duration
	PlacementGrace  time.Duration
	SagaTick        time.Duration
	LoginPerAccount int
	LoginPerIP      int
	LoginWindow     time.Duration
	TrustProxy      bool

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

// defaultDatabaseURL is the local server with trust auth, as `make services` sets up.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/eventshop?sslmode=disable"

func loadConfig(getenv func(string) string) (config, error) {
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	var errs []string
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
	for _, b := range strings.Split(get("KAFKA_BROKERS", ""), ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.KafkaBrokers = append(cfg.KafkaBrokers, b)
		}
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
