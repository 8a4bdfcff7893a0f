package broker

import (
	"errors"
	"reflect"
	"testing"
)

// fuzzDecode checks one decoder on arbitrary bytes: it never panics, its
// errors match ErrMalformed, and what it accepts encodes and decodes again to
// the same value.
func fuzzDecode[T any](f *testing.F, seeds ...T) {
	for _, s := range seeds {
		data, err := Encode(&s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v T
		if err := Decode(data, &v); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
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
	})
}

func FuzzDecodeChunk(f *testing.F) {
	fuzzDecode(f,
		Chunk{Executor: "ex", ID: 1, Kind: "square", Control: "jetpool.default.ctl.ex", Items: []Item{{Seq: 0, Args: []byte{0x07}}}},
		Chunk{Executor: "ex", ID: 1 << 40, Kind: "k", Control: "c", Deadline: 1 << 62, Items: []Item{{Seq: 0, Args: []byte{0xc0}}, {Seq: 1, Args: []byte{0x92, 0x01, 0xa1, 0x61}}}},
	)
}

func FuzzDecodeResult(f *testing.F) {
	fuzzDecode(f,
		Result{Chunk: 3, Worker: "w", Final: true, Ack: "$JS.ACK.S.c.1.2.3.4.0", Items: []ItemResult{{Seq: 0, Value: []byte{0x31}}}},
		Result{Chunk: 4, Worker: "w", Items: []ItemResult{{Seq: 2, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "goroutine 1", Retryable: true}}}},
	)
}

func FuzzDecodeStarts(f *testing.F) {
	fuzzDecode(f,
		Starts{Items: []Start{{Chunk: 1, Worker: "w", Inbox: "jetpool.default.worker.w", Delivery: 1}}},
		Starts{Items: []Start{{Chunk: 1}, {Chunk: 2, Delivery: 9}}},
	)
}

func FuzzDecodeStartReplies(f *testing.F) {
	fuzzDecode(f,
		StartReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{0, 1}, LeaseMs: 30000}}},
		StartReplies{Items: []StartReply{{Verdict: VerdictDrop}, {Verdict: VerdictBusy}}},
	)
}
