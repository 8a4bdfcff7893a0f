package mpwrite

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// check holds got to msgpack.Marshal's bytes of v, written after a prefix
// that must stay as it was.
func check(t *testing.T, v any, write func([]byte) []byte) {
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

func TestWritesAsMarshal(t *testing.T) {
	for _, n := range []int64{0, 1, -1, -32, -33, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
		65535, 65536, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, math.MinInt64} {
		// msgpack writes an int and a uint in their shortest form (an int64
		// or a uint64 it writes whole).
		check(t, int(n), func(b []byte) []byte { return Int(b, n) })
		if n >= 0 {
			check(t, uint(n), func(b []byte) []byte { return Uint(b, uint64(n)) })
		}
	}
	check(t, uint(math.MaxUint64), func(b []byte) []byte { return Uint(b, math.MaxUint64) })
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		check(t, s, func(b []byte) []byte { return String(b, s) })
		p := []byte(s)
		check(t, p, func(b []byte) []byte { return Bytes(b, p) })
	}
	check(t, []byte(nil), func(b []byte) []byte { return Bytes(b, nil) })
}

// TestSizes: StringSize and BytesSize give exactly what String and Bytes
// write, so a slice made with that room is written in place.
func TestSizes(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		buf := make([]byte, 0, StringSize(s))
		if got := String(buf, s); len(got) != cap(buf) || &got[:1][0] != &buf[:1][0] {
			t.Errorf("String of %d bytes: wrote %d into room for %d, or moved", n, len(got), cap(buf))
		}
		p := []byte(s)
		buf = make([]byte, 0, BytesSize(p))
		if got := Bytes(buf, p); len(got) != cap(buf) || &got[:1][0] != &buf[:1][0] {
			t.Errorf("Bytes of %d bytes: wrote %d into room for %d, or moved", n, len(got), cap(buf))
		}
	}
	if BytesSize(nil) != len(Bytes(nil, nil)) {
		t.Error("BytesSize(nil) is not what Bytes writes for nil")
	}
}
