package projections_test

import (
	"testing"
	"time"

	"github.com/eventshop/eventshop/projections"
)

// TestProgressFollowsTheActiveRunner: the runner that holds a projection's
// lock tells Progress each checkpoint it commits, so that it always equals
// the checkpoint in the database once a batch is in, and another waiting
// runner of the same projection tells it nothing; when the active runner
// stops, the projection is no longer known, and the runner that takes over
// makes it known again.
func TestProgressFollowsTheActiveRunner(t *testing.T) {
	e := newEnv(t, "postgres")
	p := &testProjection{name: "progress.v1", filter: onlyT()}
	ours, theirs := projections.NewProgress(), projections.NewProgress()
	first := start(t, e, p, projections.Options{Progress: ours})
	waitFor(t, within, "the first runner to be the active instance", func() bool {
		_, known, _ := ours.Watch(p.name)
		return known
	})
	second := start(t, e, p, projections.Options{Progress: theirs})

	_, _, changed := ours.Watch(p.name)
	e.appendN(t, "t", 300)
	e.appendN(t, "other", 20)
	select {
	case <-changed: // a commit woke the watchers
	case <-time.After(within):
		t.Fatal("no commit woke the watchers")
	}
	waitFor(t, within, "300 rows", func() bool { return e.count(p.name) == 300 })
	waitFor(t, within, "Progress at the checkpoint", func() bool {
		pos, known, _ := ours.Watch(p.name)
		return known && pos == e.checkpoint(t, p.name)
	})
	if _, known, _ := theirs.Watch(p.name); known {
		t.Fatal("a runner waiting for the lock told its Progress a checkpoint")
	}

	first.stop(t)
	if _, known, _ := ours.Watch(p.name); known {
		t.Fatal("the projection is still known after its runner stopped")
	}
	e.appendN(t, "t", 10)
	waitFor(t, within, "the second runner to take over and apply", func() bool {
		pos, known, _ := theirs.Watch(p.name)
		return known && e.count(p.name) == 310 && pos == e.checkpoint(t, p.name)
	})
	second.stop(t)
}
