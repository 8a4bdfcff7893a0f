package msgp

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// reads pairs each of the Reader's reads with the msgpack.Decoder method
// it follows.
var reads = []struct {
	name   string
	read   func(*Reader) any
	decode func(*msgpack.Decoder) (any, error)
	header bool // the read takes a header, not a whole value
}{
	{"Int", func(r *Reader) any { return r.Int() }, decoding((*msgpack.Decoder).DecodeInt64), false},
	{"Uint", func(r *Reader) any { return r.Uint() }, decoding((*msgpack.Decoder).DecodeUint64), false},
	{"Float32", func(r *Reader) any { return math.Float32bits(r.Float32()) }, decoding(func(d *msgpack.Decoder) (uint32, error) {
		f, err := d.DecodeFloat32()
		return math.Float32bits(f), err
	}), false},
	{"Float64", func(r *Reader) any { return math.Float64bits(r.Float64()) }, decoding(func(d *msgpack.Decoder) (uint64, error) {
		f, err := d.DecodeFloat64()
		return math.Float64bits(f), err
	}), false},
	{"Bool", func(r *Reader) any { return r.Bool() }, decoding((*msgpack.Decoder).DecodeBool), false},
	{"Str", func(r *Reader) any { return r.Str() }, decoding((*msgpack.Decoder).DecodeString), false},
	{"Bin", func(r *Reader) any { return r.Bin() }, decoding((*msgpack.Decoder).DecodeBytes), false},
	{"ArrayLen", func(r *Reader) any { return r.ArrayLen() }, decoding((*msgpack.Decoder).DecodeArrayLen), true},
	{"Skip", func(r *Reader) any { r.Skip(0); return nil }, func(d *msgpack.Decoder) (any, error) { return nil, d.Skip() }, false},
}

func decoding[T any](decode func(*msgpack.Decoder) (T, error)) func(*msgpack.Decoder) (any, error) {
	return func(d *msgpack.Decoder) (any, error) { return decode(d) }
}

// checkReads holds every read to its msgpack.Decoder method on b: a read
// that succeeds took a well-formed value (or a header), which the method
// reads from the same bytes, to the same value (a nil []byte only for a nil
// one), taking all of them; a read that fails on a well-formed value fails
// the method too.
func checkReads(t *testing.T, b []byte) {
	t.Helper()
	for _, m := range reads {
		var r Reader
		r.Reset(b)
		got := m.read(&r)
		if r.Err() != nil {
			if r.Len() != 0 {
				t.Fatalf("%s(% x) failed with %d bytes left", m.name, b, r.Len())
			}
			if Check(b) == nil {
				if want, err := m.decode(msgpack.NewDecoder(bytes.NewReader(b))); err == nil {
					t.Fatalf("%s(% x) failed: %v; msgpack read %#v", m.name, b, r.Err(), want)
				}
			}
			continue
		}
		took := b[:len(b)-r.Len()]
		if err := Check(took); err != nil && !m.header {
			t.Fatalf("%s(% x) took % x, which is not one value: %v", m.name, b, took, err)
		}
		// Check has bounded what msgpack may allocate.
		in := bytes.NewReader(took)
		want, err := m.decode(msgpack.NewDecoder(in))
		if err != nil || in.Len() != 0 || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s(% x) = %#v; msgpack %#v (%v) with %d bytes left", m.name, took, got, want, err, in.Len())
		}
	}
}

// readSeeds are values of every form, the shortest hostile headers, and
// the codes msgpack reserves or no read takes.
func readSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, v := range []any{nil, true, false, 0, -1, 127, -33, 200, -200, 70000, -70000, 123456789, 1 << 40, -(1 << 40), uint64(math.MaxUint64),
		int8(-5), uint16(300), int32(-1 << 20), float32(1.5), math.NaN(), math.Copysign(0, -1), "", "hi", strings.Repeat("x", 40), strings.Repeat("y", 300),
		[]byte{}, []byte{1, 2, 3}, bytes.Repeat([]byte{1}, 300), []any{}, []any{1, "a", []any{2, nil}}, make([]int, 20),
		map[string]any{"a": 1}, msgpack.RawMessage{0xd4, 0x01, 0x02}} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds, []byte{}, []byte{0xc1}, []byte{0xcd, 0x01}, []byte{0xa5, 'a'}, []byte{0xc6, 0xff, 0xff, 0xff, 0xff},
		[]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, []byte{0xdf, 0x00, 0x00, 0x00, 0x01, 0x01}, []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
		[]byte{0x01, 0x02}, append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0x01))
}

func TestReadsAsDecoder(t *testing.T) {
	for _, b := range readSeeds(t) {
		checkReads(t, b)
		for n := range len(b) {
			checkReads(t, b[:n])
		}
	}
}

// TestReadErrorSticks: after a failed read every read returns its zero
// value and the first error stays.
func TestReadErrorSticks(t *testing.T) {
	var r Reader
	r.Reset([]byte{0xa1, 'x', 0xc1, 0x05, 0xa1, 'y'})
	if s := r.Str(); s != "x" || r.Err() != nil {
		t.Fatalf("Str = %q, %v", s, r.Err())
	}
	r.Int()
	first := r.Err()
	if first == nil || r.Len() != 0 {
		t.Fatalf("Int of 0xc1: %v with %d bytes left", first, r.Len())
	}
	if n, s, p := r.Int(), r.Str(), r.Bin(); n != 0 || s != "" || p != nil || r.Err() != first {
		t.Fatalf("after the error: %d, %q, %v, %v", n, s, p, r.Err())
	}
}

// TestBinAliasesTheInput: a byte slice read is the input's own memory,
// capped so that an append to it cannot overwrite what follows.
func TestBinAliasesTheInput(t *testing.T) {
	b := []byte{0xc4, 0x02, 7, 8, 0x09}
	var r Reader
	r.Reset(b)
	p := r.Bin()
	if &p[0] != &b[2] || cap(p) != 2 {
		t.Fatalf("Bin = % x at a copy or with capacity %d", p, cap(p))
	}
	_ = append(p, 0xff)
	if b[4] != 0x09 {
		t.Fatal("an append to the slice read overwrote the next value")
	}
}

// TestFieldsSkipAndStop: a struct's elements beyond its fields are
// skipped, and missing ones read nothing.
func TestFieldsSkipAndStop(t *testing.T) {
	var r Reader
	r.Reset([]byte{0x93, 0x01, 0x92, 0x02, 0x03, 0xa1, 'x', 0x91, 0x05})
	f := r.Fields(0)
	var got []int64
	if f.More() {
		got = append(got, r.Int())
	}
	f.Done()
	inner := r.Fields(0)
	for range 3 {
		if inner.More() {
			got = append(got, r.Int())
		}
	}
	inner.Done()
	if !reflect.DeepEqual(got, []int64{1, 5}) || r.Err() != nil || r.Len() != 0 {
		t.Fatalf("read %v (%v) with %d bytes left", got, r.Err(), r.Len())
	}
}

func FuzzRead(f *testing.F) {
	for _, b := range readSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(checkReads)
}
