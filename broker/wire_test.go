package broker

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/task"
)

func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
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
		{"unknown verdict", mustEncode(t, &StartReply{Verdict: 9}), func() any { return new(StartReply) }},
		{"unknown verdict among replies", mustEncode(t, &StartReplies{Items: []StartReply{{Verdict: VerdictGo}, {Verdict: 0}}}), func() any { return new(StartReplies) }},
		{"start request for no chunk", mustEncode(t, &Starts{}), func() any { return new(Starts) }},
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
