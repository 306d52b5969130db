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

// indexIDs creates the GIN index on _id of every FerretDB collection
// table (a table with a _jsonb column) that has none yet.
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
	rows, err := conn.Query(ctx, `
		SELECT c.table_schema, c.table_name FROM information_schema.columns c
		WHERE c.column_name = '_jsonb' AND NOT EXISTS (
			SELECT 1 FROM pg_indexes i
			WHERE i.schemaname = c.table_schema AND i.tablename = c.table_name AND i.indexname LIKE 'ferret_id_gin_%')`)
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
		sql := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s USING gin ((_jsonb->'_id'))`,
			pgx.Identifier{name}.Sanitize(), pgx.Identifier{t[0], t[1]}.Sanitize())
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s.%s: %w", t[0], t[1], err)
		}
	}
	return nil
}
