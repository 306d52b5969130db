// Package benchmarks holds the benchmarks of the read side as a whole:
// rebuilding every read model from the event log, the lag from an append
// to the PostgreSQL read model and to Kafka, the notifier working through
// a backlog of mails, and the read routes through
// the real HTTP stack, with and without authentication. Each figure is
// printed next to a raw baseline measured in the same run (a bare ReadAll
// of the log, a bare subscription, the bare driver doing the same lookup,
// the same routes with the caller injected), and the run ends
// with a summary table of ratios and goals. Run them with `make bench`.
//
// They live here rather than beside one package because each of them
// wires several adapters together (the PostgreSQL event store, the
// projections runtime, the PostgreSQL and MongoDB read models, the Kafka
// publisher, the read and write APIs), as cmd/eventshop does, against
// real PostgreSQL, Redis, an embedded FerretDB and an embedded
// Kafka-protocol broker. The package has no code besides its tests.
package benchmarks
