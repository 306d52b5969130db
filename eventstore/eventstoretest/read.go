package eventstoretest

import (
	"errors"
	"sync"
	"testing"

	"github.com/eventshop/eventshop/eventstore"
)

func versions(evs []eventstore.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Version
	}
	return out
}

func equalVersions(a []int64, b ...int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func testReadStream(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "r"
	for i := range 5 {
		MustAppend(t, s, stream, eventstore.Any, Ev("x.n", i))
	}
	for _, tc := range []struct {
		name  string
		dir   eventstore.Direction
		from  int64
		count int
		want  []int64
	}{
		{"backwards from end", eventstore.Backwards, eventstore.StreamEnd, 3, []int64{4, 3, 2}},
		{"backwards from 1", eventstore.Backwards, 1, 10, []int64{1, 0}},
		{"backwards from past end", eventstore.Backwards, 9, 2, []int64{4, 3}},
		{"forwards from 3", eventstore.Forwards, 3, 10, []int64{3, 4}},
		{"forwards count 2", eventstore.Forwards, 0, 2, []int64{0, 1}},
		{"forwards past end", eventstore.Forwards, 10, 10, []int64{}},
	} {
		got, err := s.ReadStream(Ctx(t), stream, tc.dir, tc.from, tc.count)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !equalVersions(versions(got), tc.want...) {
			t.Errorf("%s: versions %v, want %v", tc.name, versions(got), tc.want)
		}
		for _, e := range got {
			if N(t, e) != int(e.Version) {
				t.Errorf("%s: version %d carries data of event %d", tc.name, e.Version, N(t, e))
			}
		}
	}
	for _, dir := range []eventstore.Direction{eventstore.Forwards, eventstore.Backwards} {
		_, err := s.ReadStream(Ctx(t), Prefix(t)+"missing", dir, 0, 10)
		if !errors.Is(err, eventstore.ErrStreamNotFound) {
			t.Errorf("reading a missing stream (dir %d): %v, want ErrStreamNotFound", dir, err)
		}
	}
}

func testPaging(t *testing.T, s eventstore.Store) {
	stream := Prefix(t) + "big"
	const total, batch, page = 10_000, 500, 1_000
	for b := 0; b < total; b += batch {
		evs := make([]eventstore.EventData, batch)
		for i := range evs {
			evs[i] = Ev("x.bulk", b+i)
		}
		MustAppend(t, s, stream, eventstore.Exact(int64(b)-1), evs...)
	}
	fwd := ReadStreamAll(t, s, stream)
	if len(fwd) != total {
		t.Fatalf("read %d events forwards, want %d", len(fwd), total)
	}
	for i, e := range fwd {
		if e.Version != int64(i) || N(t, e) != i {
			t.Fatalf("forwards event %d has version %d and data %d", i, e.Version, N(t, e))
		}
	}
	next := int64(total - 1)
	from := eventstore.StreamEnd
	for next >= 0 {
		got, err := s.ReadStream(Ctx(t), stream, eventstore.Backwards, from, page)
		if err != nil {
			t.Fatalf("backwards from %d: %v", from, err)
		}
		if len(got) == 0 {
			t.Fatalf("backwards page from %d is empty with %d events left", from, next+1)
		}
		for _, e := range got {
			if e.Version != next {
				t.Fatalf("backwards: version %d, want %d", e.Version, next)
			}
			next--
		}
		from = next
	}
	all := ReadAllPrefix(t, s, Prefix0(stream), 777)
	sameIDs(t, "read all in pages of 777", all, fwd)
}

func testReadAllOrder(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	streams := []string{p + "a", p + "b", p + "c"}
	var want []eventstore.Event
	for i := range 30 {
		stream := streams[i%3]
		ev := Ev("x.seq", i)
		res := MustAppend(t, s, stream, eventstore.Any, ev)
		want = append(want, eventstore.Event{EventData: ev, StreamID: stream, Version: res.Version, Position: res.Position})
	}
	for _, page := range []int{1, 7, 1000} {
		got := ReadAllPrefix(t, s, p, page)
		sameIDs(t, "read all", got, want)
		for i, e := range got {
			if e.Position != want[i].Position || e.Version != want[i].Version || e.StreamID != want[i].StreamID {
				t.Fatalf("page %d: event %d at %s %s v%d, append said %s %s v%d", page, i,
					e.Position, e.StreamID, e.Version, want[i].Position, want[i].StreamID, want[i].Version)
			}
		}
	}
	// Reading from the middle gives exactly what follows.
	mid := want[14].Position
	var rest []eventstore.Event
	for pos := mid; ; {
		page, err := s.ReadAll(Ctx(t), pos, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.StreamID[:len(p)] == p {
				rest = append(rest, e)
			}
			pos = e.Position
		}
		if len(page) < 5 {
			break
		}
	}
	sameIDs(t, "read all from the middle", rest, want[15:])
}

func testReadAllConcurrent(t *testing.T, s eventstore.Store) {
	p := Prefix(t)
	const writers, each, size = 8, 15, 3
	var mu sync.Mutex
	results := map[eventstore.Position][]eventstore.EventData{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				evs := []eventstore.EventData{Ev("x.b", 0), Ev("x.b", 1), Ev("x.b", 2)}
				stream := p + string(rune('a'+(w+i)%4))
				res, err := s.Append(Ctx(t), stream, eventstore.Any, evs...)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				results[res.Position] = evs
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := ReadAllPrefix(t, s, p, 10)
	if len(got) != writers*each*size {
		t.Fatalf("read %d events, want %d", len(got), writers*each*size)
	}
	// Each append is contiguous in the global log and ends at the position
	// its result named.
	for i := 0; i < len(got); i += size {
		last := got[i+size-1]
		evs, ok := results[last.Position]
		if !ok {
			t.Fatalf("event at %s ends no append", last.Position)
		}
		for j := range size {
			if got[i+j].ID != evs[j].ID {
				t.Fatalf("append ending at %s is not contiguous in the global log", last.Position)
			}
		}
	}
}
