package executor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/worker"
)

// envTestJobProducer starts this test binary as a producer of a named Map
// (see runJobProducer): "url name n chunksize stopAfter".
const envTestJobProducer = "JETPOOL_TEST_JOB_PRODUCER"

// jobFaultPool is the pool settings of the job fault test: a lease long
// enough that a loaded machine never lets a running chunk's lapse, as a
// producer's kill must cost the workers nothing.
var jobFaultPool = broker.PoolConfig{AckWait: 10 * time.Second, Grace: 5 * time.Second}

// runJobProducer runs a named Map of JobSquare on 0..n-1 and prints a line
// per result as it is yielded: "<place> <value>", "<place> cancelled" or
// "<place> error <message>", then "end". With stopAfter set it breaks out
// of the loop after that many results, which cancels the tasks it has in
// flight that have not started, and prints "stopped".
func runJobProducer(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 5 {
		fmt.Fprintln(os.Stderr, "bad spec", spec)
		return 2
	}
	url, name := f[0], f[1]
	n, _ := strconv.Atoi(f[2])
	chunksize, _ := strconv.Atoi(f[3])
	stopAfter, _ := strconv.Atoi(f[4])
	nc := connectOrDie(url)
	ctx := context.Background()
	ex, err := executor.NewNATS(ctx, nc, executor.NATSPoolConfig(jobFaultPool))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	job, err := ex.Job(ctx, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	i := 0
	// 16 chunks in flight, twice the workers' slots: the job runs at most
	// that far ahead of its producer, and a break cancels at most that much.
	for v, err := range executor.Map(ctx, job, JobSquare, ints(n), executor.MapChunksize(chunksize), executor.MapBuffersize(16)) {
		switch {
		case errors.Is(err, executor.ErrCancelled):
			fmt.Fprintf(out, "%d cancelled\n", i)
		case err != nil:
			fmt.Fprintf(out, "%d error %v\n", i, err)
		default:
			fmt.Fprintf(out, "%d %d\n", i, v)
		}
		out.Flush()
		if i++; stopAfter > 0 && i == stopAfter {
			break
		}
	}
	if stopAfter > 0 {
		fmt.Fprintln(out, "stopped")
	} else {
		fmt.Fprintln(out, "end")
	}
	out.Flush()
	ex.Shutdown(ctx, true, false)
	return 0
}

// jobProducerRun is one run of the producer process.
type jobProducerRun struct {
	cmd   *exec.Cmd
	lines chan string // closed at the end of its output
}

func startJobProducer(t *testing.T, spec string) *jobProducerRun {
	t.Helper()
	cmd, out := startSelf(t, envTestJobProducer+"="+spec)
	r := &jobProducerRun{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range r.lines {
		}
		cmd.Wait()
	})
	return r
}

// TestJobSurvivesProducerKills SIGKILLs the producer process of a named Map
// of 100,000 tasks at random points five times, and starts it again each
// time with the same input; one run before them breaks out of its loop,
// which cancels the tasks it has in flight that have not started. The last
// run's output is every task's square in order, but for the tasks that
// break cancelled, which never ran; every other task ran, and none twice
// unless it was running at a kill: the test reports how many were.
func TestJobSurvivesProducerKills(t *testing.T) {
	for _, chunksize := range []int{1, 100} {
		t.Run("chunksize "+strconv.Itoa(chunksize), func(t *testing.T) { jobKills(t, chunksize) })
	}
}

func jobKills(t *testing.T, chunksize int) {
	const n, kills = 100_000, 5
	p := newJobPool(t)
	// Tasks that take a while, so that some run at each kill.
	c := newCalls(250 * time.Microsecond)
	w := p.worker(c, worker.Config{Concurrency: 8, PoolConfig: jobFaultPool})
	// Provision the stream with the test's settings before any producer.
	newNATS(t, p.nc, executor.NATSPoolConfig(jobFaultPool))
	name := "kills-" + strconv.Itoa(chunksize)
	spec := func(stopAfter int) string {
		return strings.Join([]string{p.url, name, strconv.Itoa(n), strconv.Itoa(chunksize), strconv.Itoa(stopAfter)}, " ")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(chunksize)))
	runningAtKills := make(map[int]bool)
	start := time.Now()
	// The first run breaks out of its loop, cancelling what it has in
	// flight; the five after it are killed.
	const breakRun = 0
	most := 0 // the most results a run gave
	for run := 0; run <= kills; run++ {
		stopAfter := 0
		if run == breakRun {
			stopAfter = 1 + rng.IntN(n/2)
			// The tasks past the break wait until the run has broken out
			// of its loop: the 15 chunks the Map holds in flight past the
			// one it yields from are more than the workers' 8 slots, so
			// that some of them have not started when it breaks, and are
			// cancelled.
			c.mu.Lock()
			c.gate, c.gateFrom = make(chan struct{}), stopAfter
			c.mu.Unlock()
		}
		openGate := func() {
			c.mu.Lock()
			if c.gate != nil {
				close(c.gate)
				c.gate = nil
			}
			c.mu.Unlock()
		}
		r := startJobProducer(t, spec(stopAfter))
		// A kill while the run resumes what is stored, or once it went
		// further than any run before it: in the middle of publishing and
		// of the workers' running.
		target := 0
		if run != breakRun && rng.IntN(3) > 0 {
			target = most + 1 + rng.IntN(n/(kills+1))
		}
		got := 0
		timer := time.NewTimer(time.Duration(rng.IntN(300)) * time.Millisecond)
		killed := false
	read:
		for {
			select {
			case line, ok := <-r.lines:
				if !ok {
					break read
				}
				if line == "stopped" {
					// Its cancels are written: the tasks it left run on.
					openGate()
				}
				if line == "stopped" || line == "end" {
					continue
				}
				if got++; run != breakRun && target > 0 && got >= target {
					break read
				}
			case <-timer.C:
				if run != breakRun && target == 0 {
					break read
				}
			}
		}
		timer.Stop()
		most = max(most, got)
		if run != breakRun {
			if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			for k := range c.runningNow() {
				runningAtKills[k] = true
			}
		}
		for range r.lines {
		}
		if err := r.cmd.Wait(); !killed && err != nil {
			t.Fatalf("run %d ended with %v", run, err)
		}
		openGate()
		t.Logf("run %d: %d results, killed=%v, stopAfter=%d, %v in", run, got, killed, stopAfter, time.Since(start).Round(time.Millisecond))
	}

	final := startJobProducer(t, spec(0))
	res := tally{tasks: n}
	cancelled, pos := 0, 0
	deadline := time.After(10 * time.Minute)
	for done := false; !done; {
		select {
		case line, ok := <-final.lines:
			if !ok {
				t.Fatalf("the last run ended after %d results without \"end\"", pos)
			}
			if line == "end" {
				done = true
				break
			}
			f := strings.Fields(line)
			i, _ := strconv.Atoi(f[0])
			if i != pos {
				t.Fatalf("result for place %d at place %d: %q", i, pos, line)
			}
			pos++
			switch {
			case len(f) == 2 && f[1] == "cancelled":
				cancelled++
				if c.count(i) != 0 {
					t.Errorf("task %d was cancelled but ran %d times", i, c.count(i))
				}
			case len(f) == 2 && f[1] == strconv.Itoa(i*i):
				res.correct++
				if c.count(i) == 0 {
					t.Errorf("task %d has its result but never ran", i)
				}
			case len(f) >= 2 && f[1] == "error":
				res.failed++
				if res.failed <= 5 {
					t.Errorf("task %d: %s", i, line)
				}
			default:
				res.wrong++
				t.Errorf("task %d: %q", i, line)
			}
		case <-deadline:
			t.Fatalf("the last run gave %d of %d results in 10 minutes", pos, n)
		}
	}
	if err := final.cmd.Wait(); err != nil {
		t.Fatalf("the last run ended with %v", err)
	}
	for i := range n {
		if k := c.count(i); k >= 2 {
			res.repeated++
			if !runningAtKills[i] {
				t.Errorf("task %d ran %d times, and was not running at any kill", i, k)
			}
		}
	}
	st := w.Stats()
	t.Logf("FAULTS producer SIGKILL x%d of a named Map of %d tasks, chunksize %d: %v cancelled=%d, %d running at the kills; worker: %d chunks started, %d dropped; %v",
		kills, n, chunksize, res, cancelled, len(runningAtKills), st.ChunksStarted, st.ChunksDropped, time.Since(start).Round(time.Millisecond))
	if pos != n || res.correct+cancelled != n {
		t.Fatalf("%d results: %v, %d cancelled", pos, res, cancelled)
	}
	if cancelled == 0 {
		t.Error("the break cancelled no task: the test did not exercise cancel across restarts")
	}
}
