package broker

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// checkDecode checks one decoder on arbitrary bytes: it never panics, its
// errors match ErrMalformed, and what it accepts encodes and decodes again to
// the same value, whose encoding no longer changes.
func checkDecode[T any](t *testing.T, data []byte) {
	var v T
	if err := Decode(data, &v); err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%T: error %v does not match ErrMalformed", v, err)
		}
		return
	}
	again, err := Encode(&v)
	if err != nil {
		t.Fatalf("decoded %+v does not encode: %v", v, err)
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
		&Result{Chunk: 3, Worker: "w", Final: true, Ack: "$JS.ACK.S.c.1.2.3.4.0", Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}}},
		&Result{Chunk: 4, Worker: "w", Items: []ItemResult{{Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "goroutine 1", Retryable: true}}}},
	)
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode[Result](t, data) })
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
		&Lease{Chunk: 5, Worker: "w", Delivery: 2},
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
