package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/testcontainers/testcontainers-go"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
)

// TestNamedMapResumesAfterProducersNodeStopped stops the node that the
// producer of a named Map at chunksize 50 is connected to, a quarter of the
// way through, and the producer with it, as one that dies with its host; a
// producer started again on another node with the same name and input
// resumes the job, and the node comes back halfway through. The resumed
// Map's output is every square, exact and in order.
func TestNamedMapResumesAfterProducersNodeStopped(t *testing.T) {
	c := newCluster(t)
	c.addWorker(8)
	c.addWorker(8)
	const n, name = 20_000, "node-loss"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	run := func(ctx context.Context, job *executor.Job, each func(got int)) (got int, err error) {
		for v, err := range executor.Map(ctx, job, builtin.Square, ints(n), executor.MapChunksize(50), executor.MapBuffersize(16)) {
			if err != nil {
				return got, err
			}
			if v != got*got {
				t.Fatalf("result %d is %d, want %d", got, v, got*got)
			}
			got++
			each(got)
		}
		return got, nil
	}

	// Every node's address while all are up: a stopped node has no port.
	urls := c.url()
	nc := c.connectVia(c.nodes[1])
	first := c.attach(c.producerOn(nc), name)
	firstCtx, kill := context.WithCancel(ctx)
	var node testcontainers.Container
	got, err := run(firstCtx, first, func(got int) {
		if got != n/4 {
			return
		}
		node = c.nodeOf(nc)
		if err := node.Stop(ctx, nil); err != nil {
			t.Fatal(err)
		}
		// The producer dies with its node: it says nothing more to the
		// job, and its ended iteration cancels nothing.
		nc.Close()
		kill()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the first producer ended after %d results with %v, want it stopped", got, err)
	}
	t.Logf("the first producer's node stopped after %d results; it gave %d", n/4, got)

	nc2, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	again := c.attach(c.producerOn(nc2), name)
	got, err = run(ctx, again, func(got int) {
		if got == n/2 {
			if err := node.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("the node started again after %d results of the resumed map", got)
		}
	})
	if err != nil || got != n {
		t.Fatalf("the resumed map gave %d results of %d: %v", got, n, err)
	}
	if f := again.Forged(); f != 0 {
		t.Errorf("%d results and records of the job without a proof", f)
	}
	t.Logf("FAULTS producer's node stopped, producer restarted, named map at chunksize 50: tasks=%d correct=%d wrong=0 failed=0 hung=0 in %v",
		n, got, time.Since(start).Round(time.Millisecond))
}

// attach attaches ex to the job name, retrying while the cluster elects
// the leaders of the jobs bucket and the results stream.
func (c *cluster) attach(ex *executor.NATS, name string) *executor.Job {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		job, err := ex.Job(ctx, name)
		cancel()
		if err == nil {
			return job
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("attach job %q: %v", name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// nodeOf returns the node nc is connected to.
func (c *cluster) nodeOf(nc *nats.Conn) testcontainers.Container {
	c.t.Helper()
	for _, node := range c.nodes {
		if c.nodeURL(node) == nc.ConnectedUrl() {
			return node
		}
	}
	c.t.Fatalf("the producer is on %s, no node of the cluster", nc.ConnectedUrlRedacted())
	return nil
}
