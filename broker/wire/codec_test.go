package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// TestCodecsMatchReflection: Decode reads what msgpack.Marshal writes by
// reflection on the struct tags, integers in the fixed widths of their
// fields and so not byte for byte what Encode writes, into the same values;
// and msgpack.Unmarshal reads what Encode writes into the same values.
func TestCodecsMatchReflection(t *testing.T) {
	chunk := Chunk{Executor: "ex1", ID: 1 << 40, Kind: "square", Control: "jetpool.default.ctl.ex1",
		Deadline: -5, Items: []Item{{Seq: 0, Args: []byte{0x01}}, {Seq: 7, Args: []byte{0xc0, 0xff}}, {Seq: 1 << 31}}}
	result := Result{Chunk: 9, Worker: "w", Final: true, Grant: 0xfeedface,
		Items: []ItemResult{{Seq: 1, Value: []byte{0x2a}}, {Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "s", Retryable: true}}}}
	start := Start{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2, Digest: []byte{1, 2}, Ack: "$JS.ACK.a"}
	ref := Ref{Name: "e/2/1", Size: 50 << 20, Key: bytes.Repeat([]byte{7}, RefKeyLen)}
	cases := []struct {
		name  string
		value any // a pointer to an envelope value
	}{
		{"chunk", &chunk},
		{"empty chunk", &Chunk{}},
		{"named chunk", &Chunk{Kind: "square", Items: chunk.Items, Job: "o.n", Ord: 3, Pos: 1 << 33, Key: []byte{1, 2}, TTL: time.Minute}},
		{"start", &start},
		{"starts", &Starts{Items: []Start{start, {Chunk: 4}}}},
		{"start replies", &StartReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{1}, LeaseMs: 5, Grant: 7}, {Verdict: VerdictDrop}}}},
		{"start reply go", &StartReply{Verdict: VerdictGo, Items: []uint32{0, 5}, LeaseMs: 30000, Grant: 1 << 63}},
		{"start reply drop", &StartReply{Verdict: VerdictDrop}},
		{"result", &result},
		{"job result", &JobResult{Worker: "w", Nonce: 1 << 40, Proof: []byte{9, 8}, Final: true, Items: result.Items}},
		{"empty job result", &JobResult{}},
		{"lease", &Lease{Chunk: 1, Grant: 4}},
		{"interrupt", &Interrupt{Executor: "e", Chunk: 2, Seq: 3, Grant: 4}},
		{"chunk with a value by reference", &Chunk{Executor: "ex1", ID: 2, Kind: "square", Control: "c",
			Items: []Item{{Seq: 0, Args: []byte{0x01}}, {Seq: 1, Ref: &ref}}}},
		{"result with a value by reference", &Result{Chunk: 9, Worker: "w", Final: true, Grant: 3,
			Items: []ItemResult{{Seq: 1, Ref: &ref}, {Seq: 2, Value: []byte{0x2a}}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			byReflection, err := msgpack.Marshal(c.value)
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(c.value).Elem()).Interface()
			if err := decode(byReflection, got); err != nil {
				t.Fatalf("decode of reflection's bytes: %v", err)
			}
			if !reflect.DeepEqual(got, c.value) {
				t.Fatalf("decode read %+v, want %+v", got, c.value)
			}
			enc, err := Encode(c.value)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(c.value).Elem()).Interface()
			want := c.value
			if ch, ok := c.value.(*Chunk); ok && !ch.Named() {
				// A chunk of unnamed work leaves a named job's fields out.
				back = new(unnamedChunk)
				want = &unnamedChunk{Executor: ch.Executor, ID: ch.ID, Kind: ch.Kind, Control: ch.Control, Deadline: ch.Deadline, Items: ch.Items}
			}
			if err := msgpack.Unmarshal(enc, back); err != nil {
				t.Fatalf("reflection on Encode's bytes: %v", err)
			}
			if !reflect.DeepEqual(back, want) {
				t.Fatalf("reflection read %+v, want %+v", back, want)
			}
		})
	}
}

// TestCodecsSkipUnknownFields: a newer peer may append fields; they are
// skipped, and a shorter array leaves the missing fields zero.
func TestCodecsSkipUnknownFields(t *testing.T) {
	longer, _ := msgpack.Marshal([]any{uint64(3), "w", "i", uint64(2), []byte{7}, "a", "extra", []any{1, 2}})
	var s Start
	if err := Decode(longer, &s); err != nil {
		t.Fatal(err)
	}
	if want := (Start{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2, Digest: []byte{7}, Ack: "a"}); !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	shorter, _ := msgpack.Marshal([]any{uint64(3)})
	s = Start{}
	if err := Decode(shorter, &s); err != nil {
		t.Fatal(err)
	}
	if want := (Start{Chunk: 3}); !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestCodecsRefuseWrongTypes(t *testing.T) {
	for name, v := range map[string][]any{
		"string for chunk id": {"ex", "not a number", "k", "c", 0, []any{}},
		"map for items":       {"ex", 1, "k", "c", 0, map[string]any{"a": 1}},
		"number for args":     {"ex", 1, "k", "c", 0, []any{[]any{0, 12}}},
		"string for deadline": {"ex", 1, "k", "c", "soon", []any{}},
		"item not an array":   {"ex", 1, "k", "c", 0, []any{"x"}},
	} {
		data, _ := msgpack.Marshal(v)
		var c Chunk
		if err := Decode(data, &c); err == nil {
			t.Errorf("%s: decoded %+v", name, c)
		}
	}
}

// boundaryEnvelopes returns envelopes whose numbers, strings, byte slices and
// lists sit on each side of every length at which msgpack changes form, with
// nil and empty slices.
func boundaryEnvelopes() []any {
	uints := []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64}
	ints := []int64{0, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64, math.MaxInt64, 127, 128}
	lens := []int{0, 1, 31, 32, 255, 256, 65535, 65536}
	str := func(i int) string { return strings.Repeat("s", lens[i%len(lens)]) }
	bin := func(i int) []byte {
		switch i % (len(lens) + 1) {
		case len(lens):
			return nil
		default:
			return bytes.Repeat([]byte{0xc1}, lens[i%(len(lens)+1)])
		}
	}
	var out []any
	for i := range max(len(uints), len(ints), len(lens)+1) {
		u, n := uints[i%len(uints)], ints[i%len(ints)]
		items := make([]Item, i)
		values := make([]ItemResult, i)
		seqs := make([]uint32, i)
		for j := range i {
			items[j] = Item{Seq: uint32(uints[j%len(uints)]), Args: bin(j)}
			values[j] = ItemResult{Seq: uint32(uints[(j+i)%len(uints)]), Value: bin(j + i)}
			if j%2 == 1 {
				values[j].Err = &ErrorInfo{Type: str(j), Message: str(j + 1), Stack: str(j + 2), Retryable: j%4 == 1}
			}
			seqs[j] = uint32(uints[j%len(uints)])
		}
		out = append(out,
			&Chunk{Executor: str(i), ID: u, Kind: str(i + 1), Control: str(i + 2), Deadline: n, Items: items},
			&Start{Chunk: u, Worker: str(i), Inbox: str(i + 3), Delivery: uints[(i+1)%len(uints)]},
			&Starts{Items: []Start{{Chunk: u, Worker: str(i)}, {Delivery: u, Inbox: str(i + 1)}}},
			&StartReply{Verdict: uint8(u), Items: seqs, LeaseMs: n},
			&StartReplies{Items: []StartReply{{Verdict: uint8(i), Items: seqs, LeaseMs: n}, {}}},
			&Result{Chunk: u, Worker: str(i), Final: i%2 == 0, Grant: uints[(i+5)%len(uints)], Items: values},
			&JobResult{Worker: str(i), Nonce: u, Proof: bin(i), Final: i%2 == 1, Items: values},
			&Lease{Chunk: u, Grant: uints[(i+2)%len(uints)]},
			&Interrupt{Executor: str(i + 7), Chunk: u, Seq: uint32(u)},
		)
	}
	// Nil and empty lists, and lists whose length needs each header.
	for _, n := range []int{-1, 0, 15, 16, 65535, 65536} {
		var items []Item
		var values []ItemResult
		var seqs []uint32
		var starts []Start
		var replies []StartReply
		if n >= 0 {
			items, values, seqs = make([]Item, n), make([]ItemResult, n), make([]uint32, n)
			starts, replies = make([]Start, n), make([]StartReply, n)
		}
		out = append(out, &Chunk{Items: items}, &Result{Items: values}, &JobResult{Items: values}, &StartReply{Items: seqs},
			&Starts{Items: starts}, &StartReplies{Items: replies})
	}
	return out
}

// TestEncodeMatchesMsgpack: Encode writes exactly what msgpack's
// reflection writes with compact integers, the wire format other versions
// read, in a slice of exactly that size; and Decode reads it back as
// reflection does.
func TestEncodeMatchesMsgpack(t *testing.T) {
	values := boundaryEnvelopes()
	for _, e := range envelopes() {
		values = append(values, e.value)
	}
	for _, e := range benchEnvelopes() {
		values = append(values, e.value)
	}
	for i, v := range values {
		got, err := Encode(v)
		if err != nil {
			t.Fatalf("%d: Encode(%T): %v", i, v, err)
		}
		want, err := encodeByReflection(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d: Encode(%T) differs from msgpack.Marshal at byte %d of %d", i, v, firstDiff(got, want), len(want))
		}
		if _, direct := v.(envelope); direct && cap(got) != len(got) {
			t.Fatalf("%d: %T: %d bytes in a slice of %d", i, v, len(got), cap(got))
		}
		into := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		ref := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		err, refErr := decode(got, into), unmarshalByReflection(got, ref)
		if err != nil || refErr != nil || !reflect.DeepEqual(into, ref) || !reflect.DeepEqual(into, v) {
			t.Fatalf("%d: %T decodes with %v, with msgpack %v, or to another value", i, v, err, refErr)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestDecodeOverFilledValues: a message decoded over a value changes only
// the fields it holds, and a nil message zeroes the value, as msgpack's
// decoder does.
func TestDecodeOverFilledValues(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		over func(*testing.T) (any, any) // two filled values of the same type
	}{
		{"nil start", []byte{0xc0}, func(t *testing.T) (any, any) { return filled[Start](t), filled[Start](t) }},
		{"start with its chunk only", mustEncode(t, []any{3}), func(t *testing.T) (any, any) { return filled[Start](t), filled[Start](t) }},
		{"empty lease", []byte{0x90}, func(t *testing.T) (any, any) { return filled[Lease](t), filled[Lease](t) }},
		{"starts with nil items", []byte{0x91, 0xc0}, func(t *testing.T) (any, any) { return filled[Starts](t), filled[Starts](t) }},
		{"result with its chunk only", mustEncode(t, []any{1}), func(t *testing.T) (any, any) { return filled[Result](t), filled[Result](t) }},
		{"start reply with nil seqs", mustEncode(t, []any{1, nil}), func(t *testing.T) (any, any) { return filled[StartReply](t), filled[StartReply](t) }},
		{"nil interrupt", []byte{0xc0}, func(t *testing.T) (any, any) { return filled[Interrupt](t), filled[Interrupt](t) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := c.over(t)
			err, wantErr := Decode(c.data, got), decodeByReflection(c.data, want)
			if err != nil || wantErr != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Decode gave %+v (%v), msgpack %+v (%v)", got, err, want, wantErr)
			}
		})
	}
	// A nil list replaces the one decoded over, so a chunk message without
	// items is refused whatever value it is decoded into.
	over := filled[Chunk](t)
	if err := Decode(mustEncode(t, []any{"ex", 1, "k", "c", 0, nil}), over); !errors.Is(err, ErrMalformed) || over.Items != nil {
		t.Fatalf("a chunk with nil items over one with items: %v, items %+v", err, over.Items)
	}
}

// TestDecodeAliasesTheMessage: a chunk's args and a result's values are the
// message's own bytes, each capped at its length so an append to one cannot
// overwrite the next.
func TestDecodeAliasesTheMessage(t *testing.T) {
	data := mustEncode(t, &Chunk{Executor: "ex", ID: 1, Kind: "k", Control: "c", Items: []Item{{Seq: 0, Args: []byte{1, 2}}, {Seq: 1, Args: []byte{3}}}})
	var c Chunk
	if err := Decode(data, &c); err != nil {
		t.Fatal(err)
	}
	args := c.Items[0].Args
	if &args[0] != &data[bytes.Index(data, []byte{1, 2})] || cap(args) != len(args) {
		t.Fatalf("args % x at a copy or with capacity %d", args, cap(args))
	}
	_ = append(args, 0xff)
	if !bytes.Equal(c.Items[1].Args, []byte{3}) {
		t.Fatalf("an append to one item's args changed the next: % x", c.Items[1].Args)
	}

	data = mustEncode(t, &Result{Chunk: 1, Items: []ItemResult{{Seq: 0, Value: []byte{7, 8}}, {Seq: 1, Value: []byte{}}}})
	var r Result
	if err := Decode(data, &r); err != nil {
		t.Fatal(err)
	}
	if v := r.Items[0].Value; &v[0] != &data[bytes.Index(data, []byte{7, 8})] || cap(v) != len(v) {
		t.Fatalf("value % x at a copy or with capacity %d", v, cap(v))
	}
	if v := r.Items[1].Value; v == nil || len(v) != 0 {
		t.Fatalf("an empty value decodes as %#v, want empty and not nil", v)
	}
}

// TestDecodeNestsAsTheChecker: an unknown field, wherever it sits in an
// envelope, may nest exactly as deep as msgp.Check allows, and the direct
// decoders agree with reflection on each side of that bound.
func TestDecodeNestsAsTheChecker(t *testing.T) {
	cases := []struct {
		name   string
		prefix []byte
		around int // containers around the unknown field
		into   func() any
	}{
		{"lease", []byte{0x93, 0x01, 0x02}, 1, func() any { return new(Lease) }},
		{"chunk item", []byte{0x96, 0xa2, 'e', 'x', 0x01, 0xa1, 'k', 0xa1, 'c', 0x00, 0x91, 0x94, 0x00, 0xc4, 0x01, 0x07, 0xc0}, 3, func() any { return new(Chunk) }},
		{"start", []byte{0x91, 0x91, 0x97, 0x01, 0xa1, 'w', 0xa1, 'i', 0x01, 0xc4, 0x01, 0x07, 0xa1, 'a'}, 3, func() any { return new(Starts) }},
		{"start reply", []byte{0x91, 0x91, 0x95, 0x01, 0xc0, 0x00, 0x05}, 3, func() any { return new(StartReplies) }},
		{"result item", []byte{0x95, 0x01, 0xa1, 'w', 0xc3, 0x05, 0x91, 0x95, 0x00, 0xc4, 0x01, 0x07, 0xc0, 0xc0}, 3, func() any { return new(Result) }},
		{"result error", []byte{0x95, 0x01, 0xa1, 'w', 0xc3, 0x05, 0x91, 0x93, 0x00, 0xc0, 0x95, 0xa1, 'T', 0xa1, 'M', 0xa1, 'S', 0xc2}, 4, func() any { return new(Result) }},
	}
	for _, c := range cases {
		limit := msgp.MaxDepth - c.around // arrays the unknown field may open
		for _, k := range []int{limit - 1, limit, limit + 1} {
			for _, innermost := range []byte{0x01, 0x90} { // a number, or an empty array, which opens nothing
				data := append(bytes.Clone(c.prefix), bytes.Repeat([]byte{0x91}, k)...)
				data = append(data, innermost)
				err, wantErr := Decode(data, c.into()), decodeByReflection(data, c.into())
				if (err == nil) != (wantErr == nil) || (err == nil) != (k <= limit) {
					t.Errorf("%s nesting %d arrays and %#x: Decode %v, msgpack %v", c.name, k, innermost, err, wantErr)
				}
			}
		}
	}
}

func TestDecodeIntoNil(t *testing.T) {
	data := mustEncode(t, &Lease{Chunk: 1, Grant: 1})
	if err := Decode(data, (*Lease)(nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Decode into a nil *Lease: %v, want ErrMalformed", err)
	}
}

// benchEnvelopes are the messages on every task's path, at the sizes the
// executor sends them: a chunk of one call and one of 1000 small ints, a
// start request of 20 chunks and its replies, results of one and of 1000
// items, and a lease.
func benchEnvelopes() []struct {
	name  string
	value any
	empty func() any
} {
	const control = "jetpool.default.ctl.01JQ3X8Z9YB6W2K7M4N5P0R1S2"
	items := make([]Item, 1000)
	values := make([]ItemResult, 1000)
	seqs := make([]uint32, 1000)
	for i := range items {
		items[i] = Item{Seq: uint32(i), Args: []byte{byte(i % 100)}}
		values[i] = ItemResult{Seq: uint32(i), Value: []byte{byte(i % 100)}}
		seqs[i] = uint32(i)
	}
	starts := make([]Start, 20)
	replies := make([]StartReply, 20)
	for i := range starts {
		starts[i] = Start{Chunk: uint64(1000 + i), Worker: "w-01JQ3X8Z9YB6W2K7", Inbox: "jetpool.default.worker.w-01JQ3X8Z9YB6W2K7", Delivery: 1,
			Digest: make([]byte, 32), Ack: "$JS.ACK.JETPOOL_DEFAULT.square.1.1234.5678.1700000000000000000.0"}
		replies[i] = StartReply{Verdict: VerdictGo, Items: []uint32{0}, LeaseMs: 30_000, Grant: 0xfeedfacecafe}
	}
	return []struct {
		name  string
		value any
		empty func() any
	}{
		{"chunk-1", &Chunk{Executor: "01JQ3X8Z9YB6W2K7M4N5P0R1S2", ID: 12345, Kind: "square", Control: control,
			Deadline: 1_700_000_000_000_000_000, Items: []Item{{Seq: 0, Args: []byte{0x2a}}}}, func() any { return new(Chunk) }},
		{"chunk-1000", &Chunk{Executor: "01JQ3X8Z9YB6W2K7M4N5P0R1S2", ID: 12345, Kind: "square", Control: control, Items: items},
			func() any { return new(Chunk) }},
		{"starts-1", &Starts{Items: starts[:1]}, func() any { return new(Starts) }},
		{"starts-20", &Starts{Items: starts}, func() any { return new(Starts) }},
		{"replies-1", &StartReplies{Items: replies[:1]}, func() any { return new(StartReplies) }},
		{"replies-20", &StartReplies{Items: replies}, func() any { return new(StartReplies) }},
		{"reply-1000", &StartReply{Verdict: VerdictGo, Items: seqs, LeaseMs: 30_000}, func() any { return new(StartReply) }},
		{"result-1", &Result{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Final: true, Grant: 0xfeedfacecafe, Items: values[:1]},
			func() any { return new(Result) }},
		{"result-1000", &Result{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Final: true, Grant: 0xfeedfacecafe, Items: values},
			func() any { return new(Result) }},
		{"result-error", &Result{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Final: true, Grant: 0xfeedfacecafe,
			Items: []ItemResult{{Seq: 0, Err: &ErrorInfo{Type: "*errors.errorString", Message: "no such file"}}}},
			func() any { return new(Result) }},
		{"lease", &Lease{Chunk: 12345, Grant: 1}, func() any { return new(Lease) }},
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, e := range benchEnvelopes() {
		data, err := Encode(e.value)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := Decode(data, e.empty()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, e := range benchEnvelopes() {
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(e.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestMsgIDRoundTrip(t *testing.T) {
	exec, id, ok := ParseMsgID(MsgID("abc.def", 42))
	if !ok || exec != "abc.def" || id != 42 {
		t.Fatalf("ParseMsgID(MsgID) = %q, %d, %v", exec, id, ok)
	}
	for _, bad := range []string{"", "nodot", ".5", "ex.", "ex.-1", "ex.x1", "ex.99999999999999999999"} {
		if _, _, ok := ParseMsgID(bad); ok {
			t.Errorf("ParseMsgID(%q) accepted", bad)
		}
	}
}
