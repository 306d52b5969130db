// Package kafkalag measures how far a Kafka consumer group is behind on its
// topics, partition by partition, from the brokers' end offsets and the
// group's committed offsets.
package kafkalag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/segmentio/kafka-go"
)

// Partition is a group's lag on one partition.
type Partition struct {
	Topic     string
	Partition int
	// Lag is how many messages follow the group's committed offset, or,
	// where the group committed none (or one the log no longer holds),
	// the partition's first offset: what a consumer that starts at the
	// first offset has still to read.
	Lag int64
}

// Group returns group's lag on each partition of topics, ordered by topic
// and partition. A topic that does not exist yet has no partitions and is
// left out. Errors: the client's, and a broker's answer for a partition.
func Group(ctx context.Context, client *kafka.Client, group string, topics []string) ([]Partition, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafkalag: metadata: %w", err)
	}
	parts := map[string][]int{}
	ends := map[string][]kafka.OffsetRequest{}
	for _, t := range md.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("kafkalag: metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			ends[t.Name] = append(ends[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return nil, fmt.Errorf("kafkalag: end offsets: %w", err)
	}
	done, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err == nil {
		err = done.Error
	}
	switch {
	case errors.Is(err, kafka.GroupIdNotFound):
		// A group that never formed has committed nothing (Kafka
		// answers so with offsets of -1, some brokers with this error).
		done = &kafka.OffsetFetchResponse{}
	case err != nil:
		return nil, fmt.Errorf("kafkalag: offsets of group %s: %w", group, err)
	}
	committed := map[string]map[int]int64{}
	for topic, ps := range done.Topics {
		committed[topic] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("kafkalag: offset of group %s on %s/%d: %w", group, topic, p.Partition, p.Error)
			}
			committed[topic][p.Partition] = p.CommittedOffset
		}
	}
	var out []Partition
	for topic, ps := range offs.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("kafkalag: offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			from, ok := committed[topic][p.Partition]
			if !ok || from < p.FirstOffset {
				from = p.FirstOffset
			}
			out = append(out, Partition{Topic: topic, Partition: p.Partition, Lag: max(p.LastOffset-from, 0)})
		}
	}
	slices.SortFunc(out, func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return out, nil
}
