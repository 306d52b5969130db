package eventstoretest

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/eventstore"
)

func testRoundTrip(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "a"
	ts := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	in := []eventstore.EventData{Ev("thing.created", 1), Ev("thing.renamed", 2)}
	in[0].SchemaVersion = 3
	in[0].Data = json.RawMessage(`{"name": "x",  "tags":["a","b"], "n":1}`)
	in[0].Metadata = eventstore.Metadata{CorrelationID: "corr-1", CausationID: "cause-1", ActorID: "actor-1", Timestamp: ts}
	res := MustAppend(t, s, stream, eventstore.NoStream, in...)
	if res.Version != 1 {
		t.Fatalf("append result version %d, want 1", res.Version)
	}
	got := ReadStreamAll(t, s, stream)
	if len(got) != 2 {
		t.Fatalf("read %d events, want 2", len(got))
	}
	for i, e := range got {
		w := in[i]
		if e.ID != w.ID || e.Type != w.Type || e.StreamID != stream || e.Version != int64(i) {
			t.Errorf("event %d: got id=%s type=%s stream=%s v=%d, want id=%s type=%s stream=%s v=%d",
				i, e.ID, e.Type, e.StreamID, e.Version, w.ID, w.Type, stream, i)
		}
		if !jsonEqual(e.Data, w.Data) {
			t.Errorf("event %d data %s, want %s", i, e.Data, w.Data)
		}
	}
	e := got[0]
	if e.SchemaVersion != 3 || got[1].SchemaVersion != 1 {
		t.Errorf("schema versions %d, %d, want 3, 1 (zero defaults to 1)", e.SchemaVersion, got[1].SchemaVersion)
	}
	m := e.Metadata
	if m.CorrelationID != "corr-1" || m.CausationID != "cause-1" || m.ActorID != "actor-1" || !m.Timestamp.Equal(ts) {
		t.Errorf("metadata %+v lost fields", m)
	}
	if got[1].Metadata.Timestamp.IsZero() || time.Since(got[1].Metadata.Timestamp) > time.Hour {
		t.Errorf("zero timestamp not set to the append time: %v", got[1].Metadata.Timestamp)
	}
	if !got[0].Position.Less(got[1].Position) {
		t.Errorf("positions %s, %s not increasing", got[0].Position, got[1].Position)
	}
	if res.Position != got[1].Position {
		t.Errorf("append result position %s, want the last event's %s", res.Position, got[1].Position)
	}
	if v := got[0].ID.Version(); v != 7 {
		t.Errorf("event id version %d, want UUIDv7", v)
	}
	all := ReadAllPrefix(t, s, Prefix0(stream), 100)
	sameIDs(t, "read all", all, got)
	if all[0].Metadata.CorrelationID != "corr-1" || !bytes.Equal(compact(all[0].Data), compact(in[0].Data)) {
		t.Errorf("read all lost metadata or data: %+v %s", all[0].Metadata, all[0].Data)
	}
}

// Prefix0 returns the prefix part of a stream made by Prefix.
func Prefix0(stream string) string {
	i := bytes.IndexByte([]byte(stream), '-')
	return stream[:i+1]
}

func jsonEqual(a, b []byte) bool { return bytes.Equal(compact(a), compact(b)) }

func compact(b []byte) []byte {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return b
	}
	out, _ := json.Marshal(v)
	return out
}

func testExpectedVersion(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	for _, tc := range []struct {
		name     string
		existing int // events already in the stream
		expected eventstore.ExpectedVersion
		ok       bool
	}{
		{"any/new", 0, eventstore.Any, true},
		{"any/existing", 2, eventstore.Any, true},
		{"nostream/new", 0, eventstore.NoStream, true},
		{"nostream/existing", 1, eventstore.NoStream, false},
		{"exists/new", 0, eventstore.StreamExists, false},
		{"exists/existing", 1, eventstore.StreamExists, true},
		{"exact/match", 3, eventstore.Exact(2), true},
		{"exact/behind", 3, eventstore.Exact(1), false},
		{"exact/ahead", 3, eventstore.Exact(5), false},
		{"exact0/new", 0, eventstore.Exact(0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := p + sanitizeStream(tc.name)
			for i := range tc.existing {
				MustAppend(t, s, stream, eventstore.Any, Ev("x.seed", i))
			}
			res, err := s.Append(Ctx(t), stream, tc.expected, Ev("x.new", 99))
			after := ReadStreamAll(t, s, stream)
			if tc.ok {
				if err != nil {
					t.Fatalf("append with %s to a stream of %d: %v", tc.expected, tc.existing, err)
				}
				if res.Version != int64(tc.existing) || len(after) != tc.existing+1 {
					t.Fatalf("version %d and %d events, want %d and %d", res.Version, len(after), tc.existing, tc.existing+1)
				}
				return
			}
			var wev *eventstore.WrongExpectedVersionError
			if !errors.Is(err, eventstore.ErrWrongExpectedVersion) || !errors.As(err, &wev) {
				t.Fatalf("append with %s to a stream of %d: err %v, want ErrWrongExpectedVersion", tc.expected, tc.existing, err)
			}
			if wev.Stream != stream || wev.Expected != tc.expected || wev.Actual != int64(tc.existing)-1 {
				t.Fatalf("error %+v, want stream %s expected %s actual %d", wev, stream, tc.expected, tc.existing-1)
			}
			if len(after) != tc.existing {
				t.Fatalf("a failed append wrote: %d events, want %d", len(after), tc.existing)
			}
		})
	}
}

func sanitizeStream(s string) string {
	return string(bytes.ReplaceAll([]byte(s), []byte("/"), []byte("_")))
}

func testConcurrentSameVersion(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "hot"
	MustAppend(t, s, stream, eventstore.NoStream, Ev("x.first", 0))
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = s.Append(Ctx(t), stream, eventstore.Exact(0), Ev("x.racer", i))
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, eventstore.ErrWrongExpectedVersion):
			var wev *eventstore.WrongExpectedVersionError
			if !errors.As(err, &wev) || wev.Actual != 1 {
				t.Errorf("racer %d: %v, want actual version 1", i, err)
			}
		default:
			t.Errorf("racer %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d appends at the same expected version won, want exactly 1", wins, n)
	}
	if got := ReadStreamAll(t, s, stream); len(got) != 2 {
		t.Fatalf("stream has %d events, want 2", len(got))
	}
}

// testConcurrentAny: appends that accept any version, or any version of
// an existing stream, all succeed however many race for the next version.
func testConcurrentAny(t *testing.T, s eventstore.Store) {
	for _, exp := range []eventstore.ExpectedVersion{eventstore.Any, eventstore.StreamExists} {
		t.Run(exp.String(), func(t *testing.T) { concurrentAppends(t, s, exp) })
	}
}

func concurrentAppends(t *testing.T, s eventstore.Store, exp eventstore.ExpectedVersion) {
	stream := Prefix(t) + "any"
	const writers, each = 8, 25
	MustAppend(t, s, stream, eventstore.NoStream, Ev("x.first", -1))
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append(Ctx(t), stream, exp, Ev("x.any", w*1000+i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append with %s failed under concurrency: %v", exp, err)
	}
	got := ReadStreamAll(t, s, stream)
	if len(got) != writers*each+1 {
		t.Fatalf("%d events, want %d", len(got), writers*each+1)
	}
	seen := map[int]bool{}
	for i, e := range got {
		if e.Version != int64(i) {
			t.Fatalf("event %d has version %d", i, e.Version)
		}
		seen[N(t, e)] = true
	}
	if len(seen) != writers*each+1 {
		t.Fatalf("%d distinct events, want %d", len(seen), writers*each+1)
	}
}

func testIdempotentRetry(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "retry"
	batch := []eventstore.EventData{Ev("x.a", 1), Ev("x.b", 2)}
	first := MustAppend(t, s, stream, eventstore.NoStream, batch...)
	for _, exp := range []eventstore.ExpectedVersion{eventstore.NoStream, eventstore.Any} {
		again, err := s.Append(Ctx(t), stream, exp, batch...)
		if err != nil {
			t.Fatalf("retry with %s: %v", exp, err)
		}
		if again != first {
			t.Fatalf("retry with %s returned %+v, want the first result %+v", exp, again, first)
		}
	}
	if got := ReadStreamAll(t, s, stream); len(got) != 2 {
		t.Fatalf("after retries the stream has %d events, want 2", len(got))
	}
	// The stream moves on normally after a retry.
	next := MustAppend(t, s, stream, eventstore.Exact(1), Ev("x.c", 3))
	if next.Version != 2 {
		t.Fatalf("next append version %d, want 2", next.Version)
	}
	// A retry of an exact-version append is idempotent too.
	c2 := Ev("x.d", 4)
	r1 := MustAppend(t, s, stream, eventstore.Exact(2), c2)
	r2, err := s.Append(Ctx(t), stream, eventstore.Exact(2), c2)
	if err != nil || r2 != r1 {
		t.Fatalf("exact retry: %+v %v, want %+v", r2, err, r1)
	}
	// A retry that arrives after the stream moved on still finds its
	// events; one that differs from what was written is a conflict.
	late, err := s.Append(Ctx(t), stream, eventstore.NoStream, batch...)
	if err != nil || late != first {
		t.Fatalf("late retry: %+v %v, want the first result %+v", late, err, first)
	}
	if _, err := s.Append(Ctx(t), stream, eventstore.NoStream, batch[0], Ev("x.other", 5)); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Fatalf("retry with a different batch: %v, want ErrWrongExpectedVersion", err)
	}
	if got := ReadStreamAll(t, s, stream); len(got) != 4 {
		t.Fatalf("stream has %d events, want 4", len(got))
	}
	if all := ReadAllPrefix(t, s, Prefix0(stream), 1000); len(all) != 4 {
		t.Fatalf("global log holds %d events of the stream, want 4", len(all))
	}
}

func testConcurrentRetry(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "cretry"
	ev := Ev("x.once", 1)
	const n = 8
	var wg sync.WaitGroup
	results := make([]eventstore.AppendResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Append(Ctx(t), stream, eventstore.NoStream, ev)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("concurrent retry %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Fatalf("concurrent retries disagree: %+v vs %+v", results[i], results[0])
		}
	}
	if got := ReadStreamAll(t, s, stream); len(got) != 1 {
		t.Fatalf("stream has %d events, want 1", len(got))
	}
}

// testDuplicateEventID: an id already written can only come back as a
// retry of the append that wrote it.
func testDuplicateEventID(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	a := Ev("x.a", 1)
	MustAppend(t, s, p+"one", eventstore.NoStream, a)
	for _, tc := range []struct {
		name     string
		stream   string
		expected eventstore.ExpectedVersion
		events   []eventstore.EventData
	}{
		{"in another stream", p + "two", eventstore.NoStream, []eventstore.EventData{a}},
		{"again at the stream's end", p + "one", eventstore.Exact(0), []eventstore.EventData{a}},
		{"after a new event", p + "one", eventstore.Any, []eventstore.EventData{Ev("x.b", 2), a}},
	} {
		if _, err := s.Append(Ctx(t), tc.stream, tc.expected, tc.events...); !errors.Is(err, eventstore.ErrDuplicateEventID) {
			t.Errorf("%s: %v, want ErrDuplicateEventID", tc.name, err)
		}
	}
	if got := ReadStreamAll(t, s, p+"one"); len(got) != 1 {
		t.Fatalf("stream one has %d events, want 1", len(got))
	}
	if got := ReadStreamAll(t, s, p+"two"); len(got) != 0 {
		t.Fatalf("stream two has %d events, want none", len(got))
	}
	// Where the expected version does not hold, that is the error.
	if _, err := s.Append(Ctx(t), p+"one", eventstore.Exact(5), a); !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		t.Errorf("reused id at a wrong version: %v, want ErrWrongExpectedVersion", err)
	}
}

// testTimestamps: timestamps keep their instant to the microsecond, far
// from now too, and come back in UTC.
func testTimestamps(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "ts"
	at := []time.Time{
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("x", 5*3600)),
		time.Date(2026, 6, 1, 12, 0, 0, 123_456_789, time.UTC),
		time.Date(2500, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
	}
	in := make([]eventstore.EventData, len(at))
	for i, ts := range at {
		in[i] = Ev("x.ts", i)
		in[i].Metadata.Timestamp = ts
	}
	MustAppend(t, s, stream, eventstore.NoStream, in...)
	for i, e := range ReadStreamAll(t, s, stream) {
		want := at[i].UTC().Truncate(time.Microsecond)
		if !e.Metadata.Timestamp.Equal(want) || e.Metadata.Timestamp.Location() != time.UTC {
			t.Errorf("timestamp %d: %v, want %v", i, e.Metadata.Timestamp, want)
		}
	}
}
