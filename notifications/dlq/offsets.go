package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// errNoTopic: the brokers' metadata did not mention a topic asked for.
var errNoTopic = errors.New("not in the metadata")

// snapshot returns, for each partition of the dead-letter topic that has
// dead letters the group has not committed, its end offset now: the
// offset after its last dead letter. It checks that the retry topic
// exists, so that nothing is requeued when nothing could be published.
func (r *replayer) snapshot(ctx context.Context) (map[int]int64, error) {
	md, err := r.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{r.cfg.DLQTopic, r.cfg.RetryTopic}})
	if err != nil {
		return nil, fmt.Errorf("dlq: metadata of %s and %s: %w", r.cfg.DLQTopic, r.cfg.RetryTopic, err)
	}
	topics := map[string]kafka.Topic{}
	for _, t := range md.Topics {
		topics[t.Name] = t
	}
	dl, ok := topics[r.cfg.DLQTopic]
	switch {
	case !ok || errors.Is(dl.Error, kafka.UnknownTopicOrPartition):
		r.log.InfoContext(ctx, "dlq: no dead-letter topic, nothing to replay")
		return nil, nil
	case dl.Error != nil:
		return nil, fmt.Errorf("dlq: topic %s: %w", r.cfg.DLQTopic, dl.Error)
	}
	if rt, ok := topics[r.cfg.RetryTopic]; !ok || rt.Error != nil {
		return nil, fmt.Errorf("dlq: retry topic %s (the notifier creates it): %w", r.cfg.RetryTopic, cmp.Or(rt.Error, errNoTopic))
	}
	var parts []int
	for _, p := range dl.Partitions {
		parts = append(parts, p.ID)
	}
	first, err := r.offsets(ctx, parts, kafka.FirstOffsetOf)
	if err != nil {
		return nil, err
	}
	last, err := r.offsets(ctx, parts, kafka.LastOffsetOf)
	if err != nil {
		return nil, err
	}
	committed, err := r.committed(ctx, parts)
	if err != nil {
		return nil, err
	}
	ends := map[int]int64{}
	for _, p := range parts {
		// No commit: from the first offset; a commit below it (the dead
		// letters after it were deleted by retention): from the first too.
		if start := max(committed[p], first[p]); start < last[p] {
			ends[p] = last[p]
		}
	}
	r.log.InfoContext(ctx, "dlq: dead letters to replay", "partitions", len(ends), "ends", ends)
	return ends, nil
}

// offsets asks for the first or last offset (by which) of parts.
func (r *replayer) offsets(ctx context.Context, parts []int, which func(int) kafka.OffsetRequest) (map[int]int64, error) {
	req := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		req[i] = which(p)
	}
	resp, err := r.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{r.cfg.DLQTopic: req}})
	if err != nil {
		return nil, fmt.Errorf("dlq: offsets of %s: %w", r.cfg.DLQTopic, err)
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[r.cfg.DLQTopic] {
		if po.Error != nil {
			return nil, fmt.Errorf("dlq: offsets of %s/%d: %w", r.cfg.DLQTopic, po.Partition, po.Error)
		}
		out[po.Partition] = max(po.FirstOffset, po.LastOffset) // the one not asked for is -1
	}
	if len(out) != len(parts) {
		return nil, fmt.Errorf("dlq: offsets of %s: %d of %d partitions answered", r.cfg.DLQTopic, len(out), len(parts))
	}
	return out, nil
}

// committed returns the group's committed offsets of parts; -1 where it
// committed none.
func (r *replayer) committed(ctx context.Context, parts []int) (map[int]int64, error) {
	out := make(map[int]int64, len(parts))
	for _, p := range parts {
		out[p] = -1
	}
	resp, err := r.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: r.cfg.GroupID,
		Topics: map[string][]int{r.cfg.DLQTopic: parts}})
	if err == nil && !errors.Is(resp.Error, kafka.GroupIdNotFound) { // a group never seen has committed nothing
		err = resp.Error
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: committed offsets of group %s on %s: %w", r.cfg.GroupID, r.cfg.DLQTopic, err)
	}
	for _, po := range resp.Topics[r.cfg.DLQTopic] {
		if po.Error != nil {
			return nil, fmt.Errorf("dlq: committed offset of group %s on %s/%d: %w", r.cfg.GroupID, r.cfg.DLQTopic, po.Partition, po.Error)
		}
		out[po.Partition] = po.CommittedOffset
	}
	return out, nil
}

// dropCommitted forgets the partitions of ends the group has committed up
// to their end.
func (r *replayer) dropCommitted(ctx context.Context, ends map[int]int64) error {
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	committed, err := r.committed(ctx, parts)
	if err != nil {
		return err
	}
	for p, end := range ends {
		if committed[p] >= end {
			delete(ends, p)
		}
	}
	return nil
}
