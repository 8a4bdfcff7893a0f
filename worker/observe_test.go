package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/internal/version"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// sample returns the value of the series name{labels} gathered from g: a
// counter's or gauge's value, a histogram's sample count. ok is false when
// no such series exists.
func sample(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, want := range labels {
				if got[k] != want {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	g := newGates()
	reg := squares(nil)
	g.handle(reg)
	flaky := task.New[retryIn, int]("flaky")
	var flakyCalls atomic.Int64
	task.Handle(reg, flaky, func(ctx context.Context, in retryIn) (int, error) {
		if n := flakyCalls.Add(1); n <= int64(in.Fails) {
			err := errors.New("flaky")
			if in.Retryable {
				err = task.Retryable(err)
			}
			return 0, err
		}
		return 1, nil
	})
	w := e.startWorker(reg, worker.Config{Retry: task.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}})
	// Pedantic: what Collect sends must match what Describe declares.
	pr := prometheus.NewPedanticRegistry()
	if err := pr.Register(w.Collector()); err != nil {
		t.Fatal(err)
	}
	lbl := func(kind string) map[string]string { return map[string]string{"pool": "default", "kind": kind} }
	want := func(name, kind string, v float64) {
		t.Helper()
		got, ok := sample(t, pr, name, lbl(kind))
		if !ok {
			t.Errorf("no series %s{kind=%q,pool=\"default\"}", name, kind)
		} else if got != v {
			t.Errorf("%s{kind=%q} = %v, want %v", name, kind, got, v)
		}
	}
	// Every kind is exported at zero before any work.
	for _, k := range []string{Square.Kind(), Block.Kind(), flaky.Kind()} {
		want("jetpool_worker_tasks_started_total", k, 0)
		want("jetpool_worker_chunks_in_flight", k, 0)
		want("jetpool_worker_chunks_returned_total", k, 0)
	}

	// Chunk 2 is busy at its first delivery and runs at its second; chunk 3
	// is dropped.
	var asked2 atomic.Int64
	p.setDecide(func(req wire.Start, all []uint32) wire.StartReply {
		switch {
		case req.Chunk == 2 && asked2.Add(1) == 1:
			return wire.StartReply{Verdict: wire.VerdictBusy}
		case req.Chunk == 3:
			return wire.StartReply{Verdict: wire.VerdictDrop}
		}
		return wire.StartReply{Verdict: wire.VerdictGo, Items: all, LeaseMs: p.leaseMs}
	})
	p.submit(1, Square.Kind(), 1, 2, 3)
	p.submit(2, Square.Kind(), 4)
	p.submit(3, Square.Kind(), 5)
	e.publish(Square.Kind(), []byte("garbage"))
	p.submit(10, flaky.Kind(),
		retryIn{Fails: 1, Retryable: true}, // fails once, then succeeds
		retryIn{Fails: 5},                  // fails for good
	)
	p.collect(3)
	e.waitSettled()

	want("jetpool_worker_tasks_started_total", Square.Kind(), 4)
	want("jetpool_worker_tasks_succeeded_total", Square.Kind(), 4)
	want("jetpool_worker_tasks_failed_total", Square.Kind(), 0)
	want("jetpool_worker_tasks_retried_total", Square.Kind(), 0)
	want("jetpool_worker_task_duration_seconds", Square.Kind(), 4)
	want("jetpool_worker_chunks_started_total", Square.Kind(), 2)
	want("jetpool_worker_chunks_dropped_total", Square.Kind(), 1)
	want("jetpool_worker_chunks_terminated_total", Square.Kind(), 1)
	// Chunk 2's busy verdict brings it back once; any chunk that arrived
	// when no slot was free (a pull request answered after it was taken as
	// lost, on a loaded machine) was handed back and came back too.
	returned, _ := sample(t, pr, "jetpool_worker_chunks_returned_total", lbl(Square.Kind()))
	want("jetpool_worker_chunks_redelivered_total", Square.Kind(), 1+returned)
	// Four verdicts: go, busy then go, drop; the garbage was never asked for.
	want("jetpool_worker_start_wait_seconds", Square.Kind(), 4)

	want("jetpool_worker_tasks_started_total", flaky.Kind(), 2)
	want("jetpool_worker_tasks_succeeded_total", flaky.Kind(), 1)
	want("jetpool_worker_tasks_failed_total", flaky.Kind(), 1)
	want("jetpool_worker_tasks_retried_total", flaky.Kind(), 1)
	want("jetpool_worker_task_duration_seconds", flaky.Kind(), 2)
	want("jetpool_worker_start_wait_seconds", flaky.Kind(), 1)

	// The in-flight gauge follows a running chunk.
	p.submit(20, Block.Kind(), "held")
	recv(t, g.started, "handler start")
	want("jetpool_worker_chunks_in_flight", Block.Kind(), 1)
	want("jetpool_worker_chunks_in_flight", Square.Kind(), 0)
	g.release("held")
	p.one(20)
	eventually(t, "in-flight gauge back to 0", func() bool {
		v, _ := sample(t, pr, "jetpool_worker_chunks_in_flight", lbl(Block.Kind()))
		return v == 0
	})
	want("jetpool_worker_tasks_succeeded_total", Block.Kind(), 1)

	// Stats sums the very counts the series export.
	st := w.Stats()
	for name, got := range map[string]int64{
		"jetpool_worker_chunks_in_flight":         st.InFlight,
		"jetpool_worker_chunks_started_total":     st.ChunksStarted,
		"jetpool_worker_chunks_dropped_total":     st.ChunksDropped,
		"jetpool_worker_chunks_terminated_total":  st.ChunksTerminated,
		"jetpool_worker_chunks_redelivered_total": st.Redelivered,
		"jetpool_worker_chunks_returned_total":    st.ChunksReturned,
		"jetpool_worker_tasks_succeeded_total":    st.TasksSucceeded,
		"jetpool_worker_tasks_failed_total":       st.TasksFailed,
		"jetpool_worker_tasks_retried_total":      st.TasksRetried,
	} {
		var sum float64
		for _, k := range []string{Square.Kind(), Block.Kind(), flaky.Kind()} {
			v, _ := sample(t, pr, name, lbl(k))
			sum += v
		}
		if int64(sum) != got {
			t.Errorf("%s sums to %v over the kinds; Stats says %d", name, sum, got)
		}
	}
	if st.ChunksBusy != 1 || st.ChunksStarted != 4 {
		t.Errorf("Stats %+v, want 1 chunk busy and 4 started", st)
	}
}

func TestCollectorsOfTwoPoolsShareARegistry(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	pr := prometheus.NewRegistry()
	for _, pool := range []string{"a", "b"} {
		w, err := worker.New(e.nc, squares(nil), worker.Config{Pool: pool})
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Register(w.Collector()); err != nil {
			t.Fatalf("register pool %s: %v", pool, err)
		}
	}
	for _, pool := range []string{"a", "b"} {
		if _, ok := sample(t, pr, "jetpool_worker_tasks_started_total", map[string]string{"pool": pool, "kind": Square.Kind()}); !ok {
			t.Errorf("no series of pool %s", pool)
		}
	}
}

// request sends a request until one is answered or fails the test after
// waitFor: the worker's subscriptions reach the server shortly after it is
// Ready.
func request(t testing.TB, nc *nats.Conn, subject string) []byte {
	t.Helper()
	var data []byte
	eventually(t, "answer on "+subject, func() bool {
		msg, err := nc.Request(subject, nil, time.Second)
		if err != nil {
			return false
		}
		data = msg.Data
		return true
	})
	return data
}

func TestServiceRegistration(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	w := e.startWorker(squares(nil), worker.Config{ID: "w-1", Concurrency: 3})
	eventually(t, "worker ready", w.Ready)
	p.submit(1, Square.Kind(), 1, 2)
	p.one(1)
	e.waitSettled()

	subject, err := micro.ControlSubject(micro.InfoVerb, worker.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(request(t, e.nc, subject), &info); err != nil {
		t.Fatalf("decode info: %v", err)
	}
	host, _ := os.Hostname()
	wantMeta := map[string]string{
		worker.MetaPool:        "default",
		worker.MetaKinds:       Square.Kind(),
		worker.MetaWorkerID:    "w-1",
		worker.MetaHost:        host,
		worker.MetaPID:         strconv.Itoa(os.Getpid()),
		worker.MetaConcurrency: "3",
	}
	if info.Name != "jetpool-worker" || info.Version != version.Version {
		t.Errorf("service %s %s, want jetpool-worker %s", info.Name, info.Version, version.Version)
	}
	for k, v := range wantMeta {
		if info.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, info.Metadata[k], v)
		}
	}
	wantSubject := "jetpool.default.worker.w-1.status"
	if w.StatusSubject() != wantSubject {
		t.Errorf("StatusSubject() = %q, want %q", w.StatusSubject(), wantSubject)
	}
	wantMetrics := "jetpool.default.worker.w-1.metrics"
	if w.MetricsSubject() != wantMetrics {
		t.Errorf("MetricsSubject() = %q, want %q", w.MetricsSubject(), wantMetrics)
	}
	if len(info.Endpoints) != 2 || info.Endpoints[0].Name != "status" || info.Endpoints[0].Subject != wantSubject ||
		info.Endpoints[1].Name != "metrics" || info.Endpoints[1].Subject != wantMetrics {
		t.Errorf("endpoints %+v, want status on %s and metrics on %s", info.Endpoints, wantSubject, wantMetrics)
	}

	wantStatus := worker.Status{Concurrency: 3, ChunksStarted: 1, TasksSucceeded: 2}
	subject, _ = micro.ControlSubject(micro.StatsVerb, worker.ServiceName, "")
	var stats micro.Stats
	if err := json.Unmarshal(request(t, e.nc, subject), &stats); err != nil {
		t.Fatalf("decode stats: %v", err)
	}
	if len(stats.Endpoints) != 2 || stats.Endpoints[0].Name != "status" {
		t.Fatalf("endpoints in stats %+v, want status then metrics", stats.Endpoints)
	}
	if d := string(stats.Endpoints[1].Data); d != "" && d != "null" {
		t.Errorf("the metrics endpoint's stats carry data %s; only status's do", d)
	}
	var st worker.Status
	if err := json.Unmarshal(stats.Endpoints[0].Data, &st); err != nil {
		t.Fatalf("decode stats data %s: %v", stats.Endpoints[0].Data, err)
	}
	if st != wantStatus {
		t.Errorf("stats data %+v, want %+v", st, wantStatus)
	}
	// The endpoint itself answers with the same status.
	st = worker.Status{}
	if err := json.Unmarshal(request(t, e.nc, wantSubject), &st); err != nil {
		t.Fatalf("decode status reply: %v", err)
	}
	if st != wantStatus {
		t.Errorf("status reply %+v, want %+v", st, wantStatus)
	}

	// A stopped worker is no longer listed.
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
	subject, _ = micro.ControlSubject(micro.PingVerb, worker.ServiceName, "")
	eventually(t, "service gone", func() bool {
		_, err := e.nc.Request(subject, nil, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})
}

func TestReadyFollowsTheDrain(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	g := newGates()
	reg := task.NewRegistry()
	g.handle(reg)
	nc := e.connect()
	w, err := worker.New(nc, reg, worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Ready() {
		t.Fatal("ready before Run")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	eventually(t, "ready while serving", w.Ready)
	p.submit(1, Block.Kind(), "slow")
	recv(t, g.started, "handler start")

	cancel()
	eventually(t, "not ready once the drain began", func() bool { return !w.Ready() })
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a chunk running", err)
	default:
	}
	g.release("slow")
	if err := recv(t, done, "Run's return"); err != nil {
		t.Fatal(err)
	}
	if w.Ready() {
		t.Error("ready after Run returned")
	}
}

func TestNotReadyWhileDisconnected(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	w := e.startWorker(squares(nil), worker.Config{})
	eventually(t, "ready while serving", w.Ready)
	e.srv.Shutdown()
	eventually(t, "not ready without a server", func() bool { return !w.Ready() })
	w.nc.Close()
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestHandlerContextCarriesTheProducersTrace(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	spans := make(chan trace.SpanContext, 2)
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) {
		spans <- trace.SpanContextFromContext(ctx)
		return n * n, nil
	})
	e.startWorker(reg, worker.Config{Concurrency: 1})

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	c := p.chunk(1, Square.Kind(), 3)
	data, err := wire.Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(e.subj.Tasks(Square.Kind()))
	msg.Data = data
	msg.Header.Set("traceparent", parent)
	msg.Header.Set("tracestate", "vendor=value")
	if _, err := e.js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	got := recv(t, spans, "handler call")
	if got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" ||
		!got.IsSampled() || !got.IsRemote() || got.TraceState().Get("vendor") != "value" {
		t.Errorf("handler's span context %+v, want the remote parent %s", got, parent)
	}
	p.one(1)

	// A chunk without the header gives the handler no span context.
	p.submit(2, Square.Kind(), 4)
	if got := recv(t, spans, "handler call"); got.IsValid() {
		t.Errorf("handler's span context %+v, want none", got)
	}
	p.one(2)
}

// TestProbeAnswers: a worker answers a producer's probe with the grants it
// runs, and, for a chunk whose start it is still asking for, with the grant
// it was asked about; an attempt it does not hold, or holds under another
// grant, is left out.
func TestProbeAnswers(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	g := newGates()
	reg := task.NewRegistry()
	g.handle(reg)
	e.startWorker(reg, worker.Config{Concurrency: 2})
	asking := make(chan wire.Start, 1)
	answer := make(chan struct{})
	p.setDecide(func(req wire.Start, all []uint32) wire.StartReply {
		if req.Chunk == 2 {
			asking <- req
			<-answer
		}
		return wire.StartReply{Verdict: wire.VerdictGo, Items: all, LeaseMs: p.leaseMs}
	})
	p.submit(1, Block.Kind(), "running")
	recv(t, g.started, "chunk 1's handler")
	p.submit(2, Block.Kind(), "asking")
	req := recv(t, asking, "chunk 2's start request")
	probe := func(chunks, grants []uint64) []uint64 {
		t.Helper()
		data, err := wire.Encode(&wire.Probe{Executor: "test1", Chunks: chunks, Grants: grants})
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.nc.Request(req.Inbox, data, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply wire.ProbeReply
		if err := wire.Decode(m.Data, &reply); err != nil {
			t.Fatal(err)
		}
		return reply.Grants
	}
	// The fake producer grants chunk id+1000.
	got := probe([]uint64{1, 1, 2, 3}, []uint64{1001, 5, 77, 1003})
	if want := []uint64{1001, 77}; !slices.Equal(got, want) {
		t.Fatalf("probe answered %v, want %v: chunk 1's grant, and chunk 2's while it asks", got, want)
	}
	close(answer)
	recv(t, g.started, "chunk 2's handler")
	if got := probe([]uint64{2}, []uint64{77}); len(got) != 0 {
		t.Fatalf("once granted 1002, chunk 2 is still said to run under 77: %v", got)
	}
	g.release("running")
	g.release("asking")
	p.collect(2)
}
