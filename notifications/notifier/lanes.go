package notifier

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// DefaultLanes is Config.Lanes' default. Under the shopper mix at 1,000
// arrivals/s on 2 CPUs, with the notifier in the same process as the API
// (README, Notifications), 2 lanes sent every mail 8-14 s after the load
// instead of 24-36 s with one, and 8 lanes 1-11 s, but then the API,
// short of the CPU the lanes took, refused 0.3-8.3% of its requests
// instead of 0.1-1.4%. A notifier in a process of its own can take more.
const DefaultLanes = 2

// DefaultBatch is Config.Batch's default. Behind a backlog on the 2-core
// machine (make bench), batches of 16 took the notifier from about 950
// mails/s, one message at a time, to the figures in README.
const DefaultBatch = 16

// commitEvery is how often, at most, the handled messages are committed.
const commitEvery = 100 * time.Millisecond

// flushTimeout bounds the last commit of what was handled, once Run is
// stopping.
const flushTimeout = 5 * time.Second

// partition names a topic's partition.
type partition struct {
	topic string
	n     int
}

// inFlight is a message fetched and not yet committed.
type inFlight struct {
	m    kafka.Message
	done bool
}

// progress keeps, per partition, the messages fetched and not committed
// yet, in fetch (offset) order, so that a commit never passes a message
// still being handled: messages are handled in several lanes at once, and
// a later one can be done before an earlier one.
type progress struct {
	mu    sync.Mutex
	queue map[partition][]*inFlight
	ready map[partition]kafka.Message // the last message of each partition with every message before it handled
}

func newProgress() *progress {
	return &progress{queue: map[partition][]*inFlight{}, ready: map[partition]kafka.Message{}}
}

// fetched records m, before it is handed to a lane.
func (p *progress) fetched(m kafka.Message) *inFlight {
	f := &inFlight{m: m}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := partition{m.Topic, m.Partition}
	p.queue[k] = append(p.queue[k], f)
	return f
}

// handled marks f handled and moves its partition's committable message
// on past every handled message at the front.
func (p *progress) handled(f *inFlight) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f.done = true
	k := partition{f.m.Topic, f.m.Partition}
	q := p.queue[k]
	i := 0
	for i < len(q) && q[i].done {
		p.ready[k] = q[i].m
		i++
	}
	p.queue[k] = q[i:]
}

// take returns the committable messages and forgets them.
func (p *progress) take() []kafka.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]kafka.Message, 0, len(p.ready))
	for k, m := range p.ready {
		out = append(out, m)
		delete(p.ready, k)
	}
	return out
}

// lane is the lane of m: the same for every message with m's key (an
// aggregate's events, kept in order), or of m's partition when it has
// none.
func lane(seed maphash.Seed, m kafka.Message, lanes int) int {
	var h maphash.Hash
	h.SetSeed(seed)
	if len(m.Key) > 0 {
		h.Write(m.Key)
	} else {
		h.WriteString(m.Topic)
		h.WriteByte(byte(m.Partition))
	}
	return int(h.Sum64() % uint64(lanes))
}
