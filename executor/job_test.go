package executor_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// JobSquare squares, counting each call per input in the test's counter.
var JobSquare = task.New[int, int]("job-square")

// calls counts the handler's calls per input and knows which inputs run
// now, so that a test can tell a task run twice from one running at a
// producer's kill.
type calls struct {
	mu       sync.Mutex
	n        map[int]int
	running  map[int]int
	started  chan int      // told each input as it starts, if set
	gate     chan struct{} // if set, inputs from gateFrom on wait for it to close
	gateFrom int
	pause    time.Duration
}

func newCalls(pause time.Duration) *calls {
	return &calls{n: make(map[int]int), running: make(map[int]int), pause: pause}
}

func (c *calls) square(ctx context.Context, i int) (int, error) {
	c.mu.Lock()
	c.n[i]++
	c.running[i]++
	started, gate := c.started, c.gate
	if i < c.gateFrom {
		gate = nil
	}
	c.mu.Unlock()
	if started != nil {
		started <- i
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	time.Sleep(c.pause)
	c.mu.Lock()
	if c.running[i]--; c.running[i] == 0 {
		delete(c.running, i)
	}
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return i * i, nil
}

func (c *calls) count(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[i]
}

// runningNow returns the inputs running now.
func (c *calls) runningNow() map[int]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := make(map[int]bool, len(c.running))
	for i := range c.running {
		now[i] = true
	}
	return now
}

func (c *calls) registry() *task.Registry {
	reg := task.NewRegistry()
	task.Handle(reg, JobSquare, c.square)
	return reg
}

// jobPool is a broker for the job tests and a way to make producers on it
// that the test can cut off.
type jobPool struct {
	t   *testing.T
	url string
	nc  *nats.Conn
}

func newJobPool(t *testing.T) *jobPool {
	srv, nc := startBroker(t)
	return &jobPool{t: t, url: srv.ClientURL(), nc: nc}
}

// producer returns an executor on a connection of its own, which close
// cuts off as a dead producer would be: no Shutdown, no cancel.
func (p *jobPool) producer(opts ...executor.NATSOption) (ex *executor.NATS, close func()) {
	p.t.Helper()
	nc := connect(p.t, p.url)
	ex = newNATS(p.t, nc, opts...)
	return ex, nc.Close
}

func (p *jobPool) worker(c *calls, cfg worker.Config) *worker.Worker {
	p.t.Helper()
	return startWorker(p.t, connect(p.t, p.url), c.registry(), cfg)
}

func attach(t *testing.T, ex *executor.NATS, name string, opts ...executor.JobOption) *executor.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := ex.Job(ctx, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitDone waits until the job's status counts every task it published
// done, at least tasks of them.
func waitDone(t *testing.T, ex *executor.NATS, name string, tasks int) executor.JobStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := ex.JobStatus(context.Background(), name)
		if err == nil && st.Tasks >= tasks && st.Done == st.Tasks {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the job to finish without a producer; its status: %+v, %v", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPublishedDone waits until the pool's task stream holds no chunk and the
// job's status counts no task running and at least done tasks done.
func waitPublishedDone(t *testing.T, ex *executor.NATS, nc *nats.Conn, name string, done int) executor.JobStatus {
	t.Helper()
	js := jetstreamOf(t, nc)
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := ex.JobStatus(context.Background(), name)
		if err == nil && st.Running == 0 && st.Done >= done && streamMsgs(t, js) == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the published chunks of the job to finish; its status: %+v, %v", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantSquaresInOrder ranges over a Map of JobSquare on 0..n-1 and checks
// every result, in order.
func wantSquaresInOrder(t *testing.T, ctx context.Context, ex executor.Executor, n int, opts ...executor.MapOption) {
	t.Helper()
	i := 0
	for v, err := range executor.Map(ctx, ex, JobSquare, ints(n), opts...) {
		if err != nil || v != i*i {
			t.Fatalf("result %d = %d, %v; want %d", i, v, err, i*i)
		}
		i++
	}
	if i != n {
		t.Fatalf("%d results, want %d", i, n)
	}
}

// TestJobConformance runs the conformance suite on a named job: its
// futures keep every rule of the executor's own.
func TestJobConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		_, nc := startBroker(t)
		ex := newNATS(t, nc)
		// Attached before the worker starts, as the executor of the NATS
		// suite is made before its worker.
		job := attach(t, ex, "conformance")
		startWorker(t, connect(t, nc.ConnectedUrl()), cfg.Registry, worker.Config{Concurrency: cfg.Workers, Retry: cfg.Retry})
		return job
	})
}

// TestJobOutlivesItsProducer: a producer is cut off (its connection closed)
// in the middle of a named Map; the workers finish the job; a new producer
// of the same name and input gets every result in order, and no task ran
// twice but those running at the cut.
func TestJobOutlivesItsProducer(t *testing.T) {
	for _, chunksize := range []int{1, 10} {
		t.Run("chunksize "+strconv.Itoa(chunksize), func(t *testing.T) {
			p := newJobPool(t)
			c := newCalls(2 * time.Millisecond)
			p.worker(c, worker.Config{Concurrency: 4})
			const n = 400
			ex1, cut := p.producer()
			job := attach(t, ex1, "outlive")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			consumed := 0
			var runningAtCut map[int]bool
			for v, err := range executor.Map(ctx, job, JobSquare, ints(n), executor.MapChunksize(chunksize), executor.MapBuffersize(8)) {
				if err != nil || v != consumed*consumed {
					t.Fatalf("result %d = %d, %v", consumed, v, err)
				}
				if consumed++; consumed == n/4 {
					cut()
					runningAtCut = c.runningNow()
					// Ended by ctx, the iteration cancels nothing.
					cancel()
					break
				}
			}

			ex2, _ := p.producer()
			// What the cut producer published runs to its end. A chunk
			// whose record it wrote but that it had not yet published waits
			// for the producer that resumes the job.
			st := waitPublishedDone(t, ex2, p.nc, "outlive", n/4)
			if st.Failed != 0 || st.Running != 0 || st.Done+st.Queued != st.Tasks {
				t.Fatalf("status %+v, want every task the stream took done, none failed", st)
			}
			resumed := attach(t, ex2, "outlive")
			ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel2()
			wantSquaresInOrder(t, ctx2, resumed, n, executor.MapChunksize(chunksize))
			twice := 0
			for i := range n {
				switch k := c.count(i); {
				case k == 1:
				case k == 2 && runningAtCut[i]:
					twice++
				default:
					t.Errorf("task %d ran %d times", i, k)
				}
			}
			t.Logf("%d tasks, %d consumed before the cut, %d published, %d running at the cut, %d ran twice",
				n, n/4, st.Tasks, len(runningAtCut), twice)
		})
	}
}

// TestJobRefusesOtherInput: a job resumed with another input fails at the
// first chunk that differs, with ErrJobInput, after the results before it.
func TestJobRefusesOtherInput(t *testing.T) {
	p := newJobPool(t)
	c := newCalls(0)
	p.worker(c, worker.Config{Concurrency: 2})
	ex, _ := p.producer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	job := attach(t, ex, "input")
	wantSquaresInOrder(t, ctx, job, 10, executor.MapChunksize(2))
	job.Shutdown(ctx, true, false)

	for name, input := range map[string][]int{
		"a changed item":   {0, 1, 2, 3, 99, 5},
		"another chunking": {0, 1, 2, 3, 4, 5},
	} {
		t.Run(name, func(t *testing.T) {
			ex2, _ := p.producer()
			again := attach(t, ex2, "input")
			size := 2
			if name == "another chunking" {
				size = 3
			}
			// One chunk in flight: the results before the refusal come first.
			got, gotErr := mapUntilRefused(t, ctx, again, input, executor.MapChunksize(size), executor.MapBuffersize(1))
			want := []int{0, 1, 4, 9}
			if size == 3 {
				want = nil
			}
			if !slices.Equal(got, want) {
				t.Fatalf("results before the refusal %v, want %v", got, want)
			}
			t.Logf("refused: %v", gotErr)
		})
	}
	if c.count(99) != 0 {
		t.Error("the other input ran")
	}
}

// TestJobCancelHoldsAcrossResume: tasks cancelled before their producer
// dies never run, also once a producer resumes the job; the others run
// once.
func TestJobCancelHoldsAcrossResume(t *testing.T) {
	p := newJobPool(t)
	c := newCalls(0)
	ex1, cut := p.producer()
	job := attach(t, ex1, "cancel")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 20
	var futs []*executor.Future[int]
	for i := range n {
		f, err := executor.Submit(ctx, job, JobSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	for i := 0; i < n; i += 3 {
		if !futs[i].Cancel() {
			t.Fatalf("Cancel of queued task %d = false", i)
		}
	}
	cut()
	p.worker(c, worker.Config{Concurrency: 2})
	ex2, _ := p.producer()
	again := attach(t, ex2, "cancel")
	for i := range n {
		f, err := executor.Submit(ctx, again, JobSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		v, err := f.Result(ctx)
		switch {
		case i%3 == 0:
			if !errors.Is(err, executor.ErrCancelled) || !f.Cancelled() {
				t.Errorf("task %d, cancelled before the producer died: %d, %v", i, v, err)
			}
		case err != nil || v != i*i:
			t.Errorf("task %d = %d, %v", i, v, err)
		}
	}
	if err := again.Shutdown(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if want := min(i%3, 1); c.count(i) != want {
			t.Errorf("task %d ran %d times, want %d", i, c.count(i), want)
		}
	}
}

// mapUntilRefused maps JobSquare over input on job until the Map fails,
// which it must with ErrJobInput, and returns the results before and the
// error.
func mapUntilRefused(t *testing.T, ctx context.Context, job *executor.Job, input []int, opts ...executor.MapOption) ([]int, error) {
	t.Helper()
	var got []int
	for v, err := range executor.Map(ctx, job, JobSquare, slices.Values(input), opts...) {
		if err != nil {
			if !errors.Is(err, executor.ErrJobInput) {
				t.Fatalf("error %v after %d results, want ErrJobInput", err, len(got))
			}
			return got, err
		}
		got = append(got, v)
	}
	t.Fatalf("the Map ended after %d results without an error, want ErrJobInput", len(got))
	return nil, nil
}

// TestJobPipelineStopsAtOtherInput: a Map on a job that holds another input
// at its third chunk, whose records the Job has not read when it reaches
// them, so that the writes of its chunks' records are in flight before it
// learns of the difference: the Map fails with ErrJobInput after the results
// before that chunk, and none of the chunks after it goes into the job.
func TestJobPipelineStopsAtOtherInput(t *testing.T) {
	p := newJobPool(t)
	c := newCalls(0)
	p.worker(c, worker.Config{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, _ := p.producer()
	job := attach(t, ex, "pipeline")
	wantSquaresInOrder(t, ctx, job, 10, executor.MapChunksize(2))
	if err := job.Shutdown(ctx, true, false); err != nil {
		t.Fatal(err)
	}

	ex2, _ := p.producer()
	again := attach(t, ex2, "pipeline")
	executor.HoldNoRecords(again)
	input := slices.Collect(ints(40))
	input[4] = 99
	got, gotErr := mapUntilRefused(t, ctx, again, input, executor.MapChunksize(2), executor.MapBuffersize(16))
	if want := []int{0, 1, 4, 9}; !slices.Equal(got, want) {
		t.Fatalf("results before the refusal %v, want %v", got, want)
	}
	if err := again.Shutdown(ctx, true, false); err != nil {
		t.Fatal(err)
	}
	st, err := ex2.JobStatus(ctx, "pipeline")
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != 5 || st.Tasks != 10 || st.Done != 10 {
		t.Fatalf("status %+v after the refused Map, want the job's 5 chunks of 10 tasks, done, and nothing else", st)
	}
	if n := streamMsgs(t, jetstreamOf(t, p.nc)); n != 0 {
		t.Fatalf("%d chunks in the stream after the refused Map", n)
	}
	for _, i := range append(slices.Collect(ints(40)), 99) {
		want := 0
		if i < 10 {
			want = 1 // by the first Map
		}
		if c.count(i) != want {
			t.Errorf("task %d ran %d times, want %d", i, c.count(i), want)
		}
	}
	t.Logf("refused: %v", gotErr)
}

// TestJobFinishesWithoutProducer: a job whose producer never comes back
// runs to its end, and every result is readable, in order, with JobResults.
func TestJobFinishesWithoutProducer(t *testing.T) {
	p := newJobPool(t)
	c := newCalls(time.Millisecond)
	ex1, cut := p.producer()
	job := attach(t, ex1, "orphan")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 50
	for i := range n {
		if _, err := executor.Submit(ctx, job, JobSquare, i); err != nil {
			t.Fatal(err)
		}
	}
	cut()
	// A Submit that returned is in the job: its chunk is in the stream,
	// whatever happened to the connection after it.
	if got := streamMsgs(t, jetstreamOf(t, p.nc)); got != n {
		t.Fatalf("%d chunks in the stream once %d Submits returned and their producer died", got, n)
	}
	p.worker(c, worker.Config{Concurrency: 3})
	ex2, _ := p.producer()
	waitDone(t, ex2, "orphan", n)
	i := 0
	for r, err := range ex2.JobResults(ctx, "orphan") {
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		var v int
		if r.Position != uint64(i) || r.Err != nil || msgpack.Unmarshal(r.Value, &v) != nil || v != i*i {
			t.Fatalf("result %d: %+v (%d)", i, r, v)
		}
		if i++; i == n {
			break
		}
	}
	if i != n {
		t.Fatalf("%d results, want %d", i, n)
	}
}

// TestDeleteJobRemovesEverything: deleting a finished job, and one whose
// chunks are still queued, leaves nothing of it in the jobs bucket, the
// results stream or the task stream.
func TestDeleteJobRemovesEverything(t *testing.T) {
	p := newJobPool(t)
	c := newCalls(0)
	ex, _ := p.producer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	queued := attach(t, ex, "queued")
	for i := range 10 {
		if _, err := executor.Submit(ctx, queued, JobSquare, i); err != nil {
			t.Fatal(err)
		}
	}
	js := jetstreamOf(t, p.nc)
	waitUntil(t, func() bool { return streamMsgs(t, js) == 10 }, "the queued job's chunks in the stream")
	if err := ex.DeleteJob(ctx, "queued"); !errors.Is(err, executor.ErrJobAttached) {
		t.Fatalf("DeleteJob of an attached job: %v, want ErrJobAttached", err)
	}
	queued.Shutdown(ctx, true, true)
	if err := ex.DeleteJob(ctx, "queued"); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js); n != 0 {
		t.Errorf("the task stream holds %d chunks of the deleted job", n)
	}

	p.worker(c, worker.Config{Concurrency: 2})
	done := attach(t, ex, "done")
	wantSquaresInOrder(t, ctx, done, 30, executor.MapChunksize(4))
	done.Shutdown(ctx, true, false)
	if subjectsOf(t, js, "KV_JETPOOL_DEFAULT_JOBS", "$KV.JETPOOL_DEFAULT_JOBS.anon.done.>") == 0 {
		t.Fatal("the finished job has no records")
	}
	if err := ex.DeleteJob(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"queued", "done"} {
		waitUntil(t, func() bool {
			return subjectsOf(t, js, "KV_JETPOOL_DEFAULT_JOBS", "$KV.JETPOOL_DEFAULT_JOBS.anon."+name+".>") == 0
		}, "the bucket to hold nothing of job "+name)
		if n := subjectsOf(t, js, "JETPOOL_DEFAULT_RESULTS_anon", "jetpool.default.results.anon."+name+".>"); n != 0 {
			t.Errorf("the results stream holds %d subjects of job %s", n, name)
		}
		if _, err := ex.JobStatus(ctx, name); !errors.Is(err, executor.ErrNoJob) {
			t.Errorf("JobStatus of deleted job %s: %v, want ErrNoJob", name, err)
		}
	}
	if jobs, err := ex.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("Jobs after deleting them all: %v, %v", jobs, err)
	}
	waitUntil(t, func() bool { return streamMsgs(t, js) == 0 }, "the task stream to empty")
	if c.count(0) != 1 {
		t.Errorf("the deleted queued job's task 0 ran %d times besides the other job's", c.count(0)-1)
	}
}

// subjectsOf counts the messages of stream on subjects matching filter.
func subjectsOf(t *testing.T, js jetstream.JetStream, stream, filter string) int {
	t.Helper()
	n := 0
	for _, c := range streamState(t, js, stream, jetstream.WithSubjectFilter(filter)).Subjects {
		n += int(c)
	}
	return n
}

// gatedJob attaches a producer to the job name on a pool of one worker with
// one slot, whose tasks report their start on c.started and wait for
// c.gate to close; ctx bounds the test at 30s.
func gatedJob(t *testing.T, name string) (p *jobPool, c *calls, ex *executor.NATS, job *executor.Job, ctx context.Context) {
	t.Helper()
	p = newJobPool(t)
	c = newCalls(0)
	c.started = make(chan int, 16)
	c.gate = make(chan struct{})
	p.worker(c, worker.Config{Concurrency: 1})
	ex, _ = p.producer()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return p, c, ex, attach(t, ex, name), ctx
}

// TestJobLifecycle: a job is listed, its status counts its tasks as they
// run, CancelJob cancels what has not started (the attached Job's futures
// among them), JobResults reads its results in order while it runs, and a
// job with a retention is gone once the retention has passed.
func TestJobLifecycle(t *testing.T) {
	p, c, ex, job, ctx := gatedJob(t, "life")
	var futs []*executor.Future[int]
	for i := range 6 {
		f, err := executor.Submit(ctx, job, JobSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	if got := <-c.started; got != 0 {
		t.Fatalf("task %d started first", got)
	}
	waitUntil(t, futs[0].Running, "task 0 to report Running")
	jobs, err := ex.Jobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].Name != "life" || !jobs[0].Attached {
		t.Fatalf("Jobs = %+v, %v; want life, attached", jobs, err)
	}
	st, err := ex.JobStatus(ctx, "life")
	if err != nil || st.Tasks != 6 || st.Running != 1 || st.Queued != 5 || st.Done != 0 || !st.Attached {
		t.Fatalf("JobStatus = %+v, %v; want 6 tasks, 1 running, 5 queued", st, err)
	}

	results := make(chan executor.JobResult)
	go func() {
		defer close(results)
		n := 0
		for r, err := range ex.JobResults(ctx, "life") {
			if err != nil {
				t.Errorf("JobResults: %v", err)
				return
			}
			results <- r
			if n++; n == 6 {
				return
			}
		}
	}()
	cancelled, err := ex.CancelJob(ctx, "life")
	if err != nil || cancelled != 5 {
		t.Fatalf("CancelJob = %d, %v; want 5", cancelled, err)
	}
	for i, f := range futs[1:] {
		waitUntil(t, f.Cancelled, "the attached Job to see its future "+strconv.Itoa(i+1)+" cancelled")
	}
	close(c.gate)
	if v, err := futs[0].Result(ctx); err != nil || v != 0 {
		t.Fatalf("task 0 = %d, %v", v, err)
	}
	for i := range 6 {
		r, ok := <-results
		if !ok {
			t.Fatalf("JobResults ended after %d", i)
		}
		switch {
		case r.Position != uint64(i):
			t.Fatalf("result %d at place %d", i, r.Position)
		case i == 0 && (r.Err != nil || string(r.Value) != string(msgpackOf(t, 0))):
			t.Fatalf("result 0: %+v", r)
		case i > 0 && !errors.Is(r.Err, executor.ErrCancelled):
			t.Fatalf("result %d: %+v, want ErrCancelled", i, r)
		}
	}
	st, err = ex.JobStatus(ctx, "life")
	if err != nil || st.Done != 1 || st.Cancelled != 5 || st.Running != 0 || st.Queued != 0 {
		t.Fatalf("JobStatus = %+v, %v; want 1 done, 5 cancelled", st, err)
	}
	for i := 1; i < 6; i++ {
		if c.count(i) != 0 {
			t.Errorf("cancelled task %d ran", i)
		}
	}

	short := attach(t, ex, "short", executor.JobRetention(time.Second))
	wantSquaresInOrder(t, ctx, short, 3)
	short.Shutdown(ctx, true, false)
	js := jetstreamOf(t, p.nc)
	waitUntil(t, func() bool {
		return subjectsOf(t, js, "KV_JETPOOL_DEFAULT_JOBS", "$KV.JETPOOL_DEFAULT_JOBS.anon.short.>") == 0 &&
			subjectsOf(t, js, "JETPOOL_DEFAULT_RESULTS_anon", "jetpool.default.results.anon.short.>") == 0
	}, "the job with a retention of 1s to be gone")
	if subjectsOf(t, js, "KV_JETPOOL_DEFAULT_JOBS", "$KV.JETPOOL_DEFAULT_JOBS.anon.life.>") == 0 {
		t.Error("the job without a retention is gone too")
	}
}

// TestUnnamedWorkTouchesNoJobs: a Map and Submits that belong to no job
// make no jobs bucket: unnamed chunks cost nothing of named jobs.
func TestUnnamedWorkTouchesNoJobs(t *testing.T) {
	p := newJobPool(t)
	p.worker(newCalls(0), worker.Config{Concurrency: 2})
	ex, _ := p.producer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantSquaresInOrder(t, ctx, ex, 50, executor.MapChunksize(5))
	if _, err := jetstreamOf(t, p.nc).Stream(ctx, "KV_JETPOOL_DEFAULT_JOBS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the jobs bucket after unnamed work: %v, want none", err)
	}
}

// TestJobWorkerCutOffMidChunk: the worker running a named chunk is cut off
// (its connection closed) while its task runs; once its lease lapses,
// another worker, of its user or of another, runs the chunk, and the
// future resolves once, with that worker's result.
func TestJobWorkerCutOffMidChunk(t *testing.T) {
	for _, users := range [][2]string{{"same", "same"}, {"first", "second"}} {
		t.Run(users[0]+"-"+users[1], func(t *testing.T) {
			p := newJobPool(t)
			pc := broker.PoolConfig{AckWait: time.Second, Grace: 2 * time.Second}
			ex, _ := p.producer(executor.NATSPoolConfig(pc))
			job := attach(t, ex, "cut")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f, err := executor.Submit(ctx, job, JobSquare, 6)
			if err != nil {
				t.Fatal(err)
			}
			first := newCalls(0)
			first.started = make(chan int, 1)
			first.gate = make(chan struct{})
			defer close(first.gate)
			wnc := connect(t, p.url)
			startWorker(t, wnc, first.registry(), worker.Config{Concurrency: 1, User: users[0], PoolConfig: pc})
			<-first.started
			waitUntil(t, f.Running, "the future to be running")
			wnc.Close()
			second := newCalls(0)
			startWorker(t, connect(t, p.url), second.registry(), worker.Config{Concurrency: 1, User: users[1], PoolConfig: pc})
			if v, err := f.Result(ctx); err != nil || v != 36 {
				t.Fatalf("result %d, %v", v, err)
			}
			if first.count(6) != 1 || second.count(6) != 1 {
				t.Fatalf("the task ran %d times on the first worker, %d on the second; want once each", first.count(6), second.count(6))
			}
		})
	}
}

// TestJobRunningHoldsAcrossResume: a producer that resumes a job sees the
// task its predecessor's worker runs as Running, and can interrupt it, and
// the queued one as pending, which it can cancel for good.
func TestJobRunningHoldsAcrossResume(t *testing.T) {
	p := newJobPool(t)
	c := newCalls(0)
	c.started = make(chan int, 4)
	c.gate = make(chan struct{})
	defer close(c.gate)
	p.worker(c, worker.Config{Concurrency: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex1, cut := p.producer()
	job := attach(t, ex1, "running")
	for i := range 2 {
		if _, err := executor.Submit(ctx, job, JobSquare, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-c.started; got != 0 {
		t.Fatalf("task %d started first", got)
	}
	cut()

	ex2, _ := p.producer()
	again := attach(t, ex2, "running")
	var futs []*executor.Future[int]
	for i := range 2 {
		f, err := executor.Submit(ctx, again, JobSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	waitUntil(t, futs[0].Running, "the resumed running task to report Running")
	if futs[1].Running() {
		t.Fatal("the resumed queued task reports Running")
	}
	if futs[0].Cancel() {
		t.Fatal("Cancel of the running task returned true")
	}
	if !futs[1].Cancel() {
		t.Fatal("Cancel of the queued task returned false")
	}
	if !futs[0].Interrupt() {
		t.Fatal("Interrupt of the running task returned false")
	}
	if _, err := futs[0].Result(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted task: %v, want context.Canceled", err)
	}
	if _, err := futs[1].Result(ctx); !errors.Is(err, executor.ErrCancelled) {
		t.Fatalf("cancelled task: %v", err)
	}
	again.Shutdown(ctx, true, false)
	if c.count(1) != 0 {
		t.Fatal("the task cancelled after the resume ran")
	}
}

// TestJobShutdownDetachesAtOnce: a Job shut down without waiting says at
// once that no producer is attached, as it adds no more tasks, so that
// JobResults ends after the job's last task; its futures still resolve.
func TestJobShutdownDetachesAtOnce(t *testing.T) {
	_, c, ex, job, ctx := gatedJob(t, "detach")
	var futs []*executor.Future[int]
	for i := range 2 {
		f, err := executor.Submit(ctx, job, JobSquare, i+2)
		if err != nil {
			t.Fatal(err)
		}
		futs = append(futs, f)
	}
	<-c.started
	if err := job.Shutdown(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	st, err := ex.JobStatus(ctx, "detach")
	if err != nil || st.Attached || st.Tasks != 2 {
		t.Fatalf("JobStatus after Shutdown = %+v, %v; want 2 tasks, no producer attached", st, err)
	}
	ended := make(chan []executor.JobResult)
	go func() {
		var got []executor.JobResult
		for r, err := range ex.JobResults(ctx, "detach") {
			if err != nil {
				t.Errorf("JobResults: %v", err)
				break
			}
			got = append(got, r)
		}
		ended <- got
	}()
	close(c.gate)
	got := <-ended
	if len(got) != 2 || string(got[0].Value) != string(msgpackOf(t, 4)) || string(got[1].Value) != string(msgpackOf(t, 9)) {
		t.Fatalf("JobResults yielded %+v, want 4 and 9", got)
	}
	for i, f := range futs {
		if v, err := f.Result(ctx); err != nil || v != (i+2)*(i+2) {
			t.Errorf("future %d = %d, %v", i, v, err)
		}
	}
}

// TestJobInputEnds: a job's input has ended only once its producer said
// so with the tasks published at that moment; a producer that resumes it
// with a longer input leaves it without an end until it says so again, and
// a job's end goes with the job.
func TestJobInputEnds(t *testing.T) {
	p := newJobPool(t)
	p.worker(newCalls(0), worker.Config{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inputEnded := func(ex *executor.NATS, tasks int) bool {
		t.Helper()
		st, err := ex.JobStatus(ctx, "ends")
		if err != nil || st.Tasks != tasks {
			t.Fatalf("JobStatus = %+v, %v; want %d tasks", st, err, tasks)
		}
		return st.InputEnded
	}

	// A producer maps 9 inputs; another, the same 9 and 6 more: the job
	// grew, and has no end until the new producer says so.
	var ex *executor.NATS
	for _, n := range []int{9, 15} {
		ex, _ = p.producer()
		job := attach(t, ex, "ends")
		wantSquaresInOrder(t, ctx, job, n, executor.MapChunksize(3))
		if inputEnded(ex, n) {
			t.Fatalf("%d tasks: the input ended before its producer said so", n)
		}
		if err := job.EndInput(ctx); err != nil {
			t.Fatal(err)
		}
		if !inputEnded(ex, n) {
			t.Fatalf("%d tasks: the input has not ended after EndInput", n)
		}
		job.Shutdown(ctx, true, false)
		if err := job.EndInput(ctx); !errors.Is(err, executor.ErrShutdown) {
			t.Fatalf("EndInput after Shutdown: %v, want ErrShutdown", err)
		}
	}
	if err := ex.DeleteJob(ctx, "ends"); err != nil {
		t.Fatal(err)
	}
	js := jetstreamOf(t, p.nc)
	waitUntil(t, func() bool {
		return subjectsOf(t, js, "KV_JETPOOL_DEFAULT_JOBS", "$KV.JETPOOL_DEFAULT_JOBS.anon.ends.>") == 0
	}, "the deleted job's records, its end among them, to be gone")
}

// TestJobRetentionOfAJobThatExists: a job keeps the retention it was made
// with; attaching it with another is refused before anything is written,
// with the same or none it attaches.
func TestJobRetentionOfAJobThatExists(t *testing.T) {
	p := newJobPool(t)
	ex, _ := p.producer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	attach(t, ex, "kept", executor.JobRetention(time.Hour)).Shutdown(ctx, true, false)
	if _, err := ex.Job(ctx, "kept", executor.JobRetention(2*time.Hour)); !errors.Is(err, executor.ErrInvalidOption) ||
		!strings.Contains(err.Error(), "1h0m0s") {
		t.Fatalf("attach with another retention: %v, want ErrInvalidOption naming the job's 1h0m0s", err)
	}
	for _, opts := range [][]executor.JobOption{{executor.JobRetention(time.Hour)}, nil} {
		job := attach(t, ex, "kept", opts...)
		st, err := job.Status(ctx)
		if err != nil || st.Retention != time.Hour {
			t.Fatalf("Status = %+v, %v; want a retention of 1h", st, err)
		}
		job.Shutdown(ctx, true, false)
	}
	attach(t, ex, "forever").Shutdown(ctx, true, false)
	if _, err := ex.Job(ctx, "forever", executor.JobRetention(time.Hour)); !errors.Is(err, executor.ErrInvalidOption) ||
		!strings.Contains(err.Error(), "until it is deleted") {
		t.Fatalf("attach a job kept until deleted with a retention: %v, want ErrInvalidOption", err)
	}
}

// TestJobStatusLeavesNoConsumers: each read of a job's records and results
// is a consumer of its own, deleted once done, so that a status polled
// over and over leaves none behind in the server to reach its limit.
func TestJobStatusLeavesNoConsumers(t *testing.T) {
	p := newJobPool(t)
	p.worker(newCalls(0), worker.Config{Concurrency: 2})
	ex, _ := p.producer()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	job := attach(t, ex, "polled")
	wantSquaresInOrder(t, ctx, job, 6, executor.MapChunksize(2))
	job.Shutdown(ctx, true, false)
	empty := attach(t, ex, "empty") // no chunk, no result: reads that find nothing
	defer empty.Shutdown(ctx, true, false)
	js := jetstreamOf(t, p.nc)
	consumers := func(stream string) int { return streamState(t, js, stream).Consumers }
	streams := []string{"KV_JETPOOL_DEFAULT_JOBS", "JETPOOL_DEFAULT_RESULTS_anon"}
	before := map[string]int{}
	for _, s := range streams {
		before[s] = consumers(s)
	}
	for range 100 {
		for _, name := range []string{"polled", "empty"} {
			if _, err := ex.JobStatus(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := ex.Jobs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		if n := consumers(s); n > before[s] {
			t.Errorf("stream %s holds %d consumers after 200 status reads, %d before", s, n, before[s])
		}
	}
}
