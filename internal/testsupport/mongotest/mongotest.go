// Package mongotest gives tests a MongoDB database of their own. When
// MONGO_TEST_URL names a server (mongodb://…), each test gets a uniquely
// named database on it, dropped when the test ends. Otherwise each test
// gets an embedded FerretDB (internal/standins/ferret) of its own, backed by a
// fresh PostgreSQL database from internal/testsupport/pgtest, all torn down when the
// test ends.
package mongotest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// Prefix starts the name of every database this package creates on a
// server named by MONGO_TEST_URL.
const Prefix = "eventshop_test_"

// URL is the server named by MONGO_TEST_URL; empty means embedded
// FerretDB.
func URL() string { return os.Getenv("MONGO_TEST_URL") }

// NewDatabase returns an empty database for tb alone, and drops it (or
// stops its server) and disconnects when tb ends. It fails tb when the
// server, or the PostgreSQL server behind FerretDB, cannot be reached.
// opts are added to the client's options (a command monitor, say).
func NewDatabase(tb testing.TB, opts ...*options.ClientOptions) *mongo.Database {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uri, name := URL(), Prefix+strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	embedded := uri == ""
	if embedded {
		// Cleanups run last first: the client goes, then the server, then
		// (pgtest's) its PostgreSQL database.
		srv, err := ferret.Start(ctx, ferret.Options{
			Addr:          "127.0.0.1:0",
			PostgreSQLURL: pgtest.NewDatabase(tb),
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			tb.Fatalf("mongotest: %v", err)
		}
		tb.Cleanup(srv.Close)
		uri, name = srv.URI(), "eventshop"
	}
	client, err := mongo.Connect(append([]*options.ClientOptions{options.Client().ApplyURI(uri)}, opts...)...)
	if err != nil {
		tb.Fatalf("mongotest: connect: %v", err)
	}
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(ctx)
		tb.Fatalf("mongotest: ping %s: %v", redact(uri), err)
	}
	db := client.Database(name)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !embedded {
			if err := db.Drop(ctx); err != nil {
				tb.Errorf("mongotest: drop database %s: %v", name, err)
			}
		}
		if err := client.Disconnect(ctx); err != nil {
			tb.Errorf("mongotest: disconnect: %v", err)
		}
	})
	return db
}

// redact hides the password of uri, if it has one.
func redact(uri string) string {
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		rest, ok = strings.CutPrefix(uri, "mongodb+srv://")
	}
	at := strings.LastIndex(rest, "@")
	if !ok || at < 0 {
		return uri
	}
	return uri[:len(uri)-len(rest)] + "…@" + rest[at+1:]
}
