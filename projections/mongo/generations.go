package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// meta is the pointer document.
type meta struct {
	ID string `bson:"_id"`
	// Collection is the live catalogue.
	Collection string `bson:"collection"`
	// Shadow is the collection a rebuild is filling; "" when none.
	Shadow string `bson:"shadow"`
	// Previous is the collection the last swap retired, kept until
	// SwappedAt + SwapGrace; "" when none.
	Previous  string    `bson:"previous"`
	SwappedAt time.Time `bson:"swapped_at"`
	// Abandoned lists the shadows a later Shadow replaced before they
	// were swapped in. They are newer than Collection, so the age rule of
	// collect does not cover them; a Swap forgets those it makes older.
	Abandoned []string `bson:"abandoned,omitempty"`
}

// retires reports whether m lets collection name be dropped: it is
// neither live nor the shadow, nor the collection the last swap retired
// while its grace lasts, and it is either an abandoned shadow or a
// generation older than the live one. Shadow names a new generation, so
// a shadow recorded after m was read is newer than m's live one and not
// abandoned: it is never retired. A name that is not a generation's, and
// any meta without a live collection, retire nothing.
func (m meta) retires(name string, grace time.Duration) bool {
	switch {
	case m.Collection == "" || name == m.Collection || name == m.Shadow:
		return false
	case name == m.Previous && time.Since(m.SwappedAt) < grace:
		return false
	}
	return slices.Contains(m.Abandoned, name) || older(name, m.Collection)
}

// newCollectionName names a new catalogue generation; UUIDv7 makes the
// names of later generations sort later.
func newCollectionName() string {
	return collectionPrefix + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}

// generation is the UUIDv7 that collection name was named after
// (newCollectionName); false when it is not such a name.
func generation(name string) (uuid.UUID, bool) {
	raw, ok := strings.CutPrefix(name, collectionPrefix)
	if !ok || len(raw) != 32 {
		return uuid.UUID{}, false
	}
	id, err := uuid.Parse(raw)
	if err != nil || id.Version() != 7 {
		return uuid.UUID{}, false
	}
	return id, true
}

// older reports whether collection a is a generation made before b.
func older(a, b string) bool {
	ga, ok := generation(a)
	if !ok {
		return false
	}
	gb, ok := generation(b)
	return ok && bytes.Compare(ga[:], gb[:]) < 0
}

// readMeta reads the pointer document; a zero meta when there is none.
func readMeta(ctx context.Context, db *mongo.Database) (meta, error) {
	var m meta
	err := db.Collection(MetaCollection).FindOne(ctx, bson.D{{Key: fieldID, Value: ProjectionName}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return meta{}, nil
	}
	if err != nil {
		return meta{}, fmt.Errorf("catalogue: read %s: %w", MetaCollection, err)
	}
	return m, nil
}

// readLive reads the name of the live collection alone from the pointer
// document: the per-batch check of Apply. Errors: the database's, or a
// pointer document that is gone.
func readLive(ctx context.Context, db *mongo.Database) (string, error) {
	var m struct {
		Collection string `bson:"collection"`
	}
	err := db.Collection(MetaCollection).FindOne(ctx, bson.D{{Key: fieldID, Value: ProjectionName}},
		options.FindOne().SetProjection(bson.D{{Key: "collection", Value: 1}})).Decode(&m)
	if err == nil && m.Collection == "" {
		err = errors.New("it names no collection")
	}
	if err != nil {
		return "", fmt.Errorf("catalogue: read the live collection from %s: %w", MetaCollection, err)
	}
	return m.Collection, nil
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

// collect drops the catalogue collections the pointer document retires
// (see meta.retires). Any process may be making a shadow or swapping
// meanwhile, so what it read before is no guide: it reads the document
// again right before each drop. Between that read and the drop a
// collection cannot come back into use: a new shadow is always a new
// name, and only the shadow becomes live. Errors: the database's.
func collect(ctx context.Context, db *mongo.Database, grace time.Duration) error {
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("catalogue: list collections: %w", err)
	}
	for _, name := range names {
		if !strings.HasPrefix(name, collectionPrefix) {
			continue
		}
		m, err := readMeta(ctx, db)
		if err != nil {
			return err
		}
		if !m.retires(name, grace) {
			continue
		}
		if err := db.Collection(name).Drop(ctx); err != nil {
			return fmt.Errorf("catalogue: drop retired %s: %w", name, err)
		}
	}
	return nil
}

// checkShadow makes sure that coll is still the collection Shadow made:
// it exists and has every index. One that was dropped while it was filled
// and then written again has lost the documents written before, and its
// indexes. Errors: ErrNoShadow, the database's.
func checkShadow(ctx context.Context, coll *mongo.Collection) error {
	names, err := coll.Database().ListCollectionNames(ctx, bson.D{{Key: "name", Value: coll.Name()}})
	if err != nil {
		return fmt.Errorf("catalogue: look for the shadow %s: %w", coll.Name(), err)
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: the shadow %s does not exist", ErrNoShadow, coll.Name())
	}
	want, err := indexesFor(ctx, coll)
	if err != nil {
		return err
	}
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("catalogue: list the indexes of the shadow %s: %w", coll.Name(), err)
	}
	if len(specs) < len(want)+1 { // and _id's
		return fmt.Errorf("%w: the shadow %s has %d indexes, not %d: it was dropped while it was filled",
			ErrNoShadow, coll.Name(), len(specs), len(want)+1)
	}
	return nil
}
