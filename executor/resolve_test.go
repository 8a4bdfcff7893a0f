package executor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// The tests of this file hold the promise that every future resolves, and
// soon, whatever a lost message, a dead party or a far deadline does.

// encode is wire.Encode for a test.
func encode(t *testing.T, v any) []byte {
	t.Helper()
	data, err := wire.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pullOne takes one chunk of kind from the pool's stream, as a worker would.
func pullOne(t *testing.T, js jetstream.JetStream, kind string) (jetstream.Msg, wire.Chunk) {
	t.Helper()
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := broker.EnsureConsumer(ctx, js, subj, kind, testPool)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg, ok := <-batch.Messages()
	if !ok {
		t.Fatalf("no %s chunk to pull: %v", kind, batch.Error())
	}
	var c wire.Chunk
	if err := wire.Decode(msg.Data(), &c); err != nil {
		t.Fatal(err)
	}
	return msg, c
}

// askStart asks c's producer for leave to start c, held as msg, as worker.
func askStart(t *testing.T, nc *nats.Conn, msg jetstream.Msg, c wire.Chunk, worker string) wire.StartReply {
	t.Helper()
	d := wire.Digest(msg.Data())
	meta, _ := msg.Metadata()
	req := wire.Starts{Items: []wire.Start{{Chunk: c.ID, Worker: worker, Inbox: nc.NewInbox(),
		Delivery: meta.NumDelivered, Digest: d[:], Ack: msg.Reply()}}}
	resp, err := nc.Request(c.Control+broker.StartSuffix, encode(t, &req), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var replies wire.StartReplies
	if err := wire.Decode(resp.Data, &replies); err != nil || len(replies.Items) != 1 {
		t.Fatalf("start replies %+v, %v", replies, err)
	}
	return replies.Items[0]
}

// mapAll runs Map in the background and returns its results once it ends.
func mapAll[In, Out any](ex executor.Executor, tk task.Task[In, Out], in []In, opts ...executor.MapOption) <-chan []Out {
	out := make(chan []Out, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var got []Out
		for v, err := range executor.Map(ctx, ex, tk, slices.Values(in), opts...) {
			if err != nil {
				break
			}
			got = append(got, v)
		}
		out <- got
	}()
	return out
}

func squares(t *testing.T, got <-chan []int, in []int, within time.Duration) {
	t.Helper()
	select {
	case vs := <-got:
		if len(vs) != len(in) {
			t.Fatalf("%d results of %d: %v", len(vs), len(in), vs)
		}
		for i, v := range vs {
			if v != in[i]*in[i] {
				t.Fatalf("result %d = %d, want %d", i, v, in[i]*in[i])
			}
		}
	case <-time.After(within):
		t.Fatalf("Map of %d items not done after %v", len(in), within)
	}
}

// TestFinalResultLeavingItemsRunsThemAgain: a worker granted items 0-2 of a
// chunk sends only its final result message, for item 2, as when the
// earlier result messages are lost. The chunk stays in the stream, the
// items without a result run again on another worker, and every future
// resolves with its own value.
func TestFinalResultLeavingItemsRunsThemAgain(t *testing.T) {
	_, nc := startBroker(t)
	ex := newNATS(t, nc)
	js := jetstreamOf(t, nc)
	in := []int{2, 3, 4}
	got := mapAll(ex, Square, in, executor.MapChunksize(3))

	msg, c := pullOne(t, js, Square.Kind())
	reply := askStart(t, nc, msg, c, "partial")
	if reply.Verdict != wire.VerdictGo || len(reply.Items) != 3 || reply.Grant == 0 {
		t.Fatalf("start reply %+v, want go for 3 items with a grant", reply)
	}
	value, _ := msgpack.Marshal(16)
	final := wire.Result{Chunk: c.ID, Worker: "partial", Final: true, Grant: reply.Grant,
		Items: []wire.ItemResult{{Seq: 2, Value: value}}}
	if err := nc.Publish(c.Control+broker.ResultSuffix, encode(t, &final)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{Concurrency: 2})
	squares(t, got, in, 15*time.Second)
	waitUntil(t, func() bool { return streamMsgs(t, js) == 0 }, "the chunk to be acked once all its items had results")
}

// TestDeadlineBeyondTheWire: deadlines too far off for a chunk's field (past
// the year 2262) mean no deadline, never a hang.
func TestDeadlineBeyondTheWire(t *testing.T) {
	_, nc := startBroker(t)
	ex := newNATS(t, nc)
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{Concurrency: 2})

	for _, d := range []time.Duration{2_060_000 * time.Hour, 2_100_000 * time.Hour, 1<<63 - 1} {
		f, err := executor.Submit(t.Context(), ex, Square, 3, executor.SubmitTimeout(d))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		v, err := f.Result(ctx)
		cancel()
		if err != nil || v != 9 {
			t.Fatalf("Square(3) with a timeout of %v: %d, %v", d, v, err)
		}
	}
	in := []int{1, 2, 3}
	squares(t, mapAll(ex, Square, in, executor.MapTimeout(1<<63-1)), in, 10*time.Second)
}

// TestSilentProducersTakeNoSlot: chunks whose producers never answer (gone,
// or never there) do not keep a worker's only slot from another producer's
// task for the grace period.
func TestSilentProducersTakeNoSlot(t *testing.T) {
	_, nc := startBroker(t)
	pc := broker.PoolConfig{AckWait: 30 * time.Second, Grace: 30 * time.Second}
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	js := jetstreamOf(t, nc)
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	for i := range 8 {
		ghost := "ghost" + string(rune('a'+i))
		args, _ := msgpack.Marshal(i)
		data := encode(t, &wire.Chunk{Executor: ghost, ID: uint64(i + 1), Kind: Square.Kind(),
			Control: subj.Control(ghost), Items: []wire.Item{{Seq: 0, Args: args}}})
		if _, err := js.Publish(t.Context(), subj.Tasks(Square.Kind()), data); err != nil {
			t.Fatal(err)
		}
	}
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{Concurrency: 1, PoolConfig: pc})

	start := time.Now()
	f, err := executor.Submit(t.Context(), ex, Square, 7)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), pc.Grace/3)
	defer cancel()
	if v, err := f.Result(ctx); err != nil || v != 49 {
		t.Fatalf("Square(7) behind eight silent producers' chunks: %d, %v after %v", v, err, time.Since(start))
	}
	t.Logf("Square(7) took %v behind eight silent producers' chunks", time.Since(start).Round(time.Millisecond))
}

// TestShutdownRemovesWhatItCancelled: the chunks that Shutdown cancels
// before any worker started them leave the stream, so no worker waits for
// the verdict of a producer that is gone.
func TestShutdownRemovesWhatItCancelled(t *testing.T) {
	_, nc := startBroker(t)
	ex, err := executor.NewNATS(t.Context(), nc, executor.NATSPoolConfig(testPool))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := executor.Submit(t.Context(), ex, Square, i); err != nil {
			t.Fatal(err)
		}
	}
	js := jetstreamOf(t, nc)
	waitUntil(t, func() bool { return streamMsgs(t, js) == 5 }, "five chunks in the stream")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ex.Shutdown(ctx, true, true); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js); n != 0 {
		t.Fatalf("%d cancelled chunks left in the stream after Shutdown", n)
	}
}

// TestGoneWorkersChunkRunsAgainAtOnce: a worker whose connection closes
// while it runs a chunk is found gone by the producer, and the chunk runs on
// another worker within seconds, not after the 30s lease.
func TestGoneWorkersChunkRunsAgainAtOnce(t *testing.T) {
	_, nc := startBroker(t)
	pc := broker.PoolConfig{AckWait: 30 * time.Second, Grace: 30 * time.Second}
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	stuck := make(chan struct{})
	started := make(chan struct{}, 1)
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) {
		started <- struct{}{}
		<-stuck
		return 0, nil
	})
	doomed := connect(t, nc.ConnectedUrl())
	startWorker(t, doomed, reg, worker.Config{Concurrency: 1, PoolConfig: pc})
	t.Cleanup(func() { close(stuck) }) // before the worker's drain
	f, err := executor.Submit(t.Context(), ex, Square, 6)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not start")
	}
	doomed.Close()
	killed := time.Now()

	healthy := task.NewRegistry()
	task.Handle(healthy, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	startWorker(t, connect(t, nc.ConnectedUrl()), healthy, worker.Config{Concurrency: 1, PoolConfig: pc})
	ctx, cancel := context.WithTimeout(t.Context(), pc.AckWait/3)
	defer cancel()
	if v, err := f.Result(ctx); err != nil || v != 36 {
		t.Fatalf("Square(6) after its worker's connection closed: %d, %v", v, err)
	}
	t.Logf("ran again %v after its worker was gone", time.Since(killed).Round(time.Millisecond))
}
