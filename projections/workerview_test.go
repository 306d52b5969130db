package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/eventshop/eventshop/eventstore"
	"github.com/eventshop/eventshop/projections"
)

// TestWorkerView: a view is saved and loaded whole, moves only from the
// position it is at (a second instance holding an older one is refused,
// and writes nothing), and Reset drops it.
func TestWorkerView(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "memory")
	v := projections.WorkerView{Pool: e.pool, Worker: "worker-a"}
	other := projections.WorkerView{Pool: e.pool, Worker: "worker-b"}
	load := func(v projections.WorkerView) (eventstore.Position, map[string]string) {
		t.Helper()
		at, entries, err := v.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, d := range entries {
			var s string
			if err := json.Unmarshal(d, &s); err != nil {
				t.Fatalf("entry %s: %s: %v", k, d, err)
			}
			out[k] = s
		}
		return at, out
	}
	raw := func(kv ...string) map[string]json.RawMessage {
		m := map[string]json.RawMessage{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]], _ = json.Marshal(kv[i+1])
		}
		return m
	}

	if at, entries := load(v); at != eventstore.Start || len(entries) != 0 {
		t.Fatalf("a new view: %+v %v", at, entries)
	}
	p1, p2, p3 := eventstore.Position{Commit: 10, Prepare: 1}, eventstore.Position{Commit: 20, Prepare: 2}, eventstore.Position{Commit: 30, Prepare: 3}
	if err := v.Save(ctx, eventstore.Start, p1, raw("a", "1", "b", "1", "c", "1"), nil); err != nil {
		t.Fatal(err)
	}
	if err := other.Save(ctx, eventstore.Start, p3, raw("a", "other"), nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Save(ctx, p1, p2, raw("b", "2", "d", "2"), []string{"c", "gone-already"}); err != nil {
		t.Fatal(err)
	}
	at, entries := load(v)
	if want := map[string]string{"a": "1", "b": "2", "d": "2"}; at != p2 || !maps.Equal(entries, want) {
		t.Fatalf("after two saves: %+v %v, want %+v %v", at, entries, p2, want)
	}

	// An instance that loaded at p1 is behind: refused, nothing written.
	for _, from := range []eventstore.Position{p1, eventstore.Start} {
		if err := v.Save(ctx, from, p3, raw("a", "stale"), []string{"b"}); !errors.Is(err, projections.ErrViewMoved) {
			t.Fatalf("save from %+v: %v, want ErrViewMoved", from, err)
		}
	}
	if at2, entries2 := load(v); at2 != p2 || !maps.Equal(entries2, entries) {
		t.Fatalf("after refused saves: %+v %v", at2, entries2)
	}

	if err := v.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if at, entries := load(v); at != eventstore.Start || len(entries) != 0 {
		t.Fatalf("after reset: %+v %v", at, entries)
	}
	if at, entries := load(other); at != p3 || !slices.Equal(slices.Collect(maps.Keys(entries)), []string{"a"}) {
		t.Fatalf("another worker's view after the reset: %+v %v", at, entries)
	}
}
