package task

import (
	"bytes"
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
		return msgp.AppendInt8(dst, v), true
	case int16:
		return msgp.AppendInt16(dst, v), true
	case int32:
		return msgp.AppendInt32(dst, v), true
	case int64:
		return msgp.AppendInt64(dst, v), true
	case uint:
		return msgp.AppendUint(dst, uint64(v)), true
	case uint8:
		return msgp.AppendUint8(dst, v), true
	case uint16:
		return msgp.AppendUint16(dst, v), true
	case uint32:
		return msgp.AppendUint32(dst, v), true
	case uint64:
		return msgp.AppendUint64(dst, v), true
	case float32:
		return msgp.AppendFloat32(dst, v), true
	case float64:
		return msgp.AppendFloat64(dst, v), true
	case bool:
		return msgp.AppendBool(dst, v), true
	case string:
		return msgp.AppendString(slices.Grow(dst, msgp.StringSize(v)), v), true
	case []byte:
		return msgp.AppendBytes(slices.Grow(dst, msgp.BytesSize(v)), v), true
	}
	return dst, false
}

// decodeScalar decodes b into a T if T is a predeclared scalar type and b is
// exactly one msgpack value that the msgp.Reader read for T takes; ok is
// false otherwise, and the caller decodes b with msgp.Check and msgpack
// instead. For every b it takes it gives the value msgpack.Unmarshal gives:
// nil is the zero value; a number is any int or uint format, converted as Go
// converts, or a float32, and for a float64 also a float64; a bool is true
// or false; a string or a []byte is any str or bin format. Each length it
// reads must fit in b, so it allocates at most len(b) bytes.
func decodeScalar[T any](b []byte) (v T, ok bool) {
	var r msgp.Reader
	r.Reset(b)
	switch p := any(&v).(type) {
	case *int:
		*p = int(r.Int())
	case *int8:
		*p = int8(r.Int())
	case *int16:
		*p = int16(r.Int())
	case *int32:
		*p = int32(r.Int())
	case *int64:
		*p = r.Int()
	case *uint:
		*p = uint(r.Uint())
	case *uint8:
		*p = uint8(r.Uint())
	case *uint16:
		*p = uint16(r.Uint())
	case *uint32:
		*p = uint32(r.Uint())
	case *uint64:
		*p = r.Uint()
	case *float32:
		*p = r.Float32()
	case *float64:
		*p = r.Float64()
	case *bool:
		*p = r.Bool()
	case *string:
		if s := r.Bin(); r.Len() == 0 { // copied only if b is s alone
			*p = string(s)
		}
	case *[]byte:
		if s := r.Bin(); r.Len() == 0 {
			*p = bytes.Clone(s) // s is part of b
		}
	default:
		return v, false
	}
	return v, r.Err() == nil && r.Len() == 0
}
