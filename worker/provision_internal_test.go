package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// TestRunRefusesAStreamOfAnotherPool: a worker whose pool's stream name is
// taken by another pool stops at once with the reason instead of retrying.
func TestRunRefusesAStreamOfAnotherPool(t *testing.T) {
	nc := embeddedConn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := broker.NewSubjects("a_b", "c")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, other, broker.PoolConfig{}); err != nil {
		t.Fatal(err)
	}
	reg := task.NewRegistry()
	task.Handle(reg, task.New[int, int]("square"), func(_ context.Context, n int) (int, error) { return n, nil })
	w, err := New(nc, reg, Config{Prefix: "a", Pool: "b_c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); !errors.Is(err, broker.ErrInvalidName) {
		t.Fatalf("Run: %v, want ErrInvalidName", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run retried until the context ended")
	}
}
