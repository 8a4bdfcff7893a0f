package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetpool/jetpool/task"
)

// mustEncode encodes v as Encode does: any value other than an envelope
// through msgpack.Marshal.
func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeRefusesMalformedInput: every bad shape is an error matching
// ErrMalformed; nothing panics and nothing allocates by a declared length.
func TestDecodeRefusesMalformedInput(t *testing.T) {
	valid := mustEncode(t, &Chunk{Executor: "ex", ID: 1, Kind: "square", Control: "c", Items: []Item{{Seq: 0, Args: []byte{1}}}})
	deep := bytes.Repeat([]byte{0x91}, 300)
	deep = append(deep, 0xc0)
	cases := []struct {
		name string
		data []byte
		into func() any
	}{
		{"empty", nil, func() any { return new(Chunk) }},
		{"garbage", []byte("not msgpack at all"), func() any { return new(Chunk) }},
		{"reserved code", []byte{0xc1}, func() any { return new(Result) }},
		{"truncated chunk", valid[:len(valid)-3], func() any { return new(Chunk) }},
		{"trailing garbage is not a second value", append(bytes.Clone(valid), 0xc1), func() any { return new(Chunk) }},
		{"huge array prefix", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, func() any { return new(Chunk) }},
		{"huge bin prefix", []byte{0x96, 0xa1, 'e', 0x01, 0xa1, 'k', 0xa1, 'c', 0x00, 0x91, 0x92, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff}, func() any { return new(Chunk) }},
		{"huge string prefix", []byte{0xdb, 0x7f, 0xff, 0xff, 0xff}, func() any { return new(Start) }},
		{"nesting bomb", deep, func() any { return new(Result) }},
		{"a map where the envelope is an array", mustEncode(t, map[string]any{"executor": "ex"}), func() any { return new(Chunk) }},
		{"a string for the chunk id", mustEncode(t, []any{"ex", "one", "square", "c", 0, []any{}}), func() any { return new(Chunk) }},
		{"chunk without items", mustEncode(t, &Chunk{Executor: "ex", ID: 1, Kind: "square", Control: "c"}), func() any { return new(Chunk) }},
		{"chunk without executor", mustEncode(t, &Chunk{ID: 1, Kind: "square", Control: "c", Items: []Item{{}}}), func() any { return new(Chunk) }},
		{"chunk with an invalid kind", mustEncode(t, &Chunk{Executor: "ex", ID: 1, Kind: "a.b", Control: "c", Items: []Item{{}}}), func() any { return new(Chunk) }},
		{"chunk with an empty kind", mustEncode(t, &Chunk{Executor: "ex", ID: 1, Control: "c", Items: []Item{{}}}), func() any { return new(Chunk) }},
		{"result item with neither value nor error", mustEncode(t, &Result{Chunk: 1, Items: []ItemResult{{Seq: 0}}}), func() any { return new(Result) }},
		{"chunk item with a reference without a key", mustEncode(t, &Chunk{Executor: "ex", ID: 1, Kind: "square", Control: "c", Items: []Item{{Ref: &Ref{Name: "v", Size: 1}}}}), func() any { return new(Chunk) }},
		{"chunk item with a reference without a name", mustEncode(t, &Chunk{Executor: "ex", ID: 1, Kind: "square", Control: "c", Items: []Item{{Ref: &Ref{Size: 1, Key: make([]byte, RefKeyLen)}}}}), func() any { return new(Chunk) }},
		{"result item with a reference of a negative size", mustEncode(t, &Result{Chunk: 1, Items: []ItemResult{{Ref: &Ref{Name: "v", Size: -1, Key: make([]byte, RefKeyLen)}}}}), func() any { return new(Result) }},
		{"unknown verdict", mustEncode(t, &StartReply{Verdict: 9}), func() any { return new(StartReply) }},
		{"unknown verdict among replies", mustEncode(t, &StartReplies{Items: []StartReply{{Verdict: VerdictGo}, {Verdict: 0}}}), func() any { return new(StartReplies) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Decode(c.data, c.into())
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %v, want an error matching ErrMalformed", err)
			}
		})
	}
}

func TestDecodeAllocatesByInputNotByClaim(t *testing.T) {
	claim := []byte{0xdd, 0x00, 0xff, 0xff, 0xff} // an array of 16M elements, in 5 bytes
	allocs := testing.AllocsPerRun(10, func() {
		var c Chunk
		Decode(claim, &c)
	})
	if allocs > 10 {
		t.Fatalf("%v allocations to refuse a 5-byte message", allocs)
	}
}

func TestNewErrorInfoBoundsTheStack(t *testing.T) {
	big := strings.Repeat("x", MaxStackLen+100)
	e := NewErrorInfo("square", &task.Error{Kind: "square", Type: task.TypePanic, Message: "boom", Stack: big})
	if len(e.Stack) != MaxStackLen || e.Type != task.TypePanic {
		t.Fatalf("stack of %d bytes travels, the bound is %d", len(e.Stack), MaxStackLen)
	}
	if te := e.TaskError("square"); te.Kind != "square" || te.Message != "boom" {
		t.Fatalf("TaskError: %+v", te)
	}
}

// envelopes returns a valid value of every envelope type, each as a pointer,
// with a constructor for an empty one to decode into.
func envelopes() []struct {
	name  string
	value any
	empty func() any
} {
	return []struct {
		name  string
		value any
		empty func() any
	}{
		{"chunk", &Chunk{Executor: "ex-1", ID: 1<<64 - 1, Kind: "square", Control: "jetpool.default.ctl.ex-1", Deadline: 1_700_000_000_000_000_000,
			Items: []Item{{Seq: 0, Args: []byte{0x05}}, {Seq: 1<<32 - 1, Args: []byte{0x92, 0xa1, 'a', 0xc0}}}}, func() any { return new(Chunk) }},
		{"chunk with a negative deadline and nil args", &Chunk{Executor: "é", ID: 0, Kind: "K_9-x", Control: "c", Deadline: -1, Items: []Item{{Seq: 3}}},
			func() any { return new(Chunk) }},
		{"chunk of a named job", &Chunk{Kind: "square", Deadline: 5, Items: []Item{{Seq: 0, Args: []byte{0x05}}},
			Job: "anon.nightly-1", Ord: 1 << 40, Pos: 1 << 45, Key: bytes.Repeat([]byte{7}, JobKeyLen), TTL: time.Hour},
			func() any { return new(Chunk) }},
		{"job info", &JobInfo{Created: 1, Retention: int64(time.Hour), Producer: "p", Beat: 2}, func() any { return new(JobInfo) }},
		{"job end", &JobEnd{Tasks: 1 << 40, At: 7}, func() any { return new(JobEnd) }},
		{"job chunk", &JobChunk{Pos: 3, N: 2, Kind: "square", Input: []byte{1}, Commit: []byte{2}, Deadline: 4, Seq: 5},
			func() any { return new(JobChunk) }},
		{"job cancel", &JobCancel{Items: []uint32{0, 9}}, func() any { return new(JobCancel) }},
		{"job claim", &JobClaim{Worker: "w", Nonce: 3, Inbox: "_INBOX.w.1", StreamSeq: 8, LeaseMs: 30_000, Since: 2,
			Proof: []byte{1, 2}, Done: []uint32{0}, Final: true}, func() any { return new(JobClaim) }},
		{"job result", &JobResult{Worker: "w", Nonce: 3, Proof: []byte{1}, Final: true,
			Items: []ItemResult{{Seq: 0, Value: []byte{0x01}}, {Seq: 1, Err: &ErrorInfo{Type: "boom", Message: "m"}}}},
			func() any { return new(JobResult) }},
		{"start", &Start{Chunk: 7, Worker: "w-1", Inbox: "jetpool.default.worker.w-1", Delivery: 3}, func() any { return new(Start) }},
		{"zero start", &Start{}, func() any { return new(Start) }},
		{"starts", &Starts{Items: []Start{{Chunk: 1, Worker: "w", Inbox: "i", Delivery: 1}, {Chunk: 1<<64 - 1}}}, func() any { return new(Starts) }},
		{"start reply go", &StartReply{Verdict: VerdictGo, Items: []uint32{0, 2, 1<<32 - 1}, LeaseMs: 30_000}, func() any { return new(StartReply) }},
		{"start reply drop", &StartReply{Verdict: VerdictDrop}, func() any { return new(StartReply) }},
		{"start reply busy", &StartReply{Verdict: VerdictBusy, LeaseMs: -1}, func() any { return new(StartReply) }},
		{"start replies", &StartReplies{Items: []StartReply{{Verdict: VerdictGo, Items: []uint32{4}, LeaseMs: 1}, {Verdict: VerdictDrop}, {Verdict: VerdictBusy}}},
			func() any { return new(StartReplies) }},
		{"no start replies", &StartReplies{}, func() any { return new(StartReplies) }},
		{"lease", &Lease{Chunk: 9, Grant: 2}, func() any { return new(Lease) }},
		{"result with values", &Result{Chunk: 3, Worker: "w", Items: []ItemResult{{Seq: 0, Value: []byte{0x01}}, {Seq: 1, Value: []byte{0xc0}}}},
			func() any { return new(Result) }},
		{"final result with an error", &Result{Chunk: 3, Worker: "w", Final: true, Grant: 0xfeedface,
			Items: []ItemResult{{Seq: 2, Err: &ErrorInfo{Type: task.TypePanic, Message: "boom", Stack: "goroutine 1 [running]:", Retryable: true}}}},
			func() any { return new(Result) }},
		{"final result without items", &Result{Chunk: 3, Worker: "w", Final: true, Grant: 0xfeedface}, func() any { return new(Result) }},
		{"error info", &ErrorInfo{Type: "quota", Message: "over", Stack: "", Retryable: true}, func() any { return new(ErrorInfo) }},
		{"interrupt", &Interrupt{Executor: "ex", Chunk: 1 << 40, Seq: 12}, func() any { return new(Interrupt) }},
		{"cancel request", &CancelRequest{Executor: "ex", Kind: "square"}, func() any { return new(CancelRequest) }},
		{"cancel request for every producer", &CancelRequest{}, func() any { return new(CancelRequest) }},
		{"cancel reply", &CancelReply{Executor: "ex", Cancelled: 12, Running: 3}, func() any { return new(CancelReply) }},
		{"probe", &Probe{Executor: "ex", Chunks: []uint64{1 << 60, 7}, Grants: []uint64{3, 1 << 63}}, func() any { return new(Probe) }},
		{"probe reply", &ProbeReply{Grants: []uint64{1 << 63}}, func() any { return new(ProbeReply) }},
		{"probe reply of none", &ProbeReply{Grants: []uint64{}}, func() any { return new(ProbeReply) }},
	}
}

func TestEnvelopesRoundTrip(t *testing.T) {
	for _, c := range envelopes() {
		t.Run(c.name, func(t *testing.T) {
			data, err := Encode(c.value)
			if err != nil {
				t.Fatal(err)
			}
			got := c.empty()
			if err := Decode(data, got); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, c.value) {
				t.Fatalf("decoded %+v, want %+v", got, c.value)
			}
			again, err := Encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoded % x, first encoding % x", again, data)
			}
		})
	}
}

// TestDecodeResults: a result message is Results back to back; a bad one
// ends the reading with ErrMalformed, and the Results before it are kept.
func TestDecodeResults(t *testing.T) {
	rs := []Result{
		{Chunk: 1, Worker: "w", Items: []ItemResult{{Seq: 0, Value: []byte{0x01}}}},
		{Chunk: 2, Worker: "w", Final: true, Grant: 0xfeedface, Items: []ItemResult{{Seq: 1, Err: &ErrorInfo{Type: "panic", Message: "boom", Stack: "goroutine 1"}}}},
		{Chunk: 3, Worker: "v", Final: true, Grant: 0xfeedface},
	}
	var msg []byte
	for i := range rs {
		enc, err := Encode(&rs[i])
		if err != nil {
			t.Fatal(err)
		}
		msg = append(msg, enc...)
	}
	got, err := DecodeResults(msg)
	if err != nil || !reflect.DeepEqual(got, rs) {
		t.Fatalf("read %+v (%v), want %+v", got, err, rs)
	}
	one, _ := Encode(&rs[0])
	if got, err := DecodeResults(one); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], rs[0]) {
		t.Fatalf("a lone Result read as %+v (%v)", got, err)
	}

	noValue, _ := Encode(&Result{Chunk: 4, Items: []ItemResult{{Seq: 0}}})
	for _, c := range []struct {
		name string
		data []byte
		kept int
	}{
		{"empty", nil, 0},
		{"garbage", []byte{0xc1}, 0},
		{"garbage after a result", append(bytes.Clone(one), 0xc1), 1},
		{"the last result cut short", msg[:len(msg)-1], 2},
		{"an invalid result after a result", append(bytes.Clone(one), noValue...), 1},
	} {
		got, err := DecodeResults(c.data)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
		if len(got) != c.kept || c.kept > 0 && !reflect.DeepEqual(got, rs[:c.kept]) {
			t.Errorf("%s: kept %+v, want the first %d", c.name, got, c.kept)
		}
	}
}

// TestDecodeRefusesEveryTruncation: no prefix of a valid message decodes,
// and neither does one with a byte after it.
func TestDecodeRefusesEveryTruncation(t *testing.T) {
	for _, c := range envelopes() {
		t.Run(c.name, func(t *testing.T) {
			data, err := Encode(c.value)
			if err != nil {
				t.Fatal(err)
			}
			for n := range len(data) {
				if err := Decode(data[:n], c.empty()); !errors.Is(err, ErrMalformed) {
					t.Fatalf("the first %d of %d bytes: %v, want ErrMalformed", n, len(data), err)
				}
			}
			if err := Decode(append(bytes.Clone(data), 0x00), c.empty()); !errors.Is(err, ErrMalformed) {
				t.Fatalf("a trailing byte: %v, want ErrMalformed", err)
			}
		})
	}
}

// TestDecodeRefusesWrongTypes: a field of the wrong msgpack type, in any
// envelope, is an error matching ErrMalformed.
func TestDecodeRefusesWrongTypes(t *testing.T) {
	cases := []struct {
		name  string
		value any // encoded by reflection
		into  func() any
	}{
		{"a string for a whole chunk", "chunk", func() any { return new(Chunk) }},
		{"a number for the chunk's executor", []any{1, 1, "k", "c", 0, []any{[]any{0, []byte{1}}}}, func() any { return new(Chunk) }},
		{"a float for the chunk id", []any{"ex", 1.5, "k", "c", 0, []any{[]any{0, []byte{1}}}}, func() any { return new(Chunk) }},
		{"a string for an item seq", []any{"ex", 1, "k", "c", 0, []any{[]any{"zero", []byte{1}}}}, func() any { return new(Chunk) }},
		{"a bool for the args", []any{"ex", 1, "k", "c", 0, []any{[]any{0, true}}}, func() any { return new(Chunk) }},
		{"a string for a start", []any{"start"}, func() any { return new(Starts) }},
		{"a string for the start's chunk", []any{[]any{"one", "w", "i", 1}}, func() any { return new(Starts) }},
		{"a number for the start's worker", []any{[]any{1, 2, "i", 1}}, func() any { return new(Starts) }},
		{"a map for the starts", []any{map[string]any{"chunk": 1}}, func() any { return new(Starts) }},
		{"a string for the verdict", []any{"go", nil, 0}, func() any { return new(StartReply) }},
		{"strings for the seqs to run", []any{1, []any{"a"}, 0}, func() any { return new(StartReply) }},
		{"a string for the lease", []any{1, nil, "long"}, func() any { return new(StartReply) }},
		{"a number for a start reply", []any{[]any{1}}, func() any { return new(StartReplies) }},
		{"a string for final", []any{1, "w", "yes", "", nil}, func() any { return new(Result) }},
		{"a number for the value", []any{1, "w", false, "", []any{[]any{0, 5, nil}}}, func() any { return new(Result) }},
		{"a string for the error", []any{1, "w", false, "", []any{[]any{0, nil, "boom"}}}, func() any { return new(Result) }},
		{"a number for the error's type", []any{1, "w", false, "", []any{[]any{0, nil, []any{1, "m", "s", false}}}}, func() any { return new(Result) }},
		{"a string for the lease's chunk", []any{"c", "w", 1}, func() any { return new(Lease) }},
		{"a number for the interrupt's executor", []any{1, 2, 3}, func() any { return new(Interrupt) }},
		{"a number for the cancel's kind", []any{"ex", 5}, func() any { return new(CancelRequest) }},
		{"a string for the cancelled count", []any{"ex", "many", 0}, func() any { return new(CancelReply) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			into := c.into()
			if err := Decode(mustEncode(t, c.value), into); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %v (decoded %+v), want ErrMalformed", err, into)
			}
		})
	}
}

// TestDecodeSkipsDeepUnknownFields: a field added by a newer peer is
// skipped even when it nests deeply, within the nesting the checker allows.
func TestDecodeSkipsDeepUnknownFields(t *testing.T) {
	extra := append(bytes.Repeat([]byte{0x91}, 200), 0x01)
	data := append([]byte{0x93, 0x01, 0x02}, extra...) // a lease with a third field
	var l Lease
	if err := Decode(data, &l); err != nil {
		t.Fatal(err)
	}
	if want := (Lease{Chunk: 1, Grant: 2}); l != want {
		t.Fatalf("decoded %+v, want %+v", l, want)
	}
}

// overLimit returns a message whose array at the end declares n elements
// and holds them, each a single byte b.
func overLimit(header []byte, n int, b byte) []byte {
	data := append(bytes.Clone(header), 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(data, bytes.Repeat([]byte{b}, n)...)
}

func TestDecodeEnforcesMaxItems(t *testing.T) {
	chunkHeader := []byte{0x96, 0xa2, 'e', 'x', 0x01, 0xa1, 'k', 0xa1, 'c', 0x00}
	resultHeader := []byte{0x95, 0x01, 0xa1, 'w', 0xc3, 0x00}
	cases := []struct {
		name string
		data []byte
		into any
	}{
		{"chunk items", overLimit(chunkHeader, MaxItems+1, 0xc0), new(Chunk)},
		{"result items", overLimit(resultHeader, MaxItems+1, 0xc0), new(Result)},
		{"starts", overLimit([]byte{0x91}, MaxItems+1, 0xc0), new(Starts)},
		{"start replies", overLimit([]byte{0x91}, MaxItems+1, 0xc0), new(StartReplies)},
		{"seqs to run", append(overLimit([]byte{0x94, 0x01}, MaxItems+1, 0x00), 0x00, 0x00), new(StartReply)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Decode(c.data, c.into)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), strconv.Itoa(MaxItems+1)) {
				t.Fatalf("Decode of %d elements: %v, want ErrMalformed naming the count", MaxItems+1, err)
			}
		})
	}
	var r StartReply
	if err := Decode(append(overLimit([]byte{0x94, 0x01}, MaxItems, 0x00), 0x00, 0x00), &r); err != nil || len(r.Items) != MaxItems {
		t.Fatalf("Decode of exactly MaxItems seqs: %d seqs, %v", len(r.Items), err)
	}
}

// TestDecodeMemoryIsBoundedByInput: a short message that declares a huge
// length costs far less memory than it declares.
func TestDecodeMemoryIsBoundedByInput(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		into func() any
	}{
		{"array of 4G chunk items", []byte{0x96, 0xa1, 'e', 0x01, 0xa1, 'k', 0xa1, 'c', 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff}, func() any { return new(Chunk) }},
		{"bin of 4 GiB args", []byte{0x96, 0xa1, 'e', 0x01, 0xa1, 'k', 0xa1, 'c', 0x00, 0x91, 0x92, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff}, func() any { return new(Chunk) }},
		{"str of 4 GiB worker", []byte{0x95, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff}, func() any { return new(Result) }},
		{"map of 4G entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, func() any { return new(CancelRequest) }},
		{"ext of 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, func() any { return new(Lease) }},
		{"array of 64K seqs", []byte{0x93, 0x01, 0xdc, 0xff, 0xff}, func() any { return new(StartReply) }},
		{"str of 4 GiB interrupt executor", []byte{0x94, 0xdb, 0xff, 0xff, 0xff, 0xff}, func() any { return new(Interrupt) }},
		{"array of 2G chunk items in 19 bytes", []byte{0x96, 0xa1, 'x', 0x01, 0xa6, 's', 'q', 'u', 'a', 'r', 'e', 0xa1, 'c', 0x00, 0xdd, 0x7f, 0xff, 0xff, 0xff}, func() any { return new(Chunk) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const runs = 20
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				if err := Decode(c.data, c.into()); !errors.Is(err, ErrMalformed) {
					t.Fatalf("Decode: %v, want ErrMalformed", err)
				}
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 16<<10 {
				t.Fatalf("%d bytes allocated per decode of a %d-byte message", per, len(c.data))
			}
		})
	}
}

func TestNewErrorInfoFromHandlerErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want ErrorInfo
	}{
		{"plain", errors.New("no such file"), ErrorInfo{Type: "*errors.errorString", Message: "no such file"}},
		{"retryable", task.Retryable(errors.New("busy")), ErrorInfo{Type: "*errors.errorString", Message: "busy", Retryable: true}},
		{"deadline", context.DeadlineExceeded, ErrorInfo{Type: task.TypeDeadline, Message: "context deadline exceeded"}},
		{"interrupted", fmt.Errorf("stopped: %w", context.Canceled), ErrorInfo{Type: task.TypeInterrupted, Message: "stopped: context canceled"}},
		{"task error", &task.Error{Kind: "k", Type: task.TypePanic, Message: "boom", Stack: "stack"}, ErrorInfo{Type: task.TypePanic, Message: "boom", Stack: "stack"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := NewErrorInfo("square", c.err)
			if *got != c.want {
				t.Fatalf("NewErrorInfo = %+v, want %+v", *got, c.want)
			}
			// Through the wire and back, the error still matches what the
			// handler returned where that survives the wire.
			data, err := Encode(&Result{Chunk: 1, Items: []ItemResult{{Err: got}}})
			if err != nil {
				t.Fatal(err)
			}
			var r Result
			if err := Decode(data, &r); err != nil {
				t.Fatal(err)
			}
			te := r.Items[0].Err.TaskError("square")
			if te.Kind != "square" || te.Type != c.want.Type || te.Message != c.want.Message || te.Stack != c.want.Stack || te.Retryable != c.want.Retryable {
				t.Fatalf("TaskError = %+v", te)
			}
			if errors.Is(c.err, context.DeadlineExceeded) != errors.Is(te, context.DeadlineExceeded) ||
				errors.Is(c.err, context.Canceled) != errors.Is(te, context.Canceled) {
				t.Fatalf("%v lost its context match across the wire", c.err)
			}
		})
	}
}

// TestValueNamesTellNothing: a name in the values bucket tells a party that
// lists the bucket neither a chunk's id nor an attempt's grant, and an
// input's is new each time.
func TestValueNamesTellNothing(t *testing.T) {
	const chunk, grant = 8234823482348234823, 1234512345123451234
	name := ResultName("producer.abc", chunk, 3, grant)
	for _, secret := range []string{strconv.FormatUint(chunk, 10), strconv.FormatUint(grant, 10), "producer"} {
		if strings.Contains(name, secret) {
			t.Errorf("result name %q holds %q", name, secret)
		}
	}
	if name == ResultName("producer.abc", chunk, 3, grant+1) || name != ResultName("producer.abc", chunk, 3, grant) {
		t.Errorf("a result's name is not made of its grant alone: %q", name)
	}
	if a, b := InputName(), InputName(); a == b {
		t.Errorf("two inputs named %q", a)
	}
}
