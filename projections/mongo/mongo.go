// Package mongo holds the product documents in MongoDB: the projection
// that builds them from the product streams (CatalogProjection, a
// projections.Sink that can be rebuilt without downtime), and a Store
// that answers the catalogue's queries (package catalogquery) from them
// in the shape of internal/platform/resource. The read API serves the
// catalogue from PostgreSQL (projections/postgres), which answers the
// same queries without scanning; tests hold the two to the same answers.
// Import it as mongoread.
//
// MongoDB here may be FerretDB, which has no transactions, so the
// checkpoint cannot be written with the documents: the runner applies a
// batch and then moves the checkpoint, and a crash in between applies the
// batch again. Every document therefore carries its product stream's
// version and every write is guarded by it, which makes applying any
// batch, or any part of one, a second time change nothing.
//
// The catalogue lives in a collection named products_<generation>. The
// document {_id: "catalog.v1"} of the catalog_meta collection names the
// live one; a rebuild fills a new generation beside it and then swaps the
// pointer, so readers see either the old complete catalogue or the new
// one, never a half-built one. Several processes (runners, read APIs) may
// act on the pointer at once, so none trusts what it read of it earlier:
// a collection is dropped only if the pointer document, read right before,
// retires it, Swap refuses a shadow that was lost, and Apply checks after
// each batch that it wrote the live collection.
//
// Only features that both MongoDB and FerretDB v1.24 have are used: no
// transactions, no renameCollection with dropTarget, one accumulator per
// $group.
package mongo

import (
	"context"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections/catalogquery"
)

// ErrNotFound is returned for a product the catalogue does not list: one
// it never held, one whose creation was abandoned, or a discontinued one.
// It is catalogquery.ErrNotFound.
var ErrNotFound = catalogquery.ErrNotFound

// Collection names.
const (
	// MetaCollection holds the pointer to the live catalogue collection.
	MetaCollection = "catalog_meta"
	// collectionPrefix starts the name of every catalogue generation.
	collectionPrefix = "products_"
)

// Options tune a Store and its projection; the zero value is usable.
type Options struct {
	// PointerTTL is how long a Store trusts the catalogue pointer it last
	// read before reading it again; default 1 s. A swap made in another
	// process reaches this one's readers within it, or at once after
	// Store.Refresh or a batch applied by this Store's projection; one made
	// through this Store's own projection reaches them at once.
	PointerTTL time.Duration
	// SwapGrace is how long Swap keeps the collection it retired, for
	// readers in other processes that still hold the old pointer; default
	// 2×PointerTTL + 1 s. It should exceed PointerTTL plus the longest
	// query.
	SwapGrace time.Duration
	// Logger receives what goes wrong without failing a call (dropping a
	// retired collection); default discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.PointerTTL <= 0 {
		o.PointerTTL = time.Second
	}
	if o.SwapGrace <= 0 {
		o.SwapGrace = 2*o.PointerTTL + time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store answers catalogue queries. It is safe for concurrent use.
type Store struct {
	db   *mongo.Database
	ptr  *pointer
	proj *CatalogProjection
}

// New returns a Store reading the catalogue in db, with default Options.
// It does no I/O.
func New(db *mongo.Database) *Store { return NewWithOptions(db, Options{}) }

// NewWithOptions returns a Store reading the catalogue in db. It does no
// I/O.
func NewWithOptions(db *mongo.Database, opts Options) *Store {
	opts = opts.withDefaults()
	ptr := &pointer{db: db, ttl: opts.PointerTTL}
	return &Store{db: db, ptr: ptr, proj: &CatalogProjection{db: db, opts: opts, ptr: ptr, folds: newFolds(), slots: newWriteSlots()}}
}

// Projection returns the projection that builds the catalogue this Store
// reads; every call returns the same one.
func (s *Store) Projection() *CatalogProjection { return s.proj }

// Name is ProjectionName, the projection that builds the catalogue this
// Store reads.
func (s *Store) Name() string { return ProjectionName }

// Filter is the projection's.
func (s *Store) Filter() eventstore.Filter { return filter() }

// Ping checks that the database answers. Errors: the driver's.
func (s *Store) Ping(ctx context.Context) error { return s.proj.Ping(ctx) }

// Refresh reads the catalogue pointer now, so that the queries this Store
// answers after it returns read the collection that was live when it was
// called, or a later one, instead of the one cached up to PointerTTL ago.
//
// A read API calls it before a query that must show a write the
// catalogue's checkpoint has been seen to cover (read-your-writes): a
// rebuild swaps the pointer before it moves the checkpoint, so a
// checkpoint seen past the write means a pointer read after that names a
// collection holding it. It costs one find by _id, shared by concurrent
// calls (and with the Store's own refreshes). Errors: the context's, the
// database's.
func (s *Store) Refresh(ctx context.Context) error {
	_, err := s.ptr.fresh(ctx)
	return err
}

// collection is the live catalogue collection, or nil when there is none
// yet (the projection never ran: the catalogue is empty).
func (s *Store) collection(ctx context.Context) (*mongo.Collection, error) {
	name, err := s.ptr.get(ctx)
	if err != nil || name == "" {
		return nil, err
	}
	return s.db.Collection(name), nil
}
