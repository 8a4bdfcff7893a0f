// Package msgp reads, writes and checks msgpack in byte slices, without
// msgpack's Encoder, Decoder or reflection, for the values on every task's
// path: the broker's envelope and the task package's scalars.
//
// The Append functions write exactly the bytes the msgpack.Encoder method
// named in each comment writes, and the Size functions tell how many, so a
// caller can size a slice up front. A [Reader] accepts exactly what the
// msgpack.Decoder method named in each comment accepts, and checks every
// length against the bytes left before it allocates. [Check] validates any
// msgpack value before it is given to msgpack's decoder, which sizes its
// allocations by the lengths the input declares.
package msgp

import "errors"

// MaxDepth is the deepest nesting of arrays and maps that Check and
// Reader.Skip accept.
const MaxDepth = 256

// Nil is msgpack's nil.
const Nil = 0xc0

// ErrInvalid is matched by every error Check returns.
var ErrInvalid = errors.New("invalid msgpack")
