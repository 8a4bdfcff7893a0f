package executor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

var neverDone = task.New[int, int]("never-done")

// TestMaxDeliverFailsTheFuture: a chunk that JetStream gave up on after
// MaxDeliver deliveries fails its future with max_deliveries, and the chunk
// leaves the stream.
func TestMaxDeliverFailsTheFuture(t *testing.T) {
	pc := broker.PoolConfig{AckWait: 500 * time.Millisecond, MaxDeliver: 2, Grace: 2 * time.Second}
	_, nc := startBroker(t)
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	f, err := executor.Submit(context.Background(), ex, neverDone, 1)
	if err != nil {
		t.Fatal(err)
	}

	// A consumer that takes the chunk and gives it back every time, as a
	// worker that crashes on it would.
	js := jetstreamOf(t, connect(t, nc.ConnectedUrl()))
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := broker.EnsureConsumer(ctx, js, subj, neverDone.Kind(), pc)
	if err != nil {
		t.Fatal(err)
	}
	done := func() bool {
		select {
		case <-f.Done():
			return true
		default:
			return false
		}
	}
	deliveries := 0
	for !done() && ctx.Err() == nil {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			continue
		}
		for m := range batch.Messages() {
			deliveries++
			m.Nak()
		}
	}
	_, err = f.Result(ctx)
	var te *task.Error
	if !errors.As(err, &te) || te.Type != "max_deliveries" {
		t.Fatalf("future error %v, want a max_deliveries task error", err)
	}
	if deliveries != pc.MaxDeliver {
		t.Errorf("delivered %d times, MaxDeliver is %d", deliveries, pc.MaxDeliver)
	}
	waitUntil(t, func() bool { return streamMsgs(t, js) == 0 }, "the abandoned chunk removed")
}
