package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/eventstore"
)

var registry = product.Registry()

// stream is the events of one product stream within a batch, in order.
type stream struct {
	id     string // the product id, canonical: the document's _id
	name   string
	events []domain.Recorded
}

// written is a guarded write: the document of product id at version.
type written struct {
	id      string
	version int64
	model   mongo.WriteModel
}

// apply applies batch to coll in one read and one write, whatever the
// number of events: it groups the events by product, reads the stored
// documents of those products, folds each product's new events onto its
// document in memory, and writes each changed document once, in one
// unordered bulk write, each replacement guarded by the document's
// version. Events at or below a document's version are skipped, so
// applying a batch, or part of one, again writes nothing; a concurrent
// writer that got further first makes the guarded upsert fail on _id,
// which is checked and taken as done (see write).
//
// Errors name the event or product: an event that does not decode (an
// unknown type stops the projection rather than misfold the product), a
// stream id that is not a UUID, and the database's.
func apply(ctx context.Context, coll *mongo.Collection, batch []eventstore.Event, memo *folds, slots chan struct{}) error {
	streams, err := group(batch)
	if err != nil || len(streams) == 0 {
		return err
	}
	var ids []string
	remembered := map[string]document{}
	for _, st := range streams {
		if d, ok := memo.base(coll.Name(), st); ok {
			remembered[st.id] = d
			continue
		}
		ids = append(ids, st.id)
	}
	stored, err := load(ctx, coll, ids)
	if err != nil {
		return err
	}
	maps.Copy(stored, remembered)
	var (
		ws   []written
		docs []document
	)
	for _, st := range streams {
		var base *document
		if d, ok := stored[st.id]; ok {
			base = &d
		}
		doc, changed := fold(base, st)
		if !changed {
			continue
		}
		ws = append(ws, written{id: doc.ID, version: doc.Version, model: mongo.NewReplaceOneModel().
			SetFilter(bson.D{{Key: fieldID, Value: doc.ID}, {Key: fieldVersion, Value: bson.D{{Key: "$lt", Value: doc.Version}}}}).
			SetReplacement(doc).
			SetUpsert(true)})
		docs = append(docs, doc)
	}
	if len(ws) == 0 {
		return nil
	}
	if err := write(ctx, coll, ws, slots); err != nil {
		return err
	}
	memo.keep(coll.Name(), docs)
	return nil
}

// folds remembers the documents apply folded last, per collection, so that
// the next batch of a product folds onto its document without reading it
// back: on FerretDB each read by _id is a statement and a decode of the
// document, one for every product a batch of orders touches.
//
// A remembered document is the fold of its stream's events up to its
// version, whatever the collection holds: events never change. So it may
// stand in for the stored one whenever the batch's next event of the
// stream is the one right after it; otherwise (events skipped by an admin
// in between, another writer got further, the batch applied again) apply
// reads the stored document, as it does for products it does not
// remember. A nil *folds remembers nothing.
type folds struct{ lru *lru.Cache[string, document] }

// foldsKept bounds the documents remembered.
const foldsKept = 8192

func newFolds() *folds {
	c, err := lru.New[string, document](foldsKept)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &folds{lru: c}
}

// base is the remembered document st's events follow on from, if any.
func (f *folds) base(coll string, st *stream) (document, bool) {
	if f == nil {
		return document{}, false
	}
	d, ok := f.lru.Get(coll + "/" + st.id)
	if !ok {
		return document{}, false
	}
	for _, r := range st.events {
		if r.Version > d.Version {
			return d, r.Version == d.Version+1
		}
	}
	return document{}, false // nothing new: let the stored document say so
}

// keep remembers docs, written to coll.
func (f *folds) keep(coll string, docs []document) {
	if f == nil {
		return
	}
	for _, d := range docs {
		f.lru.Add(coll+"/"+d.ID, d)
	}
}

// group decodes the product events of batch into one stream per product,
// in the order of each product's first event; it skips events of other
// streams (a filter wider than the projection's).
func group(batch []eventstore.Event) ([]*stream, error) {
	var (
		out  []*stream
		byID = map[string]*stream{}
	)
	for i := range batch {
		e := &batch[i]
		raw, ok := strings.CutPrefix(e.StreamID, product.StreamPrefix)
		if !ok {
			continue
		}
		id, err := uuid.Parse(raw)
		if err != nil {
			return nil, eventError(e, fmt.Errorf("product id %q is not a UUID", raw))
		}
		ev, err := registry.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return nil, eventError(e, err)
		}
		st := byID[id.String()]
		if st == nil {
			st = &stream{id: id.String(), name: e.StreamID}
			byID[st.id] = st
			out = append(out, st)
		}
		st.events = append(st.events, domain.Recorded{Event: ev, Version: e.Version, At: e.Metadata.Timestamp, ActorID: e.Metadata.ActorID})
	}
	return out, nil
}

func eventError(e *eventstore.Event, err error) error {
	return fmt.Errorf("catalogue: event %s (stream %s, version %d, %s): %w", e.ID, e.StreamID, e.Version, e.Type, err)
}

// fold evolves st's events newer than base (nil: no document yet) and
// returns the resulting document, and whether it is to be written: not
// when nothing was newer, nor when the stream holds no product (its
// creation was abandoned, or skipped).
//
// A version may be missing: an event an admin skipped (see package
// projections: a parked event). The runner hands every other event of a
// stream over in order, so the fold goes on from the next one.
func fold(base *document, st *stream) (document, bool) {
	s := product.New()
	if base != nil {
		s = base.state()
	}
	from := s.Version
	for _, r := range st.events {
		if r.Version <= s.Version {
			continue // applied already: a batch applied again
		}
		s = product.Evolve(s, r)
	}
	if s.Version == from || !s.Exists() {
		return document{}, false
	}
	return newDocument(st.id, s), true
}

// load reads the documents of ids, one find by _id each, at most
// loadConcurrency at a time. One find with $in would be one round trip,
// but FerretDB 1.x pushes down only equality on top-level fields: $in
// makes it read and decode the whole collection, so a batch of order
// events cost O(catalogue). An _id equality is an index lookup on MongoDB
// and on FerretDB (see internal/standins/ferret, the _id index).
func load(ctx context.Context, coll *mongo.Collection, ids []string) (map[string]document, error) {
	docs := make([]*document, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loadConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			var d document
			err := coll.FindOne(gctx, bson.D{{Key: fieldID, Value: id}}).Decode(&d)
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				return nil
			case err != nil:
				return fmt.Errorf("catalogue: read product %s from %s: %w", id, coll.Name(), err)
			}
			docs[i] = &d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]document, len(ids))
	for _, d := range docs {
		if d != nil {
			out[d.ID] = *d
		}
	}
	return out, nil
}

// loadConcurrency bounds the finds of one load in flight.
const loadConcurrency = 8

// maxWriteRetries bounds the rounds of settle.
const maxWriteRetries = 5

// write writes ws in one unordered bulk write (each is a different
// product, so none depends on another, and one that fails does not hold
// back the rest), and settles the duplicate keys that guarded upserts
// raise.
//
// A guarded upsert fails on _id when the product's document exists at or
// beyond its version: done already. It also fails when another writer
// inserted the document, at an older version, between this upsert's
// filter and its insert; then the document exists and the write is tried
// again, and now either replaces it or finds it newer. Each lost write is
// therefore read back: a duplicate key must never pass for "already
// applied" unless the stored version says so.
//
// The writes go in commands of at most writeChunk, each bounded by
// writeTimeout, at most writeConcurrency of them at once in the process
// (slots, shared by the live catalogue and its rebuild): FerretDB holds a
// PostgreSQL connection per statement of an update command until the
// command ends, so commands needing more connections than its pool has
// never end; and a write that hangs for another reason becomes an error
// the runner reports instead of a silent stall. FerretDB writes each
// document in a transaction of its own, so commands side by side are what
// lets the catalogue keep up with a busy shop.
func write(ctx context.Context, coll *mongo.Collection, ws []written, slots chan struct{}) error {
	g, gctx := errgroup.WithContext(ctx)
launch:
	for i := 0; i < len(ws); i += writeChunk {
		chunk := ws[i:min(i+writeChunk, len(ws))]
		select {
		case slots <- struct{}{}:
		case <-gctx.Done():
			break launch
		}
		g.Go(func() error {
			defer func() { <-slots }()
			wctx, cancel := context.WithTimeout(gctx, writeTimeout)
			defer cancel()
			return writeChunkOf(wctx, coll, chunk)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err() // a write not launched is not done
}

// writeChunk bounds the documents of one write command and
// writeConcurrency the commands in flight: FerretDB's pool
// (internal/standins/ferret bounds it to 8) must hold a connection for each
// document and one more per command, 6 of its 8, leaving some for reads.
const (
	writeChunk       = 2
	writeConcurrency = 2
)

// newWriteSlots returns the slots write takes, one per command in flight.
func newWriteSlots() chan struct{} { return make(chan struct{}, writeConcurrency) }

// writeTimeout bounds one write command.
const writeTimeout = 30 * time.Second

// writeChunkOf is write for at most writeChunk documents in one command.
func writeChunkOf(ctx context.Context, coll *mongo.Collection, ws []written) error {
	for round := 0; ; round++ {
		models := make([]mongo.WriteModel, len(ws))
		for i, w := range ws {
			models[i] = w.model
		}
		_, err := coll.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		if err == nil {
			return nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return fmt.Errorf("catalogue: write %d products to %s: %w", len(ws), coll.Name(), err)
		}
		var lost []written
		for _, we := range bwe.WriteErrors {
			if (we.Code != 11000 && we.Code != 11001) || we.Index < 0 || we.Index >= len(ws) {
				return fmt.Errorf("catalogue: write %d products to %s: %w", len(ws), coll.Name(), err)
			}
			lost = append(lost, ws[we.Index])
		}
		ids := make([]string, len(lost))
		for i, w := range lost {
			ids[i] = w.id
		}
		stored, rerr := load(ctx, coll, ids)
		if rerr != nil {
			return rerr
		}
		ws = ws[:0:0]
		for _, w := range lost {
			if d, ok := stored[w.id]; !ok || d.Version < w.version {
				ws = append(ws, w)
			}
		}
		if len(ws) == 0 {
			return nil
		}
		if round == maxWriteRetries {
			return fmt.Errorf("catalogue: product %s at version %d: still a duplicate key after %d rounds, the stored document older: %w",
				ws[0].id, ws[0].version, round+1, err)
		}
	}
}
