// Package broker is the NATS client side of a pool: connecting with the
// NATS ecosystem's options and flags ([Connect], [ConnectOptions]), the
// names of a pool's subjects and JetStream objects ([Subjects]),
// provisioning its stream and consumers ([EnsureStream], [EnsureConsumer]),
// carrying trace context in headers, and the wire protocol between
// producers and workers: the msgpack envelope types ([Chunk], [Start],
// [Result] ...), their codecs ([Encode], [Decode], [DecodeResults]) and
// the flow of one chunk, numbered in wire.go. The embedded server is in
// broker/embedded, so that a program that only connects does not link it.
package broker
