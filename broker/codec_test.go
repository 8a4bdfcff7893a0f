package broker

import (
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The plain types share the envelope types' fields and tags but not their
// hand-written codecs, so msgpack encodes them by reflection.
type (
	plainChunk      Chunk
	plainStart      Start
	plainStartReply StartReply
	plainStarts     Starts
	plainReplies    StartReplies
	plainResult     Result
	plainLease      Lease
	plainInterrupt  Interrupt
)

// TestCodecsMatchReflection checks that the hand-written codecs read what
// reflection writes and write what reflection reads, field for field.
func TestCodecsMatchReflection(t *testing.T) {
	chunk := Chunk{Executor: "ex1", ID: 1 << 40, Kind: "square", Control: "jetpool.default.ctl.ex1",
		Deadline: -5, Items: []Item{{Seq: 0, Args: []byte{0x01}}, {Seq: 7, Args: []byte{0xc0, 0xff}}, {Seq: 1 << 31}}}
	result := Result{Chunk: 9, Worker: "w", Final: true, Ack: "$JS.ACK.X",
		Items: []ItemResult{{Seq: 1, Value: []byte{0x2a}}, {Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "s", Retryable: true}}}}
	cases := []struct {
		name       string
		typed      any // pointer to an envelope value
		plain      any // the same value as its plain type
		newTyped   func() any
		newPlain   func() any
		plainValue func(any) any // converts a decoded plain value back
	}{
		{"chunk", &chunk, (*plainChunk)(&chunk), func() any { return new(Chunk) }, func() any { return new(plainChunk) },
			func(v any) any { return (*Chunk)(v.(*plainChunk)) }},
		{"empty chunk", &Chunk{}, &plainChunk{}, func() any { return new(Chunk) }, func() any { return new(plainChunk) },
			func(v any) any { return (*Chunk)(v.(*plainChunk)) }},
		{"start", &Start{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2}, &plainStart{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2},
			func() any { return new(Start) }, func() any { return new(plainStart) }, func(v any) any { return (*Start)(v.(*plainStart)) }},
		{"starts", &Starts{Items: []Start{{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2}, {Chunk: 4}}},
			&plainStarts{Items: []Start{{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2}, {Chunk: 4}}},
			func() any { return new(Starts) }, func() any { return new(plainStarts) }, func(v any) any { return (*Starts)(v.(*plainStarts)) }},
		{"start replies", &StartReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{1}, LeaseMs: 5}, {Verdict: VerdictDrop}}},
			&plainReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{1}, LeaseMs: 5}, {Verdict: VerdictDrop}}},
			func() any { return new(StartReplies) }, func() any { return new(plainReplies) }, func(v any) any { return (*StartReplies)(v.(*plainReplies)) }},
		{"start reply go", &StartReply{Verdict: VerdictGo, Items: []uint32{0, 5}, LeaseMs: 30000}, &plainStartReply{Verdict: VerdictGo, Items: []uint32{0, 5}, LeaseMs: 30000},
			func() any { return new(StartReply) }, func() any { return new(plainStartReply) }, func(v any) any { return (*StartReply)(v.(*plainStartReply)) }},
		{"start reply drop", &StartReply{Verdict: VerdictDrop}, &plainStartReply{Verdict: VerdictDrop},
			func() any { return new(StartReply) }, func() any { return new(plainStartReply) }, func(v any) any { return (*StartReply)(v.(*plainStartReply)) }},
		{"result", &result, (*plainResult)(&result), func() any { return new(Result) }, func() any { return new(plainResult) },
			func(v any) any { return (*Result)(v.(*plainResult)) }},
		{"lease", &Lease{Chunk: 1, Worker: "w", Delivery: 4}, &plainLease{Chunk: 1, Worker: "w", Delivery: 4},
			func() any { return new(Lease) }, func() any { return new(plainLease) }, func(v any) any { return (*Lease)(v.(*plainLease)) }},
		{"interrupt", &Interrupt{Executor: "e", Chunk: 2, Seq: 3}, &plainInterrupt{Executor: "e", Chunk: 2, Seq: 3},
			func() any { return new(Interrupt) }, func() any { return new(plainInterrupt) }, func(v any) any { return (*Interrupt)(v.(*plainInterrupt)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			byReflection, err := msgpack.Marshal(c.plain)
			if err != nil {
				t.Fatal(err)
			}
			got := c.newTyped()
			if err := msgpack.Unmarshal(byReflection, got); err != nil {
				t.Fatalf("hand-written decoder on reflection's bytes: %v", err)
			}
			if !reflect.DeepEqual(got, c.typed) {
				t.Fatalf("hand-written decoder read %+v, want %+v", got, c.typed)
			}
			byHand, err := msgpack.Marshal(c.typed)
			if err != nil {
				t.Fatal(err)
			}
			back := c.newPlain()
			if err := msgpack.Unmarshal(byHand, back); err != nil {
				t.Fatalf("reflection on the hand-written encoding: %v", err)
			}
			if !reflect.DeepEqual(c.plainValue(back), c.typed) {
				t.Fatalf("reflection read %+v, want %+v", back, c.typed)
			}
		})
	}
}

// TestCodecsSkipUnknownFields: a newer peer may append fields; they are
// skipped, and a shorter array leaves the missing fields zero.
func TestCodecsSkipUnknownFields(t *testing.T) {
	longer, _ := msgpack.Marshal([]any{uint64(3), "w", "i", uint64(2), "extra", []any{1, 2}})
	var s Start
	if err := msgpack.Unmarshal(longer, &s); err != nil {
		t.Fatal(err)
	}
	if want := (Start{Chunk: 3, Worker: "w", Inbox: "i", Delivery: 2}); s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	shorter, _ := msgpack.Marshal([]any{uint64(3)})
	s = Start{}
	if err := msgpack.Unmarshal(shorter, &s); err != nil {
		t.Fatal(err)
	}
	if want := (Start{Chunk: 3}); s != want {
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
		starts[i] = Start{Chunk: uint64(1000 + i), Worker: "w-01JQ3X8Z9YB6W2K7", Inbox: "jetpool.default.worker.w-01JQ3X8Z9YB6W2K7", Delivery: 1}
		replies[i] = StartReply{Verdict: VerdictGo, Items: []uint32{0}, LeaseMs: 30_000}
	}
	ack := "$JS.ACK.JETPOOL_DEFAULT.square.1.1234.5678.1700000000000000000.0"
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
		{"result-1", &Result{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Final: true, Ack: ack, Items: values[:1]},
			func() any { return new(Result) }},
		{"result-1000", &Result{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Final: true, Ack: ack, Items: values},
			func() any { return new(Result) }},
		{"result-error", &Result{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Final: true, Ack: ack,
			Items: []ItemResult{{Seq: 0, Err: &ErrorInfo{Type: "*errors.errorString", Message: "no such file"}}}},
			func() any { return new(Result) }},
		{"lease", &Lease{Chunk: 12345, Worker: "w-01JQ3X8Z9YB6W2K7", Delivery: 1}, func() any { return new(Lease) }},
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
