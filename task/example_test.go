package task_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/task"
)

func Example() {
	// Declared once, imported by producers and workers.
	greet := task.New[string, string]("greet")

	// A worker's registry maps kinds to handlers.
	reg := task.NewRegistry()
	task.Handle(reg, greet, func(ctx context.Context, name string) (string, error) {
		return "hello, " + name, nil
	})
	h, _ := reg.Lookup(greet.Kind())
	out, err := h.Call(context.Background(), "ada")
	fmt.Println(out, err, reg.Kinds())
	// Output: hello, ada <nil> [greet]
}

// Shape is the input of the area task below: any type msgpack can encode.
type Shape struct {
	Kind string
	W, H float64
}

func ExampleNew() {
	area := task.New[Shape, float64]("area")
	fmt.Println(area.Kind())
	// Output: area
}

func ExampleHandle() {
	area := task.New[Shape, float64]("area")
	reg := task.NewRegistry()
	task.Handle(reg, area, func(ctx context.Context, s Shape) (float64, error) {
		if s.Kind != "rect" {
			return 0, fmt.Errorf("unknown shape %q", s.Kind)
		}
		return s.W * s.H, nil
	})

	// A worker receives the input as msgpack and sends the output back the
	// same way; the producer decodes it with the task's codec.
	h, _ := reg.Lookup("area")
	in, _ := area.Codec().EncodeIn(Shape{Kind: "rect", W: 3, H: 4})
	raw, _ := h.CallRaw(context.Background(), in)
	out, _ := area.Codec().DecodeOut(raw)
	fmt.Println(out)

	// The handler's error comes back as a *task.Error.
	in, _ = msgpack.Marshal(Shape{Kind: "circle"})
	_, err := h.CallRaw(context.Background(), in)
	fmt.Println(err)
	// Output:
	// 12
	// task area: *errors.errorString: unknown shape "circle"
}

func ExampleTask_Codec() {
	square := task.New[int, int]("square")
	codec := square.Codec()

	// AppendIn encodes many inputs into one buffer, as an executor does for
	// the items of a chunk.
	var buf []byte
	for _, n := range []int{1, 200, -40000} {
		buf, _ = codec.AppendIn(buf, n)
	}
	fmt.Printf("% x\n", buf)

	out, _ := codec.DecodeOut([]byte{0xcd, 0x01, 0x00})
	fmt.Println(out)
	// Output:
	// 01 cc c8 d2 ff ff 63 c0
	// 256
}

func ExampleHandle_panic() {
	boom := task.New[int, int]("boom")
	reg := task.NewRegistry()
	task.Handle(reg, boom, func(ctx context.Context, n int) (int, error) {
		panic("out of range")
	})
	h, _ := reg.Lookup("boom")
	_, err := h.Call(context.Background(), 1)
	var te *task.Error
	if errors.As(err, &te) {
		fmt.Println(te.Type, te.Message, te.Stack != "")
	}
	// Output: panic out of range true
}

func ExampleRegistry_Kinds() {
	reg := task.NewRegistry()
	task.Handle(reg, task.New[int, int]("square"), func(ctx context.Context, n int) (int, error) { return n * n, nil })
	task.Handle(reg, task.New[string, string]("say-hi"), func(ctx context.Context, s string) (string, error) { return "hi " + s, nil })
	fmt.Println(reg.Kinds())
	_, ok := reg.Lookup("cube")
	fmt.Println(ok)
	// Output:
	// [say-hi square]
	// false
}

func ExampleValidateKind() {
	for _, kind := range []string{"resize_image", "resize.image"} {
		fmt.Println(task.ValidateKind(kind))
	}
	// Output:
	// <nil>
	// task: invalid kind: "resize.image" has '.' at 6 (allowed: letters, digits, '-', '_')
}

func ExampleRetryable() {
	err := task.Retryable(errors.New("upstream busy"))
	fmt.Println(err, task.IsRetryable(err))
	fmt.Println(task.IsRetryable(fmt.Errorf("fetch: %w", err)))
	fmt.Println(task.IsRetryable(errors.New("not found")))
	// Output:
	// upstream busy true
	// true
	// false
}

func ExampleRetryPolicy_Do() {
	p := task.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}
	calls := 0
	err := p.Do(context.Background(), func() error {
		calls++
		if calls < 3 {
			return task.Retryable(errors.New("busy"))
		}
		return nil
	})
	fmt.Println(calls, err)
	// Output: 3 <nil>
}

func ExampleError() {
	// An error as it arrives from a remote worker.
	var err error = &task.Error{Kind: "fetch", Type: task.TypeDeadline, Message: "context deadline exceeded"}
	fmt.Println(err)
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// task fetch: deadline_exceeded: context deadline exceeded
	// true
}

func ExampleWorkerID() {
	whoami := task.New[struct{}, string]("whoami")
	reg := task.NewRegistry()
	task.Handle(reg, whoami, func(ctx context.Context, _ struct{}) (string, error) {
		return task.WorkerID(ctx), nil
	})
	h, _ := reg.Lookup("whoami")
	out, _ := h.Call(task.WithWorker(context.Background(), "worker-1"), struct{}{})
	fmt.Println(out)
	// Output: worker-1
}
