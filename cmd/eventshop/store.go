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
	// A failed open returns a nil store, not a nil *Store in an interface.
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		s, err := postgres.Open(ctx, url, postgres.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	case strings.HasPrefix(url, "esdb://"), strings.HasPrefix(url, "esdb+discover://"):
		s, err := esdb.Open(ctx, url, esdb.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("EVENTSTORE_URL %s: want a postgres:// or esdb:// URL", redactURL(url))
	}
}
