package executor

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/task"
)

type point struct{ X, Y int }

func TestEncodeArgs(t *testing.T) {
	ints := intBatch(300)
	points := &batch{codec: task.New[point, int]("norm").Codec(),
		calls: []call{{arg: point{1, 2}}, {arg: point{-3, 1 << 40}}, {arg: point{}}}}
	strs := &batch{codec: task.New[string, int]("len").Codec(),
		calls: []call{{arg: ""}, {arg: strings.Repeat("x", 300)}, {arg: "é"}}}
	for _, b := range []*batch{ints, points, strs} {
		items, err := encodeArgs(b)
		if err != nil {
			t.Fatalf("%s: %v", b.codec.Kind, err)
		}
		if len(items) != len(b.calls) {
			t.Fatalf("%s: %d items for %d calls", b.codec.Kind, len(items), len(b.calls))
		}
		for i, it := range items {
			want, _ := msgpack.Marshal(b.calls[i].arg)
			if it.Seq != uint32(i) || !bytes.Equal(it.Args, want) || cap(it.Args) != len(it.Args) {
				t.Fatalf("%s: item %d = seq %d, %x (cap %d); want seq %d, %x", b.codec.Kind, i, it.Seq, it.Args, cap(it.Args), i, want)
			}
		}
	}
	bad := &batch{codec: task.New[any, int]("any").Codec(), calls: []call{{arg: 1}, {arg: make(chan int)}}}
	if _, err := encodeArgs(bad); err == nil || !strings.HasPrefix(err.Error(), "executor: encode any input") {
		t.Fatalf("encodeArgs with a channel: %v", err)
	}
}

func intBatch(n int) *batch {
	b := &batch{codec: task.New[int, int]("square").Codec(), calls: make([]call, n)}
	for i := range b.calls {
		b.calls[i].arg = i * 7919
	}
	return b
}

// BenchmarkEncodeArgs encodes the inputs of a chunk of 1000 ints.
func BenchmarkEncodeArgs(b *testing.B) {
	batch := intBatch(1000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeArgs(batch); err != nil {
			b.Fatal(err)
		}
	}
}
