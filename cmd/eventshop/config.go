package main

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// config is everything the environment can set.
type config struct {
	HTTPAddr        string
	DatabaseURL     string
	EventStoreURL   string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
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
	cfg := config{
		HTTPAddr:    get("HTTP_ADDR", "127.0.0.1:8080"),
		DatabaseURL: get("DATABASE_URL", defaultDatabaseURL),
	}
	cfg.EventStoreURL = get("EVENTSTORE_URL", cfg.DatabaseURL)
	if err := cfg.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", "info"))); err != nil {
		return config{}, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	d, err := time.ParseDuration(get("SHUTDOWN_TIMEOUT", "15s"))
	if err != nil || d <= 0 {
		return config{}, fmt.Errorf("SHUTDOWN_TIMEOUT: want a positive duration such as 15s")
	}
	cfg.ShutdownTimeout = d
	return cfg, nil
}
