package executor_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/worker"
)

// The named jobs' attack tests: as the others, under docs/security.conf, a
// victim producer ("producer") shares the pool with a second producer
// ("producer2") and a rogue worker credential ("worker2"), which knows the
// victim's job name and its chunks' places (they are guessable) but was
// never delivered the chunks.

// jobWorker starts a real worker of the pool as the user "worker", writing
// the records of named jobs under that name, running squares through rec.
func jobWorker(t *testing.T, srv *embedded.Server, rec *recorder, concurrency int) {
	t.Helper()
	serve(t, srv, rec, worker.Config{Concurrency: concurrency, User: "worker"})
}

// TestSecurityJobRunsWithLeastPrivilege: a named job runs, resumes, is
// listed, inspected, read, cancelled, interrupted and deleted with the
// permissions of docs/security.conf and no permission violation.
func TestSecurityJobRunsWithLeastPrivilege(t *testing.T) {
	srv := secureServer(t)
	ex, _, perrs := producerAs(t, srv, "producer")
	wnc, werrs := connectAs(t, srv, "worker", "worker-secret")
	startWorker(t, wnc, securityRegistry(), worker.Config{Pool: "batch", Concurrency: 2, User: "worker"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	job := attach(t, ex, "nightly")
	inputs := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	i := 0
	for v, err := range executor.Map(ctx, job, Square, slices.Values(inputs), executor.MapChunksize(3)) {
		if err != nil || v != i*i {
			t.Fatalf("result %d = %d, %v", i, v, err)
		}
		i++
	}
	long, err := executor.Submit(ctx, job, untilInterrupted, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, long.Running, "the long task to run")
	if !long.Interrupt() {
		t.Fatal("Interrupt() = false for a running task")
	}
	if _, err := long.Result(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted task: %v, want context.Canceled", err)
	}
	if err := job.EndInput(ctx); err != nil {
		t.Fatal(err)
	}
	if err := job.Shutdown(ctx, true, false); err != nil {
		t.Fatal(err)
	}

	// Another producer of the same user resumes it.
	ex2 := newNATS(t, producerConn(t, srv), executor.NATSPool("batch"), executor.NATSName("producer"))
	again := attach(t, ex2, "nightly")
	i = 0
	for v, err := range executor.Map(ctx, again, Square, slices.Values(inputs), executor.MapChunksize(3)) {
		if err != nil || v != i*i {
			t.Fatalf("resumed result %d = %d, %v", i, v, err)
		}
		i++
	}
	again.Shutdown(ctx, true, false)
	if jobs, err := ex.Jobs(ctx); err != nil || len(jobs) != 1 || jobs[0].Name != "nightly" {
		t.Fatalf("Jobs = %+v, %v", jobs, err)
	}
	st, err := ex.JobStatus(ctx, "nightly")
	if err != nil || st.Tasks != 11 || st.Done != 11 || st.Failed != 1 || !st.InputEnded {
		t.Fatalf("JobStatus = %+v, %v; want 11 tasks done, 1 failed, the input ended", st, err)
	}
	n := 0
	for r, err := range ex.JobResults(ctx, "nightly") {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 11 || r.Position == 10 {
			break
		}
	}
	if _, err := ex.CancelJob(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if err := ex.DeleteJob(ctx, "nightly"); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.JobStatus(ctx, "nightly"); !errors.Is(err, executor.ErrNoJob) {
		t.Fatalf("JobStatus of the deleted job: %v", err)
	}
	for who, errs := range map[string]<-chan error{"producer": perrs, "worker": werrs} {
		select {
		case err := <-errs:
			t.Errorf("%s hit %v in a normal run", who, err)
		default:
		}
	}
}

func producerConn(t *testing.T, srv *embedded.Server) *nats.Conn {
	t.Helper()
	nc, _ := connectAs(t, srv, "producer", "producer-secret")
	return nc
}

// TestSecurityJobForgeriesIgnored: the rogue worker credential stores
// results for the victim's named chunks under its own name with made-up
// proofs, and claims them the same way; they are ignored and counted, the
// futures stay pending and cancellable, and a real worker then runs the
// chunks, whose futures get their own values. Writing under another party's
// name (a real worker's results or claims, the victim's records) is refused
// by the server.
func TestSecurityJobForgeriesIgnored(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	job := attach(t, ex, "victim")
	inputs := []int{2, 3, 4}
	futs := submitSquares(t, job, inputs...)
	rnc, rerrs := connectAs(t, srv, "worker2", "worker2-secret")
	rjs := jetstreamOf(t, rnc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var forged int64
	for ord := range uint64(len(inputs)) {
		o := strconv.FormatUint(ord, 10)
		proof := make([]byte, 32)
		for i := range proof {
			proof[i] = byte(rand.Uint32())
		}
		res, _ := wire.Encode(&wire.JobResult{Worker: "rogue", Nonce: 7, Proof: proof, Final: true,
			Items: []wire.ItemResult{{Seq: 0, Value: msgpackOf(t, -1)}}})
		if _, err := rjs.Publish(ctx, "jetpool.batch.results.producer.victim."+o+".worker2", res); err != nil {
			t.Fatalf("the rogue could not store a result under its own name: %v", err)
		}
		claim, _ := wire.Encode(&wire.JobClaim{Worker: "rogue", Nonce: 7, Proof: proof, LeaseMs: 60_000})
		if _, err := rjs.Publish(ctx, "$KV.JETPOOL_BATCH_JOBS.producer.victim."+o+".s.worker2", claim); err != nil {
			t.Fatalf("the rogue could not claim under its own name: %v", err)
		}
		forged += 2
	}
	waitUntil(t, func() bool { return job.Forged() >= forged }, "every forged result and claim counted")
	wantPending(t, futs)

	// Under any other party's name the server refuses the writes.
	for _, subject := range []string{
		"jetpool.batch.results.producer.victim.0.worker",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.s.worker",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.l.worker",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.c",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.x.1",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.i",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.job",
		"jetpool.batch.results.producer.victim.secret",
	} {
		rnc.Publish(subject, []byte("forged"))
		rnc.Flush()
		wantViolation(t, rerrs, "the rogue worker publishing to "+subject)
	}
	if !futs[0].Cancel() {
		t.Fatal("Cancel() = false for a task only a forger claimed")
	}
	rec := &recorder{}
	jobWorker(t, srv, rec, 2)
	wantSquares(t, futs[1:], inputs[1:]...)
	if _, err := futs[0].Result(ctx); !errors.Is(err, executor.ErrCancelled) {
		t.Fatalf("cancelled future: %v", err)
	}
	if slices.Contains(rec.inputs(), inputs[0]) {
		t.Error("the cancelled task ran")
	}
}

// TestSecurityJobIsTheOwnersAlone: the second producer may neither write
// the victim's job records, nor read its results or secret, nor read its
// results through a consumer; a chunk it queues that claims to be the
// victim's is terminated by the workers, who find it is not the chunk the
// victim published, and never run.
func TestSecurityJobIsTheOwnersAlone(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	job := attach(t, ex, "victim")
	futs := submitSquares(t, job, 5)
	pnc, perrs := connectAs(t, srv, "producer2", "producer2-secret")
	pjs := jetstreamOf(t, pnc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, subject := range []string{
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.x.1",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.0.c",
		"$KV.JETPOOL_BATCH_JOBS.producer.victim.job",
		"jetpool.batch.results.producer.victim.0.worker",
		"jetpool.batch.results.producer.victim.secret",
	} {
		pnc.Publish(subject, []byte("forged"))
		pnc.Flush()
		wantViolation(t, perrs, "the second producer publishing to "+subject)
	}
	for what, call := range map[string]func(context.Context) error{
		"reading the victim's secret": func(ctx context.Context) error {
			st, err := pjs.Stream(ctx, "JETPOOL_BATCH_RESULTS_producer")
			if err != nil {
				return err
			}
			_, err = st.GetLastMsgForSubject(ctx, "jetpool.batch.results.producer.victim.secret")
			return err
		},
		"reading the victim's results": func(ctx context.Context) error {
			_, err := pjs.OrderedConsumer(ctx, "JETPOOL_BATCH_RESULTS_producer", jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{"jetpool.batch.results.producer.>"}})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := call(ctx)
		cancel()
		if err == nil {
			t.Fatalf("the second producer succeeded %s", what)
		}
		wantViolation(t, perrs, "the second producer "+what)
	}

	// A chunk that claims to be the victim's chunk 0, with a key of its own.
	fake, err := wire.Encode(&wire.Chunk{Kind: Square.Kind(), Items: []wire.Item{{Seq: 0, Args: msgpackOf(t, 1001)}},
		Job: "producer.victim", Ord: 0, Key: make([]byte, wire.JobKeyLen)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pjs.Publish(ctx, "jetpool.batch.tasks.square", fake); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	jobWorker(t, srv, rec, 1)
	wantSquares(t, futs, 5)
	waitUntil(t, func() bool { return streamMsgsOf(t, pjs) == 0 }, "the fake chunk gone from the stream")
	if slices.Contains(rec.inputs(), 1001) {
		t.Error("a worker ran the fake chunk's input")
	}
}
