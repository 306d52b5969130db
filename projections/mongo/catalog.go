package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// ProjectionName names the catalogue projection and its checkpoint.
const ProjectionName = "catalog.v1"

// ErrNoShadow is returned by Swap when no rebuild is under way, the one
// under way is not this projection's own (another's, or a later one that
// replaced it), or its collection was lost: dropped while it was filled.
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
	db    *mongo.Database
	opts  Options
	ptr   *pointer
	folds *folds        // the documents Apply wrote last
	slots chan struct{} // the write commands in flight, its rebuilds' included

	mu        sync.Mutex
	live      string      // the collection Apply writes first; "" until resolved
	shadow    string      // the collection the last Shadow here made, until swapped in
	retired   string      // a collection retired since the last collect here; "" when none
	retiredAt time.Time   // when it was retired
	building  *shadowSink // the sink of the last Shadow here, flushed by Swap
}

// Name is ProjectionName.
func (p *CatalogProjection) Name() string { return ProjectionName }

var _ projections.Pinger = (*CatalogProjection)(nil)

// Ping asks the server whether it is up (FerretDB asks its PostgreSQL
// too), so the runner can tell a catalogue that is down from an event it
// cannot apply. Errors: the server's.
func (p *CatalogProjection) Ping(ctx context.Context) error {
	if err := p.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("catalogue: ping: %w", err)
	}
	return nil
}

// Filter selects every event of the product streams: the fold needs them
// all, and an event type it does not know must stop it, not be skipped.
func (p *CatalogProjection) Filter() eventstore.Filter { return filter() }

func filter() eventstore.Filter {
	return eventstore.Filter{StreamPrefixes: []string{product.StreamPrefix}}
}

// Setup creates the pointer document and the first catalogue collection
// if there are none, creates the live collection's indexes, and drops the
// collections earlier rebuilds left behind (never one that is live or a
// rebuild's shadow, even in another process, see collect). It is
// idempotent. Errors: the database's.
func (p *CatalogProjection) Setup(ctx context.Context) error {
	at := time.Now()
	m, err := ensureMeta(ctx, p.db)
	if err != nil {
		return err
	}
	p.setLive(m.Collection, at)
	if err := createIndexes(ctx, p.db.Collection(m.Collection)); err != nil {
		return err
	}
	return collect(ctx, p.db, p.opts.SwapGrace)
}

// maxFollows bounds how many swaps one Apply follows.
const maxFollows = 3

// Apply applies batch to the live collection, in one read and one bulk
// write (see apply), and then reads which collection the pointer document
// names as live, by _id. When that is no longer the one written (another
// process swapped in a rebuild; two runners both believe they are active),
// the batch is applied again there, and the next batches go there too.
// Checking after the write rather than before also catches a swap made
// while it ran, and a write that failed because the retired collection
// was dropped already. The write is idempotent, and a retired collection
// is one nobody builds on, so the extra writes are harmless. Last, it
// drops the collections a swap retired, once their grace is over.
// Errors: see apply, the database's, or a pointer document that is gone
// or keeps changing.
func (p *CatalogProjection) Apply(ctx context.Context, batch []eventstore.Event) error {
	name, err := p.liveName(ctx)
	if err != nil {
		return err
	}
	for follows := 0; ; follows++ {
		werr := apply(ctx, p.db.Collection(name), batch, p.folds, p.slots)
		at := time.Now()
		live, err := readLive(ctx, p.db)
		switch {
		case err != nil && werr != nil:
			return werr
		case err != nil:
			return err
		case live == name && werr != nil:
			return werr
		case live == name:
			p.ptr.set(live, at)
			p.collectRetired(ctx)
			return nil
		case follows == maxFollows:
			return fmt.Errorf("catalogue: the live collection changed %d times while one batch was written, last to %s", follows+1, live)
		}
		// A write to a retired collection may also have failed: once
		// dropped, it lacks the documents the batch builds on.
		p.follow(name, live, at)
		name = live
	}
}

// Shadow gives up any earlier, unfinished rebuild (its collection is
// listed as abandoned and dropped, with any other the catalogue no longer
// needs) and returns a sink writing a new, empty collection, which readers
// do not see until Swap. Errors: the database's, or a pointer document
// changed by someone else meanwhile.
func (p *CatalogProjection) Shadow(ctx context.Context) (projections.Sink, error) {
	m, err := ensureMeta(ctx, p.db)
	if err != nil {
		return nil, err
	}
	name := newCollectionName()
	abandoned := slices.Clone(m.Abandoned)
	if m.Shadow != "" {
		abandoned = append(abandoned, m.Shadow)
	}
	// The name is recorded before the collection exists, so that nothing
	// (collect) drops it in between, and a crash leaves only a name.
	res, err := p.db.Collection(MetaCollection).UpdateOne(ctx,
		bson.D{{Key: fieldID, Value: ProjectionName}, {Key: "collection", Value: m.Collection}, {Key: "shadow", Value: m.Shadow}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "shadow", Value: name}, {Key: "abandoned", Value: nonNil(abandoned)}}}})
	if err != nil {
		return nil, fmt.Errorf("catalogue: record shadow %s: %w", name, err)
	}
	if res.MatchedCount == 0 {
		return nil, fmt.Errorf("catalogue: record shadow %s: the pointer document changed meanwhile", name)
	}
	p.mu.Lock()
	p.shadow = name
	p.mu.Unlock()
	if err := collect(ctx, p.db, p.opts.SwapGrace); err != nil {
		return nil, err
	}
	coll := p.db.Collection(name)
	if err := createIndexes(ctx, coll); err != nil {
		return nil, err
	}
	sink := &shadowSink{coll: coll, slots: p.slots}
	p.mu.Lock()
	p.building = sink
	p.mu.Unlock()
	return sink, nil
}

// Swap makes the shadow the live catalogue with one conditional write of
// the pointer document, so readers switch from one complete catalogue to
// the other. This Store's readers and Apply switch at once; readers in
// other processes within Options.PointerTTL (or at their Store.Refresh),
// and other processes' Apply at their next batch. The retired collection
// is kept for Options.SwapGrace, for those readers, and then dropped by
// the first Apply after it (or by Setup, Shadow or the next Swap); Swap
// itself does not wait.
//
// Only the shadow this projection's last Shadow made is swapped in, and
// only while the pointer document still names it and its collection is
// whole: if it was dropped while it was filled, MongoDB recreated it on
// the next write, without the documents written before. The runner
// retries a failed swap, and builds a new shadow after a few. Errors:
// ErrNoShadow, the database's, or a pointer document changed by someone
// else meanwhile.
func (p *CatalogProjection) Swap(ctx context.Context) error {
	m, err := readMeta(ctx, p.db)
	if err != nil {
		return err
	}
	p.mu.Lock()
	mine := p.shadow
	p.mu.Unlock()
	switch {
	case m.Shadow == "" && mine == "":
		return ErrNoShadow
	case m.Shadow == "":
		return fmt.Errorf("%w: the shadow %s this projection built was swapped in or given up meanwhile", ErrNoShadow, mine)
	case m.Shadow != mine:
		// Another process's rebuild, perhaps one that stopped half-way,
		// or a later one that replaced this one's.
		return fmt.Errorf("%w: the pending shadow %s is not the one this projection built (%q)", ErrNoShadow, m.Shadow, mine)
	}
	p.mu.Lock()
	building := p.building
	p.mu.Unlock()
	if building != nil && building.coll.Name() == mine {
		if err := building.Flush(ctx); err != nil {
			return fmt.Errorf("catalogue: swap in %s: %w", mine, err)
		}
	}
	if err := checkShadow(ctx, p.db.Collection(m.Shadow)); err != nil {
		return err
	}
	// Abandoned shadows older than the new live collection are the age
	// rule's now.
	abandoned := slices.DeleteFunc(slices.Clone(m.Abandoned), func(n string) bool { return older(n, m.Shadow) })
	res, err := p.db.Collection(MetaCollection).UpdateOne(ctx,
		bson.D{{Key: fieldID, Value: ProjectionName}, {Key: "collection", Value: m.Collection}, {Key: "shadow", Value: m.Shadow}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "collection", Value: m.Shadow}, {Key: "shadow", Value: ""},
			{Key: "previous", Value: m.Collection}, {Key: "swapped_at", Value: time.Now().UTC()},
			{Key: "abandoned", Value: nonNil(abandoned)},
		}}})
	if err != nil {
		return fmt.Errorf("catalogue: swap in %s: %w", m.Shadow, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("catalogue: swap in %s: the pointer document changed meanwhile", m.Shadow)
	}
	// Stamped after the write: a read of the pointer that began before
	// it may still bring the old name, and must not replace this one.
	at := time.Now()
	p.mu.Lock()
	p.retired, p.retiredAt, p.shadow = m.Collection, at, ""
	p.mu.Unlock()
	p.setLive(m.Shadow, at)
	// Collections retired by earlier swaps have had their grace.
	return collect(ctx, p.db, p.opts.SwapGrace)
}

// collectRetired drops the collections retired since the last collect
// here once their grace is over. A failure is logged and tried again on
// the next call: the catalogue's writes do not wait for its garbage.
func (p *CatalogProjection) collectRetired(ctx context.Context) {
	p.mu.Lock()
	retired, at := p.retired, p.retiredAt
	p.mu.Unlock()
	if retired == "" || time.Since(at) < p.opts.SwapGrace {
		return
	}
	if err := collect(ctx, p.db, p.opts.SwapGrace); err != nil {
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
// readers read, as read (or swapped in) at at.
func (p *CatalogProjection) setLive(name string, at time.Time) {
	p.mu.Lock()
	p.live = name
	p.mu.Unlock()
	p.ptr.set(name, at)
}

// follow moves Apply and this Store's readers from collection from to
// live, which the pointer document named at at, and has from dropped
// once its grace is over: a batch may have written it after a swap
// elsewhere retired it, even after that swap's collect dropped it.
func (p *CatalogProjection) follow(from, live string, at time.Time) {
	p.mu.Lock()
	if p.live == from {
		p.live = live
	}
	p.retired, p.retiredAt = from, at
	p.mu.Unlock()
	p.ptr.set(live, at)
}

// liveName is the collection Apply writes first: as Setup, Swap or the
// last batch left it, or else as the pointer document says (created if
// missing).
func (p *CatalogProjection) liveName(ctx context.Context) (string, error) {
	p.mu.Lock()
	name := p.live
	p.mu.Unlock()
	if name != "" {
		return name, nil
	}
	at := time.Now()
	m, err := ensureMeta(ctx, p.db)
	if err != nil {
		return "", err
	}
	p.setLive(m.Collection, at)
	return m.Collection, nil
}

// nonNil is s, or an empty list for nil: the pointer document holds a
// list, never null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// shadowSink fills a rebuild's collection.
//
// A shadow is private until it is swapped in, so it keeps the documents it
// builds in memory and writes each once: when shadowFlushAt of them are
// waiting, and at the Swap. That is one write per product for a whole
// rebuild, rather than one per product per batch.
type shadowSink struct {
	coll  *mongo.Collection
	slots chan struct{} // the projection's write slots

	mu      sync.Mutex
	docs    map[string]document // built and not written yet
	flushed bool                // a flush wrote documents to the collection
}

// shadowFlushAt bounds the documents a shadow keeps in memory.
var shadowFlushAt = 20_000

// Name is ProjectionName: a shadow continues the live projection.
func (s *shadowSink) Name() string              { return ProjectionName }
func (s *shadowSink) Filter() eventstore.Filter { return filter() }

// Setup creates the shadow's indexes.
func (s *shadowSink) Setup(ctx context.Context) error { return createIndexes(ctx, s.coll) }

// Apply folds batch onto the documents in memory, reading those it does
// not hold from the shadow collection (written by an earlier flush).
func (s *shadowSink) Apply(ctx context.Context, batch []eventstore.Event) error {
	streams, err := group(batch)
	if err != nil || len(streams) == 0 {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.docs == nil {
		s.docs = map[string]document{}
	}
	var missing []string
	for _, st := range streams {
		if _, ok := s.docs[st.id]; !ok {
			missing = append(missing, st.id)
		}
	}
	stored := map[string]document{}
	if len(missing) > 0 && s.flushed { // before a flush the collection is empty
		if stored, err = load(ctx, s.coll, missing); err != nil {
			return err
		}
	}
	for _, st := range streams {
		var base *document
		if d, ok := s.docs[st.id]; ok {
			base = &d
		} else if d, ok := stored[st.id]; ok {
			base = &d
		}
		doc, changed := fold(base, st)
		if !changed {
			continue
		}
		s.docs[st.id] = doc
	}
	if len(s.docs) >= shadowFlushAt {
		return s.flushLocked(ctx)
	}
	return nil
}

// Flush writes the documents waiting in memory to the shadow collection.
func (s *shadowSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked(ctx)
}

func (s *shadowSink) flushLocked(ctx context.Context) error {
	if len(s.docs) == 0 {
		return nil
	}
	ws := make([]written, 0, len(s.docs))
	for id, doc := range s.docs {
		ws = append(ws, written{id: id, version: doc.Version, model: mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: fieldID, Value: id}, {Key: fieldVersion, Value: bson.D{{Key: "$lt", Value: doc.Version}}}}).
			SetReplacement(doc).
			SetUpsert(true)})
	}
	if err := write(ctx, s.coll, ws, s.slots); err != nil {
		return err
	}
	s.docs, s.flushed = map[string]document{}, true
	return nil
}
