package executor_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Hostile and wrong input against a live pool: each case checks the exact
// outcome, that nothing crashed, and that the worker still serves afterwards.

var (
	Echo     = task.New[[]byte, []byte]("echo")
	BigReply = task.New[int, []byte]("big-reply")
	Anything = task.New[any, int]("anything")
)

type badPool struct {
	srv *embedded.Server
	nc  *nats.Conn
	ex  *executor.NATS
	w   *worker.Worker
}

func newBadPool(t *testing.T) *badPool {
	t.Helper()
	srv, nc := startBroker(t)
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	task.Handle(reg, Echo, func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	task.Handle(reg, Anything, func(ctx context.Context, v any) (int, error) { return 0, nil })
	task.Handle(reg, BigReply, func(ctx context.Context, n int) ([]byte, error) { return bytes.Repeat([]byte{'x'}, n), nil })
	w := startWorker(t, connect(t, srv.ClientURL()), reg, worker.Config{Concurrency: 2})
	return &badPool{srv: srv, nc: nc, ex: newNATS(t, nc), w: w}
}

// stillServes checks the pool answers a good task.
func (p *badPool) stillServes(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := executor.Submit(ctx, p.ex, Square, 9)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Result(ctx); err != nil || v != 81 {
		t.Fatalf("after bad input the pool answered %d, %v", v, err)
	}
}

func resultOf[T any](t *testing.T, f *executor.Future[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := f.Result(ctx)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		t.Fatal("future did not resolve")
	}
	return v, err
}

func wantTaskError(t *testing.T, err error, typ string) {
	t.Helper()
	var te *task.Error
	if !errors.As(err, &te) || te.Type != typ {
		t.Fatalf("error %v, want a *task.Error of type %s", err, typ)
	}
}

// sendRaw submits kind with msgpack args exactly as given, as a hostile
// producer could.
func (p *badPool) sendRaw(t *testing.T, kind string, args []byte) error {
	t.Helper()
	f, err := executor.Submit(context.Background(), p.ex, task.New[msgpack.RawMessage, int](kind), msgpack.RawMessage(args))
	if err != nil {
		t.Fatal(err)
	}
	_, err = resultOf(t, f)
	return err
}

func TestBadInput(t *testing.T) {
	p := newBadPool(t)
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"garbage bytes on a task subject", func(t *testing.T) {
			before := p.w.Stats().ChunksTerminated
			for _, junk := range [][]byte{nil, []byte("garbage"), {0xc1}, {0x93, 0x01}, bytes.Repeat([]byte{0xff}, 4096)} {
				if err := p.nc.Publish("jetpool.default.tasks.square", junk); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, func() bool { return p.w.Stats().ChunksTerminated >= before+5 }, "the junk to be terminated")
		}},
		{"wrong argument type", func(t *testing.T) {
			f, err := executor.Submit(t.Context(), p.ex, task.New[string, int]("square"), "not a number")
			if err != nil {
				t.Fatal(err)
			}
			_, err = resultOf(t, f)
			wantTaskError(t, err, task.TypeBadInput)
		}},
		{"wrong result type", func(t *testing.T) {
			f, err := executor.Submit(t.Context(), p.ex, task.New[int, string]("square"), 3)
			if err != nil {
				t.Fatal(err)
			}
			_, err = resultOf(t, f)
			wantTaskError(t, err, "bad_output")
		}},
		{"a kind no worker handles fails at its deadline", func(t *testing.T) {
			f, err := executor.Submit(t.Context(), p.ex, task.New[int, int]("nobody-home"), 1, executor.SubmitTimeout(300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := resultOf(t, f); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want context.DeadlineExceeded", err)
			}
		}},
		{"huge length prefixes", func(t *testing.T) {
			for _, args := range [][]byte{
				{0xc6, 0xff, 0xff, 0xff, 0xff},      // bin32 of 4 GiB
				{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, // str32 of 4 GiB
				{0xdd, 0xff, 0xff, 0xff, 0xff},      // array32 of 4G elements
				{0xdf, 0xff, 0xff, 0xff, 0xff},      // map32 of 4G entries
			} {
				for _, kind := range []string{"echo", "anything"} {
					wantTaskError(t, p.sendRaw(t, kind, args), task.TypeBadInput)
				}
			}
		}},
		{"nesting depth bomb", func(t *testing.T) {
			bomb := append(bytes.Repeat([]byte{0x91}, 100_000), 0x01)
			err := p.sendRaw(t, "anything", bomb)
			var te *task.Error
			if err != nil && (!errors.As(err, &te) || te.Type != task.TypeBadInput) {
				t.Fatalf("depth bomb: %v", err)
			}
		}},
		{"truncated and invalid msgpack", func(t *testing.T) {
			for _, args := range [][]byte{{}, {0xc1}, {0x92, 0x01}, {0xcd, 0x01}} {
				wantTaskError(t, p.sendRaw(t, "square", args), task.TypeBadInput)
			}
		}},
		{"an oversize argument travels by reference", func(t *testing.T) {
			in := bytes.Repeat([]byte("jetpool"), 300<<10)
			f, err := executor.Submit(t.Context(), p.ex, Echo, in)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := resultOf(t, f); err != nil || !bytes.Equal(out, in) {
				t.Fatalf("echo of %d bytes: %d bytes back, %v", len(in), len(out), err)
			}
		}},
		{"an oversize result travels by reference", func(t *testing.T) {
			f, err := executor.Submit(t.Context(), p.ex, BigReply, 2<<20)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := resultOf(t, f); err != nil || !bytes.Equal(out, bytes.Repeat([]byte{'x'}, 2<<20)) {
				t.Fatalf("a result of 2 MiB: %d bytes back, %v", len(out), err)
			}
		}},
		{"empty kind", func(t *testing.T) {
			_, err := executor.Submit(t.Context(), p.ex, task.Task[int, int]{}, 1)
			if !errors.Is(err, task.ErrInvalidKind) {
				t.Fatalf("got %v, want ErrInvalidKind", err)
			}
		}},
		{"invalid pool names", func(t *testing.T) {
			for _, pool := range []string{"", "a.b", "a b", "*", ">", "x\x00"} {
				if _, err := executor.NewNATS(t.Context(), p.nc, executor.NATSPool(pool)); !errors.Is(err, executor.ErrInvalidOption) {
					t.Errorf("pool %q: %v, want ErrInvalidOption", pool, err)
				}
			}
		}},
		{"forged results are ignored", func(t *testing.T) {
			f, err := executor.Submit(t.Context(), p.ex, Square, 5)
			if err != nil {
				t.Fatal(err)
			}
			if v, err := resultOf(t, f); err != nil || v != 25 {
				t.Fatalf("Square(5) = %d, %v", v, err)
			}
			ctl := "jetpool.default.ctl." + p.ex.ID()
			for _, r := range []wire.Result{
				{Chunk: 1, Final: true, Items: []wire.ItemResult{{Seq: 0, Value: []byte{0x01}}}},                                                             // already resolved
				{Chunk: 99999, Final: true, Items: []wire.ItemResult{{Seq: 0, Value: []byte{0x01}}}},                                                         // unknown chunk
				{Chunk: 1, Final: true, Items: []wire.ItemResult{{Seq: 7, Value: []byte{0x01}}}},                                                             // unknown item
				{Chunk: 1, Final: true, Grant: 1, Items: nil},                                                                                                // a guessed grant
				{Chunk: 1, Final: true, Grant: 1, Items: []wire.ItemResult{{Seq: 0, Ref: &wire.Ref{Name: "x", Size: 1, Key: make([]byte, wire.RefKeyLen)}}}}, // by reference
			} {
				data, _ := wire.Encode(&r)
				p.nc.Publish(ctl+broker.ResultSuffix, data)
				// The same again in a message of several results, cut by garbage.
				p.nc.Publish(ctl+broker.ResultSuffix, append(append(bytes.Clone(data), data...), 0xc1))
			}
			p.nc.Publish(ctl+broker.ResultSuffix, []byte("garbage"))
			p.nc.Publish(ctl+broker.StartSuffix, []byte("garbage"))
			p.nc.Flush()
			if v, _ := f.Result(t.Context()); v != 25 {
				t.Fatalf("a forged result changed a resolved future to %d", v)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t)
			p.stillServes(t)
		})
	}
}
