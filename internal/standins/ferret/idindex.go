package ferret

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/internal/platform/retry"
)

// IDIndexInterval is how often the server looks for collections whose
// _id has no index it can use.
const IDIndexInterval = 2 * time.Second

// FerretDB 1.x finds a document by _id with `_jsonb->'_id' @> $2`, which
// its own unique btree index on (_jsonb->'_id') cannot serve: every
// lookup by _id, and every update or delete of one document, reads the
// whole collection (43 ms a lookup at 5,000 documents here, against 0.4 ms
// with the index below). MongoDB has this index on every collection, so
// code written for MongoDB counts on it. keepIDIndexes gives each
// collection of the server a GIN index on (_jsonb->'_id'), which serves
// @>: at start and, for collections made since (a rebuild's new
// generation), every IDIndexInterval, until ctx ends.
//
// The index is built without GIN's pending list (fastupdate off). FerretDB
// updates a document by writing a new row, so every update adds an entry
// to the index, and with the pending list on those entries wait there
// until a vacuum or 4 MB of them: every lookup by _id reads the whole
// list. Under an order load of ~100 orders/s it grew by ~150 entries a
// second and each lookup's cost with it, until one unlucky update paid
// for merging the lot. One _id per row costs little to insert directly.
func keepIDIndexes(ctx context.Context, pgURL string, log *slog.Logger) {
	said := ""
	for ctx.Err() == nil {
		err := indexIDs(ctx, pgURL)
		if err != nil && ctx.Err() == nil && err.Error() != said {
			log.Error("ferret: index _id", "err", err) // once per distinct error
		}
		if err != nil {
			said = err.Error()
		}
		if retry.Sleep(ctx, IDIndexInterval) != nil {
			return
		}
	}
}

// indexIDs gives every FerretDB collection table (a table with a _jsonb
// column) that has none yet the GIN index on _id, without a pending list;
// an index an earlier version built with one is switched over, and its
// list emptied.
func indexIDs(ctx context.Context, pgURL string) error {
	u, err := url.Parse(pgURL)
	if err != nil {
		return err
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") { // the pool's settings, not the server's
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// pg_catalog rather than information_schema: planning the latter's
	// views took ~35 ms each time, every IDIndexInterval.
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p')
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attname = '_jsonb' AND NOT a.attisdropped AND NOT EXISTS (
			SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
			WHERE i.indrelid = c.oid AND ic.relname LIKE 'ferret_id_gin_%'
			AND coalesce(ic.reloptions, '{}') @> '{fastupdate=off}')`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var t [2]string
		return t, r.Scan(&t[0], &t[1])
	})
	if err != nil {
		return err
	}
	for _, t := range tables {
		sum := sha256.Sum256([]byte(t[0] + "." + t[1]))
		name := "ferret_id_gin_" + hex.EncodeToString(sum[:8])
		index := pgx.Identifier{t[0], name}.Sanitize()
		_, err := conn.Exec(ctx, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s USING gin ((_jsonb->'_id')) WITH (fastupdate = off)`,
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{t[0], t[1]}.Sanitize()))
		if err == nil { // an index built with the pending list on
			_, err = conn.Exec(ctx, fmt.Sprintf(`ALTER INDEX %s SET (fastupdate = off)`, index))
		}
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT gin_clean_pending_list($1::regclass)`, index)
		}
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t[0], t[1], err)
		}
	}
	return nil
}
