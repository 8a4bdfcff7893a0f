package executor_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

var neverDone = task.New[int, int]("never-done")

// TestMaxDeliverFailsTheFuture: a chunk that JetStream gave up on after
// MaxDeliver deliveries fails its future with max_deliveries, and the chunk
// leaves the stream.
func TestMaxDeliverFailsTheFuture(t *testing.T) {
	pc := broker.PoolConfig{AckWait: 500 * time.Millisecond, MaxDeliver: 2, Grace: 2 * time.Second}
	_, nc := startBroker(t)
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	f, err := executor.Submit(t.Context(), ex, neverDone, 1)
	if err != nil {
		t.Fatal(err)
	}

	// A consumer that takes the chunk and gives it back every time, as a
	// worker that crashes on it would.
	js := jetstreamOf(t, connect(t, nc.ConnectedUrl()))
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
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

// TestJobMaxDeliverStoresTheFailure: the tasks of a named job's chunk that
// reaches MaxDeliver fail with max_deliveries in JetStream, so that an
// attached producer, a producer that resumes the job and JobResults all see
// them failed, and none of them waits for ever; the task never runs at the
// last delivery. Every delivery but the last goes to a consumer that takes
// the chunk and gives it back, as a worker that dies on it would; the last
// goes to a worker whose handler never returns, as a task that kills its
// worker every time would.
func TestJobMaxDeliverStoresTheFailure(t *testing.T) {
	for _, attached := range []bool{true, false} {
		name := map[bool]string{true: "attached", false: "detached"}[attached]
		t.Run(name, func(t *testing.T) { jobMaxDeliver(t, name, attached) })
	}
}

func jobMaxDeliver(t *testing.T, name string, attached bool) {
	pc := broker.PoolConfig{AckWait: 2 * time.Second, MaxDeliver: 3, Grace: 2 * time.Second}
	p := newJobPool(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	nc := connect(t, p.url)
	ex1 := newNATS(t, nc, executor.NATSPoolConfig(pc))
	job := attach(t, ex1, name)
	const n = 3
	var futures []*executor.Future[int]
	for i := range n {
		f, err := executor.Submit(ctx, job, JobSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	js := jetstreamOf(t, p.nc)
	waitUntil(t, func() bool { return streamMsgs(t, js) == n }, "the job's chunks in the stream")
	if !attached {
		nc.Close()
	}

	// Every delivery but the last: taken and given back after a while (3s,
	// far longer than a round's fetches take, even on a loaded machine),
	// so that none is redelivered while this consumer still pulls.
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	cons, err := broker.EnsureConsumer(ctx, js, subj, JobSquare.Kind(), pc)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round < pc.MaxDeliver; round++ {
		seen := make(map[uint64]bool)
		for len(seen) < n && ctx.Err() == nil {
			batch, err := cons.Fetch(n-len(seen), jetstream.FetchMaxWait(time.Second))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				meta, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				if meta.NumDelivered != uint64(round) {
					t.Fatalf("chunk %d delivered %d times in round %d", meta.Sequence.Stream, meta.NumDelivered, round)
				}
				seen[meta.Sequence.Stream] = true
				m.NakWithDelay(3 * time.Second)
			}
		}
	}

	// The last delivery: a worker whose task would never end.
	c := newCalls(0)
	c.gate = make(chan struct{})
	p.worker(c, worker.Config{Concurrency: 2, PoolConfig: pc})
	t.Cleanup(func() { close(c.gate) })

	wantFailed := func(what string, err error) {
		t.Helper()
		var te *task.Error
		if !errors.As(err, &te) || te.Type != task.TypeMaxDeliveries {
			t.Errorf("%s: %v, want a max_deliveries task error", what, err)
		}
	}
	if attached {
		for i, f := range futures {
			_, err := f.Result(ctx)
			wantFailed("future "+strconv.Itoa(i), err)
		}
	} else {
		// A producer that resumes the job.
		again := attach(t, newNATS(t, connect(t, p.url), executor.NATSPoolConfig(pc)), name)
		for i := range n {
			f, err := executor.Submit(ctx, again, JobSquare, i)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Result(ctx)
			wantFailed("resumed future "+strconv.Itoa(i), err)
		}
	}
	reader := newNATS(t, connect(t, p.url), executor.NATSPoolConfig(pc))
	i := 0
	for r, err := range reader.JobResults(ctx, name) {
		if err != nil {
			t.Fatalf("JobResults after %d: %v", i, err)
		}
		if r.Position != uint64(i) {
			t.Fatalf("JobResults gave place %d at %d", r.Position, i)
		}
		wantFailed("JobResults "+strconv.Itoa(i), r.Err)
		if i++; i == n {
			break
		}
	}
	for i := range n {
		if k := c.count(i); k != 0 {
			t.Errorf("task %d ran %d times at its chunk's last delivery", i, k)
		}
	}
}
