package processpool_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/processpool"
)

// faultPoolConfig gives the fault tests a short lease and grace period so a
// lost worker is noticed in seconds.
var faultPoolConfig = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second}

func faultPool(t *testing.T, workers int, opts ...processpool.Option) *processpool.Pool {
	t.Helper()
	opts = append([]processpool.Option{executor.NATSPoolConfig(faultPoolConfig)}, opts...)
	p, err := processpool.New(context.Background(), workers, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Shutdown(ctx, true, true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return p
}

func ints(n int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

// TestProcessPoolSurvivesWorkerKill SIGKILLs a worker process in the middle of
// a 5,000-task map: every result still arrives, right and in order.
func TestProcessPoolSurvivesWorkerKill(t *testing.T) {
	p := faultPool(t, 3, processpool.Concurrency(2))
	const n = 5000
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	got, killed := 0, 0
	for v, err := range executor.Map(ctx, p, SlowSquare, ints(n), executor.MapChunksize(10)) {
		if err != nil {
			t.Fatalf("result %d: %v", got, err)
		}
		if v != got*got {
			t.Fatalf("result %d = %d, want %d", got, v, got*got)
		}
		got++
		if got == n/4 || got == n/2 {
			proc := p.Processes()[killed]
			if err := proc.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed++
			t.Logf("killed worker process %d after %d results", proc.Pid, got)
		}
	}
	if got != n || killed != 2 {
		t.Fatalf("%d results with %d kills, want %d with 2", got, killed, n)
	}
}

// TestFaultsUnderLoad runs 10,000 tasks while a worker process is SIGKILLed
// (and started again by the pool) every second, the first a quarter second
// in: nothing is lost, nothing hangs, no future resolves twice; executions
// repeated by redelivery are counted and reported.
func TestFaultsUnderLoad(t *testing.T) {
	ranLog := filepath.Join(t.TempDir(), "ran.log")
	t.Setenv(envRanLog, ranLog)
	p := faultPool(t, 3, processpool.Concurrency(4))
	const n = 10_000
	fs := make([]*executor.Future[int], n)
	var resolved [n]atomic.Int32
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	stop := make(chan struct{})
	killerDone := make(chan int)
	go func() {
		kills := 0
		defer func() { killerDone <- kills }()
		// The first kill comes early: without the race detector the whole
		// run may take under two seconds.
		next := time.NewTimer(250 * time.Millisecond)
		defer next.Stop()
		for {
			select {
			case <-stop:
				return
			case <-next.C:
				next.Reset(time.Second)
				procs := p.Processes()
				if proc := procs[kills%len(procs)]; proc != nil && proc.Signal(syscall.SIGKILL) == nil {
					kills++
				}
			}
		}
	}()
	start := time.Now()
	for i := range n {
		f, err := executor.Submit(ctx, p, SlowSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		f.AddDoneCallback(func(*executor.Future[int]) { resolved[i].Add(1) })
		fs[i] = f
	}
	lost, hung, wrong := 0, 0, 0
	for i, f := range fs {
		v, err := f.Result(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			hung++
		case err != nil:
			lost++
			if lost < 5 {
				t.Errorf("future %d: %v", i, err)
			}
		case v != i*i:
			wrong++
		}
	}
	close(stop)
	kills := <-killerDone
	twice := 0
	waitUntil(t, func() bool {
		for i := range resolved {
			if resolved[i].Load() == 0 {
				return false
			}
		}
		return true
	}, "every done-callback")
	for i := range resolved {
		if resolved[i].Load() > 1 {
			twice++
		}
	}
	runs, dups := countRuns(t, ranLog, n)
	t.Logf("FAULTS tasks=%d kills=%d lost=%d hung=%d wrong=%d resolved-twice=%d executions=%d repeated-executions=%d in %v",
		n, kills, lost, hung, wrong, twice, runs, dups, time.Since(start).Round(time.Millisecond))
	if lost != 0 || hung != 0 || wrong != 0 || twice != 0 {
		t.Fatalf("lost %d, hung %d, wrong %d, resolved twice %d", lost, hung, wrong, twice)
	}
	if kills < 2 {
		t.Fatalf("only %d kills happened during the run", kills)
	}
}

// countRuns reads the execution log: total runs and runs beyond the first of
// a task.
func countRuns(t *testing.T, path string, n int) (runs, dups int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, n)
	for _, line := range strings.Fields(string(b)) {
		i, err := strconv.Atoi(line)
		if err != nil || i < 0 || i >= n {
			continue // a line cut by a kill
		}
		runs++
		if seen[i]++; seen[i] > 1 {
			dups++
		}
	}
	return runs, dups
}

// TestProcessPoolSharesTheCPUs: without GOMAXPROCS in the environment, each
// worker process gets its share of the machine's CPUs.
func TestProcessPoolSharesTheCPUs(t *testing.T) {
	if v, set := os.LookupEnv("GOMAXPROCS"); set {
		os.Unsetenv("GOMAXPROCS")
		t.Cleanup(func() { os.Setenv("GOMAXPROCS", v) })
	}
	const workers = 3
	p := faultPool(t, workers)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	f, err := executor.Submit(ctx, p, Procs, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Result(ctx)
	if want := max(1, runtime.NumCPU()/workers); err != nil || got != want {
		t.Fatalf("a worker process runs with GOMAXPROCS %d, %v; want %d", got, err, want)
	}
}

// TestProcessPoolRerunsADeadProcessesChunks: a worker process killed in the
// middle of a map has its chunks run by the others at once, or within the
// process pool's short lease for a chunk it had fetched but not started,
// not after the 30s lease of a pool of remote workers.
func TestProcessPoolRerunsADeadProcessesChunks(t *testing.T) {
	pc := broker.PoolConfig{Grace: 30 * time.Second}
	p, err := processpool.New(t.Context(), 2, executor.NATSPoolConfig(pc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p.Shutdown(ctx, true, true)
	})
	naps := make([]int, 12)
	for i := range naps {
		naps[i] = 500
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	got, killed := 0, false
	for v, err := range executor.Map(ctx, p, Nap, slices.Values(naps)) {
		if err != nil || v != 500 {
			t.Fatalf("result %d: %d, %v", got, v, err)
		}
		got++
		if got == 2 && !killed {
			if err := p.Processes()[0].Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	took := time.Since(start)
	t.Logf("12 naps of 0.5s on 2 processes, one killed: %v", took.Round(time.Millisecond))
	if got != len(naps) {
		t.Fatalf("%d results of %d", got, len(naps))
	}
	// Six rounds of naps on two processes, then one on one: 3.5s of work,
	// plus at most one short lease for a chunk the killed process held.
	if limit := 4*time.Second + processpool.AckWait + 2*time.Second; took > limit {
		t.Fatalf("the map took %v, want at most %v: the dead process's chunk waited", took, limit)
	}
}

// TestProcessPoolRunsNTasksAtOnce: a pool of four processes runs four
// blocking tasks at once, however they were submitted: no task waits behind
// a busy process while another is idle.
func TestProcessPoolRunsNTasksAtOnce(t *testing.T) {
	p := faultPool(t, 4)
	var fs []*executor.Future[int]
	submit := func() {
		f, err := executor.Submit(t.Context(), p, Nap, 60_000)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	submit()
	waitUntil(t, fs[0].Running, "the first task to run")
	for range 3 {
		submit()
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range fs {
		for !f.Running() {
			if time.Now().After(deadline) {
				n := 0
				for _, f := range fs {
					if f.Running() {
						n++
					}
				}
				t.Fatalf("%d of 4 blocking tasks running on 4 processes", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, f := range fs {
		f.Interrupt()
	}
	for _, f := range fs {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		f.Err(ctx)
		cancel()
	}
}

// countingHandler counts the log records with message msg.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }
