package task

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/jetpool/jetpool/internal/msgp"
)

// Values whose type is exactly one of Go's predeclared scalar types (int,
// int8 to int64, uint, uint8 to uint64, float32, float64, string, bool and
// []byte) are encoded and decoded here without reflection: for small tasks,
// msgpack's reflective path is most of the per-item cost. Named types, such
// as `type Celsius float64`, may have msgpack methods of their own and always
// take the reflective path.
//
// appendScalar writes the bytes msgpack.Marshal writes for the same value,
// and decodeScalar gives what msgp.Check and msgpack.Unmarshal give
// together, for the forms it takes; scalar_test.go holds both to that.

// appendScalar appends the msgpack encoding of v to dst, growing it at most
// once. ok is false, and dst returned as it is, if v's type is not a
// predeclared scalar type.
func appendScalar(dst []byte, v any) (b []byte, ok bool) {
	switch v := v.(type) {
	case int:
		return msgp.AppendInt(dst, int64(v)), true
	case int8:
		return append(dst, 0xd0, byte(v)), true
	case int16:
		return append16(dst, 0xd1, uint16(v)), true
	case int32:
		return append32(dst, 0xd2, uint32(v)), true
	case int64:
		return append64(dst, 0xd3, uint64(v)), true
	case uint:
		return msgp.AppendUint(dst, uint64(v)), true
	case uint8:
		return append(dst, 0xcc, v), true
	case uint16:
		return append16(dst, 0xcd, v), true
	case uint32:
		return append32(dst, 0xce, v), true
	case uint64:
		return append64(dst, 0xcf, v), true
	case float32:
		return append32(dst, 0xca, math.Float32bits(v)), true
	case float64:
		return append64(dst, 0xcb, math.Float64bits(v)), true
	case bool:
		if v {
			return append(dst, 0xc3), true
		}
		return append(dst, 0xc2), true
	case string:
		return msgp.AppendString(slices.Grow(dst, msgp.StringSize(v)), v), true
	case []byte:
		return msgp.AppendBytes(slices.Grow(dst, msgp.BytesSize(v)), v), true
	}
	return dst, false
}

// append16, append32 and append64 append a format code and a big-endian
// number in one append, so that they grow dst at most once.

func append16(dst []byte, code byte, n uint16) []byte {
	return append(dst, code, byte(n>>8), byte(n))
}

func append32(dst []byte, code byte, n uint32) []byte {
	return append(dst, code, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func append64(dst []byte, code byte, n uint64) []byte {
	return append(dst, code, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// decodeScalar decodes b into a T if T is a predeclared scalar type and b is
// exactly one msgpack value in a form it takes; ok is false otherwise, and the
// caller decodes b with msgp.Check and msgpack instead. For every b it takes it
// gives the value msgpack.Unmarshal gives. It takes nil, as the zero value;
// for numbers, every int and uint format, converted as Go converts, and
// float32, and for a float64 also float64; true and false for a bool; every
// str and bin format for a string or []byte. Each length it reads must match
// len(b), so it allocates at most len(b) bytes.
func decodeScalar[T any](b []byte) (v T, ok bool) {
	switch p := any(&v).(type) {
	case *int:
		*p, ok = decodeInt[int](b)
	case *int8:
		*p, ok = decodeInt[int8](b)
	case *int16:
		*p, ok = decodeInt[int16](b)
	case *int32:
		*p, ok = decodeInt[int32](b)
	case *int64:
		*p, ok = decodeInt[int64](b)
	case *uint:
		*p, ok = decodeInt[uint](b)
	case *uint8:
		*p, ok = decodeInt[uint8](b)
	case *uint16:
		*p, ok = decodeInt[uint16](b)
	case *uint32:
		*p, ok = decodeInt[uint32](b)
	case *uint64:
		*p, ok = decodeInt[uint64](b)
	case *float32:
		if len(b) == 5 && b[0] == 0xca {
			*p, ok = math.Float32frombits(binary.BigEndian.Uint32(b[1:])), true
		} else if n, isInt := decodeInt[int64](b); isInt {
			*p, ok = float32(n), true
		}
	case *float64:
		if len(b) == 5 && b[0] == 0xca {
			*p, ok = float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:]))), true
		} else if len(b) == 9 && b[0] == 0xcb {
			*p, ok = math.Float64frombits(binary.BigEndian.Uint64(b[1:])), true
		} else if n, isInt := decodeInt[int64](b); isInt {
			*p, ok = float64(n), true
		}
	case *bool:
		if len(b) == 1 {
			*p, ok = b[0] == 0xc3, b[0] == 0xc0 || b[0] == 0xc2 || b[0] == 0xc3
		}
	case *string:
		var s []byte
		s, ok = decodeBytes(b)
		*p = string(s)
	case *[]byte:
		var s []byte
		if s, ok = decodeBytes(b); ok && s != nil {
			*p = make([]byte, len(s))
			copy(*p, s)
		}
	}
	return v, ok
}

// integer is the set of types decodeInt decodes into.
type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// decodeInt decodes b, if it is exactly one msgpack nil, int or uint, into an
// N, with the conversion msgpack applies: the 64 bits of the number, sign- or
// zero-extended as its format says, truncated to N's size.
func decodeInt[N integer](b []byte) (n N, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	c := b[0]
	if len(b) == 1 {
		switch {
		case c <= 0x7f || c >= 0xe0: // positive or negative fixint
			return N(int8(c)), true
		case c == 0xc0: // nil
			return 0, true
		}
		return 0, false
	}
	switch {
	case c == 0xcc && len(b) == 2:
		return N(b[1]), true
	case c == 0xcd && len(b) == 3:
		return N(binary.BigEndian.Uint16(b[1:])), true
	case c == 0xce && len(b) == 5:
		return N(binary.BigEndian.Uint32(b[1:])), true
	case (c == 0xcf || c == 0xd3) && len(b) == 9:
		return N(binary.BigEndian.Uint64(b[1:])), true
	case c == 0xd0 && len(b) == 2:
		return N(int8(b[1])), true
	case c == 0xd1 && len(b) == 3:
		return N(int16(binary.BigEndian.Uint16(b[1:]))), true
	case c == 0xd2 && len(b) == 5:
		return N(int32(binary.BigEndian.Uint32(b[1:]))), true
	}
	return 0, false
}

// decodeBytes returns the payload of b if b is exactly one msgpack str or
// bin, or nil if b is a msgpack nil. The payload is part of b.
func decodeBytes(b []byte) (payload []byte, ok bool) {
	if len(b) == 0 {
		return nil, false
	}
	var n, head int
	switch c := b[0]; {
	case c == 0xc0:
		return nil, len(b) == 1
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n, head = int(c&0x1f), 1
	case (c == 0xd9 || c == 0xc4) && len(b) >= 2:
		n, head = int(b[1]), 2
	case (c == 0xda || c == 0xc5) && len(b) >= 3:
		n, head = int(binary.BigEndian.Uint16(b[1:])), 3
	case (c == 0xdb || c == 0xc6) && len(b) >= 5:
		n, head = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, false
	}
	if len(b)-head != n {
		return nil, false
	}
	return b[head:], true
}
