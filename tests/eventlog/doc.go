// Package eventlog holds the property test of the event log: whatever the
// write side accepts, every reader of the log can read, for good.
//
// Events are forever. A value the write side stores but a reader refuses
// (an order total beyond the money bound, a NUL character that PostgreSQL
// text and FerretDB's jsonb cannot hold) stops that reader on that event at
// every restart and every rebuild. So the test generates command sequences
// for users, products and orders, biased to the values at and just beyond
// every write bound (lengths in runes and bytes, control characters, money
// and quantities whose products and sums cross the bound, metadata depth and
// size; each kind of edge of each field in turn, so that a bounded run meets
// them all), runs them through the command layer on a real PostgreSQL event
// store, and then has every reader of the system apply every stored event to
// its real target: the PostgreSQL read models, the MongoDB catalogue on
// FerretDB, the Kafka publisher (and a consumer decoding what it wrote), the
// published contract of docs/asyncapi.yaml, the notifier's templates, the
// order process manager's decoding, and the write side loading its own
// aggregates back. An event any of them refuses fails the test, naming the
// event, the reader and the command that wrote it. So does a command the
// write side refused with anything but a domain error: bad input must be a
// 422, never a 500.
//
// TestEventLog runs a bounded, seeded sequence (800 commands, 150 with
// -short) in every `go test`; it logs its seed, and
//
//	go test ./tests/eventlog -run 'TestEventLog$' -eventlog.seed=N [-eventlog.steps=M]
//
// (or EVENTLOG_SEED=N) replays it. FuzzCommands lets the fuzzer's bytes
// drive the same generator, one decision a byte:
//
//	go test ./tests/eventlog -run '^$' -fuzz FuzzCommands
//
// testdata/fuzz/FuzzCommands holds the inputs that found bound violations,
// and runs them in every `go test`. A seeded failure of at most 60 commands
// becomes such an input with -eventlog.corpus=testdata/fuzz/FuzzCommands/NAME.
//
// The package has no code of its own outside its tests.
package eventlog
