// Package bench measures a jetpool pool against the raw JetStream ceiling:
// the figures of 'submit bench' and BENCHMARKS.md. Each function runs one
// workload and returns its figures; none asserts anything.
package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetpool/jetpool/broker/embedded"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Figure is one measured number.
type Figure struct {
	Name  string
	Value float64
	Unit  string
}

// String formats the figure as one aligned line.
func (f Figure) String() string {
	return fmt.Sprintf("%-44s %14s %s", f.Name, f.value(f.Value), f.Unit)
}

// value formats v in f's unit: ratios with two decimals, the rest with one.
func (f Figure) value(v float64) string {
	if f.Unit == "x" {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// ParseFigure reads a line that Figure.String wrote; ok is false for any
// other line.
func ParseFigure(line string) (f Figure, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 3 || strings.HasPrefix(line, "#") {
		return Figure{}, false
	}
	v, err := strconv.ParseFloat(fields[len(fields)-2], 64)
	if err != nil {
		return Figure{}, false
	}
	return Figure{Name: strings.Join(fields[:len(fields)-2], " "), Value: v, Unit: fields[len(fields)-1]}, true
}

// Summary is one figure over several runs.
type Summary struct {
	Figure           // the median
	Min, Max float64 // the range
}

// String formats the summary as one aligned line: the median, then the range.
func (s Summary) String() string {
	return fmt.Sprintf("%s  (%s-%s)", s.Figure, s.value(s.Min), s.value(s.Max))
}

// Summarize gives the median and range of each figure over runs, in the
// order the figures were first measured. The median of an even number of
// runs is the mean of the middle two.
func Summarize(runs [][]Figure) []Summary {
	var order []string
	values := map[string][]float64{}
	first := map[string]Figure{}
	for _, figs := range runs {
		for _, f := range figs {
			if _, ok := first[f.Name]; !ok {
				order = append(order, f.Name)
				first[f.Name] = f
			}
			values[f.Name] = append(values[f.Name], f.Value)
		}
	}
	out := make([]Summary, 0, len(order))
	for _, name := range order {
		v := values[name]
		slices.Sort(v)
		median := v[len(v)/2]
		if len(v)%2 == 0 {
			median = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		f := first[name]
		f.Value = median
		out = append(out, Summary{Figure: f, Min: v[0], Max: v[len(v)-1]})
	}
	return out
}

// SubmitThroughput submits n square tasks (chunk size 1), all in flight at
// once, and waits for every result.
func SubmitThroughput(ctx context.Context, ex executor.Executor, n int) (Figure, error) {
	start := time.Now()
	fs := make([]*executor.Future[int], n)
	for i := range n {
		f, err := executor.Submit(ctx, ex, builtin.Square, i)
		if err != nil {
			return Figure{}, err
		}
		fs[i] = f
	}
	for i, f := range fs {
		v, err := f.Result(ctx)
		if err != nil {
			return Figure{}, err
		}
		if v != i*i {
			return Figure{}, fmt.Errorf("bench: square(%d) = %d", i, v)
		}
	}
	return Figure{"submit->result, chunk 1", float64(n) / time.Since(start).Seconds(), "tasks/s"}, nil
}

// MapThroughput maps square over 0..n-1 in chunks.
func MapThroughput(ctx context.Context, ex executor.Executor, n, chunk int) (Figure, error) {
	start := time.Now()
	i := 0
	for v, err := range executor.Map(ctx, ex, builtin.Square, count(n), executor.MapChunksize(chunk)) {
		if err != nil {
			return Figure{}, err
		}
		if v != i*i {
			return Figure{}, fmt.Errorf("bench: square(%d) = %d", i, v)
		}
		i++
	}
	return Figure{fmt.Sprintf("map %d ints, chunksize %d", n, chunk), float64(n) / time.Since(start).Seconds(), "items/s"}, nil
}

// Latency submits n tasks one after another, each awaited before the next,
// and returns the p50 and p99 of Submit→Result.
func Latency(ctx context.Context, ex executor.Executor, n int) ([]Figure, error) {
	lat := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		f, err := executor.Submit(ctx, ex, builtin.Square, i)
		if err != nil {
			return nil, err
		}
		if _, err := f.Result(ctx); err != nil {
			return nil, err
		}
		lat[i] = time.Since(start)
	}
	return percentiles("submit->result latency", lat), nil
}

func percentiles(name string, lat []time.Duration) []Figure {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds())
	}
	return []Figure{{name + " p50", at(0.50), "µs"}, {name + " p99", at(0.99), "µs"}}
}

func count(n int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

// ScalingMs is how long each task of the scaling figure sleeps.
const ScalingMs = 10

// Scaling maps sleep, a task that sleeps its input in milliseconds, over n
// inputs of ScalingMs on ex, which has procs processes of slots slots each,
// in chunks of chunk with four chunks per slot in flight, and returns the
// time taken and its efficiency: the ideal, n*ScalingMs/(procs*slots), over
// the time taken. One task per slot runs first, so that every process is
// connected and pulling when the clock starts.
func Scaling(ctx context.Context, ex executor.Executor, sleep task.Task[int, int], n, chunk, procs, slots int) ([]Figure, error) {
	for _, err := range executor.Map(ctx, ex, sleep, times(0, procs*slots)) {
		if err != nil {
			return nil, err
		}
	}
	start := time.Now()
	for _, err := range executor.Map(ctx, ex, sleep, times(ScalingMs, n), executor.MapChunksize(chunk), executor.MapBuffersize(4*procs*slots)) {
		if err != nil {
			return nil, err
		}
	}
	took := time.Since(start)
	ideal := time.Duration(n) * ScalingMs * time.Millisecond / time.Duration(procs*slots)
	return []Figure{
		{fmt.Sprintf("scaling: %d x %dms, chunksize %d, %d procs x %d", n, ScalingMs, chunk, procs, slots), float64(took.Milliseconds()), "ms"},
		{fmt.Sprintf("scaling efficiency, chunksize %d", chunk), 100 * ideal.Seconds() / took.Seconds(), "%"},
	}, nil
}

// times yields v n times.
func times(v, n int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for range n {
			if !yield(v) {
				return
			}
		}
	}
}

// MapMemory maps square over n inputs streamed from an iter.Seq and returns
// the process's peak resident memory during the run, sampled every 10ms.
func MapMemory(ctx context.Context, ex executor.Executor, n, chunk int) (Figure, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var peak int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, rss())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	_, err := MapThroughput(ctx, ex, n, chunk)
	close(stop)
	wg.Wait()
	if err != nil {
		return Figure{}, err
	}
	return Figure{fmt.Sprintf("peak RSS, map over %d streamed items", n), float64(peak) / (1 << 20), "MB"}, nil
}

// rss reads this process's resident set size from /proc; 0 where there is
// none.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// RawCeiling runs the loop every task of the pool goes through, bare: a
// JetStream publish, a pull, an ack and a core-NATS reply, with no futures,
// no encoding and no bookkeeping. It returns the throughput with n messages
// in flight and the latency of single round trips.
func RawCeiling(ctx context.Context, url string, n, samples int) ([]Figure, error) {
	raw, err := startRaw(ctx, url, 16, 0)
	if err != nil {
		return nil, err
	}
	defer raw.close()
	start := time.Now()
	if err := raw.roundTrips(ctx, n); err != nil {
		return nil, err
	}
	figs := []Figure{{"raw ceiling: publish->pull->ack->reply", float64(n) / time.Since(start).Seconds(), "tasks/s"}}
	lat := make([]time.Duration, samples)
	for i := range samples {
		t0 := time.Now()
		if err := raw.roundTrips(ctx, 1); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	return append(figs, percentiles("raw ceiling latency", lat)...), nil
}

// RawBatchCeiling is RawCeiling's loop with perMessage items to a message,
// as Map sends a chunk: items items in all, each message carrying
// perMessage msgpack ints and each reply perMessage results of the same
// size, with the messages of at most 256 such chunks in flight. Its
// throughput in items/s is the limit a Map of that chunk size has on this
// broker.
func RawBatchCeiling(ctx context.Context, url string, items, perMessage int) (Figure, error) {
	payload := 0
	for i := range perMessage {
		payload += intSize(i * i)
	}
	payload += 5 // the array header
	raw, err := startRaw(ctx, url, payload, payload)
	if err != nil {
		return Figure{}, err
	}
	defer raw.close()
	msgs := max(1, items/perMessage)
	start := time.Now()
	for sent := 0; sent < msgs; {
		batch := min(256, msgs-sent)
		if err := raw.roundTrips(ctx, batch); err != nil {
			return Figure{}, err
		}
		sent += batch
	}
	return Figure{fmt.Sprintf("raw ceiling, %d items a message", perMessage), float64(msgs*perMessage) / time.Since(start).Seconds(), "items/s"}, nil
}

// intSize is the size of n as a compact msgpack int.
func intSize(n int) int {
	switch {
	case n < 128:
		return 1
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	case n < 1<<32:
		return 5
	}
	return 9
}

// raw is the bare loop: a work-queue stream, a consumer whose handler acks
// each message and replies with a payload of its own, and the replies'
// subscription.
type raw struct {
	pub, sub *nats.Conn
	js       jetstream.JetStream
	cc       jetstream.ConsumeContext
	rs       *nats.Subscription
	inbox    string
	replies  chan struct{}
	payload  []byte
}

const rawStream = "RAWCEILING"

func startRaw(ctx context.Context, url string, payload, reply int) (r *raw, err error) {
	r = &raw{replies: make(chan struct{}, 1<<16), payload: make([]byte, payload), inbox: nats.NewInbox()}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.pub, err = nats.Connect(url); err != nil {
		return nil, err
	}
	if r.sub, err = nats.Connect(url); err != nil {
		return nil, err
	}
	if r.js, err = jetstream.New(r.pub); err != nil {
		return nil, err
	}
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"raw.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
		return nil, err
	}
	sjs, _ := jetstream.New(r.sub)
	cons, err := sjs.CreateConsumer(ctx, rawStream, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 4096})
	if err != nil {
		return nil, err
	}
	answer := make([]byte, reply)
	if r.cc, err = cons.Consume(func(m jetstream.Msg) {
		m.Ack()
		r.sub.Publish(m.Headers().Get("Reply"), answer)
	}, jetstream.PullMaxMessages(512)); err != nil {
		return nil, err
	}
	if r.rs, err = r.pub.Subscribe(r.inbox, func(*nats.Msg) { r.replies <- struct{}{} }); err != nil {
		return nil, err
	}
	r.rs.SetPendingLimits(-1, -1)
	return r, nil
}

// roundTrips publishes n messages and waits for their n replies.
func (r *raw) roundTrips(ctx context.Context, n int) error {
	for range n {
		m := &nats.Msg{Subject: "raw.task", Data: r.payload, Header: nats.Header{"Reply": []string{r.inbox}}}
		if _, err := r.js.PublishMsgAsync(m); err != nil {
			return err
		}
	}
	for range n {
		select {
		case <-r.replies:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *raw) close() {
	if r.rs != nil {
		r.rs.Unsubscribe()
	}
	if r.cc != nil {
		r.cc.Stop()
	}
	if r.js != nil {
		r.js.DeleteStream(context.Background(), rawStream)
	}
	if r.sub != nil {
		r.sub.Close()
	}
	if r.pub != nil {
		r.pub.Close()
	}
}

// Env is a pool for benchmarks on this host: an embedded broker, a NATS
// executor and one in-process worker, each on its own connection.
type Env struct {
	Srv    *embedded.Server
	Ex     *executor.NATS
	Worker *worker.Worker
	more   []*executor.NATS
	nc     []*nats.Conn
	end    func()
	stops  []func() // AddWorker's workers
}

// StartEnv starts an Env whose worker runs concurrency chunks at once.
func StartEnv(ctx context.Context, concurrency int) (*Env, error) {
	srv, err := embedded.Start(embedded.Config{MaxPayload: 8 << 20})
	if err != nil {
		return nil, err
	}
	e := &Env{Srv: srv}
	conn := func() (*nats.Conn, error) {
		nc, err := nats.Connect(srv.ClientURL())
		if err == nil {
			e.nc = append(e.nc, nc)
		}
		return nc, err
	}
	pc, err := conn()
	if err != nil {
		e.Close()
		return nil, err
	}
	if e.Ex, err = executor.NewNATS(ctx, pc); err != nil {
		e.Close()
		return nil, err
	}
	wc, err := conn()
	if err != nil {
		e.Close()
		return nil, err
	}
	w, stopWorker, err := runWorker(wc, concurrency)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.Worker, e.end = w, stopWorker
	return e, nil
}

// NewExecutor returns another executor on the same pool, on a connection of
// its own; Close shuts it down.
func (e *Env) NewExecutor(ctx context.Context, opts ...executor.NATSOption) (*executor.NATS, error) {
	nc, err := nats.Connect(e.Srv.ClientURL())
	if err != nil {
		return nil, err
	}
	e.nc = append(e.nc, nc)
	ex, err := executor.NewNATS(ctx, nc, opts...)
	if err != nil {
		return nil, err
	}
	e.more = append(e.more, ex)
	return ex, nil
}

// AddWorker starts another in-process worker on the pool, on a connection of
// its own, running concurrency chunks at once; Close stops it.
func (e *Env) AddWorker(concurrency int) error {
	nc, err := nats.Connect(e.Srv.ClientURL())
	if err != nil {
		return err
	}
	e.nc = append(e.nc, nc)
	_, stop, err := runWorker(nc, concurrency)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, stop)
	return nil
}

// Messages returns how many messages the producer's and the worker's
// connections have received and sent so far.
func (e *Env) Messages() (producer, worker nats.Statistics) {
	// StartEnv connects the producer first and the worker second.
	return e.nc[0].Stats(), e.nc[1].Stats()
}

// Close shuts everything down.
func (e *Env) Close() {
	for _, ex := range e.more {
		ex.Shutdown(context.Background(), true, true)
	}
	if e.Ex != nil {
		e.Ex.Shutdown(context.Background(), true, true)
	}
	if e.end != nil {
		e.end()
	}
	for _, stop := range e.stops {
		stop()
	}
	for _, nc := range e.nc {
		nc.Close()
	}
	e.Srv.Shutdown()
}
