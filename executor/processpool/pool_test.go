package processpool_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/executor/processpool"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

func TestNewProcessPoolWorkersOutOfRange(t *testing.T) {
	for _, n := range []int{-1, 0, processpool.MaxProcesses + 1, 100_000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			p, err := processpool.New(t.Context(), n)
			if !errors.Is(err, executor.ErrInvalidOption) || p != nil {
				t.Fatalf("New(%d) = %v, %v; want ErrInvalidOption", n, p, err)
			}
		})
	}
}

func TestProcessRetryNegative(t *testing.T) {
	for _, rp := range []task.RetryPolicy{{Attempts: -1}, {Backoff: -time.Second}, {MaxBackoff: -time.Second}} {
		p, err := processpool.New(t.Context(), 1, processpool.Retry(rp))
		if !errors.Is(err, executor.ErrInvalidOption) || p != nil {
			t.Errorf("New with Retry(%+v) = %v, %v; want ErrInvalidOption", rp, p, err)
		}
	}
}

// TestProcessPoolConformance runs the suite against a pool of cfg.Workers
// processes of one slot each, as Python's. Their handlers reach the suite's
// harness, served by this process on the pool's broker, over NATS.
func TestProcessPoolConformance(t *testing.T) {
	t.Setenv(envTestConformance, "1")
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		p, err := processpool.New(t.Context(), cfg.Workers, processpool.Retry(cfg.Retry))
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
		stop, err := cfg.Harness.Serve(connect(t, p.URL()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return p
	})
}

func TestNewProcessPoolInAWorkerProcess(t *testing.T) {
	t.Setenv(worker.EnvChild, "1")
	p, err := processpool.New(t.Context(), 1)
	if !errors.Is(err, processpool.ErrInWorker) || p != nil {
		t.Fatalf("New in a worker process = %v, %v; want ErrInWorker", p, err)
	}
	if !strings.Contains(err.Error(), "worker.ServeIfChild") {
		t.Fatalf("error %q does not say to call worker.ServeIfChild", err)
	}
}

// TestProcessPoolShutdownKillsWhenCtxEnds ends the ctx of Shutdown while a
// task is outstanding: Shutdown returns ctx's error once the worker process
// is killed and waited for, and the task fails when the grace period is up.
func TestProcessPoolShutdownKillsWhenCtxEnds(t *testing.T) {
	p, err := processpool.New(t.Context(), 1, executor.NATSPoolConfig(faultPoolConfig))
	if err != nil {
		t.Fatal(err)
	}
	f, err := executor.Submit(t.Context(), p, Nap, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Shutdown(ctx, true, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with its ctx ended = %v, want context.Canceled", err)
	}
	proc := p.Processes()[0]
	if err := proc.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("worker process %d after Shutdown: signal 0 = %v, want it gone", proc.Pid, err)
	}
	wait, stop := context.WithTimeout(t.Context(), time.Minute)
	defer stop()
	if _, err := f.Result(wait); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the nap of a killed pool = %v, want it failed", err)
	}
	if err := p.Shutdown(wait, true, false); err != nil {
		t.Fatal(err)
	}
}

// TestProcessPoolShutdownWithoutWait: Shutdown without wait returns at
// once; the outstanding task still finishes, and then the pool stops its
// worker process on its own.
func TestProcessPoolShutdownWithoutWait(t *testing.T) {
	p, err := processpool.New(t.Context(), 1, executor.NATSPoolConfig(faultPoolConfig))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	f, err := executor.Submit(ctx, p, Nap, 200)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, f.Running, "the nap to run")
	proc := p.Processes()[0]
	if err := p.Shutdown(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	if v, err := f.Result(ctx); err != nil || v != 200 {
		t.Fatalf("the nap outstanding at Shutdown = %d, %v; want it done", v, err)
	}
	waitUntil(t, func() bool { return errors.Is(proc.Signal(syscall.Signal(0)), os.ErrProcessDone) },
		"the pool to stop its worker process after its last future")
	if err := p.Shutdown(ctx, true, false); err != nil {
		t.Fatal(err)
	}
}

// TestForgettingServeIfChild runs a program whose main calls New
// without calling worker.ServeIfChild first, so its workers run its main too.
// There New fails at once, saying to call ServeIfChild, instead of
// starting pools of their own; the program's pool starts each worker again,
// each time later than the last.
func TestForgettingServeIfChild(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	root, lines := startForgetful(t, starts)

	const restarts = 5 // per worker: after 100, 200, 400, 800 and 1600ms
	want := forgetfulWorkers * (1 + restarts)
	var first time.Time
	timeout := time.After(time.Minute)
	for failed := 0; failed < want; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the program's standard error ended after %d failed workers", failed)
			}
			switch {
			case strings.HasPrefix(line, forgetfulStarted) && line != forgetfulStarted+strconv.Itoa(root):
				t.Fatalf("a worker process started a pool of its own: %q", line)
			case strings.HasPrefix(line, "processpool: New called") && strings.Contains(line, "call worker.ServeIfChild"):
				if failed == 0 {
					first = time.Now()
				}
				failed++
			}
		case <-timeout:
			t.Fatalf("%d workers failed with the ServeIfChild error in a minute, want %d", failed, want)
		}
	}
	if took := time.Since(first); took < 2500*time.Millisecond {
		t.Errorf("%d worker processes started and failed within %v: restarts do not back off", want, took)
	}

	data, err := os.ReadFile(starts)
	if err != nil {
		t.Fatal(err)
	}
	recorded := strings.Split(strings.TrimSpace(string(data)), "\n")
	// One more restart per worker may have come since the last line read.
	if len(recorded) > 1+want+forgetfulWorkers {
		t.Errorf("%d processes started, want at most %d", len(recorded), 1+want+forgetfulWorkers)
	}
	for _, r := range recorded[1:] {
		if _, ppid, _ := strings.Cut(r, " "); ppid != strconv.Itoa(root) {
			t.Errorf("process %q was not started by the program (%d): a worker started workers", r, root)
		}
	}
}

const (
	forgetfulWorkers = 2
	// forgetfulLimit bounds the processes the forgetful program starts in
	// all, should the guard fail: past it, a start waits to be stopped
	// instead of starting a pool.
	forgetfulLimit   = 20
	forgetfulStarted = "forgetful: pool started in "
)

// startForgetful starts the forgetful program, recording its starts in the
// file starts, and returns its pid and the lines of standard error it and
// its workers write. The test's cleanup stops it with SIGTERM, as a user
// would, and waits for every process that holds its standard error.
func startForgetful(t *testing.T, starts string) (int, <-chan string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envTestForgetful+"="+starts)
	cmd.Stderr = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	lines := make(chan string)
	stop := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
			t.Error("the forgetful program outlived SIGTERM by 30s")
			cmd.Process.Kill()
			<-waited
		}
		select {
		case <-read:
		case <-time.After(30 * time.Second):
			t.Error("processes started by the forgetful program outlived it by 30s")
		}
		r.Close()
		<-read
	})
	return cmd.Process.Pid, lines
}

// runForgetfulMain is a program whose main forgets worker.ServeIfChild. Each
// start appends "pid ppid" to the file starts. Until SIGTERM it runs a pool
// of forgetfulWorkers, which reruns it in every worker process.
func runForgetfulMain(starts string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	n, err := recordStart(starts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if n > forgetfulLimit {
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		return 3
	}
	p, err := processpool.New(ctx, forgetfulWorkers)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(os.Stderr, forgetfulStarted+strconv.Itoa(os.Getpid()))
	<-ctx.Done()
	if err := p.Shutdown(context.Background(), true, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// recordStart appends this process's start to the file starts and returns
// how many starts it holds.
func recordStart(starts string) (int, error) {
	f, err := os.OpenFile(starts, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	_, err = fmt.Fprintf(f, "%d %d\n", os.Getpid(), os.Getppid())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	data, err := os.ReadFile(starts)
	return strings.Count(string(data), "\n"), err
}

// TestProcessPoolTakesNATSOptions: the NATS* options that apply to a process
// pool configure the NATS executor it runs: its logger and gathered Submits.
func TestProcessPoolTakesNATSOptions(t *testing.T) {
	var logged atomic.Int64
	log := slog.New(countingHandler{msg: "processpool: worker process exited; starting another", n: &logged})
	p := faultPool(t, 1, executor.NATSLogger(log), executor.NATSAutoBatch(16))
	var fs []*executor.Future[int]
	for i := range 50 {
		f, err := executor.Submit(t.Context(), p, SlowSquare, i)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	for i, f := range fs {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		v, err := f.Result(ctx)
		cancel()
		if err != nil || v != i*i {
			t.Fatalf("future %d: %d, %v", i, v, err)
		}
	}
	if err := p.Processes()[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return logged.Load() > 0 }, "the pool to log to the given logger")
}

// TestProcessPoolLargeValues: a 50 MB argument and a 200 MB result reach
// and leave the pool's processes whole, checked by digest.
func TestProcessPoolLargeValues(t *testing.T) {
	p := faultPool(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in := fill(50 << 20)
	f, err := executor.Submit(ctx, p, Digest, in)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.Result(ctx); err != nil || got != digestOf(in) {
		t.Fatalf("digest of a 50 MB argument: %q, %v; want %q", got, err, digestOf(in))
	}
	const size = 200 << 20
	out, err := executor.Submit(ctx, p, Fill, size)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := out.Result(ctx); err != nil || len(got) != size || digestOf(got) != digestOf(fill(size)) {
		t.Fatalf("a 200 MB result: %d bytes, %v; want %d bytes of its digest", len(got), err, size)
	}
}
