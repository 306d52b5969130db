// Package adapter opens the event store a URL names: PostgreSQL for
// postgres:// and postgresql://, EventStoreDB for esdb:// and
// esdb+discover://.
package adapter

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/esdb"
	"github.com/eventshop/eventshop/eventstore/postgres"
)

// Store is an event store a process can check and close.
type Store interface {
	eventstore.Store
	Ping(ctx context.Context) error
	Close() error
}

// ErrScheme is Open's error for a URL of no known scheme.
var ErrScheme = errors.New("want a postgres:// or esdb:// URL")

// Open opens the store url names, by its scheme.
func Open(ctx context.Context, url string, log *slog.Logger) (Store, error) {
	// A failed open returns a nil Store, not a nil *Store in an interface.
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
		return nil, ErrScheme
	}
}
