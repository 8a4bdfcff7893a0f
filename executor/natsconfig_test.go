package executor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/worker"
)

// natsHolder holds a NATS executor's configuration, as a package that runs
// one of its own does.
type natsHolder struct{ c executor.NATSConfig }

func (h *natsHolder) NATSConfig() *executor.NATSConfig { return &h.c }

// A package that runs a NATS executor of its own keeps a NATSConfig in its
// configuration, here natsHolder, whose NATSConfig method returns it, and
// applies the PoolOptions it is given to it.
func ExampleNATSConfig() {
	var h natsHolder
	if err := executor.NATSPoolConfig(broker.PoolConfig{AckWait: 5 * time.Second}).Apply(&h); err != nil {
		panic(err)
	}
	fmt.Println(h.c.PoolConfig().AckWait)
	// Output: 5s
}

// TestPoolOptionApply: a PoolOption sets in a holder's configuration what it
// sets in NewNATS's, and an invalid one fails and leaves it as it was.
func TestPoolOptionApply(t *testing.T) {
	var h natsHolder
	if got := h.c.PoolConfig(); got != (broker.PoolConfig{}) {
		t.Errorf("the zero NATSConfig's PoolConfig = %+v, want the zero PoolConfig", got)
	}
	if got := h.c.Logger(); got != slog.Default() {
		t.Errorf("the zero NATSConfig's Logger = %v, want slog.Default()", got)
	}
	pc := broker.PoolConfig{AckWait: 3 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, o := range []executor.PoolOption{executor.NATSPoolConfig(pc), executor.NATSLogger(log)} {
		if err := o.Apply(&h); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.c.PoolConfig(); got != pc {
		t.Errorf("PoolConfig after NATSPoolConfig(%+v) = %+v", pc, got)
	}
	if got := h.c.Logger(); got != log {
		t.Errorf("Logger after NATSLogger = %v, want the given logger", got)
	}
	if err := executor.NATSPoolConfig(broker.PoolConfig{AckWait: time.Millisecond}).Apply(&h); !errors.Is(err, executor.ErrInvalidOption) {
		t.Errorf("an invalid NATSPoolConfig applied = %v, want ErrInvalidOption", err)
	}
	if got := h.c.PoolConfig(); got != pc {
		t.Errorf("PoolConfig after an invalid NATSPoolConfig = %+v, want %+v as before", got, pc)
	}
}

// TestNATSConfigNewNATS: an executor started from a NATSConfig runs on the
// default pool with the settings its PoolOptions set.
func TestNATSConfigNewNATS(t *testing.T) {
	srv, nc := startBroker(t)
	var h natsHolder
	for _, o := range []executor.PoolOption{executor.NATSPoolConfig(testPool), executor.NATSName("maker")} {
		if err := o.Apply(&h); err != nil {
			t.Fatal(err)
		}
	}
	ex, err := h.c.NewNATS(t.Context(), nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ex.Shutdown(ctx, true, true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	if !strings.HasPrefix(ex.ID(), "maker.") {
		t.Errorf("ID %q does not start with the name NATSName set", ex.ID())
	}
	startWorker(t, connect(t, srv.ClientURL()), childRegistry(), worker.Config{Concurrency: 1})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	f, err := executor.Submit(ctx, ex, SlowSquare, 7)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Result(ctx); err != nil || v != 49 {
		t.Fatalf("SlowSquare(7) = %d, %v", v, err)
	}
	// The producer acks the chunk after the result resolved its future, so
	// the stream empties just after Result returns.
	js := jetstreamOf(t, nc)
	waitUntil(t, func() bool { return streamMsgs(t, js) == 0 }, "the default pool's stream to empty after the result")
}
