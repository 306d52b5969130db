package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// poisons is a set of event ids a test projection or sink refuses, each
// with the error it refuses it with.
type poisons struct {
	mu  sync.Mutex
	bad map[uuid.UUID]error
}

func (p *poisons) set(id uuid.UUID, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bad == nil {
		p.bad = map[uuid.UUID]error{}
	}
	p.bad[id] = err
}

func (p *poisons) heal(id uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.bad, id)
}

// check fails a batch holding a refused event.
func (p *poisons) check(_ context.Context, batch []eventstore.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range batch {
		if err := p.bad[e.ID]; err != nil {
			return err
		}
	}
	return nil
}

// parkOptions make poison show quickly.
func parkOptions(policy string) projections.Options {
	return projections.Options{BatchSize: 50, RetryMin: 2 * time.Millisecond, RetryMax: 20 * time.Millisecond,
		ParkAfter: 3, Policy: policy}
}

// parkedList returns the whole parked list of name.
func parkedList(t *testing.T, e *env, name, status string) []projections.ParkedEvent {
	t.Helper()
	list, total, err := projections.Parked(context.Background(), e.pool, name, status, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(list) {
		t.Fatalf("parked list: %d entries of %d", len(list), total)
	}
	return list
}

// streamOf keeps the events of stream.
func streamOf(log []eventstore.Event, stream string) []eventstore.Event {
	return slices.DeleteFunc(slices.Clone(log), func(e eventstore.Event) bool { return e.StreamID != stream })
}

// without drops the events of stream from or after version v.
func without(log []eventstore.Event, stream string, v int64) []eventstore.Event {
	return slices.DeleteFunc(slices.Clone(log), func(e eventstore.Event) bool { return e.StreamID == stream && e.Version >= v })
}

// sortedIDs sorts a copy of ids, for comparing sets.
func sortedIDs(in []uuid.UUID) []uuid.UUID {
	out := slices.Clone(in)
	slices.SortFunc(out, compareUUID)
	return out
}

// TestParkIsolatesStream: under policy park (the default), an event that
// keeps failing is parked with its error, the later events of its stream
// wait behind it in order, every other stream keeps flowing, the status
// and report say so, and a retry applies the stream's parked events in
// order once the cause is gone.
func TestParkIsolatesStream(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 210) // streams t-0 … t-6, 30 events each
	log := e.logOf(t, onlyT())
	tail := streamOf(log, "t-3")
	poison := tail[10]
	var bad poisons
	bad.set(poison.ID, errors.New("the read model refuses this event"))
	p := &testProjection{name: "park.v1", filter: onlyT(), after: bad.check}
	run := start(t, e, p, parkOptions(""))

	e.appendN(t, "t", 70) // after the poison event: 10 more for each stream
	log = e.logOf(t, onlyT())
	tail = streamOf(log, "t-3")
	waitFor(t, within, "every other event applied, live", func() bool {
		return e.count(p.name) == len(log)-(len(tail)-10) && run.r.Status().State == projections.StateLive
	})
	sameIDs(t, "applied", sortedIDs(e.rows(t, p.name)), sortedIDs(ids(without(log, "t-3", poison.Version))))

	list := parkedList(t, e, p.name, "")
	if len(list) != len(tail)-10 {
		t.Fatalf("%d parked, want the poison event and the %d after it in its stream", len(list), len(tail)-11)
	}
	for i, pe := range list {
		want := tail[10+i]
		if pe.EventID != want.ID || pe.StreamID != "t-3" || pe.Version != want.Version || pe.Status != projections.ParkedStatusParked ||
			pe.Position != want.Position || pe.Type != want.Type {
			t.Fatalf("parked[%d] = %+v, want event %s version %d", i, pe, want.ID, want.Version)
		}
		if i == 0 && (!strings.Contains(pe.Error, "refuses this event") || pe.Attempts < 3) {
			t.Fatalf("the poison entry: error %q after %d attempts", pe.Error, pe.Attempts)
		}
		if i > 0 && (pe.Error != "" || pe.Attempts != 0) {
			t.Fatalf("entry %d waits behind the poison: error %q, attempts %d", i, pe.Error, pe.Attempts)
		}
	}
	st := run.r.Status()
	if st.Parked != int64(len(list)) || st.Failing != nil || st.LastError != "" || st.LagEvents != 0 || !st.LagExact {
		t.Fatalf("status %+v, want live with %d parked, no error, exact lag 0", st, len(list))
	}
	waitFor(t, within, "the report", func() bool {
		rep := report(t, e, p.name)
		return rep.Parked == int64(len(list)) && rep.Policy == projections.PolicyPark && rep.State == projections.StateLive
	})
	if cp := e.checkpoint(t, p.name); cp != log[len(log)-1].Position {
		t.Fatalf("checkpoint %s, want the end of the log %s: parked events are passed", cp, log[len(log)-1].Position)
	}

	// A retry while the cause is still there leaves everything parked,
	// with the new error.
	bad.set(poison.ID, errors.New("still refused"))
	if _, err := projections.RequestRetry(ctx, e.pool, p.name, list[3].EventID, "admin-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "the failed retry recorded", func() bool {
		l := parkedList(t, e, p.name, "")
		return len(l) == len(list) && strings.Contains(l[0].Error, "still refused") && l[0].Action == ""
	})

	bad.heal(poison.ID)
	pe, err := projections.RequestRetry(ctx, e.pool, p.name, poison.ID, "admin-1")
	if err != nil || pe.Action != projections.ActionRetry || pe.ActionBy != "admin-1" || pe.ActionRequestedAt.IsZero() {
		t.Fatalf("RequestRetry = %+v, %v", pe, err)
	}
	waitFor(t, within, "the stream applied", func() bool { return e.count(p.name) == len(log) })
	rows := e.rows(t, p.name)
	sameIDs(t, "the stream's events, in order, after the retry", rows[len(rows)-len(list):], ids(tail[10:]))
	if l := parkedList(t, e, p.name, ""); len(l) != 0 {
		t.Fatalf("parked list after the retry: %d entries", len(l))
	}
	waitFor(t, within, "no parked event in status and report", func() bool {
		return run.r.Status().Parked == 0 && report(t, e, p.name).Parked == 0
	})
	e.appendN(t, "t", 70)
	waitFor(t, within, "new events of the stream applied again", func() bool { return e.count(p.name) == len(log)+70 })
}

// TestSkipParked: only the first parked event of a stream can be skipped;
// skipping it records who and why, applies the stream's later events, and
// a rebuild skips it again.
func TestSkipParked(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 140)
	log := e.logOf(t, onlyT())
	tail := streamOf(log, "t-5")
	poison := tail[4]
	var bad poisons
	bad.set(poison.ID, errors.New("cannot apply"))
	p := &testProjection{name: "skip.v1", filter: onlyT(), after: bad.check}
	run := start(t, e, p, parkOptions(projections.PolicyPark))
	waitFor(t, within, "the stream parked", func() bool { return len(parkedList(t, e, p.name, "")) == len(tail)-4 })

	if _, err := projections.RequestSkip(ctx, e.pool, p.name, tail[6].ID, "admin-1", "not first"); !errorsAsNotFirst(err, poison.ID) {
		t.Fatalf("skip of an event behind the first: %v, want a NotFirstError naming %s", err, poison.ID)
	}
	if _, err := projections.RequestSkip(ctx, e.pool, p.name, poison.ID, "admin-1", " "); !errors.Is(err, projections.ErrInvalidReason) {
		t.Fatalf("skip without a reason: %v", err)
	}
	if _, err := projections.RequestRetry(ctx, e.pool, p.name, uuid.New(), "admin-1"); !errors.Is(err, projections.ErrNotParked) {
		t.Fatalf("retry of an unknown event: %v", err)
	}
	if _, err := projections.RequestSkip(ctx, e.pool, p.name, poison.ID, "admin-1", "bad data, fixed by hand"); err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(slices.Clone(log), func(ev eventstore.Event) bool { return ev.ID == poison.ID })
	waitFor(t, within, "every event but the skipped one applied", func() bool { return e.count(p.name) == len(want) })
	sameIDs(t, "applied", sortedIDs(e.rows(t, p.name)), sortedIDs(ids(want)))
	skipped := parkedList(t, e, p.name, projections.ParkedStatusSkipped)
	if len(skipped) != 1 || skipped[0].EventID != poison.ID || skipped[0].SkippedBy != "admin-1" ||
		skipped[0].SkipReason != "bad data, fixed by hand" || skipped[0].SkippedAt.IsZero() {
		t.Fatalf("skipped entries %+v", skipped)
	}
	if l := parkedList(t, e, p.name, projections.ParkedStatusParked); len(l) != 0 {
		t.Fatalf("%d still parked after the skip", len(l))
	}
	if _, err := projections.RequestRetry(ctx, e.pool, p.name, poison.ID, "admin-1"); !errors.Is(err, projections.ErrNotParked) {
		t.Fatalf("retry of a skipped event: %v, want ErrNotParked", err)
	}

	// A rebuild meets the event again and skips it again.
	if err := projections.RequestRebuild(ctx, e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rebuild swapped in", func() bool {
		rep := report(t, e, p.name)
		return !rep.RebuiltAt.IsZero() && rep.Rebuild == ""
	})
	sameIDs(t, "rebuilt", sortedIDs(e.rows(t, p.name)), sortedIDs(ids(want)))
	if l := parkedList(t, e, p.name, ""); len(l) != 1 || l[0].EventID != poison.ID || l[0].Status != projections.ParkedStatusSkipped ||
		l[0].SkippedBy != "admin-1" {
		t.Fatalf("parked list after the rebuild: %+v, want the skip kept", l)
	}
	if st := run.r.Status(); st.Parked != 0 {
		t.Fatalf("status after the rebuild: %+v", st)
	}
}

func errorsAsNotFirst(err error, first uuid.UUID) bool {
	var nf *projections.NotFirstError
	return errors.As(err, &nf) && nf.First == first
}

// TestRebuildParks: a rebuild whose shadow meets an event it cannot apply
// parks it (and its stream) in the shadow's list, finishes, reports what
// it parked, and its list replaces the live one.
func TestRebuildParks(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 140)
	log := e.logOf(t, onlyT())
	var bad poisons
	p := &testProjection{name: "rebuildpark.v1", filter: onlyT(), after: bad.check}
	start(t, e, p, parkOptions(""))
	waitFor(t, within, "140 rows", func() bool { return e.count(p.name) == 140 })

	tail := streamOf(log, "t-2")
	bad.set(tail[3].ID, errors.New("the new code cannot apply this"))
	if err := projections.RequestRebuild(ctx, e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rebuild swapped in", func() bool {
		rep := report(t, e, p.name)
		return !rep.RebuiltAt.IsZero() && rep.Rebuild == ""
	})
	rep := report(t, e, p.name)
	parked := int64(len(tail) - 3)
	if rep.RebuildParked != parked || rep.RebuildApplied != int64(140)-parked || rep.Parked != parked || rep.RebuildError != "" {
		t.Fatalf("report after the rebuild %+v, want %d parked", rep, parked)
	}
	if l := parkedList(t, e, p.name, ""); len(l) != int(parked) || l[0].EventID != tail[3].ID || !strings.Contains(l[0].Error, "cannot apply") {
		t.Fatalf("parked list after the rebuild: %+v", l)
	}
	sameIDs(t, "rebuilt", sortedIDs(e.rows(t, p.name)), sortedIDs(ids(without(log, "t-2", tail[3].Version))))
}

// TestHaltPolicy: under policy halt, the projection stops on the event,
// which its list shows as halted; nothing after it is applied; a skip gets
// it going again, recorded.
func TestHaltPolicy(t *testing.T) {
	e := newEnv(t, "memory")
	ctx := context.Background()
	e.appendN(t, "t", 100)
	log := e.logOf(t, onlyT())
	poison := log[60]
	var bad poisons
	bad.set(poison.ID, errors.New("refused"))
	p := &testProjection{name: "halt.v1", filter: onlyT(), after: bad.check}
	run := start(t, e, p, parkOptions(projections.PolicyHalt))
	waitFor(t, within, "halted, reported", func() bool {
		rep := report(t, e, p.name)
		return run.r.Status().State == projections.StateHalted && rep.State == projections.StateHalted &&
			strings.Contains(rep.LastError, poison.ID.String())
	})
	sameIDs(t, "applied before the halt", e.rows(t, p.name), ids(log[:60]))
	l := parkedList(t, e, p.name, "")
	if len(l) != 1 || l[0].EventID != poison.ID || l[0].Status != projections.ParkedStatusHalted || !strings.Contains(l[0].Error, "refused") {
		t.Fatalf("list while halted: %+v", l)
	}
	if _, err := projections.RequestSkip(ctx, e.pool, p.name, poison.ID, "admin-2", "known bad"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "the rest applied, live", func() bool {
		return e.count(p.name) == 99 && run.r.Status().State == projections.StateLive
	})
	l = parkedList(t, e, p.name, "")
	if len(l) != 1 || l[0].Status != projections.ParkedStatusSkipped || l[0].SkippedBy != "admin-2" || l[0].SkipReason != "known bad" {
		t.Fatalf("list after the skip: %+v", l)
	}
	if st := run.r.Status(); st.LastError != "" || st.Failing != nil {
		t.Fatalf("status after the skip %+v", st)
	}
}

// TestRebuildHalts: under policy halt a rebuild that meets an event it
// cannot apply is given up, the event named, instead of retrying forever;
// the live model serves on and a later rebuild can succeed.
func TestRebuildHalts(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 100)
	log := e.logOf(t, onlyT())
	var bad poisons
	p := &testProjection{name: "rebuildhalt.v1", filter: onlyT(), after: bad.check}
	start(t, e, p, parkOptions(projections.PolicyHalt))
	waitFor(t, within, "100 rows", func() bool { return e.count(p.name) == 100 })
	bad.set(log[42].ID, errors.New("refused by the rebuild"))
	if err := projections.RequestRebuild(ctx, e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rebuild given up", func() bool { return report(t, e, p.name).Rebuild == "failed" })
	rep := report(t, e, p.name)
	if !strings.Contains(rep.RebuildError, log[42].ID.String()) || !strings.Contains(rep.RebuildError, "refused by the rebuild") ||
		!rep.RebuiltAt.IsZero() {
		t.Fatalf("report %+v, want the rebuild's error naming event %s", rep, log[42].ID)
	}
	if n := e.count(p.name); n != 100 {
		t.Fatalf("%d rows in the live model after a failed rebuild, want 100", n)
	}
	bad.heal(log[42].ID)
	if err := projections.RequestRebuild(ctx, e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a second rebuild swapped in", func() bool {
		rep := report(t, e, p.name)
		return !rep.RebuiltAt.IsZero() && rep.Rebuild == "" && rep.RebuildError == ""
	})
}

// TestTransientFailuresNeverPark: a failure of the target (marked
// Transient, or a PostgreSQL connection failure) is retried for as long as
// it lasts, however many attempts, and never parks.
func TestTransientFailuresNeverPark(t *testing.T) {
	e := newEnv(t, "memory")
	e.appendN(t, "t", 50)
	log := e.logOf(t, onlyT())
	var bad poisons
	bad.set(log[20].ID, projections.Transient(errors.New("target unreachable")))
	p := &testProjection{name: "transient.v1", filter: onlyT(), after: bad.check}
	run := start(t, e, p, parkOptions(""))
	waitFor(t, within, "many attempts", func() bool {
		st := run.r.Status()
		return st.Failing != nil && st.Failing.Attempts >= 10 && st.State == projections.StateFailing
	})
	if l := parkedList(t, e, p.name, ""); len(l) != 0 {
		t.Fatalf("a transient failure parked %+v", l)
	}
	bad.heal(log[20].ID)
	waitFor(t, within, "all applied", func() bool { return e.count(p.name) == 50 })
	sameIDs(t, "applied", e.rows(t, p.name), ids(log))
}

// TestSystemicFailureStopsParking: when event after event fails, the
// failure is the model's: the runner parks no more than a few in a row and
// then retries instead, so fixing the model resumes without a mass repair.
func TestSystemicFailureStopsParking(t *testing.T) {
	e := newEnv(t, "memory")
	for i := range 100 { // a stream each
		if _, err := e.store.Append(context.Background(), fmt.Sprintf("t-%d", i), eventstore.NoStream,
			eventstore.EventData{Type: "test.happened", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	var broken sync.Map
	p := &testProjection{name: "systemic.v1", filter: onlyT(), after: func(_ context.Context, batch []eventstore.Event) error {
		if _, ok := broken.Load("yes"); ok {
			return errors.New("relation does not exist")
		}
		return nil
	}}
	broken.Store("yes", true)
	run := start(t, e, p, parkOptions(""))
	waitFor(t, within, "stuck, failing", func() bool {
		st := run.r.Status()
		return st.State == projections.StateFailing && st.Failing != nil && st.Failing.Attempts >= 6
	})
	l := parkedList(t, e, p.name, "")
	if len(l) == 0 || len(l) > 10 {
		t.Fatalf("%d parked: want some, at most 10", len(l))
	}
	broken.Delete("yes")
	waitFor(t, within, "the rest applied", func() bool { return e.count(p.name) == 100-len(l) })
}

// TestSinkParks: a sink parks like a projection; a retry applies the
// stream's events to it in order.
func TestSinkParks(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 70)
	log := e.logOf(t, onlyT())
	tail := streamOf(log, "t-1")
	var bad poisons
	bad.set(tail[2].ID, errors.New("the broker refuses it"))
	s := &orderedSink{name: "sinkpark.v1", check: bad.check}
	run := startRunner(t, projections.NewSinkRunner(e.pool, e.store, s, testOptions(parkOptions(""))))
	waitFor(t, within, "the others applied", func() bool {
		return s.count() == len(log)-(len(tail)-2) && run.r.Status().State == projections.StateLive
	})
	bad.heal(tail[2].ID)
	if _, err := projections.RequestRetry(ctx, e.pool, s.name, tail[2].ID, "admin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "all applied", func() bool { return s.count() == len(log) })
	if got := s.streamOrder("t-1"); !slices.Equal(got, versions(tail)) {
		t.Fatalf("t-1 applied in order %v, want %v", got, versions(tail))
	}
}

func versions(evs []eventstore.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Version
	}
	return out
}

// orderedSink records the order of each stream's events, and fails a
// batch check refuses.
type orderedSink struct {
	name  string
	check func(context.Context, []eventstore.Event) error
	mu    sync.Mutex
	order map[string][]int64
}

func (s *orderedSink) Name() string                { return s.name }
func (s *orderedSink) Filter() eventstore.Filter   { return onlyT() }
func (s *orderedSink) Setup(context.Context) error { return nil }
func (s *orderedSink) Apply(ctx context.Context, batch []eventstore.Event) error {
	if err := s.check(ctx, batch); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.order == nil {
		s.order = map[string][]int64{}
	}
	for _, e := range batch {
		if vs := s.order[e.StreamID]; len(vs) > 0 && vs[len(vs)-1] >= e.Version {
			return fmt.Errorf("%s: version %d after %d", e.StreamID, e.Version, vs[len(vs)-1])
		}
		s.order[e.StreamID] = append(s.order[e.StreamID], e.Version)
	}
	return nil
}

func (s *orderedSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, vs := range s.order {
		n += len(vs)
	}
	return n
}

func (s *orderedSink) streamOrder(stream string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order[stream])
}
