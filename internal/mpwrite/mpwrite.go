// Package mpwrite appends msgpack values to a byte slice without an encoder:
// each function writes exactly the bytes the msgpack.Encoder method named in
// its comment writes. StringSize and BytesSize tell how much room a string
// or a []byte takes, for callers that size dst up front.
package mpwrite

import (
	"encoding/binary"
	"math"
)

// Nil is msgpack's nil.
const Nil = 0xc0

// Uint writes n as EncodeUint does: in the shortest form.
func Uint(dst []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(dst, byte(n)) // positive fixint
	case n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), n)
}

// Int writes n as EncodeInt does: as a uint if n >= 0, else in the shortest
// signed form.
func Int(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return Uint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n)) // negative fixint
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
}

// String writes s as EncodeString does: a str. Like msgpack, it writes the
// length of a string beyond 4 GiB truncated to 32 bits.
func String(dst []byte, s string) []byte {
	if n := len(s); n < 32 {
		dst = append(dst, 0xa0|byte(n)) // fixstr
	} else {
		dst = header(dst, n, 0xd9, 0xda, 0xdb)
	}
	return append(dst, s...)
}

// Bytes writes b as EncodeBytes does: a bin, or nil if b is nil. Like
// msgpack, it writes the length of a slice beyond 4 GiB truncated to 32 bits.
func Bytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, Nil)
	}
	return append(header(dst, len(b), 0xc4, 0xc5, 0xc6), b...)
}

// header writes the head of a str or bin of n bytes whose 8-, 16- and 32-bit
// length forms have the codes c8, c16 and c32.
func header(dst []byte, n int, c8, c16, c32 byte) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, c8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, c16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, c32), uint32(n))
}

// StringSize is the length of what String writes.
func StringSize(s string) int {
	if n := len(s); n < 32 {
		return 1 + n
	}
	return headerSize(len(s)) + len(s)
}

// BytesSize is the length of what Bytes writes.
func BytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return headerSize(len(b)) + len(b)
}

// headerSize is the length of what header writes for n bytes.
func headerSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}
