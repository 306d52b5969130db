package ferret_test

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// records keeps the records that reach it.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) levels() (below, errors int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level < slog.LevelError {
			below++
		} else {
			errors++
		}
	}
	return below, errors
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStart: a started server answers at once, keeps data in PostgreSQL,
// passes on only its errors, and is gone after Close.
func TestStart(t *testing.T) {
	ctx := context.Background()
	logs := &records{}
	s, err := ferret.Start(ctx, ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: pgtest.NewDatabase(t), Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URI(), "mongodb://127.0.0.1:") || strings.HasSuffix(s.URI(), ":0/") {
		t.Errorf("URI %q, want the port picked", s.URI())
	}
	c := connect(t, s.URI())
	coll := c.Database("smoke").Collection("things")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 1}}); err != nil {
		t.Fatalf("insert right after Start: %v", err)
	}
	// A duplicate key: FerretDB logs the failed INSERT at ERROR.
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("second insert of _id a: %v, want a duplicate key error", err)
	}
	var got struct {
		N int `bson:"n"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil || got.N != 1 {
		t.Errorf("read back: %+v, %v", got, err)
	}
	if below, errs := logs.levels(); below != 0 || errs == 0 {
		t.Errorf("the logger got %d records below ERROR and %d at ERROR or above; want only the latter, some", below, errs)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}

	s.Close()
	s.Close() // a second Close is harmless
	c = connect(t, s.URI())
	defer c.Disconnect(ctx)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Ping(pctx, readpref.Primary()); err == nil {
		t.Error("the server still answers after Close")
	}
}

func TestStartFails(t *testing.T) {
	ctx := context.Background()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := ferret.Start(ctx, ferret.Options{Addr: taken.Addr().String(), PostgreSQLURL: pgtest.NewDatabase(t)}); err == nil ||
		!strings.Contains(err.Error(), taken.Addr().String()) {
		t.Errorf("an address in use: %v, want an error naming it", err)
	}
	// FerretDB's leak tracker panics from a finalizer when a failed start
	// leaked its backend; make that happen now, if it is going to.
	runtime.GC()
	runtime.GC()

	// Nothing listens on port 1: the server starts but cannot answer.
	start := time.Now()
	_, err = ferret.Start(ctx, ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: "postgres://postgres@127.0.0.1:1/none?connect_timeout=1",
		StartTimeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not answer a ping") {
		t.Errorf("PostgreSQL unreachable: %v, want a timeout waiting for a ping", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("giving up took %s, for a start timeout of 500ms", took)
	}

	if _, err := ferret.Start(ctx, ferret.Options{Addr: "127.0.0.1:0"}); err == nil {
		t.Error("no PostgreSQL URL: no error")
	}
}

// TestConcurrentStarts: servers started at once (parallel tests) do not
// race.
func TestConcurrentStarts(t *testing.T) {
	var wg sync.WaitGroup
	for range 3 {
		url := pgtest.NewDatabase(t)
		wg.Go(func() {
			s, err := ferret.Start(context.Background(), ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: url})
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
}
