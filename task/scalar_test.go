package task

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// edgeInts are the integers at the edges of msgpack's formats and Go's
// integer types; converted to each integer type, they wrap as Go's
// conversions do.
var edgeInts = []int64{
	0, 1, -1, 31, -31, 32, -32, 33, -33, 127, -127, 128, -128, 129, -129, 255, -255, 256, -256,
	32767, -32767, 32768, -32768, 65535, -65535, 65536, -65536,
	math.MaxInt32, math.MinInt32, math.MaxUint32, math.MaxUint32 + 1, -math.MaxUint32,
	math.MaxInt64, math.MinInt64, math.MinInt64 + 1,
}

var edgeFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.5, -2.5, 1e300, -1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64,
	math.MaxFloat32, math.SmallestNonzeroFloat32, math.Inf(1), math.Inf(-1), math.NaN(),
	math.Float64frombits(0x7ff0000000000001), // a signalling NaN
	1 << 53, 1<<63 - 1,
}

// edgeLens are string and []byte lengths at the edges of msgpack's formats.
var edgeLens = []int{0, 1, 31, 32, 33, 255, 256, 257, 65535, 65536, 65537}

// checkIntegers checks n and u converted to every integer type.
func checkIntegers(t *testing.T, n int64, u uint64) {
	t.Helper()
	checkScalar(t, int(n))
	checkScalar(t, int8(n))
	checkScalar(t, int16(n))
	checkScalar(t, int32(n))
	checkScalar(t, n)
	checkScalar(t, uint(u))
	checkScalar(t, uint8(u))
	checkScalar(t, uint16(u))
	checkScalar(t, uint32(u))
	checkScalar(t, u)
}

func TestScalarsEncodeAsMarshal(t *testing.T) {
	for _, n := range edgeInts {
		checkIntegers(t, n, uint64(n))
	}
	checkScalar(t, uint64(math.MaxUint64))
	checkScalar(t, uint(math.MaxUint64))
	checkScalar(t, uint64(1)<<63)
	for _, f := range edgeFloats {
		checkScalar(t, f)
		checkScalar(t, float32(f))
	}
	checkScalar(t, math.Float32frombits(0x7f800001)) // a signalling NaN
	checkScalar(t, true)
	checkScalar(t, false)
	for _, n := range edgeLens {
		checkScalar(t, strings.Repeat("é", n)[:n]) // not valid UTF-8 at every length
		checkScalar(t, bytes.Repeat([]byte{0xc1}, n))
	}
	checkScalar(t, []byte(nil))
	checkScalar(t, []byte{})
}

// checkScalar checks that v encodes to msgpack.Marshal's bytes, with and
// without a prefix and through the Codec, and decodes back to itself by the
// fast path.
func checkScalar[T any](t *testing.T, v T) {
	t.Helper()
	want, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%T %v", v, v)
	if len(name) > 60 {
		name = fmt.Sprintf("%T of length %d", v, len(want))
	}
	got, ok := appendScalar(nil, v)
	if !ok || !bytes.Equal(got, want) {
		t.Errorf("%s: appendScalar = %x, %v; msgpack.Marshal = %x", name, got, ok, want)
		return
	}
	prefix := []byte{1, 2, 3}
	if got, _ := appendScalar(prefix, v); !bytes.Equal(got[:3], prefix) || !bytes.Equal(got[3:], want) {
		t.Errorf("%s: appended to a prefix: %x", name, got)
	}
	codec := New[T, T]("scalar").Codec()
	if got, err := codec.EncodeIn(v); err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: EncodeIn = %x, %v", name, got, err)
	}
	if got, err := codec.AppendIn(prefix[:1:1], v); err != nil || !bytes.Equal(got, append([]byte{1}, want...)) {
		t.Errorf("%s: AppendIn = %x, %v", name, got, err)
	}
	back, ok := decodeScalar[T](want)
	if !ok || !same(back, v) {
		t.Errorf("%s: decodeScalar(%x) = %v, %v", name, want, back, ok)
	}
	if out, err := codec.DecodeOut(want); err != nil || !same(out.(T), v) {
		t.Errorf("%s: DecodeOut(%x) = %v, %v", name, want, out, err)
	}
}

// same reports whether a and b are the same value: floats bit for bit, so
// that NaN is itself and 0 is not -0, and []byte nil only if both are.
func same[T any](a, b T) bool {
	switch a := any(a).(type) {
	case float32:
		return math.Float32bits(a) == math.Float32bits(any(b).(float32))
	case float64:
		return math.Float64bits(a) == math.Float64bits(any(b).(float64))
	case []byte:
		b := any(b).([]byte)
		return (a == nil) == (b == nil) && bytes.Equal(a, b)
	}
	return any(a) == any(b)
}

// fastForms are inputs decodeScalar decodes itself for the given type;
// TestScalarsDecodeAsUnmarshal checks that it gives msgpack's value.
var fastForms = []struct {
	typ string
	raw []byte
}{
	{"int8", []byte{0xcc, 0xff}},                                          // uint8 255 wraps to -1
	{"int", []byte{0xcd, 0xff, 0xff}},                                     // uint16
	{"int16", []byte{0xce, 0, 1, 0, 0}},                                   // uint32 65536 wraps to 0
	{"int", []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, // uint64 wraps to -1
	{"uint", []byte{0xd0, 0x80}},                                          // int8 -128 wraps
	{"uint8", []byte{0xd1, 0x01, 0x00}},                                   // int16 256 wraps to 0
	{"uint64", []byte{0xd2, 0xff, 0xff, 0xff, 0xff}},
	{"uint32", []byte{0xff}}, // negative fixint
	{"int64", []byte{0xc0}},  // nil is zero
	{"bool", []byte{0xc0}},
	{"float32", []byte{0x05}}, // an int for a float
	{"float32", []byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 1}},
	{"float64", []byte{0xca, 0x7f, 0xc0, 0, 0}}, // float32 NaN widened
	{"float64", []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	{"float64", []byte{0xc0}},
	{"string", []byte{0xc4, 0x01, 'x'}},       // bin8 for a string
	{"string", []byte{0xc6, 0, 0, 0, 1, 'x'}}, // bin32
	{"string", []byte{0xdb, 0, 0, 0, 0}},      // empty str32
	{"string", []byte{0xc0}},
	{"[]byte", []byte{0xa1, 'x'}},            // fixstr for bytes
	{"[]byte", []byte{0xda, 0, 2, 'x', 'y'}}, // str16
	{"[]byte", []byte{0xd9, 0}},              // empty, not nil
	{"[]byte", []byte{0xc0}},                 // nil
}

// slowForms are inputs decodeScalar leaves to msgpack for every type: not
// exactly one value, or a value of a format it does not take.
var slowForms = [][]byte{
	{},
	{0xc1},
	{0x01, 0x02},                   // a trailing byte
	{0xa1, 'x', 'y'},               // a trailing byte after a string
	{0xcd, 0x01},                   // truncated
	{0xdb, 0xff, 0xff, 0xff, 0xff}, // a length beyond the input
	{0xc6, 0xff, 0xff, 0xff, 0xff},
	{0x91, 0x01},            // an array
	{0x81, 0xa1, 'x', 0x01}, // a map
	{0xd4, 0x01, 0x02},      // an ext
	{0xc7, 0x00, 0x01},
}

func TestScalarsDecodeAsUnmarshal(t *testing.T) {
	for _, f := range fastForms {
		if !decodesFast(f.typ, f.raw) {
			t.Errorf("decodeScalar[%s](%x) left it to msgpack", f.typ, f.raw)
		}
		checkDecodeAll(t, f.raw)
	}
	for _, raw := range slowForms {
		for _, typ := range []string{"int", "uint64", "float64", "bool", "string", "[]byte"} {
			if decodesFast(typ, raw) {
				t.Errorf("decodeScalar[%s](%x) took it", typ, raw)
			}
		}
		checkDecodeAll(t, raw)
	}
	// A float64 is not an int, nor a double a float32, to msgpack.
	for typ, raw := range map[string][]byte{
		"int":     {0xcb, 0, 0, 0, 0, 0, 0, 0, 0},
		"uint8":   {0xca, 0, 0, 0, 0},
		"float32": {0xcb, 0, 0, 0, 0, 0, 0, 0, 0},
		"bool":    {0x01},
		"string":  {0x01},
	} {
		checkDecodeAll(t, raw)
		if _, err := decodeOutOf(typ, raw); err == nil {
			t.Errorf("a %s decoded from %x", typ, raw)
		}
	}
}

// decodesFast reports whether decodeScalar decodes raw into the named type
// itself.
func decodesFast(typ string, raw []byte) bool {
	fast := map[string]func([]byte) bool{
		"int": fastOK[int], "int8": fastOK[int8], "int16": fastOK[int16], "int64": fastOK[int64],
		"uint": fastOK[uint], "uint8": fastOK[uint8], "uint32": fastOK[uint32], "uint64": fastOK[uint64],
		"float32": fastOK[float32], "float64": fastOK[float64], "bool": fastOK[bool],
		"string": fastOK[string], "[]byte": fastOK[[]byte],
	}
	return fast[typ](raw)
}

func fastOK[T any](raw []byte) bool {
	_, ok := decodeScalar[T](raw)
	return ok
}

func decodeOutOf(typ string, raw []byte) (any, error) {
	decode := map[string]func([]byte) (any, error){
		"int": decodeOut[int], "uint8": decodeOut[uint8], "float32": decodeOut[float32],
		"bool": decodeOut[bool], "string": decodeOut[string],
	}
	return decode[typ](raw)
}

// checkDecodeAll checks, for every predeclared scalar type, that raw decodes
// as msgp.Check and msgpack.Unmarshal decode it, both as a task's result
// and as a handler's input.
func checkDecodeAll(t *testing.T, raw []byte) {
	t.Helper()
	checkDecode[int](t, raw)
	checkDecode[int8](t, raw)
	checkDecode[int16](t, raw)
	checkDecode[int32](t, raw)
	checkDecode[int64](t, raw)
	checkDecode[uint](t, raw)
	checkDecode[uint8](t, raw)
	checkDecode[uint16](t, raw)
	checkDecode[uint32](t, raw)
	checkDecode[uint64](t, raw)
	checkDecode[float32](t, raw)
	checkDecode[float64](t, raw)
	checkDecode[bool](t, raw)
	checkDecode[string](t, raw)
	checkDecode[[]byte](t, raw)
}

func checkDecode[T any](t *testing.T, raw []byte) {
	t.Helper()
	var want T
	wantErr := msgp.Check(raw)
	if wantErr == nil {
		// msgpack's own error, in the words the codecs put it in.
		if wantErr = msgpack.Unmarshal(raw, &want); wantErr != nil {
			wantErr = inWords(wantErr, reflect.TypeFor[T]())
		}
	}
	if v, ok := decodeScalar[T](raw); ok && (wantErr != nil || !same(v, want)) {
		t.Fatalf("decodeScalar[%T](%x) = %#v; msgpack: %#v, %v", want, raw, v, want, wantErr)
	}
	out, err := decodeOut[T](raw)
	if wantErr != nil {
		if err == nil || err.Error() != "task: decode result: "+wantErr.Error() {
			t.Fatalf("decodeOut[%T](%x) = %#v, %v; want the error %v", want, raw, out, err, wantErr)
		}
	} else if err != nil || !same(out.(T), want) {
		t.Fatalf("decodeOut[%T](%x) = %#v, %v; msgpack: %#v", want, raw, out, err, want)
	}

	// A handler that returns its input sends back msgpack's encoding of
	// msgpack's decoding of raw.
	h := &handler[T, T]{kind: "echo", fn: func(_ context.Context, v T) (T, error) { return v, nil }}
	echoed, err := h.CallRaw(context.Background(), raw)
	if wantErr != nil {
		var te *Error
		if !errors.As(err, &te) || te.Type != TypeBadInput || te.Message != wantErr.Error() {
			t.Fatalf("CallRaw[%T](%x) = %x, %v; want a bad_input error %q", want, raw, echoed, err, wantErr)
		}
		return
	}
	if wantOut, _ := msgpack.Marshal(want); err != nil || !bytes.Equal(echoed, wantOut) {
		t.Fatalf("CallRaw[%T](%x) = %x, %v; want %x", want, raw, echoed, err, wantOut)
	}
}

// FuzzDecodeScalar checks, for every predeclared scalar type, that any bytes
// decode as msgp.Check and msgpack.Unmarshal decode them.
func FuzzDecodeScalar(f *testing.F) {
	for _, form := range fastForms {
		f.Add(form.raw)
	}
	for _, raw := range slowForms {
		f.Add(raw)
	}
	for _, v := range []any{-1, 1 << 40, uint64(math.MaxUint64), float32(1.5), math.Inf(-1), "hello", []byte{1, 2}, true} {
		raw, _ := msgpack.Marshal(v)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeAll(t, raw)
	})
}

// FuzzAppendScalar checks that values of every predeclared scalar type
// encode as msgpack.Marshal encodes them and decode back to themselves.
func FuzzAppendScalar(f *testing.F) {
	f.Add(int64(-33), uint64(255), "", []byte(nil))
	f.Add(int64(math.MinInt64), uint64(math.MaxUint64), strings.Repeat("x", 32), []byte{})
	f.Add(int64(65536), uint64(0x7ff8000000000001), "é", bytes.Repeat([]byte{1}, 256))
	f.Fuzz(func(t *testing.T, n int64, u uint64, s string, b []byte) {
		checkIntegers(t, n, u)
		checkScalar(t, math.Float32frombits(uint32(u)))
		checkScalar(t, math.Float64frombits(u))
		checkScalar(t, float64(n))
		checkScalar(t, n&1 == 0)
		checkScalar(t, s)
		checkScalar(t, b)
	})
}

// celsius is a named float64 with msgpack methods of its own, which the
// codec must use rather than encode it as a float64.
type celsius float64

func (c celsius) EncodeMsgpack(e *msgpack.Encoder) error {
	return e.EncodeString(fmt.Sprintf("%gC", float64(c)))
}

func (c *celsius) DecodeMsgpack(d *msgpack.Decoder) error {
	s, err := d.DecodeString()
	if err != nil {
		return err
	}
	_, err = fmt.Sscanf(s, "%gC", (*float64)(c))
	return err
}

func TestNamedScalarsKeepTheirMethods(t *testing.T) {
	warm := New[celsius, celsius]("warm")
	codec := warm.Codec()
	raw, err := codec.EncodeIn(celsius(21.5))
	if err != nil || string(raw) != "\xa521.5C" {
		t.Fatalf("EncodeIn(celsius) = %q, %v; want the str 21.5C", raw, err)
	}
	if app, err := codec.AppendIn([]byte{0}, celsius(21.5)); err != nil || !bytes.Equal(app, append([]byte{0}, raw...)) {
		t.Fatalf("AppendIn(celsius) = %q, %v", app, err)
	}
	h := &handler[celsius, celsius]{kind: "warm", fn: func(_ context.Context, c celsius) (celsius, error) { return c + 1, nil }}
	out, err := h.CallRaw(t.Context(), raw)
	if err != nil || string(out) != "\xa522.5C" {
		t.Fatalf("CallRaw = %q, %v; want the str 22.5C", out, err)
	}
	if v, err := codec.DecodeOut(out); err != nil || v != celsius(22.5) {
		t.Fatalf("DecodeOut(%q) = %v, %v", out, v, err)
	}
	// A float64 is not a celsius: its decoder wants a string.
	if v, err := codec.DecodeOut([]byte{0xcb, 0x40, 0x36, 0x80, 0, 0, 0, 0, 0}); err == nil {
		t.Fatalf("DecodeOut(a float64) = %v, want an error", v)
	}
}

func TestAppendInKeepsDstOnError(t *testing.T) {
	codec := New[chan int, int]("channel").Codec()
	dst := append(make([]byte, 0, 64), 1, 2)
	got, err := codec.AppendIn(dst, make(chan int))
	if err == nil || !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("AppendIn(a channel) = %x, %v; want 0102 and an error", got, err)
	}
	ok, err := New[[]int, int]("ints").Codec().AppendIn(dst, []int{7, 8})
	if err != nil || !bytes.Equal(ok, []byte{1, 2, 0x92, 7, 8}) {
		t.Fatalf("AppendIn([]int{7, 8}) = %x, %v", ok, err)
	}
}
