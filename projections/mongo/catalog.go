package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// ProjectionName names the catalogue projection and its checkpoint.
const ProjectionName = "catalog.v1"

// ErrNoShadow is returned by Swap when no rebuild is under way, or the
// one under way is not this projection's own.
var ErrNoShadow = errors.New("catalogue: no shadow collection to swap in")

var (
	_ projections.Rebuildable = (*CatalogProjection)(nil)
	_ projections.Sink        = (*shadowSink)(nil)
)

// CatalogProjection builds the catalogue from the product streams: one
// document per product, folded as domain/product.Evolve folds the
// stream. A product whose creation was abandoned gets no document; a
// discontinued one keeps its document, flagged, and is no longer listed.
//
// Get it from Store.Projection, so that a Swap reaches the Store's readers
// at once. It is safe for concurrent use.
type CatalogProjection struct {
	db   *mongo.Database
	opts Options
	ptr  *pointer

	mu        sync.Mutex
	live      string    // the collection Apply writes; "" until resolved
	shadow    string    // the collection the last Shadow here made, until swapped in
	retired   string    // the collection the last Swap here retired, until dropped
	retiredAt time.Time // when it was retired
}

// Name is ProjectionName.
func (p *CatalogProjection) Name() string { return ProjectionName }

// Filter selects every event of the product streams: the fold needs them
// all, and an event type it does not know must stop it, not be skipped.
func (p *CatalogProjection) Filter() eventstore.Filter { return filter() }

func filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{product.StreamPrefix}}
}

// Setup creates the pointer document and the first catalogue collection
// if there are none, creates the live collection's indexes, and drops the
// collections earlier rebuilds left behind. It is idempotent. Errors: the
// database's.
func (p *CatalogProjection) Setup(ctx context.Context) error {
	m, err := ensureMeta(ctx, p.db)
	if err != nil {
		return err
	}
	p.setLive(m.Collection)
	if err := createIndexes(ctx, p.db.Collection(m.Collection)); err != nil {
		return err
	}
	return collect(ctx, p.db, m, p.opts.SwapGrace)
}

// Apply applies batch to the live collection, in one read and one bulk
// write (see apply), and then drops the collection a Swap retired, once
// its grace is over. Errors: see apply.
func (p *CatalogProjection) Apply(ctx context.Context, batch []eventstore.Event) error {
	name, err := p.liveName(ctx)
	if err != nil {
		return err
	}
	if err := apply(ctx, p.db.Collection(name), batch); err != nil {
		return err
	}
	p.collectRetired(ctx)
	return nil
}

// Shadow drops the collection of any earlier, unfinished rebuild (and
// any other the catalogue no longer needs) and returns a sink writing a
// new, empty collection, which readers do not see until Swap. Errors: the database's, or a pointer document changed
// by someone else meanwhile.
func (p *CatalogProjection) Shadow(ctx context.Context) (projections.Sink, error) {
	m, err := ensureMeta(ctx, p.db)
	if err != nil {
		return nil, err
	}
	name := newCollectionName()
	// The name is recorded before the collection exists, so that nothing
	// (collect) drops it in between, and a crash leaves only a name.
	res, err := p.db.Collection(MetaCollection).UpdateOne(ctx,
		bson.D{{Key: fieldID, Value: ProjectionName}, {Key: "collection", Value: m.Collection}, {Key: "shadow", Value: m.Shadow}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "shadow", Value: name}}}})
	if err != nil {
		return nil, fmt.Errorf("catalogue: record shadow %s: %w", name, err)
	}
	if res.MatchedCount == 0 {
		return nil, fmt.Errorf("catalogue: record shadow %s: the pointer document changed meanwhile", name)
	}
	p.mu.Lock()
	p.shadow = name
	p.mu.Unlock()
	// The earlier shadow is neither live nor the shadow any more.
	m.Shadow = name
	if err := collect(ctx, p.db, m, p.opts.SwapGrace); err != nil {
		return nil, err
	}
	coll := p.db.Collection(name)
	if err := createIndexes(ctx, coll); err != nil {
		return nil, err
	}
	return &shadowSink{coll: coll}, nil
}

// Swap makes the shadow the live catalogue with one conditional write of
// the pointer document, so readers switch from one complete catalogue to
// the other. This Store's readers and Apply switch at once; readers in
// other processes within Options.PointerTTL. The retired collection is
// kept for Options.SwapGrace, for those readers, and then dropped by the
// first Apply after it (or by Setup, Shadow or the next Swap); Swap itself
// does not wait. Only the shadow this projection's last Shadow made is
// swapped in. Errors: ErrNoShadow, the database's, or a pointer document
// changed by someone else meanwhile.
func (p *CatalogProjection) Swap(ctx context.Context) error {
	m, err := readMeta(ctx, p.db)
	if err != nil {
		return err
	}
	p.mu.Lock()
	mine := p.shadow
	p.mu.Unlock()
	switch {
	case m.Shadow == "":
		return ErrNoShadow
	case m.Shadow != mine:
		// Another process's rebuild, perhaps one that stopped half-way.
		return fmt.Errorf("%w: the pending shadow %s is not the one this projection built (%q)", ErrNoShadow, m.Shadow, mine)
	}
	swapped := meta{ID: m.ID, Collection: m.Shadow, Previous: m.Collection, SwappedAt: time.Now().UTC()}
	res, err := p.db.Collection(MetaCollection).UpdateOne(ctx,
		bson.D{{Key: fieldID, Value: ProjectionName}, {Key: "collection", Value: m.Collection}, {Key: "shadow", Value: m.Shadow}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "collection", Value: swapped.Collection}, {Key: "shadow", Value: ""},
			{Key: "previous", Value: swapped.Previous}, {Key: "swapped_at", Value: swapped.SwappedAt},
		}}})
	if err != nil {
		return fmt.Errorf("catalogue: swap in %s: %w", m.Shadow, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("catalogue: swap in %s: the pointer document changed meanwhile", m.Shadow)
	}
	p.mu.Lock()
	p.retired, p.retiredAt, p.shadow = swapped.Previous, swapped.SwappedAt, ""
	p.mu.Unlock()
	p.setLive(swapped.Collection)
	// Collections retired by earlier swaps have had their grace.
	return collect(ctx, p.db, swapped, p.opts.SwapGrace)
}

// collectRetired drops the collection the last Swap retired once its
// grace is over. A failure is logged and tried again on the next call:
// the catalogue's writes do not wait for its garbage.
func (p *CatalogProjection) collectRetired(ctx context.Context) {
	p.mu.Lock()
	retired, at := p.retired, p.retiredAt
	p.mu.Unlock()
	if retired == "" || time.Since(at) < p.opts.SwapGrace {
		return
	}
	m, err := readMeta(ctx, p.db)
	if err == nil {
		err = collect(ctx, p.db, m, p.opts.SwapGrace)
	}
	if err != nil {
		p.opts.Logger.WarnContext(ctx, "catalogue: drop the retired collection; will try again", "collection", retired, "err", err)
		return
	}
	p.mu.Lock()
	if p.retired == retired {
		p.retired = ""
	}
	p.mu.Unlock()
}

// setLive makes name the collection Apply writes and this Store's
// readers read.
func (p *CatalogProjection) setLive(name string) {
	p.mu.Lock()
	p.live = name
	p.mu.Unlock()
	p.ptr.set(name)
}

// liveName is the collection Apply writes: as Setup or Swap left it, or
// else as the pointer document says (created if missing).
func (p *CatalogProjection) liveName(ctx context.Context) (string, error) {
	p.mu.Lock()
	name := p.live
	p.mu.Unlock()
	if name != "" {
		return name, nil
	}
	m, err := ensureMeta(ctx, p.db)
	if err != nil {
		return "", err
	}
	p.setLive(m.Collection)
	return m.Collection, nil
}

// shadowSink fills a rebuild's collection.
type shadowSink struct {
	coll *mongo.Collection
}

// Name is ProjectionName: a shadow continues the live projection.
func (s *shadowSink) Name() string              { return ProjectionName }
func (s *shadowSink) Filter() eventstore.Filter { return filter() }

// Setup creates the shadow's indexes.
func (s *shadowSink) Setup(ctx context.Context) error { return createIndexes(ctx, s.coll) }

// Apply applies batch to the shadow collection.
func (s *shadowSink) Apply(ctx context.Context, batch []eventstore.Event) error {
	return apply(ctx, s.coll, batch)
}

// newCollectionName names a new catalogue generation; UUIDv7 makes the
// names of later generations sort later.
func newCollectionName() string {
	return collectionPrefix + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}

// ensureMeta returns the pointer document, creating it with a first
// generation when there is none.
func ensureMeta(ctx context.Context, db *mongo.Database) (meta, error) {
	_, err := db.Collection(MetaCollection).UpdateOne(ctx,
		bson.D{{Key: fieldID, Value: ProjectionName}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{
			{Key: "collection", Value: newCollectionName()}, {Key: "shadow", Value: ""},
			{Key: "previous", Value: ""}, {Key: "swapped_at", Value: time.Time{}},
		}}},
		options.UpdateOne().SetUpsert(true))
	// Two upserts racing: the loser's insert fails on _id, and the
	// winner's document is the one to use.
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return meta{}, fmt.Errorf("catalogue: create %s: %w", MetaCollection, err)
	}
	m, err := readMeta(ctx, db)
	if err == nil && m.Collection == "" {
		err = fmt.Errorf("catalogue: %s names no collection", MetaCollection)
	}
	return m, err
}

// collect drops every catalogue collection that is neither live, nor the
// shadow, nor retired less than grace ago.
func collect(ctx context.Context, db *mongo.Database, m meta, grace time.Duration) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("catalogue: list collections: %w", err)
	}
	for _, name := range names {
		keep := !strings.HasPrefix(name, collectionPrefix) || name == m.Collection || name == m.Shadow ||
			(name == m.Previous && time.Since(m.SwappedAt) < grace)
		if keep {
			continue
		}
		if err := db.Collection(name).Drop(ctx); err != nil {
			return fmt.Errorf("catalogue: drop retired %s: %w", name, err)
		}
	}
	return nil
}
