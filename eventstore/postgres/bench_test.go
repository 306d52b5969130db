package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/pgtest"
)

// payload is about 300 bytes of JSON, the size the machine's pgbench
// anchors were measured with.
var payload = json.RawMessage(`{"order_id":"0190d9b4-8b9e-7c3a-9f51-2d3c4b5a6978","user_id":"0190d9b4-8b9e-7c3a-9f51-2d3c4b5a6979",` +
	`"items":[{"product_id":"0190d9b4-8b9e-7c3a-9f51-2d3c4b5a6970","sku":"SKU-12345","name":"Blue mug","quantity":2,"price":12.5}],` +
	`"total":25.0,"currency":"EUR","note":"leave at the door, please ring twice"}`)

const baselineFor = 2 * time.Second

func benchEvent() eventstore.EventData {
	return eventstore.EventData{
		ID: uuid.Must(uuid.NewV7()), Type: "order.created", Data: payload,
		Metadata: eventstore.Metadata{CorrelationID: uuid.NewString(), CausationID: uuid.NewString(), ActorID: uuid.NewString()},
	}
}

// BenchmarkAppend reports appends/s for 1- and 10-event appends at
// concurrency 1 and 8, next to plain INSERTs of as many rows per statement
// into a table like the event table, at the same concurrency, measured in
// the same run. ratio = appends/s ÷ raw statements/s.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	pool := store.Pool()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_events (LIKE events INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	for _, events := range []int{1, 10} {
		for _, conc := range []int{1, 8} {
			var raw float64
			b.Run(fmt.Sprintf("events=%d/conc=%d", events, conc), func(b *testing.B) {
				if raw == 0 {
					raw = rawInserts(b, pool, events, conc)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						stream := fmt.Sprintf("bench-%s-%d", uuid.NewString()[:8], w)
						version := int64(-1)
						for next.Add(1) <= int64(b.N) {
							evs := make([]eventstore.EventData, events)
							for i := range evs {
								evs[i] = benchEvent()
							}
							res, err := store.Append(ctx, stream, eventstore.Exact(version), evs...)
							if err != nil {
								b.Error(err)
								return
							}
							version = res.Version
						}
					}()
				}
				wg.Wait()
				rate := float64(b.N) / time.Since(start).Seconds()
				b.ReportMetric(rate, "appends/s")
				b.ReportMetric(rate*float64(events), "events/s")
				b.ReportMetric(raw, "raw_stmts/s")
				b.ReportMetric(rate/raw, "ratio")
			})
		}
	}
}

// rawInserts measures plain INSERT statements of n rows each, in
// autocommit, from conc connections, for baselineFor.
func rawInserts(b *testing.B, pool *pgxpool.Pool, n, conc int) float64 {
	ctx := context.Background()
	var sb strings.Builder
	sb.WriteString(`INSERT INTO raw_events (event_id, stream_id, version, type, schema_version, data, correlation_id, causation_id, actor_id, created_at) VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, 1, $%d, $%d, $%d, $%d, now())", 8*i+1, 8*i+2, 8*i+3, 8*i+4, 8*i+5, 8*i+6, 8*i+7, 8*i+8)
	}
	sql := sb.String()
	var count atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(baselineFor)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := "raw-" + uuid.NewString()
			version := 0
			args := make([]any, 0, 8*n)
			for time.Now().Before(deadline) {
				args = args[:0]
				for range n {
					e := benchEvent()
					args = append(args, e.ID, stream, version, e.Type, string(e.Data), e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.ActorID)
					version++
				}
				if _, err := pool.Exec(ctx, sql, args...); err != nil {
					b.Error(err)
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / time.Since(start).Seconds()
}

// BenchmarkReadAll reports events/s of reading 200,000 events through
// ReadAll, next to a plain pgx Query+Scan of the same rows ORDER BY the
// same key, measured in the same run. ratio = store ÷ raw.
func BenchmarkReadAll(b *testing.B) {
	const total = 200_000
	ctx := context.Background()
	store, err := postgres.Open(ctx, pgtest.NewDatabase(b), postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	for i := 0; i < total; i += 1000 {
		evs := make([]eventstore.EventData, 1000)
		for j := range evs {
			evs[j] = benchEvent()
		}
		if _, err := store.Append(ctx, fmt.Sprintf("seed-%d", i/1000), eventstore.NoStream, evs...); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := store.Pool().Exec(ctx, "VACUUM ANALYZE events"); err != nil {
		b.Fatal(err)
	}
	raw := rawScan(b, store.Pool(), total)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		n := 0
		for pos := eventstore.Start; ; {
			page, err := store.ReadAll(ctx, pos, eventstore.MaxReadCount)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page)
			if len(page) < eventstore.MaxReadCount {
				break
			}
			pos = page[len(page)-1].Position
		}
		if n != total {
			b.Fatalf("read %d events, want %d", n, total)
		}
	}
	rate := float64(b.N*total) / time.Since(start).Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(raw, "raw_rows/s")
	b.ReportMetric(rate/raw, "ratio")
}

// rawScan reads every row of the event table in one pgx query, scanning
// each column, for baselineFor at least, and returns rows/s.
func rawScan(b *testing.B, pool *pgxpool.Pool, total int) float64 {
	ctx := context.Background()
	var (
		id, txID, version  int64
		eventID            [16]byte
		stream, typ        string
		schemaVersion      int32
		data               []byte
		corr, cause, actor string
		created            time.Time
		rows               int
	)
	start := time.Now()
	for time.Since(start) < baselineFor {
		r, err := pool.Query(ctx, `SELECT id, tx_id, event_id, stream_id, version, type, schema_version, data,
			correlation_id, causation_id, actor_id, created_at FROM events ORDER BY tx_id, id`)
		if err != nil {
			b.Fatal(err)
		}
		_, err = pgx.ForEachRow(r, []any{&id, &txID, &eventID, &stream, &version, &typ, &schemaVersion, &data, &corr, &cause, &actor, &created}, func() error {
			rows++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if rows%total != 0 {
		b.Fatalf("raw scan read %d rows, not a multiple of %d", rows, total)
	}
	return float64(rows) / time.Since(start).Seconds()
}
