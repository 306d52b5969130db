package projections_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// report returns the stored report of name.
func report(t *testing.T, e *env, name string) projections.Report {
	t.Helper()
	reps, err := projections.Reports(context.Background(), e.pool, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	return reps[0]
}

// TestRebuildSwapsShadow: a rebuild requested while the projection serves
// and events keep coming builds a shadow table from the log and swaps it
// in; readers of the live table never see fewer rows than before (never a
// half-built table), and the result is exactly the log.
func TestRebuildSwapsShadow(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 3000)
	p := &testProjection{name: "rebuilt.v1", filter: onlyT()}
	run := start(t, e, p, projections.Options{BatchSize: 200})
	waitFor(t, within, "3,000 rows", func() bool { return e.count(p.name) == 3000 })
	waitFor(t, within, "a live report", func() bool { return report(t, e, p.name).State == projections.StateLive })
	if rep := report(t, e, p.name); rep.Position != e.checkpoint(t, p.name) || rep.Rebuild != "" {
		t.Fatalf("report %+v, checkpoint %s", rep, e.checkpoint(t, p.name))
	}

	// Damage the live model, so that only a rebuild can mend it.
	if _, err := e.pool.Exec(ctx, "DELETE FROM "+tableOf(p.name)+" WHERE seq % 10 = 0"); err != nil {
		t.Fatal(err)
	}
	damaged := e.count(p.name)

	// A reader watches the live table throughout.
	stopReader := make(chan struct{})
	var readerErr atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		last := damaged
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			n := e.count(p.name)
			if n < last {
				readerErr.Store(errors.New("a reader saw the table shrink: a half-built model"))
				return
			}
			last = n
		}
	})
	if err := projections.RequestRebuild(ctx, e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	if rep := report(t, e, p.name); rep.Rebuild == "" {
		t.Fatalf("report right after the request: %+v", rep)
	}
	e.appendN(t, "t", 500) // traffic during the rebuild
	waitFor(t, 30*time.Second, "the rebuild to be swapped in", func() bool {
		rep := report(t, e, p.name)
		return !rep.RebuiltAt.IsZero() && rep.Rebuild == ""
	})
	e.appendN(t, "t", 100) // and after it
	waitFor(t, within, "3,600 rows", func() bool { return e.count(p.name) == 3600 })
	close(stopReader)
	wg.Wait()
	if err, _ := readerErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	got := e.rows(t, p.name)
	want := ids(e.logOf(t, onlyT()))
	slices.SortFunc(got, func(a, b uuid.UUID) int { return compareUUID(a, b) })
	slices.SortFunc(want, func(a, b uuid.UUID) int { return compareUUID(a, b) })
	sameIDs(t, "rebuilt model", got, want)
	var shadows int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%rebuild%'").Scan(&shadows); err != nil || shadows != 0 {
		t.Fatalf("%d shadow schemas left (%v)", shadows, err)
	}
	if st := run.r.Status(); st.Rebuild != nil || st.Failing != nil {
		t.Fatalf("status after the rebuild: %+v", st)
	}
}

func compareUUID(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) }

// memSink is a Rebuildable sink in memory: a map of event id to stream
// version per generation, idempotent by event id.
type memSink struct {
	name    string
	mu      sync.Mutex
	live    map[uuid.UUID]int64
	shadow  map[uuid.UUID]int64
	applies atomic.Int64 // events applied, duplicates included
	failAt  atomic.Int64 // applies count at which Apply fails once after writing (a crash before the checkpoint)
	swaps   atomic.Int64
}

type memShadow struct{ s *memSink }

func (s *memSink) Name() string              { return s.name }
func (s *memSink) Filter() eventstore.Filter { return onlyT() }
func (s *memSink) Setup(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live == nil {
		s.live = map[uuid.UUID]int64{}
	}
	return nil
}
func (s *memSink) Apply(_ context.Context, batch []eventstore.Event) error {
	s.mu.Lock()
	for _, e := range batch {
		s.live[e.ID] = e.Version
	}
	s.mu.Unlock()
	n := s.applies.Add(int64(len(batch)))
	if f := s.failAt.Load(); f > 0 && n >= f {
		s.failAt.Store(0)
		return errors.New("the process died before the checkpoint")
	}
	return nil
}
func (s *memSink) Shadow(context.Context) (projections.Sink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shadow = map[uuid.UUID]int64{}
	return memShadow{s}, nil
}
func (s *memSink) Swap(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live, s.shadow = s.shadow, nil
	s.swaps.Add(1)
	return nil
}
func (s *memSink) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

func (m memShadow) Name() string                { return m.s.name }
func (m memShadow) Filter() eventstore.Filter   { return onlyT() }
func (m memShadow) Setup(context.Context) error { return nil }
func (m memShadow) Apply(_ context.Context, batch []eventstore.Event) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for _, e := range batch {
		m.s.shadow[e.ID] = e.Version
	}
	return nil
}

// TestSinkRunner: a sink gets every event; a batch that failed after it
// was written is applied again (the crash window between a sink's write
// and the checkpoint), so the sink ends with the log exactly; a rebuild
// fills a shadow and swaps it in.
func TestSinkRunner(t *testing.T) {
	e := newEnv(t, "postgres")
	e.appendN(t, "t", 1000)
	s := &memSink{name: "sink.v1"}
	s.failAt.Store(450)
	opts := testOptions(projections.Options{BatchSize: 100, RetryMin: 10 * time.Millisecond})
	// Batch by batch first: a sink that cannot rebuild.
	first := startRunner(t, projections.NewSinkRunner(e.pool, e.store, plainSink{s}, opts))
	waitFor(t, within, "1,000 events in the sink", func() bool { return s.size() == 1000 && first.r.Status().State == projections.StateLive })
	if n := s.applies.Load(); n <= 1000 {
		t.Fatalf("%d events applied, want more than 1,000: the failed batch is applied again", n)
	}
	log := e.logOf(t, onlyT())
	if got := e.checkpoint(t, s.name); got != log[len(log)-1].Position {
		t.Fatalf("checkpoint %s, want %s", got, log[len(log)-1].Position)
	}
	first.stop(t)
	startRunner(t, projections.NewSinkRunner(e.pool, e.store, s, opts))

	s.mu.Lock()
	for id := range s.live {
		delete(s.live, id) // the target lost everything
		break
	}
	s.mu.Unlock()
	if err := projections.RequestRebuild(context.Background(), e.pool, s.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rebuilt sink", func() bool { return s.swaps.Load() == 1 && report(t, e, s.name).Rebuild == "" })
	e.appendN(t, "t", 10)
	waitFor(t, within, "1,010 events in the sink", func() bool { return s.size() == 1010 })
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range e.logOf(t, onlyT()) {
		if v, ok := s.live[ev.ID]; !ok || v != ev.Version {
			t.Fatalf("event %s: in sink %v (version %d), want version %d", ev.ID, ok, v, ev.Version)
		}
	}
}

// plainSink is a sink without Rebuildable.
type plainSink struct{ s *memSink }

func (p plainSink) Name() string                    { return p.s.Name() }
func (p plainSink) Filter() eventstore.Filter       { return p.s.Filter() }
func (p plainSink) Setup(ctx context.Context) error { return p.s.Setup(ctx) }
func (p plainSink) Apply(ctx context.Context, batch []eventstore.Event) error {
	return p.s.Apply(ctx, batch)
}

// TestSinkStartsInBulk: a Rebuildable sink starting from nothing is built
// as a rebuild, in bulk, not batch by batch, and then follows the log.
func TestSinkStartsInBulk(t *testing.T) {
	e := newEnv(t, "postgres")
	e.appendN(t, "t", 1000)
	s := &memSink{name: "bulk.v1"}
	run := startRunner(t, projections.NewSinkRunner(e.pool, e.store, s, testOptions(projections.Options{BatchSize: 100})))
	waitFor(t, within, "the sink built", func() bool { return s.swaps.Load() == 1 && s.size() == 1000 })
	if n := s.applies.Load(); n != 0 {
		t.Fatalf("%d events applied batch by batch, want 0: the sink is built as a shadow", n)
	}
	e.appendN(t, "t", 10)
	waitFor(t, within, "1,010 events in the sink", func() bool { return s.size() == 1010 && run.r.Status().State == projections.StateLive })
	log := e.logOf(t, onlyT())
	if got := e.checkpoint(t, s.name); got != log[len(log)-1].Position {
		t.Fatalf("checkpoint %s, want %s", got, log[len(log)-1].Position)
	}
}

// TestRebuildReplacesStuckModel: a live model stuck on an event it cannot
// apply (a damaged table) is replaced by a rebuild, whose shadow applies
// the event: the swap does not wait for the stuck event to pass.
func TestRebuildReplacesStuckModel(t *testing.T) {
	e := newEnv(t, "postgres")
	ctx := context.Background()
	e.appendN(t, "t", 100)
	p := &testProjection{name: "stuck.v1", filter: onlyT()}
	var poison atomic.Value
	p.afterTx = func(ctx context.Context, tx pgx.Tx, batch []eventstore.Event) error {
		id, _ := poison.Load().(uuid.UUID)
		for _, ev := range batch {
			if ev.ID != id {
				continue
			}
			var path string
			if err := tx.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&path); err != nil {
				return err
			}
			if !strings.Contains(path, "rebuild") { // only the live table is damaged
				return errors.New("the live table refuses this event")
			}
		}
		return nil
	}
	run := start(t, e, p, projections.Options{BatchSize: 50, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	waitFor(t, within, "100 rows", func() bool { return e.count(p.name) == 100 })
	poisonID := uuid.New()
	poison.Store(poisonID)
	if _, err := e.store.Append(ctx, "t-poison", eventstore.Any, eventstore.EventData{ID: poisonID, Type: "test.happened", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, within, "the live model to be stuck", func() bool { return run.r.Status().Failing != nil })
	if err := projections.RequestRebuild(ctx, e.pool, p.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the rebuild to replace the stuck model", func() bool {
		rep := report(t, e, p.name)
		return !rep.RebuiltAt.IsZero() && rep.Rebuild == "" && e.count(p.name) == 101 && run.r.Status().Failing == nil
	})
	e.appendN(t, "t", 10)
	waitFor(t, within, "111 rows", func() bool { return e.count(p.name) == 111 })
}
