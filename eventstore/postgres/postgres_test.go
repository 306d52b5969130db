package postgres_test

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/eventstore/eventstoretest"
	"github.com/eventshop/eventshop/eventstore/postgres"
	"github.com/eventshop/eventshop/internal/testsupport/pgtest"
)

// open returns a store on the database at dbURL.
func open(t *testing.T, dbURL string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// simpleProtocol is dbURL with pgx told to use the simple query protocol,
// under which the server sends every column as text.
func simpleProtocol(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("default_query_exec_mode", "simple_protocol")
	u.RawQuery = q.Encode()
	return u.String()
}

func TestConformance(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t))
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return s }, eventstoretest.UniqueEventIDs, eventstoretest.Counts, eventstoretest.MultiStream)
}

// TestConformanceSimpleProtocol runs the suite where rows come back as
// text and are read column by column instead of decoded from binary.
func TestConformanceSimpleProtocol(t *testing.T) {
	s := open(t, simpleProtocol(t, pgtest.NewDatabase(t)))
	eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return s }, eventstoretest.UniqueEventIDs, eventstoretest.Counts, eventstoretest.MultiStream)
}

// TestReadFormsAgree: events decoded from binary rows equal the same
// events read column by column from text rows.
func TestReadFormsAgree(t *testing.T) {
	db := pgtest.NewDatabase(t)
	fast, slow := open(t, db), open(t, simpleProtocol(t, db))
	p := eventstoretest.Prefix(t)
	in := []eventstore.EventData{eventstoretest.Ev("x.a", 1), eventstoretest.Ev("x.ünïcødé.b", 2), eventstoretest.Ev("x.c", 3)}
	in[0].SchemaVersion = 7
	in[0].Metadata = eventstore.Metadata{CorrelationID: "corr-ä", CausationID: "cause", ActorID: "actor",
		Timestamp: time.Date(1999, 12, 31, 23, 59, 59, 123456000, time.UTC)}
	in[1].Data = json.RawMessage(`{"name":"Blåbær 🫐","nested":{"list":[1,2.5,null,true]}}`)
	in[2].Metadata.Timestamp = time.Date(2026, 6, 1, 12, 0, 0, 999000, time.FixedZone("x", -3*3600))
	eventstoretest.MustAppend(t, fast, p+"s", eventstore.NoStream, in...)
	eventstoretest.MustAppend(t, fast, p+"другой", eventstore.NoStream, eventstoretest.Ev("x.d", 4))

	a := eventstoretest.ReadAllPrefix(t, fast, p, 100)
	b := eventstoretest.ReadAllPrefix(t, slow, p, 100)
	if len(a) != 4 || !reflect.DeepEqual(a, b) {
		t.Fatalf("binary and text reads differ:\n%+v\n%+v", a, b)
	}
	if !a[0].Metadata.Timestamp.Equal(in[0].Metadata.Timestamp) || a[0].SchemaVersion != 7 || a[3].StreamID != p+"другой" {
		t.Fatalf("decoded fields lost: %+v", a[0])
	}
}
