// Package broker is the NATS client side of a pool: connecting with the
// NATS ecosystem's options and flags ([Connect], [ConnectOptions]), the
// names of a pool's subjects and JetStream objects ([Subjects]),
// provisioning its stream and consumers ([EnsureStream], [EnsureConsumer]),
// the records of named jobs ([EnsureJobs], [EnsureResults], [JobStore]),
// and carrying trace context in headers. The wire protocol between
// producers and workers is in broker/wire, and the embedded server in
// broker/embedded, so that a program that only connects links neither.
package broker
