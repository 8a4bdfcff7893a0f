package msgp

import "math"

// A number is written in one append, so that it grows dst at most once; a
// caller that writes a string or bytes grows dst by StringSize or BytesSize
// first for the same.

// AppendUint writes n as EncodeUint does: in the shortest form.
func AppendUint(dst []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(dst, byte(n)) // positive fixint
	case n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return append16(dst, 0xcd, uint16(n))
	case n <= math.MaxUint32:
		return append32(dst, 0xce, uint32(n))
	}
	return append64(dst, 0xcf, n)
}

// AppendInt writes n as EncodeInt does: as a uint if n >= 0, else in the
// shortest signed form.
func AppendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return AppendUint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n)) // negative fixint
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return append16(dst, 0xd1, uint16(n))
	case n >= math.MinInt32:
		return append32(dst, 0xd2, uint32(n))
	}
	return append64(dst, 0xd3, uint64(n))
}

// UintSize is the length of what AppendUint writes.
func UintSize(n uint64) int {
	switch {
	case n <= math.MaxInt8:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

// IntSize is the length of what AppendInt writes.
func IntSize(n int64) int {
	switch {
	case n >= 0:
		return UintSize(uint64(n))
	case n >= -32:
		return 1
	case n >= math.MinInt8:
		return 2
	case n >= math.MinInt16:
		return 3
	case n >= math.MinInt32:
		return 5
	}
	return 9
}

// The fixed-width forms are what msgpack.Marshal writes for Go's sized
// integer types and for floats: EncodeInt8 to EncodeInt64, EncodeUint8 to
// EncodeUint64, EncodeFloat32 and EncodeFloat64.

// AppendInt8 writes n as EncodeInt8 does.
func AppendInt8(dst []byte, n int8) []byte { return append(dst, 0xd0, byte(n)) }

// AppendInt16 writes n as EncodeInt16 does.
func AppendInt16(dst []byte, n int16) []byte { return append16(dst, 0xd1, uint16(n)) }

// AppendInt32 writes n as EncodeInt32 does.
func AppendInt32(dst []byte, n int32) []byte { return append32(dst, 0xd2, uint32(n)) }

// AppendInt64 writes n as EncodeInt64 does.
func AppendInt64(dst []byte, n int64) []byte { return append64(dst, 0xd3, uint64(n)) }

// AppendUint8 writes n as EncodeUint8 does.
func AppendUint8(dst []byte, n uint8) []byte { return append(dst, 0xcc, n) }

// AppendUint16 writes n as EncodeUint16 does.
func AppendUint16(dst []byte, n uint16) []byte { return append16(dst, 0xcd, n) }

// AppendUint32 writes n as EncodeUint32 does.
func AppendUint32(dst []byte, n uint32) []byte { return append32(dst, 0xce, n) }

// AppendUint64 writes n as EncodeUint64 does.
func AppendUint64(dst []byte, n uint64) []byte { return append64(dst, 0xcf, n) }

// AppendFloat32 writes f as EncodeFloat32 does.
func AppendFloat32(dst []byte, f float32) []byte {
	return append32(dst, 0xca, math.Float32bits(f))
}

// AppendFloat64 writes f as EncodeFloat64 does.
func AppendFloat64(dst []byte, f float64) []byte {
	return append64(dst, 0xcb, math.Float64bits(f))
}

// AppendBool writes v as EncodeBool does.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

// AppendString writes s as EncodeString does: a str. Like msgpack, it
// writes the length of a string beyond 4 GiB truncated to 32 bits.
func AppendString(dst []byte, s string) []byte {
	n := len(s)
	if n < 32 {
		return append(append(dst, 0xa0|byte(n)), s...) // fixstr
	}
	return append(header(dst, n, 0xd9, 0xda, 0xdb), s...)
}

// StringSize is the length of what AppendString writes.
func StringSize(s string) int {
	if len(s) < 32 {
		return 1 + len(s)
	}
	return headerSize(len(s)) + len(s)
}

// AppendBytes writes b as EncodeBytes does: a bin, or nil if b is nil. Like
// msgpack, it writes the length of a slice beyond 4 GiB truncated to 32
// bits.
func AppendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, Nil)
	}
	return append(header(dst, len(b), 0xc4, 0xc5, 0xc6), b...)
}

// BytesSize is the length of what AppendBytes writes.
func BytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return headerSize(len(b)) + len(b)
}

// AppendArrayHeader writes the header of an array of n elements as
// EncodeArrayLen does. An array-encoded struct of n fields starts so.
func AppendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n)) // fixarray
	case n <= math.MaxUint16:
		return append16(dst, 0xdc, uint16(n))
	}
	return append32(dst, 0xdd, uint32(n))
}

// ArrayHeaderSize is the length of what AppendArrayHeader writes.
func ArrayHeaderSize(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

// AppendListHeader writes the header of s as msgpack.Marshal does for a
// slice: nil if s is nil, else the header of an array of len(s) elements.
// The caller appends the elements.
func AppendListHeader[S ~[]E, E any](dst []byte, s S) []byte {
	if s == nil {
		return append(dst, Nil)
	}
	return AppendArrayHeader(dst, len(s))
}

// ListHeaderSize is the length of what AppendListHeader writes.
func ListHeaderSize[S ~[]E, E any](s S) int {
	if s == nil {
		return 1
	}
	return ArrayHeaderSize(len(s))
}

// header writes the head of a str or bin of n bytes whose 8-, 16- and
// 32-bit length forms have the codes c8, c16 and c32.
func header(dst []byte, n int, c8, c16, c32 byte) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, c8, byte(n))
	case n <= math.MaxUint16:
		return append16(dst, c16, uint16(n))
	}
	return append32(dst, c32, uint32(n))
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

func append16(dst []byte, code byte, n uint16) []byte {
	return append(dst, code, byte(n>>8), byte(n))
}

func append32(dst []byte, code byte, n uint32) []byte {
	return append(dst, code, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func append64(dst []byte, code byte, n uint64) []byte {
	return append(dst, code, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
