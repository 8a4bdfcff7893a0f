package task_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/task"
)

// BenchmarkCodec measures one value's trip through each step a task's input
// and output take: the producer encodes the input (EncodeIn), the worker
// decodes it and encodes the result (CallRaw, with a handler that returns its
// input), the producer decodes the result (DecodeOut).
func BenchmarkCodec(b *testing.B) {
	for _, step := range []string{"EncodeIn", "CallRaw", "DecodeOut"} {
		b.Run(step, func(b *testing.B) {
			benchStep(b, step, "int", 123456)
			benchStep(b, step, "float64", 2.5)
			benchStep(b, step, "string", strings.Repeat("x", 40))
			benchStep(b, step, "struct", point{3, 4})
		})
	}
}

func benchStep[T any](b *testing.B, step, name string, v T) {
	echo := task.New[T, T]("echo")
	reg := task.NewRegistry()
	task.Handle(reg, echo, func(_ context.Context, v T) (T, error) { return v, nil })
	h, _ := reg.Lookup("echo")
	codec := echo.Codec()
	raw, err := msgpack.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var err error
			switch step {
			case "EncodeIn":
				_, err = codec.EncodeIn(v)
			case "CallRaw":
				_, err = h.CallRaw(ctx, raw)
			case "DecodeOut":
				_, err = codec.DecodeOut(raw)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
