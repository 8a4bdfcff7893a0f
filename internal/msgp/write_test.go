package msgp

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// check holds what write appends to msgpack.Marshal's bytes of v, written
// after a prefix that must stay as it was, and size, if not nil, to their
// length.
func check(t *testing.T, v any, write func([]byte) []byte, size func() int) {
	t.Helper()
	want, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte{1, 2, 3}
	got := write(bytes.Clone(prefix))
	if !bytes.Equal(got, append(prefix, want...)) {
		t.Errorf("%T of length/value %v: % x, want % x after the prefix", v, short(v), got, want)
	}
	if size != nil && size() != len(want) {
		t.Errorf("%T of length/value %v: size %d, writes %d", v, short(v), size(), len(want))
	}
}

func short(v any) any {
	switch v := v.(type) {
	case string:
		return len(v)
	case []byte:
		return len(v)
	}
	return v
}

var edgeInts = []int64{0, 1, -1, -32, -33, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
	65535, 65536, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1,
	math.MaxInt64, math.MinInt64}

var edgeLens = []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536}

func TestWritesAsMarshal(t *testing.T) {
	for _, n := range edgeInts {
		// msgpack writes an int and a uint in their shortest form, and a
		// sized integer type in its own width.
		check(t, int(n), func(b []byte) []byte { return AppendInt(b, n) }, func() int { return IntSize(n) })
		check(t, int8(n), func(b []byte) []byte { return AppendInt8(b, int8(n)) }, nil)
		check(t, int16(n), func(b []byte) []byte { return AppendInt16(b, int16(n)) }, nil)
		check(t, int32(n), func(b []byte) []byte { return AppendInt32(b, int32(n)) }, nil)
		check(t, n, func(b []byte) []byte { return AppendInt64(b, n) }, nil)
		u := uint64(n)
		check(t, uint(u), func(b []byte) []byte { return AppendUint(b, u) }, func() int { return UintSize(u) })
		check(t, uint8(u), func(b []byte) []byte { return AppendUint8(b, uint8(u)) }, nil)
		check(t, uint16(u), func(b []byte) []byte { return AppendUint16(b, uint16(u)) }, nil)
		check(t, uint32(u), func(b []byte) []byte { return AppendUint32(b, uint32(u)) }, nil)
		check(t, u, func(b []byte) []byte { return AppendUint64(b, u) }, nil)
		f := float64(n) / 3
		check(t, f, func(b []byte) []byte { return AppendFloat64(b, f) }, nil)
		check(t, float32(f), func(b []byte) []byte { return AppendFloat32(b, float32(f)) }, nil)
	}
	for _, v := range []bool{false, true} {
		check(t, v, func(b []byte) []byte { return AppendBool(b, v) }, nil)
	}
	for _, n := range edgeLens {
		s := strings.Repeat("x", n)
		check(t, s, func(b []byte) []byte { return AppendString(b, s) }, func() int { return StringSize(s) })
		p := []byte(s)
		check(t, p, func(b []byte) []byte { return AppendBytes(b, p) }, func() int { return BytesSize(p) })
		// A list of n nils: its header, then the elements the caller writes.
		list := make([]any, n)
		elems := bytes.Repeat([]byte{Nil}, n)
		check(t, list, func(b []byte) []byte { return append(AppendArrayHeader(b, n), elems...) }, func() int { return ArrayHeaderSize(n) + n })
		check(t, list, func(b []byte) []byte { return append(AppendListHeader(b, list), elems...) }, func() int { return ListHeaderSize(list) + n })
	}
	check(t, []byte(nil), func(b []byte) []byte { return AppendBytes(b, nil) }, func() int { return BytesSize(nil) })
	check(t, []any(nil), func(b []byte) []byte { return AppendListHeader(b, []any(nil)) }, func() int { return ListHeaderSize([]any(nil)) })
}

// TestWritesInPlace: a slice made with the room the sizes give is written
// in place.
func TestWritesInPlace(t *testing.T) {
	for _, n := range edgeLens {
		s := strings.Repeat("x", n)
		buf := make([]byte, 0, StringSize(s))
		if got := AppendString(buf, s); len(got) != cap(buf) || &got[:1][0] != &buf[:1][0] {
			t.Errorf("AppendString of %d bytes: wrote %d into room for %d, or moved", n, len(got), cap(buf))
		}
		p := []byte(s)
		buf = make([]byte, 0, BytesSize(p))
		if got := AppendBytes(buf, p); len(got) != cap(buf) || &got[:1][0] != &buf[:1][0] {
			t.Errorf("AppendBytes of %d bytes: wrote %d into room for %d, or moved", n, len(got), cap(buf))
		}
	}
}
