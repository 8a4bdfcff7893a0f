package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
)

func ints(n int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

// naps are sleep inputs whose results identify them: input i sleeps
// base + i%10 milliseconds and returns that.
func nap(i, base int) int { return base + i%10 }

func naps(n, base int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(nap(i, base)) {
				return
			}
		}
	}
}

// counted submits a map and counts how often each future resolves, through
// done-callbacks on futures submitted one by one.
type tally struct {
	mu       sync.Mutex
	resolved map[int]int
}

func (tl *tally) add(i int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.resolved == nil {
		tl.resolved = map[int]int{}
	}
	tl.resolved[i]++
}

// check fails unless every one of n futures resolved exactly once. Done
// callbacks run just after a future's Done channel closes, so it gives the
// last ones a moment.
func (tl *tally) check(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tl.mu.Lock()
		all := len(tl.resolved) >= n
		tl.mu.Unlock()
		if all {
			break
		}
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	twice := 0
	for _, c := range tl.resolved {
		if c > 1 {
			twice++
		}
	}
	if len(tl.resolved) != n || twice != 0 {
		t.Fatalf("%d of %d futures resolved, %d more than once", len(tl.resolved), n, twice)
	}
	t.Logf("futures resolved: %d of %d, none twice", len(tl.resolved), n)
}

// TestClusterMap runs a 20,000-item map over a 3-node cluster and 3 worker
// containers.
func TestClusterMap(t *testing.T) {
	c := newCluster(t)
	for range 3 {
		c.addWorker(4)
	}
	ex := c.producer()
	const n = 20_000
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	got := 0
	for v, err := range executor.Map(ctx, ex, builtin.Square, ints(n), executor.MapChunksize(100)) {
		if err != nil {
			t.Fatalf("result %d: %v", got, err)
		}
		if v != got*got {
			t.Fatalf("result %d = %d, want %d", got, v, got*got)
		}
		got++
	}
	if got != n {
		t.Fatalf("%d results, want %d", got, n)
	}
	t.Logf("%d results in order in %v", n, time.Since(start).Round(time.Millisecond))
}

// submitNaps submits n sleep tasks one per future and tallies their
// resolutions.
func submitNaps(t *testing.T, ex executor.Executor, n, base int, tl *tally) []*executor.Future[int] {
	t.Helper()
	fs := make([]*executor.Future[int], n)
	for i := range n {
		f, err := executor.Submit(context.Background(), ex, builtin.Sleep, nap(i, base))
		if err != nil {
			t.Fatal(err)
		}
		f.AddDoneCallback(func(*executor.Future[int]) { tl.add(i) })
		fs[i] = f
	}
	return fs
}

func checkNaps(t *testing.T, fs []*executor.Future[int], base int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i, f := range fs {
		v, err := f.Result(ctx)
		if err != nil {
			t.Fatalf("future %d: %v", i, err)
		}
		if v != nap(i, base) {
			t.Fatalf("future %d = %d, want %d", i, v, nap(i, base))
		}
	}
}

// TestWorkerKilled SIGKILLs a worker container while it runs chunks: they
// are redelivered to the others and nothing is lost.
func TestWorkerKilled(t *testing.T) {
	c := newCluster(t)
	victim := c.addWorker(4)
	c.addWorker(4)
	c.addWorker(4)
	ex := c.producer()
	var tl tally
	const n = 1500
	fs := submitNaps(t, ex, n, 20, &tl)
	waitDone(t, fs, n/5)
	docker(t, "kill", "-s", "KILL", victim.GetContainerID())
	t.Log("worker container killed")
	checkNaps(t, fs, 20)
	tl.check(t, n)
}

// waitDone waits until at least k futures are done.
func waitDone(t *testing.T, fs []*executor.Future[int], k int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done := 0
		for _, f := range fs {
			select {
			case <-f.Done():
				done++
			default:
			}
		}
		if done >= k {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d futures done, waiting for %d", done, k)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeStopped stops one NATS node in the middle of a map: the job
// completes with nothing lost, and the node rejoins when started again.
func TestNodeStopped(t *testing.T) {
	c := newCluster(t)
	c.addWorker(4)
	c.addWorker(4)
	ex := c.producer()
	var tl tally
	const n = 2000
	fs := submitNaps(t, ex, n, 5, &tl)
	waitDone(t, fs, n/5)
	stop := time.Duration(0)
	if err := c.nodes[1].Stop(t.Context(), &stop); err != nil {
		t.Fatal(err)
	}
	t.Log("node n2 stopped")
	waitDone(t, fs, n/2)
	if err := c.nodes[1].Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Log("node n2 started again")
	checkNaps(t, fs, 5)
	tl.check(t, n)

	// The node is back in the stream's replica set and caught up.
	nc := c.connect()
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ok, why := streamHealthy(js)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2 did not rejoin: %s", why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func streamHealthy(js jetstream.JetStream) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "JETPOOL_DEFAULT")
	if err != nil {
		return false, err.Error()
	}
	info, err := st.Info(ctx)
	if err != nil {
		return false, err.Error()
	}
	cl := info.Cluster
	if cl == nil || cl.Leader == "" {
		return false, "no leader"
	}
	seen := map[string]bool{cl.Leader: true}
	for _, r := range cl.Replicas {
		if !r.Current || r.Offline {
			return false, r.Name + " not current"
		}
		seen[r.Name] = true
	}
	if !seen["n2"] {
		return false, "n2 not in the replica set"
	}
	return true, ""
}

// TestNodeStoppedWhileSubmitting stops the node the producer is connected
// to while it submits without pause: the producer moves to another node, the
// chunks whose PubAck went down with the node are published again, and every
// future resolves once, with its value.
func TestNodeStoppedWhileSubmitting(t *testing.T) {
	c := newCluster(t)
	c.addWorker(8)
	c.addWorker(8)
	nc := c.connectVia(c.nodes[1])
	ex := c.producerOn(nc)
	var tl tally
	stop := make(chan struct{})
	submitted := make(chan []*executor.Future[int])
	go func() {
		var fs []*executor.Future[int]
		defer func() { submitted <- fs }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f, err := executor.Submit(t.Context(), ex, builtin.Sleep, nap(i, 1))
			if err != nil {
				t.Errorf("Submit %d: %v", i, err)
				return
			}
			f.AddDoneCallback(func(*executor.Future[int]) { tl.add(i) })
			fs = append(fs, f)
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	before := nc.ConnectedUrlRedacted()
	zero := time.Duration(0)
	if err := c.nodes[1].Stop(t.Context(), &zero); err != nil {
		t.Fatal(err)
	}
	t.Logf("node n2 (%s), the producer's, stopped", before)
	time.Sleep(3 * time.Second)
	close(stop)
	fs := <-submitted
	checkNaps(t, fs, 1)
	tl.check(t, len(fs))
	t.Logf("%d futures submitted across the stop; the producer is now on %s", len(fs), nc.ConnectedUrlRedacted())
	if nc.ConnectedUrlRedacted() == before {
		t.Errorf("the producer is still on %s", before)
	}
}

// TestWorkerPartitioned disconnects a worker container from the network
// while it runs long tasks: once its lease lapses the others take its work
// over, and every future resolves once.
func TestWorkerPartitioned(t *testing.T) {
	c := newCluster(t)
	cut := c.addWorker(3)
	c.addWorker(3)
	ex := c.producer()
	var tl tally
	const n = 12
	fs := submitNaps(t, ex, n, 2000, &tl)
	time.Sleep(500 * time.Millisecond) // both workers hold tasks now
	docker(t, "network", "disconnect", c.net.Name, cut.GetContainerID())
	t.Log("worker disconnected from the network")
	start := time.Now()
	checkNaps(t, fs, 2000)
	tl.check(t, n)
	t.Logf("all futures resolved %v after the partition", time.Since(start).Round(time.Millisecond))
}

// TestScaleOut adds workers during a job of sleep-bound tasks: throughput
// rises.
func TestScaleOut(t *testing.T) {
	c := newCluster(t)
	c.addWorker(2)
	ex := c.producer()
	const n = 1200
	var done atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		i := 0
		for v, err := range executor.Map(ctx, ex, builtin.Sleep, naps(n, 45), executor.MapBuffersize(64)) {
			if err != nil {
				result <- err
				return
			}
			if v != nap(i, 45) {
				result <- fmt.Errorf("result %d = %d, want %d", i, v, nap(i, 45))
				return
			}
			i++
			done.Add(1)
		}
		result <- nil
	}()
	rate := func(d time.Duration) float64 {
		before := done.Load()
		time.Sleep(d)
		return float64(done.Load()-before) / d.Seconds()
	}
	time.Sleep(time.Second)
	one := rate(3 * time.Second)
	for range 3 {
		c.addWorker(2)
	}
	time.Sleep(time.Second)
	four := rate(3 * time.Second)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if got := done.Load(); got != n {
		t.Fatalf("%d results, want %d", got, n)
	}
	t.Logf("throughput: %.1f tasks/s with 1 worker, %.1f with 4 (x%.2f)", one, four, four/one)
	if four < 2*one {
		t.Fatalf("throughput rose from %.1f to %.1f tasks/s, want at least double", one, four)
	}
}

// TestProducersNodeStoppedThenKilledDuringMap stops the node the producer is
// connected to in the middle of a map at chunksize 50, whose chunks each
// send several result messages, starts it again, and then SIGKILLs the node
// the producer moved to: every future resolves once, with its own value.
func TestProducersNodeStoppedThenKilledDuringMap(t *testing.T) {
	c := newCluster(t)
	c.addWorker(8)
	c.addWorker(8)
	nc := c.connectVia(c.nodes[1])
	ex := c.producerOn(nc)
	const n = 6000
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	nodeOf := func() testcontainers.Container {
		for _, node := range c.nodes {
			if c.nodeURL(node) == nc.ConnectedUrl() {
				return node
			}
		}
		t.Fatalf("the producer is on %s, no node of the cluster", nc.ConnectedUrlRedacted())
		return nil
	}
	start := time.Now()
	got, wrong := 0, 0
	for v, err := range executor.Map(ctx, ex, builtin.Sleep, naps(n, 5), executor.MapChunksize(50), executor.MapBuffersize(16)) {
		if err != nil {
			t.Fatalf("result %d of %d: %v", got, n, err)
		}
		if v != nap(got, 5) {
			wrong++
		}
		got++
		switch got {
		case n / 4:
			node := nodeOf()
			if err := node.Stop(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			t.Logf("the producer's node stopped after %d results", got)
			if err := node.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
		case n / 2:
			node := nodeOf()
			docker(t, "kill", "-s", "KILL", node.GetContainerID())
			t.Logf("the producer's node killed after %d results", got)
			if err := node.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("FAULTS producer's node stopped, then killed, chunksize 50: tasks=%d correct=%d wrong=%d failed=0 hung=0 in %v",
		n, got-wrong, wrong, time.Since(start).Round(time.Millisecond))
	if got != n || wrong != 0 {
		t.Fatalf("%d results of %d, %d wrong", got, n, wrong)
	}
}
