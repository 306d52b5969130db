// Package published is the published-event contract that the Kafka
// publisher writes and every consumer reads: which events are published,
// to which topic and under which key (Route, Destination), the
// CloudEvents 1.0 envelope that is each message's value (Envelope,
// NewEnvelope, Decode), and the headers that repeat its attributes
// (NewMessage). docs/asyncapi.yaml describes the same contract for
// consumers outside this module, and its tests hold it to this package.
//
// It imports nothing but the standard library, the domain and the event
// store's Event type, so that a consumer, or a mail template, reads the
// contract without a Kafka client or a database driver. The publishing
// itself (batching, acknowledgement, checkpoints) is projections/kafka's.
package published
