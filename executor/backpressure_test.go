package executor_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

var slowEcho = task.New[int, int]("slow-echo")

// TestMaxAckPendingBackpressure: a producer far faster than its workers
// queues thousands of chunks at once. The stream holds them; the consumer
// never hands out more than MaxAckPending at a time, however many slots the
// workers have; nothing is redelivered for waiting, nothing is lost, and
// every future resolves once with its value.
func TestMaxAckPendingBackpressure(t *testing.T) {
	const (
		n             = 2000
		maxAckPending = 8
	)
	pc := broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second, MaxAckPending: maxAckPending}
	_, nc := startBroker(t)
	var running, peak atomic.Int64
	reg := task.NewRegistry()
	task.Handle(reg, slowEcho, func(ctx context.Context, v int) (int, error) {
		now := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		time.Sleep(time.Millisecond)
		return v, nil
	})
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	// Two workers with four times the slots the consumer allows in flight.
	var ws []*worker.Worker
	for range 2 {
		ws = append(ws, startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{Concurrency: 16, PoolConfig: pc}))
	}
	// Ready once their consumer is provisioned, which the watch below reads.
	waitUntil(t, func() bool { return ws[0].Ready() && ws[1].Ready() }, "both workers ready")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	fs := make([]*executor.Future[int], n)
	var resolved [n]atomic.Int32
	for i := range n {
		f, err := executor.Submit(ctx, ex, slowEcho, i)
		if err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		f.AddDoneCallback(func(*executor.Future[int]) { resolved[i].Add(1) })
		fs[i] = f
	}
	submitted := time.Since(start)

	// While the work drains, the consumer's unacknowledged chunks stay
	// within MaxAckPending.
	js := jetstreamOf(t, nc)
	cons, err := js.Consumer(ctx, "JETPOOL_DEFAULT", slowEcho.Kind())
	if err != nil {
		t.Fatal(err)
	}
	var watch sync.WaitGroup
	var ackPendingPeak, queuedPeak atomic.Int64
	stop := make(chan struct{})
	watch.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			info, err := cons.Info(ctx)
			if err != nil {
				continue
			}
			ackPendingPeak.Store(max(ackPendingPeak.Load(), int64(info.NumAckPending)))
			queuedPeak.Store(max(queuedPeak.Load(), int64(info.NumPending)))
		}
	})
	for i, f := range fs {
		v, err := f.Result(ctx)
		if err != nil || v != i {
			t.Fatalf("future %d = %d, %v", i, v, err)
		}
	}
	close(stop)
	watch.Wait()
	waitUntil(t, func() bool {
		for i := range resolved {
			if resolved[i].Load() != 1 {
				return false
			}
		}
		return true
	}, "every done-callback once")
	var redelivered int64
	for _, w := range ws {
		redelivered += w.Stats().Redelivered
	}
	t.Logf("BACKPRESSURE tasks=%d submitted-in=%v drained-in=%v max-ack-pending=%d peak-unacked=%d peak-queued=%d peak-running=%d redelivered=%d",
		n, submitted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), maxAckPending,
		ackPendingPeak.Load(), queuedPeak.Load(), peak.Load(), redelivered)
	if got := ackPendingPeak.Load(); got > maxAckPending {
		t.Errorf("%d chunks unacknowledged at once, MaxAckPending is %d", got, maxAckPending)
	}
	if got := peak.Load(); got > maxAckPending {
		t.Errorf("%d handlers ran at once, MaxAckPending is %d", got, maxAckPending)
	}
	if queuedPeak.Load() < n/4 {
		t.Errorf("at most %d chunks were ever queued in the stream: the producer was not ahead of the workers", queuedPeak.Load())
	}
	if redelivered != 0 {
		t.Errorf("%d chunks redelivered while waiting", redelivered)
	}
}
