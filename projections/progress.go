package projections

import (
	"sync"

	"github.com/eventshop/eventshop/eventstore"
)

// Progress tells the readers of a process where the projections that
// process runs have committed, so that a read waiting for its model to
// reach a position (X-Min-Position) learns it from memory the moment the
// batch commits, instead of each waiting request reading the checkpoint
// from PostgreSQL over and over.
//
// A projection is known here only while a runner of this process is its
// active instance: the one holder of its lock is the only writer of its
// checkpoint, so what it committed last is the checkpoint. Anywhere else
// (another process holds the lock, or none does) Watch reports nothing and
// the reader asks the database. A runner forgets its projection before a
// swap moves the checkpoint and when it stops being the active instance.
//
// The zero value is not usable; a nil *Progress ignores everything.
type Progress struct {
	mu sync.Mutex
	m  map[string]*progressOf
}

type progressOf struct {
	known   bool
	pos     eventstore.Position
	changed chan struct{} // closed, and replaced, at each change
}

// NewProgress returns an empty Progress, to be shared by the runners
// (Options.Progress) and readers of one process.
func NewProgress() *Progress { return &Progress{m: map[string]*progressOf{}} }

// Watch returns where name's checkpoint is, when a runner of this process
// is its active instance (known), and a channel closed at the next change
// either way.
func (p *Progress) Watch(name string) (pos eventstore.Position, known bool, changed <-chan struct{}) {
	if p == nil {
		return eventstore.Position{}, false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.of(name)
	return o.pos, o.known, o.changed
}

// set records that name's checkpoint is at pos, committed by its active
// runner.
func (p *Progress) set(name string, pos eventstore.Position) { p.update(name, true, pos) }

// forget records that name's checkpoint is no longer known here.
func (p *Progress) forget(name string) { p.update(name, false, eventstore.Position{}) }

func (p *Progress) update(name string, known bool, pos eventstore.Position) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.of(name)
	if o.known == known && o.pos == pos {
		return
	}
	o.known, o.pos = known, pos
	close(o.changed)
	o.changed = make(chan struct{})
}

func (p *Progress) of(name string) *progressOf {
	o := p.m[name]
	if o == nil {
		o = &progressOf{changed: make(chan struct{})}
		p.m[name] = o
	}
	return o
}
