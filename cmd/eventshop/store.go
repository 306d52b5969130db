package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/esdb"
	"github.com/eventshop/eventshop/eventstore/postgres"
)

// store is an event store the process can check and close.
type store interface {
	eventstore.Store
	Ping(ctx context.Context) error
	Close() error
}

// openStore picks the adapter by the URL's scheme.
func openStore(ctx context.Context, url string, log *slog.Logger) (store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return postgres.Open(ctx, url, postgres.Options{Logger: log})
	case strings.HasPrefix(url, "esdb://"), strings.HasPrefix(url, "esdb+discover://"):
		return esdb.Open(ctx, url, esdb.Options{Logger: log})
	default:
		return nil, fmt.Errorf("EVENTSTORE_URL %s: want a postgres:// or esdb:// URL", redactURL(url))
	}
}
