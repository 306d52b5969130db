package postgres

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventshop/eventshop/eventstore"
)

// columns are the event columns every read selects, in the order decodeRow
// and scanRow expect.
const columns = `id, tx_id, event_id, stream_id, version, type, schema_version, data,
	correlation_id, causation_id, actor_id, created_at`

// binaryColumns asks for every column of columns in binary form.
var binaryColumns = pgx.QueryResultFormats{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// pgEpochUnix is where PostgreSQL's binary timestamps count from
// (2000-01-01 UTC), in Unix seconds.
const pgEpochUnix = 946_684_800

// allBinary reports whether the server sent columns in binary form; it
// does not under the simple protocol, which a connection string may ask for.
func allBinary(fields []pgconn.FieldDescription) bool {
	if len(fields) != len(binaryColumns) {
		return false
	}
	for _, f := range fields {
		if f.Format != pgx.BinaryFormatCode {
			return false
		}
	}
	return true
}

// decodeRow reads a row of columns from its binary form. Reads are the
// hot path of catch-up and replay: this costs two allocations per event,
// one for its text and one for its data, where a column-by-column Scan
// costs one per column and dispatch through scan plans.
func decodeRow(v [][]byte, e *eventstore.Event) error {
	if len(v) != 12 || len(v[0]) != 8 || len(v[1]) != 8 || len(v[2]) != 16 || len(v[4]) != 8 || len(v[6]) != 4 || len(v[11]) != 8 {
		return fmt.Errorf("event row: unexpected binary layout")
	}
	be := binary.BigEndian
	e.Position = eventstore.Position{Commit: be.Uint64(v[1]), Prepare: be.Uint64(v[0])}
	copy(e.ID[:], v[2])
	e.Version = int64(be.Uint64(v[4]))
	e.SchemaVersion = int(int32(be.Uint32(v[6])))
	e.Data = append([]byte(nil), v[7]...)
	us := int64(be.Uint64(v[11]))
	e.Metadata.Timestamp = time.Unix(pgEpochUnix+us/1e6, us%1e6*1e3).UTC()

	// One string holds the five text columns; each field is a part of it.
	var sb strings.Builder
	sb.Grow(len(v[3]) + len(v[5]) + len(v[8]) + len(v[9]) + len(v[10]))
	for _, i := range [...]int{3, 5, 8, 9, 10} {
		sb.Write(v[i])
	}
	text := sb.String()
	next := func(i int) string {
		s := text[:len(v[i])]
		text = text[len(v[i]):]
		return s
	}
	e.StreamID = next(3)
	e.Type = next(5)
	e.Metadata.CorrelationID = next(8)
	e.Metadata.CausationID = next(9)
	e.Metadata.ActorID = next(10)
	return nil
}

// scanRow reads a row of columns whatever its form.
func scanRow(rows pgx.Rows, e *eventstore.Event) error {
	var txID, id int64
	m := &e.Metadata
	if err := rows.Scan(&id, &txID, &e.ID, &e.StreamID, &e.Version, &e.Type, &e.SchemaVersion, (*[]byte)(&e.Data),
		&m.CorrelationID, &m.CausationID, &m.ActorID, &m.Timestamp); err != nil {
		return err
	}
	m.Timestamp = m.Timestamp.UTC()
	e.Position = eventstore.Position{Commit: uint64(txID), Prepare: uint64(id)}
	return nil
}
