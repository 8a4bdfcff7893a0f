//lint:file-ignore U1000 the _msgpack fields are read by reflection: they carry msgpack's as_array tag.

package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// checkDecode checks one decoder on arbitrary bytes: it never panics, its
// errors match ErrMalformed, it accepts exactly what msgpack's reflection
// accepts (into a zero value and over one with every field set) and gives
// the same value, and what it accepts encodes as reflection encodes it and
// decodes again to the same value, whose encoding no longer changes.
func checkDecode[T any](t *testing.T, data []byte) {
	var v T
	err := Decode(data, &v)
	var want T
	wantErr := decodeByReflection(data, &want)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%T: Decode: %v; through msgpack: %v", v, err, wantErr)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%T: error %v does not match ErrMalformed", v, err)
		}
		return
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("Decode gave %+v, msgpack %+v", v, want)
	}
	over, wantOver := filled[T](t), filled[T](t)
	err, wantErr = Decode(data, over), decodeByReflection(data, wantOver)
	if (err == nil) != (wantErr == nil) || err == nil && !reflect.DeepEqual(over, wantOver) {
		t.Fatalf("over %T with every field set: Decode gave %+v (%v), msgpack %+v (%v)", v, over, err, wantOver, wantErr)
	}
	again, err := Encode(&v)
	if err != nil {
		t.Fatalf("decoded %+v does not encode: %v", v, err)
	}
	if byReflection, err := encodeByReflection(&v); err != nil || !bytes.Equal(again, byReflection) {
		t.Fatalf("%+v encodes as % x, by reflection as % x (%v)", v, again, byReflection, err)
	}
	var w T
	if err := Decode(again, &w); err != nil {
		t.Fatalf("re-encoded %+v does not decode: %v", v, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("round trip changed %+v into %+v", v, w)
	}
	if third, err := Encode(&w); err != nil || !bytes.Equal(third, again) {
		t.Fatalf("%+v encodes as % x, then as % x (%v)", v, again, third, err)
	}
}

// encodeByReflection is what Encode is held to: msgpack's encoder by
// reflection on the struct tags, for the envelope types with integers in
// their shortest form, as the wire has always carried them, and for any
// other type as msgpack.Marshal writes it. An Item or ItemResult without a
// Ref leaves it out, as their EncodeMsgpack says.
func encodeByReflection(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_, compact := v.(envelope)
	enc.UseCompactInts(compact)
	if c, ok := v.(*Chunk); ok && !c.Named() {
		// A chunk of unnamed work leaves a named job's fields out.
		v = &unnamedChunk{Executor: c.Executor, ID: c.ID, Kind: c.Kind, Control: c.Control, Deadline: c.Deadline, Items: c.Items}
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unnamedChunk is a Chunk without a named job's fields, as a chunk of
// unnamed work is encoded.
type unnamedChunk struct {
	_msgpack struct{} `msgpack:",as_array"`
	Executor string
	ID       uint64
	Kind     string
	Control  string
	Deadline int64
	Items    []Item
}

// decodeByReflection is what Decode is held to: unmarshalByReflection, then
// the type's validate.
func decodeByReflection(data []byte, v any) error {
	if err := unmarshalByReflection(data, v); err != nil {
		return err
	}
	if val, ok := v.(interface{ validate() error }); ok {
		return val.validate()
	}
	return nil
}

// unmarshalByReflection is msgp.Check, then msgpack's decoder by reflection
// on the struct tags. msgpack's reflection wants an array-encoded struct to
// hold exactly as many elements as it has fields, but the wire lets a peer
// add fields at the end: so, for the types that Decode reads itself, it
// walks the structs by reflection under the wire's rule (fewer elements
// leave the other fields as they are, more are skipped) and leaves every
// field that is not a struct, a pointer to one or a list of them to
// msgpack's decoder. It does not bound lists by MaxItems, which
// TestDecodeEnforcesMaxItems holds Decode to.
func unmarshalByReflection(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	if err := msgp.Check(data); err != nil {
		return err
	}
	if _, ok := v.(envelope); !ok {
		return msgpack.Unmarshal(data, v)
	}
	return unmarshalStruct(msgpack.NewDecoder(bytes.NewReader(data)), reflect.ValueOf(v).Elem())
}

// unmarshalStruct decodes an array-encoded struct into v, replacing whole
// each field the message holds; nil zeroes v, as msgpack's reflection does.
func unmarshalStruct(d *msgpack.Decoder, v reflect.Value) error {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		v.SetZero()
		return err
	}
	var fields []reflect.Value
	for i := range v.NumField() {
		if v.Type().Field(i).IsExported() {
			fields = append(fields, v.Field(i))
		}
	}
	for i := range n {
		if i >= len(fields) {
			if err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		fields[i].SetZero()
		if err := unmarshalField(d, fields[i]); err != nil {
			return err
		}
	}
	return nil
}

func unmarshalField(d *msgpack.Decoder, f reflect.Value) error {
	switch t := f.Type(); {
	case t.Kind() == reflect.Struct:
		return unmarshalStruct(d, f)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		if c, err := d.PeekCode(); err != nil || c == msgp.Nil {
			return d.DecodeNil()
		}
		f.Set(reflect.New(t.Elem()))
		return unmarshalStruct(d, f.Elem())
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		n, err := d.DecodeArrayLen()
		if err != nil || n < 0 {
			return err
		}
		f.Set(reflect.MakeSlice(t, n, n))
		for i := range n {
			if err := unmarshalStruct(d, f.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return d.DecodeValue(f)
}

// filled returns a new T with every field set, for a message to be decoded
// over: the fields it leaves out keep their values.
func filled[T any](t *testing.T) *T {
	t.Helper()
	var full any
	switch any(new(T)).(type) {
	case *Chunk:
		full = &Chunk{Executor: "old", ID: 99, Kind: "old", Control: "old", Deadline: 99, Items: []Item{{Seq: 99, Args: []byte{0x63}}}}
	case *Start:
		full = &Start{Chunk: 99, Worker: "old", Inbox: "old", Delivery: 99}
	case *Starts:
		full = &Starts{Items: []Start{{Chunk: 99, Worker: "old", Inbox: "old", Delivery: 99}}}
	case *StartReply:
		full = &StartReply{Verdict: VerdictBusy, Items: []uint32{99}, LeaseMs: 99}
	case *StartReplies:
		full = &StartReplies{Items: []StartReply{{Verdict: VerdictBusy, Items: []uint32{99}, LeaseMs: 99}}}
	case *Result:
		full = &Result{Chunk: 99, Worker: "old", Final: true, Grant: 0xfeedface, Items: []ItemResult{{Seq: 99, Value: []byte{0x63}}}}
	case *JobResult:
		full = &JobResult{Worker: "old", Nonce: 99, Proof: []byte{0x63}, Final: true, Items: []ItemResult{{Seq: 99, Value: []byte{0x63}}}}
	case *Lease:
		full = &Lease{Chunk: 99, Grant: 99}
	case *Interrupt:
		full = &Interrupt{Executor: "old", Chunk: 99, Seq: 99}
	case *ErrorInfo:
		full = &ErrorInfo{Type: "old", Message: "old", Stack: "old", Retryable: true}
	case *CancelRequest:
		full = &CancelRequest{Executor: "old", Kind: "old"}
	case *CancelReply:
		full = &CancelReply{Executor: "old", Cancelled: 99, Running: 99}
	default:
		t.Fatalf("no filled %T", new(T))
	}
	data, err := msgpack.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	v := new(T)
	if err := unmarshalByReflection(data, v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkEncode checks Encode against reflection on any T that reflection
// makes of data, valid or not: the same bytes, in a slice of exactly their
// size.
func checkEncode[T any](t *testing.T, data []byte) {
	var v T
	if unmarshalByReflection(data, &v) != nil {
		return
	}
	got, err := Encode(&v)
	want, wantErr := encodeByReflection(&v)
	if err != nil || wantErr != nil || !bytes.Equal(got, want) {
		t.Fatalf("%+v: Encode gave % x (%v), reflection % x (%v)", v, got, err, want, wantErr)
	}
	if cap(got) != len(got) {
		t.Fatalf("%T: %d bytes in a slice of %d", v, len(got), cap(got))
	}
}

// addSeeds adds the encodings of seeds and a few hostile inputs to f's
// corpus.
func addSeeds(f *testing.F, seeds ...any) {
	for _, s := range seeds {
		data, err := Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(append(bytes.Repeat([]byte{0x91}, 300), 0xc0))
}

func FuzzDecodeChunk(f *testing.F) {
	addSeeds(f,
		&Chunk{Executor: "ex", ID: 1, Kind: "square", Control: "jetpool.default.ctl.ex", Items: []Item{{Seq: 0, Args: []byte{0x07}}}},
		&Chunk{Executor: "ex", ID: 1 << 40, Kind: "k", Control: "c", Deadline: 1 << 62, Items: []Item{{Seq: 0, Args: []byte{0xc0}}, {Seq: 1, Args: []byte{0x92, 0x01, 0xa1, 0x61}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode[Chunk](t, data) })
}

func FuzzDecodeResult(f *testing.F) {
	addSeeds(f,
		&Result{Chunk: 3, Worker: "w", Final: true, Grant: 0xfeedface, Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}}},
		&Result{Chunk: 4, Worker: "w", Items: []ItemResult{{Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "goroutine 1", Retryable: true}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode[Result](t, data) })
}

func FuzzDecodeJobResult(f *testing.F) {
	addSeeds(f,
		&JobResult{Worker: "w", Nonce: 3, Proof: bytes.Repeat([]byte{7}, 32), Final: true, Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}}},
		&JobResult{Worker: "w", Nonce: 1 << 63, Proof: []byte{1}, Items: []ItemResult{{Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "goroutine 1", Retryable: true}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode[JobResult](t, data) })
}

// FuzzDecodeResults holds the reader of result messages to the decoder of
// one Result: a message Decode accepts as one Result is that one Result, and
// a message of several is exactly its Results' encodings back to back, each
// of which Decode accepts alone.
func FuzzDecodeResults(f *testing.F) {
	one := &Result{Chunk: 3, Worker: "w", Final: true, Grant: 0xfeedface, Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}}}
	two := &Result{Chunk: 4, Worker: "w", Items: []ItemResult{{Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom"}}}}
	addSeeds(f, one, two)
	a, _ := Encode(one)
	b, _ := Encode(two)
	f.Add(append(bytes.Clone(a), b...))
	f.Add(append(bytes.Clone(a), 0xc1))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := DecodeResults(data)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not match ErrMalformed", err)
		}
		var alone Result
		if Decode(data, &alone) == nil && (err != nil || len(rs) != 1 || !reflect.DeepEqual(rs[0], alone)) {
			t.Fatalf("one Result %+v read as %+v (%v)", alone, rs, err)
		}
		var joined []byte
		for i := range rs {
			enc, err := Encode(&rs[i])
			if err != nil {
				t.Fatalf("result %d, %+v, does not encode: %v", i, rs[i], err)
			}
			var back Result
			if err := Decode(enc, &back); err != nil || !reflect.DeepEqual(back, rs[i]) {
				t.Fatalf("result %d, %+v, decodes alone as %+v (%v)", i, rs[i], back, err)
			}
			joined = append(joined, enc...)
		}
		if err != nil {
			return
		}
		again, err := DecodeResults(joined)
		if err != nil || !reflect.DeepEqual(again, rs) {
			t.Fatalf("%+v encoded back to back reads as %+v (%v)", rs, again, err)
		}
	})
}

func FuzzDecodeStarts(f *testing.F) {
	addSeeds(f,
		&Starts{Items: []Start{{Chunk: 1, Worker: "w", Inbox: "jetpool.default.worker.w", Delivery: 1}}},
		&Starts{Items: []Start{{Chunk: 1}, {Chunk: 2, Delivery: 9}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode[Starts](t, data) })
}

func FuzzDecodeStartReplies(f *testing.F) {
	addSeeds(f,
		&StartReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{0, 1}, LeaseMs: 30000}}},
		&StartReplies{Items: []StartReply{{Verdict: VerdictDrop}, {Verdict: VerdictBusy}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode[StartReplies](t, data) })
}

// FuzzDecodeControl feeds the same bytes to the decoder of every smaller
// control message: a start, a lone start reply, a lease, an interrupt, an
// operator's cancel request and its reply, an error.
func FuzzDecodeControl(f *testing.F) {
	addSeeds(f,
		&Start{Chunk: 5, Worker: "w", Inbox: "jetpool.default.worker.w", Delivery: 2},
		&StartReply{Verdict: VerdictGo, Items: []uint32{3}, LeaseMs: 10_000},
		&Lease{Chunk: 5, Grant: 2},
		&Interrupt{Executor: "ex", Chunk: 5, Seq: 3},
		&CancelRequest{Executor: "ex", Kind: "square"},
		&CancelReply{Executor: "ex", Cancelled: 4, Running: 1},
		&ErrorInfo{Type: "panic", Message: "boom", Stack: "goroutine 1", Retryable: true},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode[Start](t, data)
		checkDecode[StartReply](t, data)
		checkDecode[Lease](t, data)
		checkDecode[Interrupt](t, data)
		checkDecode[CancelRequest](t, data)
		checkDecode[CancelReply](t, data)
		checkDecode[ErrorInfo](t, data)
	})
}

// FuzzEncode holds Encode to reflection's bytes for every envelope type the
// direct encoders write, on whatever values reflection decodes from the
// input, including ones Decode refuses.
func FuzzEncode(f *testing.F) {
	addSeeds(f,
		&Chunk{Executor: "ex", ID: 1 << 40, Kind: "k", Control: "c", Deadline: -1 << 40, Items: []Item{{Seq: 0, Args: []byte{}}, {Seq: 1 << 20}}},
		&Starts{Items: []Start{{Chunk: 300, Worker: "w", Inbox: "i", Delivery: 70000}}},
		&StartReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{0, 200, 1 << 31}, LeaseMs: -200}}},
		&Result{Chunk: 3, Worker: "w", Final: true, Grant: 0xfeedface, Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}, {Seq: 1, Err: &ErrorInfo{Type: "t"}}}},
		&Lease{Chunk: 5, Grant: 2},
		&Interrupt{Executor: "ex", Chunk: 5, Seq: 3},
		&JobResult{Worker: "w", Nonce: 70000, Proof: []byte{1, 2}, Final: true, Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEncode[Chunk](t, data)
		checkEncode[Start](t, data)
		checkEncode[Starts](t, data)
		checkEncode[StartReply](t, data)
		checkEncode[StartReplies](t, data)
		checkEncode[Result](t, data)
		checkEncode[Lease](t, data)
		checkEncode[Interrupt](t, data)
		checkEncode[JobResult](t, data)
	})
}
