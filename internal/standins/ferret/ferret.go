// Package ferret embeds FerretDB, a server that speaks the MongoDB wire
// protocol and keeps its data in PostgreSQL, as the stand-in for MongoDB
// where there is none: the local run and the tests.
//
// Start returns once the server answers a ping, which FerretDB passes
// through to PostgreSQL, so a started server is one that works. Code that
// talks to it uses the MongoDB driver and nothing of this package beyond
// URI: anything it does runs unchanged on a real MongoDB.
package ferret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/eventshop/eventshop/internal/platform/retry"
)

// DefaultStartTimeout bounds Start when Options.StartTimeout is zero.
const DefaultStartTimeout = 15 * time.Second

// Options configure Start.
type Options struct {
	// Addr is the TCP address to listen on, such as "127.0.0.1:27017";
	// port 0 picks a free one (see URI). Required.
	Addr string
	// PostgreSQLURL is the database FerretDB keeps its data in, such as
	// "postgres://postgres@127.0.0.1:5432/eventshop". Required. FerretDB
	// creates a schema per MongoDB database in it.
	PostgreSQLURL string
	// Logger receives FerretDB's own log records of level ERROR and above;
	// nil discards them. FerretDB logs every connection at INFO, far too
	// much for an embedded server.
	Logger *slog.Logger
	// StartTimeout bounds the wait for the first successful ping;
	// default DefaultStartTimeout.
	StartTimeout time.Duration
}

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	keeper sync.WaitGroup // keepIDIndexes
}

// newMu serialises ferretdb.New: it writes a package variable of
// FerretDB's (its build info) on every call, which would race between
// servers started concurrently, as parallel tests do.
var newMu sync.Mutex

// Start listens on opts.Addr and waits until the server answers a ping,
// for at most opts.StartTimeout, or until ctx ends. The server runs until
// Close; ctx bounds only the start. Errors: missing options, the address
// taken, PostgreSQL unreachable (the wait times out with the last ping's
// error).
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" || opts.PostgreSQLURL == "" {
		return nil, errors.New("ferret: Addr and PostgreSQLURL are required")
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	logger := slog.New(slog.DiscardHandler)
	if opts.Logger != nil {
		logger = slog.New(errorsOnly{opts.Logger.Handler()}).With("component", "ferretdb")
	}
	// ferretdb.New leaks its PostgreSQL backend when it cannot listen, and
	// FerretDB's leak tracker then panics the process from a finalizer at
	// the next garbage collection. So the address is tried here first: a
	// taken one fails before New. (Another process could take it in
	// between; only a fixed port left free a moment before is at risk.)
	if err := probeAddr(opts.Addr); err != nil {
		return nil, fmt.Errorf("ferret: start on %s: %w", opts.Addr, err)
	}
	pgURL, err := boundedPool(opts.PostgreSQLURL)
	if err != nil {
		return nil, err
	}
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: opts.Addr},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: pgURL,
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ferret: start on %s: %w", opts.Addr, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(runCtx) // it always returns nil, once runCtx ends
	}()
	// The listener is bound by New, so the address is known at once.
	s.uri = f.MongoDBURI()
	if err := s.waitReady(ctx, opts.StartTimeout); err != nil {
		s.Close()
		return nil, err
	}
	s.keeper.Go(func() { keepIDIndexes(runCtx, opts.PostgreSQLURL, logger) })
	return s, nil
}

// DefaultPoolSize bounds FerretDB's connections to PostgreSQL when the
// URL does not say (pool_max_conns): its own default grows to 50, half of
// a default server's limit, for an embedded server that needs far fewer.
const DefaultPoolSize = 8

// boundedPool returns rawURL with pool_max_conns set to DefaultPoolSize
// unless it names one, and with plan_cache_mode set to force_custom_plan
// unless it names one. FerretDB prepares each statement once per
// connection and filters on `_jsonb->$1`: a key given as a parameter, so
// a generic plan can use no expression index, and PostgreSQL keeps
// using a generic plan it found cheap while the collection was small.
// Lookups by _id then read the whole collection for good (8.6 ms each at
// 5,000 documents, against 0.2 ms through the index). Planned each time
// with its values, the statement uses the _id index (see keepIDIndexes).
func boundedPool(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "", errors.New("ferret: PostgreSQLURL is not a URL")
	}
	q := u.Query()
	if q.Get("pool_max_conns") == "" {
		q.Set("pool_max_conns", strconv.Itoa(DefaultPoolSize))
	}
	if q.Get("plan_cache_mode") == "" {
		q.Set("plan_cache_mode", "force_custom_plan")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// probeAddr reports whether addr can be listened on.
func probeAddr(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// waitReady pings until the server answers or the timeout passes.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(s.uri).
		SetServerSelectionTimeout(time.Second).SetConnectTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("ferret: client for %s: %w", s.uri, err)
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	for n := 0; ; n++ {
		err := client.Ping(ctx, readpref.Primary())
		if err == nil {
			return nil
		}
		if retry.Sleep(ctx, retry.Backoff(5*time.Millisecond, 200*time.Millisecond, n)) != nil {
			return fmt.Errorf("ferret: %s did not answer a ping within %s: %w", s.uri, timeout, err)
		}
	}
}

// URI is the MongoDB connection string of the server, such as
// "mongodb://127.0.0.1:27017/".
func (s *Server) URI() string { return s.uri }

// Close stops the server and waits until it has stopped. Clients still
// connected are given up to FerretDB's grace of a few seconds to go away,
// so disconnect them first. Close may be called more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.keeper.Wait()
	})
}

// errorsOnly passes on the records of level ERROR and above.
type errorsOnly struct{ slog.Handler }

func (h errorsOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && h.Handler.Enabled(ctx, l)
}

func (h errorsOnly) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorsOnly{h.Handler.WithAttrs(attrs)}
}

func (h errorsOnly) WithGroup(name string) slog.Handler { return errorsOnly{h.Handler.WithGroup(name)} }
