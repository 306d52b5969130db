package ferret_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"golang.org/x/sync/errgroup"

	"github.com/eventshop/eventshop/internal/standins/ferret"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
	"github.com/eventshop/eventshop/internal/testsupport/testwait"
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

// startBeside starts a server on a database of its own and returns a
// client of it and a connection to its database, all closed when t ends.
func startBeside(t *testing.T) (*mongo.Client, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	s, err := ferret.Start(ctx, ferret.Options{Addr: "127.0.0.1:0", PostgreSQLURL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := connect(t, s.URI())
	t.Cleanup(func() { _ = c.Disconnect(ctx) })
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return c, conn
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

// TestIDIndex: every collection, one made at start and one made later,
// gets an index that serves FerretDB's lookups by _id, so they read one
// document, not the collection.
func TestIDIndex(t *testing.T) {
	ctx := context.Background()
	c, conn := startBeside(t)
	for _, coll := range []string{"first", "later"} {
		docs := make([]any, 200)
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("%s-%d", coll, i)}, {Key: "n", Value: i}}
		}
		if _, err := c.Database("idx").Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		var table string
		if err := conn.QueryRow(ctx, `SELECT table_name FROM information_schema.tables
			WHERE table_schema = 'idx' AND table_name LIKE $1`, coll+"%").Scan(&table); err != nil {
			t.Fatalf("the table of %s: %v", coll, err)
		}
		// The lookup FerretDB makes for a find by _id.
		explain := fmt.Sprintf(`EXPLAIN SELECT _jsonb FROM %s WHERE _jsonb->'_id' @> '"%s-7"'`, pgx.Identifier{"idx", table}.Sanitize(), coll)
		testwait.Until(t, 3*ferret.IDIndexInterval+10*time.Second, func() string {
			var plan []string
			rows, err := conn.Query(ctx, "SET enable_seqscan = off")
			if err == nil {
				rows.Close()
				rows, err = conn.Query(ctx, explain)
			}
			if err == nil {
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil || !strings.Contains(strings.Join(plan, "\n"), "ferret_id_gin_") {
				return fmt.Sprintf("the lookup by _id in %s uses no _id index: %v %v", coll, plan, err)
			}
			return ""
		})
		var got struct {
			N int `bson:"n"`
		}
		if err := c.Database("idx").Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: coll + "-7"}}).Decode(&got); err != nil || got.N != 7 {
			t.Errorf("find %s-7: %+v, %v", coll, got, err)
		}
	}
}

// TestLookupsByIDStayOnTheIndex: a lookup by _id uses the _id index
// however small the collection was when FerretDB's connections first
// made it. FerretDB prepares `_jsonb->$1 @> $2` once per connection; a
// plan made generic while the collection was small is a sequential scan
// (the key is a parameter, so no index matches it), and it stayed one as
// the collection grew: every lookup then read the whole collection. The
// lookups run 16 at a time, so that each of FerretDB's connections makes
// its plan while the collection is small.
func TestLookupsByIDStayOnTheIndex(t *testing.T) {
	ctx := context.Background()
	c, conn := startBeside(t)
	coll := c.Database("grow").Collection("docs")
	insert := func(from, to int) {
		t.Helper()
		docs := make([]any, 0, to-from)
		for i := from; i < to; i++ {
			docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("doc-%d", i)}, {Key: "n", Value: i}})
		}
		if _, err := coll.InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	lookups := func(n int) {
		t.Helper()
		var g errgroup.Group
		for w := range 16 {
			g.Go(func() error {
				for i := range n {
					var got struct {
						N int `bson:"n"`
					}
					id := (w + i) % 2
					if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("doc-%d", id)}}).Decode(&got); err != nil || got.N != id {
						return fmt.Errorf("find doc-%d: %+v, %v", id, got, err)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	insert(0, 2)
	var table string
	if err := conn.QueryRow(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'grow' AND table_name LIKE 'docs%'`).Scan(&table); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 3*ferret.IDIndexInterval+10*time.Second, func() string {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'grow'
			AND tablename = $1 AND indexname LIKE 'ferret_id_gin_%'`, table).Scan(&n); err != nil || n == 0 {
			return fmt.Sprintf("no _id index on %s yet (%v)", table, err)
		}
		return ""
	})
	scans := func() (seq, idx int64) {
		t.Helper()
		if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0) FROM pg_stat_user_tables
			WHERE schemaname = 'grow' AND relname = $1`, table).Scan(&seq, &idx); err != nil {
			t.Fatal(err)
		}
		return seq, idx
	}
	const n = 16 * 10
	seq0, idx0 := scans()
	lookups(n / 16) // while the collection is small: the plans settle
	insert(2, 5000)
	lookups(n / 16)
	// Each backend reports its counts a moment after it goes idle.
	var seq, idx int64
	testwait.Until(t, 30*time.Second, func() string {
		if seq, idx = scans(); seq-seq0+idx-idx0 < 2*n {
			return fmt.Sprintf("%d of %d lookups counted so far", seq-seq0+idx-idx0, 2*n)
		}
		return ""
	})
	// A sequential scan of the small collection is fine; of the grown
	// one it is not.
	if idx-idx0 < n {
		t.Fatalf("of %d lookups by _id in a collection grown to 5,000, %d used an index (%d sequential scans in all)", n, idx-idx0, seq-seq0)
	}
}

// TestIDIndexHasNoPendingList: the _id index takes each update's entry
// at once rather than in GIN's pending list, which every lookup by _id
// reads whole, and an index built with the list on is switched over and
// its list emptied.
func TestIDIndexHasNoPendingList(t *testing.T) {
	ctx := context.Background()
	c, conn := startBeside(t)
	coll := c.Database("pending").Collection("docs")
	docs := make([]any, 200)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("doc-%d", i)}, {Key: "n", Value: 0}}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	var index string
	withoutList := func() string {
		err := conn.QueryRow(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname)
			FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'pending' AND c.relname LIKE 'docs%' AND ic.relname LIKE 'ferret_id_gin_%'
			AND coalesce(ic.reloptions, '{}') @> '{fastupdate=off}'`).Scan(&index)
		if err != nil {
			return fmt.Sprintf("no _id index without a pending list yet: %v", err)
		}
		return ""
	}
	testwait.Until(t, 3*ferret.IDIndexInterval+10*time.Second, withoutList)
	// Each update is a new row, so a new entry in the index: 400 of them
	// fill a few pages of a pending list.
	update := func(round int) {
		t.Helper()
		for i := range len(docs) * 2 {
			if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("doc-%d", i%len(docs))}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: round*1000 + i}}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pending := func() int64 {
		t.Helper()
		var pages int64
		if err := conn.QueryRow(ctx, `SELECT gin_clean_pending_list($1::regclass)`, index).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		return pages
	}
	update(1)
	if pages := pending(); pages != 0 {
		t.Fatalf("after %d updates the _id index holds %d pages of pending entries", 2*len(docs), pages)
	}

	// An index an earlier version built with the list on.
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER INDEX %s SET (fastupdate = on)", index)); err != nil {
		t.Fatal(err)
	}
	update(2)
	testwait.Until(t, 3*ferret.IDIndexInterval+10*time.Second, withoutList)
	if pages := pending(); pages != 0 {
		t.Fatalf("the _id index was switched over but still holds %d pages of pending entries", pages)
	}
	var got struct {
		N int `bson:"n"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "doc-7"}}).Decode(&got); err != nil || got.N != 2000+len(docs)+7 {
		t.Errorf("find doc-7 after the updates: %+v, %v", got, err)
	}
}
