package eventstoretest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/eventshop/eventshop/eventstore"
)

// multi is the store's atomic multi-stream append; the suite runs the
// MultiStream cases only for stores that declare it.
func multi(t *testing.T, s eventstore.Store) eventstore.MultiAppender {
	t.Helper()
	m, ok := s.(eventstore.MultiAppender)
	if !ok {
		t.Fatalf("%T declares MultiStream but is no eventstore.MultiAppender", s)
	}
	return m
}

// testAppendMulti: the parts land together, in the order given, with each
// stream's versions; a retry writes nothing and answers the same.
func testAppendMulti(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	old, other, fresh := p+"old", p+"other", p+"fresh"
	MustAppend(t, s, old, eventstore.NoStream, Ev("x.a", 0), Ev("x.b", 1))
	MustAppend(t, s, other, eventstore.NoStream, Ev("x.a", 0))
	parts := []eventstore.StreamAppend{
		{Stream: old, Expected: eventstore.Exact(1), Events: []eventstore.EventData{Ev("x.multi", 10)}},
		{Stream: fresh, Expected: eventstore.NoStream, Events: []eventstore.EventData{Ev("x.multi", 20), Ev("x.multi", 21)}},
		{Stream: other, Expected: eventstore.Any, Events: []eventstore.EventData{Ev("x.multi", 30)}},
	}
	res, err := multi(t, s).AppendMulti(Ctx(t), parts...)
	if err != nil {
		t.Fatalf("append multi: %v", err)
	}
	if len(res) != 3 || res[0].Version != 2 || res[1].Version != 1 || res[2].Version != 1 {
		t.Fatalf("results %+v, want versions 2, 1, 1", res)
	}
	all := ReadAllPrefix(t, s, p, 100)
	var got []string
	for _, e := range all[3:] {
		got = append(got, fmt.Sprintf("%s@%d:%d", strings.TrimPrefix(e.StreamID, p), e.Version, N(t, e)))
	}
	if want := "[old@2:10 fresh@0:20 fresh@1:21 other@1:30]"; fmt.Sprint(got) != want {
		t.Fatalf("the log after the three older events: %v, want %s", got, want)
	}
	for k, e := range []eventstore.Event{all[3], all[5], all[6]} {
		if res[k].Position != e.Position {
			t.Errorf("part %d: result position %s, want its last event's %s", k, res[k].Position, e.Position)
		}
	}
	again, err := multi(t, s).AppendMulti(Ctx(t), parts...)
	if err != nil || fmt.Sprint(again) != fmt.Sprint(res) {
		t.Fatalf("retry: %+v, %v; want the first results %+v", again, err, res)
	}
	if n := len(ReadAllPrefix(t, s, p, 100)); n != len(all) {
		t.Fatalf("the retry wrote: %d events, want %d", n, len(all))
	}
}

// testAppendMultiAllOrNothing: one part whose condition fails, or whose
// input is bad, writes no part.
func testAppendMultiAllOrNothing(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	a, b := p+"a", p+"b"
	MustAppend(t, s, a, eventstore.NoStream, Ev("x.a", 0))
	MustAppend(t, s, b, eventstore.NoStream, Ev("x.a", 0), Ev("x.b", 1))
	before := len(ReadAllPrefix(t, s, p, 100))
	part := func(stream string, exp eventstore.ExpectedVersion, n int) eventstore.StreamAppend {
		evs := make([]eventstore.EventData, n)
		for i := range evs {
			evs[i] = Ev("x.multi", i)
		}
		return eventstore.StreamAppend{Stream: stream, Expected: exp, Events: evs}
	}
	_, err := multi(t, s).AppendMulti(Ctx(t), part(a, eventstore.Exact(0), 1), part(p+"new", eventstore.NoStream, 1), part(b, eventstore.Exact(0), 1))
	var wev *eventstore.WrongExpectedVersionError
	if !errors.As(err, &wev) || wev.Stream != b || wev.Actual != 1 {
		t.Fatalf("append with the last part's condition failing: %v, want a wrong expected version naming %s at 1", err, b)
	}
	half := eventstore.MaxAppendEvents/2 + 1
	for name, parts := range map[string][]eventstore.StreamAppend{
		"no parts":              nil,
		"a stream twice":        {part(a, eventstore.Any, 1), part(a, eventstore.Any, 1)},
		"a part without events": {part(a, eventstore.Any, 1), part(b, eventstore.Any, 0)},
		"a bad stream name":     {part(a, eventstore.Any, 1), part("has space", eventstore.Any, 1)},
		"too many events":       {part(a, eventstore.Any, half), part(b, eventstore.Any, half)},
	} {
		if _, err := multi(t, s).AppendMulti(Ctx(t), parts...); !errors.Is(err, eventstore.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	dup := part(b, eventstore.Any, 1)
	dup.Events[0].ID = Ev("x", 0).ID
	first := part(a, eventstore.Any, 1)
	first.Events[0].ID = dup.Events[0].ID
	if _, err := multi(t, s).AppendMulti(Ctx(t), first, dup); !errors.Is(err, eventstore.ErrInvalidArgument) {
		t.Errorf("one event id in two parts: %v, want ErrInvalidArgument", err)
	}
	if n := len(ReadAllPrefix(t, s, p, 100)); n != before {
		t.Fatalf("%d events after the refused appends, want %d: a part was written", n, before)
	}
}

// testAppendMultiConcurrent: writers race for one shared stream, each
// with a stream of its own in the same append. Every winner's two parts
// are both there, and no loser left either.
func testAppendMultiConcurrent(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	shared := p + "shared"
	MustAppend(t, s, shared, eventstore.NoStream, Ev("x.first", -1))
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for try := 0; ; try++ {
				evs := ReadStreamAll(t, s, shared)
				last := evs[len(evs)-1].Version
				_, err := multi(t, s).AppendMulti(Ctx(t),
					eventstore.StreamAppend{Stream: shared, Expected: eventstore.Exact(last), Events: []eventstore.EventData{Ev("x.claim", w*100+try)}},
					eventstore.StreamAppend{Stream: fmt.Sprintf("%sown%d", p, w), Expected: eventstore.Any, Events: []eventstore.EventData{Ev("x.own", w*100+try)}})
				if err == nil {
					return
				}
				if !errors.Is(err, eventstore.ErrWrongExpectedVersion) {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	claims := map[int]bool{}
	for i, e := range ReadStreamAll(t, s, shared) {
		if e.Version != int64(i) {
			t.Fatalf("shared event %d has version %d", i, e.Version)
		}
		if i > 0 {
			claims[N(t, e)] = true
		}
	}
	if len(claims) != writers {
		t.Fatalf("%d claims on the shared stream, want %d", len(claims), writers)
	}
	for w := range writers {
		own := ReadStreamAll(t, s, fmt.Sprintf("%sown%d", p, w))
		if len(own) != 1 || !claims[N(t, own[0])] {
			t.Errorf("writer %d's own stream %d events, want exactly the one written with its claim", w, len(own))
		}
	}
}
