// Package wire is the protocol between producers and workers: the msgpack
// envelope types ([Chunk], [Start], [StartReply], [Lease], [Result],
// [Interrupt] ...), their codecs ([Encode], [Decode], [DecodeResults]),
// which bound every length so that hostile input cannot make them allocate
// without bound, and the flow of one chunk, numbered in wire.go; a chunk of
// a named job, whose state lives in JetStream, has a flow of its own,
// numbered in job.go, with its records ([JobChunk], [JobClaim],
// [JobResult] ...) and the state every party computes from them
// ([NewJobChunkState]). It knows
// nothing of connections: package broker names the subjects the messages
// travel on.
package wire
