package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/testsupport/benchutil"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// The benchmarks measure the store and a raw baseline in alternating
// rounds of the same size, so that drift of the shared machine (fsync
// latency, other load) hits both alike; ratio = store rate ÷ raw rate.

// payload is about 300 bytes of JSON, the size the machine's pgbench
// anchors were measured with.
var payload = json.RawMessage(`{"order_id":"0190d9b4-8b9e-7c3a-9f51-2d3c4b5a6978","user_id":"0190d9b4-8b9e-7c3a-9f51-2d3c4b5a6979",` +
	`"items":[{"product_id":"0190d9b4-8b9e-7c3a-9f51-2d3c4b5a6970","sku":"SKU-12345","name":"Blue mug","quantity":2,"price":12.5}],` +
	`"total":25.0,"currency":"EUR","note":"leave at the door, please ring twice"}`)

const rounds = 10

func benchEvent() eventstore.EventData {
	return eventstore.EventData{
		ID: uuid.Must(uuid.NewV7()), Type: "order.created", Data: payload,
		Metadata: eventstore.Metadata{CorrelationID: uuid.NewString(), CausationID: uuid.NewString(), ActorID: uuid.NewString()},
	}
}

// BenchmarkAppend reports appends/s for 1- and 10-event appends at
// concurrency 1, 8 and 32, next to plain INSERT statements of as many rows
// into a table like the event table (same columns, indexes and defaults)
// from as many connections in autocommit. The single-event cases at
// concurrency 8 and 32 run once more with every append in a statement of
// its own (group commit off), to show what sharing statements gives.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	db := pgtest.NewDatabase(b)
	grouped, err := postgres.Open(ctx, db, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer grouped.Close()
	alone, err := postgres.Open(ctx, db, postgres.Options{GroupSlots: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer alone.Close()
	pool := grouped.Pool()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_events (LIKE events INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		events, conc int
		alone        bool
	}{
		{1, 1, false}, {1, 8, false}, {1, 32, false}, {10, 1, false}, {10, 8, false},
		{1, 8, true}, {1, 32, true},
	}
	for _, c := range cases {
		events, conc, store, name, what := c.events, c.conc, grouped, "", ""
		if c.alone {
			store, name, what = alone, "/alone", ", each alone"
		}
		b.Run(fmt.Sprintf("events=%d/conc=%d%s", events, conc, name), func(b *testing.B) {
			streams := make([]string, conc)
			versions := make([]int64, conc)
			rawVersions := make([]int, conc)
			for w := range streams {
				streams[w] = "bench-" + uuid.NewString()
				versions[w] = -1
			}
			rawSQL := rawInsertSQL(events)
			appendOne := func(w int) error {
				evs := make([]eventstore.EventData, events)
				for i := range evs {
					evs[i] = benchEvent()
				}
				res, err := store.Append(ctx, streams[w], eventstore.Exact(versions[w]), evs...)
				versions[w] = res.Version
				return err
			}
			insertOne := func(w int) error {
				args := make([]any, 0, 8*events)
				for range events {
					e := benchEvent()
					args = append(args, e.ID, streams[w], rawVersions[w], e.Type, string(e.Data),
						e.Metadata.CorrelationID, e.Metadata.CausationID, e.Metadata.ActorID)
					rawVersions[w]++
				}
				_, err := pool.Exec(ctx, rawSQL, args...)
				return err
			}
			var storeTime, rawTime time.Duration
			per := max(b.N/rounds, 1)
			done := 0
			b.ResetTimer()
			for done < b.N {
				n := min(per, b.N-done)
				b.StartTimer()
				storeTime += benchutil.Concurrently(b, conc, n, appendOne)
				b.StopTimer()
				rawTime += benchutil.Concurrently(b, conc, n, insertOne)
				done += n
			}
			rate := float64(b.N) / storeTime.Seconds()
			raw := float64(b.N) / rawTime.Seconds()
			b.ReportMetric(rate, "appends/s")
			b.ReportMetric(rate*float64(events), "events/s")
			b.ReportMetric(raw, "raw_stmts/s")
			b.ReportMetric(rate/raw, "ratio")
			m := measured{what: fmt.Sprintf("append %d event(s), concurrency %d%s", events, conc, what),
				unit: "appends/s", rawUnit: "INSERTs/s", store: rate, raw: raw}
			if events == 1 && conc == 8 && !c.alone {
				m.goal = 1
			}
			record(m)
		})
	}
}

func rawInsertSQL(rows int) string {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO raw_events (event_id, stream_id, version, type, schema_version, data, correlation_id, causation_id, actor_id, created_at) VALUES `)
	for i := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, 1, $%d, $%d, $%d, $%d, now())", 8*i+1, 8*i+2, 8*i+3, 8*i+4, 8*i+5, 8*i+6, 8*i+7, 8*i+8)
	}
	return sb.String()
}

// BenchmarkReadAll reports events/s of reading 200,000 events through
// ReadAll, next to one plain pgx Query+Scan of the same rows in the same
// order.
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
	var storeTime, rawTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StartTimer()
		start := time.Now()
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
		storeTime += time.Since(start)
		b.StopTimer()
		if n != total {
			b.Fatalf("read %d events, want %d", n, total)
		}
		start = time.Now()
		if rows := rawScan(b, store.Pool()); rows != total {
			b.Fatalf("raw scan read %d rows, want %d", rows, total)
		}
		rawTime += time.Since(start)
	}
	rate := float64(b.N*total) / storeTime.Seconds()
	raw := float64(b.N*total) / rawTime.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(raw, "raw_rows/s")
	b.ReportMetric(rate/raw, "ratio")
	record(measured{what: fmt.Sprintf("ReadAll of %d events", total), unit: "events/s", rawUnit: "rows/s",
		store: rate, raw: raw, goal: 0.5})
}

// rawScan reads every row of the event table in one query, scanning each
// column into reused variables, and returns how many rows it read.
func rawScan(b *testing.B, pool *pgxpool.Pool) int {
	var (
		id, txID, version  int64
		eventID            [16]byte
		stream, typ        string
		schemaVersion      int32
		data               []byte
		corr, cause, actor string
		created            time.Time
		n                  int
	)
	r, err := pool.Query(context.Background(), `SELECT id, tx_id, event_id, stream_id, version, type, schema_version, data,
		correlation_id, causation_id, actor_id, created_at FROM events ORDER BY tx_id, id`)
	if err != nil {
		b.Fatal(err)
	}
	_, err = pgx.ForEachRow(r, []any{&id, &txID, &eventID, &stream, &version, &typ, &schemaVersion, &data, &corr, &cause, &actor, &created}, func() error {
		n++
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkLiveDelivery reports how long an appended event takes to reach
// a live subscription: on the appending store (woken in-process) and on
// another store on the same database (woken by LISTEN/NOTIFY), as between
// processes. Polling is set to an hour, so it cannot deliver in time. The
// time includes the append's own round trip.
func BenchmarkLiveDelivery(b *testing.B) {
	ctx := context.Background()
	db := pgtest.NewDatabase(b)
	writer, err := postgres.Open(ctx, db, postgres.Options{PollInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	other, err := postgres.Open(ctx, db, postgres.Options{PollInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	for _, tc := range []struct {
		name   string
		reader *postgres.Store
	}{{"same-process", writer}, {"other-process", other}} {
		b.Run(tc.name, func(b *testing.B) {
			stream := "live-" + uuid.NewString()
			sub, err := tc.reader.SubscribeAll(ctx, eventstore.Start, eventstore.Filter{StreamPrefixes: []string{stream}})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := writer.Append(ctx, stream, eventstore.Exact(int64(i)-1), benchEvent()); err != nil {
					b.Fatal(err)
				}
				select {
				case <-sub.Events():
					lat = append(lat, time.Since(start))
				case <-time.After(10 * time.Second):
					b.Fatalf("event %d not delivered within 10s", i)
				}
			}
			slices.Sort(lat)
			p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
		})
	}
}
