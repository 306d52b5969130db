package notifier

import (
	"hash/maphash"
	"testing"

	"github.com/segmentio/kafka-go"
)

// TestProgressNeverPassesAnUnhandledMessage: a partition's commit moves
// only past messages that are handled, and every message before them; a
// later one done first waits for the earlier.
func TestProgressNeverPassesAnUnhandledMessage(t *testing.T) {
	p := newProgress()
	var a [4]*inFlight
	for i := range a {
		a[i] = p.fetched(kafka.Message{Topic: "t", Partition: 0, Offset: int64(10 + i)})
	}
	other := p.fetched(kafka.Message{Topic: "t", Partition: 1, Offset: 7})
	p.handled(a[1])
	p.handled(a[3])
	if got := p.take(); len(got) != 0 {
		t.Fatalf("committable %v while offset 10 is being handled, want nothing", got)
	}
	p.handled(a[0])
	if got := p.take(); len(got) != 1 || got[0].Offset != 11 {
		t.Fatalf("committable %v, want offset 11 (12 is still being handled)", got)
	}
	p.handled(other)
	p.handled(a[2])
	got := map[int]int64{}
	for _, m := range p.take() {
		got[m.Partition] = m.Offset
	}
	if len(got) != 2 || got[0] != 13 || got[1] != 7 {
		t.Fatalf("committable %v, want partition 0 at 13 and 1 at 7", got)
	}
	if got := p.take(); len(got) != 0 {
		t.Fatalf("taken twice: %v", got)
	}
}

// TestLaneFollowsTheKey: one key's messages share a lane whatever their
// partition; keyless ones share their partition's.
func TestLaneFollowsTheKey(t *testing.T) {
	seed := maphash.MakeSeed()
	used := map[int]bool{}
	for i := range 64 {
		key := []byte{byte(i)}
		l := lane(seed, kafka.Message{Key: key, Topic: "a", Partition: 0}, 8)
		if lane(seed, kafka.Message{Key: key, Topic: "b", Partition: 2}, 8) != l {
			t.Fatalf("key %d: two lanes", i)
		}
		used[l] = true
	}
	if len(used) < 4 {
		t.Errorf("64 keys in %d of 8 lanes", len(used))
	}
	if lane(seed, kafka.Message{Topic: "a", Partition: 1, Offset: 1}, 8) != lane(seed, kafka.Message{Topic: "a", Partition: 1, Offset: 9}, 8) {
		t.Error("keyless messages of one partition in two lanes")
	}
}
