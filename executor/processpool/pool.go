// Package processpool is Python's ProcessPoolExecutor: worker processes on
// this host, over a NATS server embedded in this one, behind a NATS executor
// of package executor. Submit work to a [Pool] with executor.Submit and
// executor.Map, as to any executor. It is a package of its own because it
// links the NATS server (broker/embedded): a producer that only reaches a
// broker with executor.NewNATS does not.
package processpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/internal/child"
)

// AckWait is a pool's lease unless executor.NATSPoolConfig sets another:
// a PoolConfig whose AckWait is zero gets this one, not the pool default.
const AckWait = 2 * time.Second

// MaxProcesses is the most worker processes [New] starts. Each costs a Go
// runtime, a connection and some megabytes of memory; for more tasks at once
// on one host, raise [Concurrency] instead.
const MaxProcesses = 256

// ErrInWorker is returned by [New] in a worker process of a pool: a program
// that is its own pool's worker reaches it only when main does not call
// worker.ServeIfChild first, and every worker would otherwise start a pool
// of its own.
var ErrInWorker = errors.New("processpool: New called in a worker process: call worker.ServeIfChild(reg) first thing in main")

// A worker process that exits soon after it starts is started again after a
// delay that doubles from minRestartDelay up to maxRestartDelay, so a worker
// that cannot start costs one process start per slot every few seconds, not
// ten a second. One that ran for stableRun or longer restarts after
// minRestartDelay again.
const (
	minRestartDelay = 100 * time.Millisecond
	maxRestartDelay = 10 * time.Second
	stableRun       = 10 * time.Second
)

// Pool is Python's ProcessPoolExecutor: an embedded NATS server and N
// worker processes on this host behind an [executor.NATS], whose methods it
// has. By default the workers re-execute this program, which must call
// worker.ServeIfChild first thing in main. A worker process that dies is
// started again; its chunks are redelivered to the others. Create it with
// [New].
type Pool struct {
	*executor.NATS
	srv *embedded.Server
	nc  *nats.Conn
	cfg config
	log *slog.Logger
	env []string

	mu       sync.Mutex
	procs    []*os.Process
	stopping bool
	sup      sync.WaitGroup // one supervisor per worker slot

	teardownOnce sync.Once
	stopped      chan struct{} // closed when teardown starts: no more restarts
	torn         chan struct{}
}

// New starts an embedded broker and worker processes serving it, configured
// by opts: this package's options and the executor.PoolOptions that apply to
// the pool's NATS executor (see [Option]). It returns once the broker is up
// and the processes are started; the processes connect and start pulling on
// their own. Unless GOMAXPROCS is set in the environment, the processes
// share the machine's CPUs: each runs with GOMAXPROCS = max(1, NumCPU /
// workers), as each process of a Python pool runs on one.
//
// Workers must be from 1 to [MaxProcesses], or New fails with an error
// matching executor.ErrInvalidOption, as it does for an invalid option. In a
// worker process of a pool (see worker.IsChild) New returns [ErrInWorker]
// and starts nothing. If ctx ends before every process is started, the ones
// started are stopped and ctx's error is returned.
func New(ctx context.Context, workers int, opts ...Option) (*Pool, error) {
	if child.Is() {
		return nil, ErrInWorker
	}
	if workers < 1 || workers > MaxProcesses {
		return nil, fmt.Errorf("%w: processpool: %d workers, want 1 to %d", executor.ErrInvalidOption, workers, MaxProcesses)
	}
	cfg := config{concurrency: 1, stdout: os.Stdout, stderr: os.Stderr}
	for _, o := range opts {
		if err := o.Apply(&cfg); err != nil {
			return nil, err
		}
	}
	pc := cfg.nats.PoolConfig()
	if pc.AckWait == 0 {
		pc.AckWait = AckWait
		if err := executor.NATSPoolConfig(pc).Apply(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.command == nil {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("processpool: find this program to run workers: %w", err)
		}
		cfg.command = []string{self}
	}
	srv, err := embedded.Start(embedded.Config{StoreDir: cfg.storeDir})
	if err != nil {
		return nil, err
	}
	p := &Pool{srv: srv, cfg: cfg, log: cfg.nats.Logger(), stopped: make(chan struct{}), torn: make(chan struct{}), procs: make([]*os.Process, workers)}
	p.nc, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("jetpool-process-pool"), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("processpool: connect to embedded broker: %w", err)
	}
	p.NATS, err = cfg.nats.NewNATS(ctx, p.nc)
	if err != nil {
		p.nc.Close()
		srv.Shutdown()
		return nil, err
	}
	p.env = append(os.Environ(), child.Env(srv.ClientURL(), cfg.concurrency, pc, cfg.retry)...)
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		// The processes share the machine's CPUs, as a Python pool's do.
		p.env = append(p.env, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/workers)))
	}
	for i := range workers {
		if err := ctx.Err(); err != nil {
			p.teardown(context.Background())
			return nil, err
		}
		cmd, err := p.spawn(i)
		if err != nil {
			p.teardown(context.Background())
			return nil, err
		}
		p.sup.Add(1)
		go p.supervise(i, cmd)
	}
	return p, nil
}

func (p *Pool) spawn(slot int) (*exec.Cmd, error) {
	cmd := exec.Command(p.cfg.command[0], p.cfg.command[1:]...)
	// A slice of its own: supervisors spawn concurrently, and an append to
	// p.env would write its spare capacity, which they share.
	cmd.Env = slices.Concat(p.env, []string{child.EnvID + "=" + workerID(slot)})
	// A nil *os.File would leave the descriptor closed in the child; a nil
	// writer connects it to the null device.
	if p.cfg.stdout != nil {
		cmd.Stdout = p.cfg.stdout
	}
	if p.cfg.stderr != nil {
		cmd.Stderr = p.cfg.stderr
	}
	setParentDeath(cmd)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return nil, errors.New("processpool: pool is stopping")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("processpool: start worker process: %w", err)
	}
	p.procs[slot] = cmd.Process
	return cmd, nil
}

// workerID is the worker id of the process in slot.
func workerID(slot int) string {
	return "proc-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(slot)
}

// supervise waits for the process in slot and starts it again, after
// [restartDelay], if it exits before the pool is torn down. The executor is
// told at once that the process's worker is gone (executor.NATS.WorkerGone),
// so that the chunks it ran run again on the others.
func (p *Pool) supervise(slot int, cmd *exec.Cmd) {
	defer p.sup.Done()
	var delay time.Duration
	for {
		started := time.Now()
		err := cmd.Wait()
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			return
		}
		p.NATS.WorkerGone(workerID(slot))
		prev := delay
		delay = restartDelay(prev, time.Since(started))
		p.log.Warn("processpool: worker process exited; starting another", "pid", cmd.Process.Pid, "err", err, "restart_in", delay)
		if delay == maxRestartDelay && prev < maxRestartDelay {
			p.log.Error("processpool: worker process keeps exiting soon after it starts; see its standard error "+
				"(a program that runs its own workers must call worker.ServeIfChild first thing in main)",
				"slot", slot, "restart_every", maxRestartDelay)
		}
		select {
		case <-time.After(delay):
		case <-p.stopped:
			return
		}
		if cmd, err = p.spawn(slot); err != nil {
			return
		}
	}
}

// restartDelay is how long a slot waits to start a worker process again
// after its process ran for ran and exited; prev is the wait before that
// process started, 0 for the slot's first.
func restartDelay(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= stableRun {
		return minRestartDelay
	}
	return min(2*prev, maxRestartDelay)
}

// Processes returns the current worker processes, for observing or
// signalling them.
func (p *Pool) Processes() []*os.Process {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*os.Process(nil), p.procs...)
}

// URL is the embedded broker's client URL.
func (p *Pool) URL() string { return p.srv.ClientURL() }

// Shutdown implements executor.Executor's Shutdown; once every outstanding
// future is done it stops the worker processes (SIGTERM: they finish what
// they run), the connection and the embedded broker. With wait it returns
// after that; without, that happens in the background. If ctx ends before
// the futures are done, the processes are killed, with the tasks they run,
// and Shutdown returns ctx's error once they are gone. It is safe to call
// more than once.
func (p *Pool) Shutdown(ctx context.Context, wait, cancelFutures bool) error {
	if err := p.NATS.Shutdown(ctx, wait, cancelFutures); err != nil {
		p.teardown(ctx)
		return err
	}
	if !wait {
		go func() {
			// Shutdown again, waiting: it returns once the executor's
			// goroutines are gone, as the first one's would have.
			p.NATS.Shutdown(context.Background(), true, false)
			p.teardown(context.Background())
		}()
		return nil
	}
	return p.teardown(ctx)
}

// teardown stops the processes, the connection and the server, once. A
// process still running a minute after SIGTERM, or when the ctx of the first
// call ends, is killed; that call returns once all is stopped, later ones
// when it is or when their ctx ends.
func (p *Pool) teardown(ctx context.Context) error {
	first := false
	p.teardownOnce.Do(func() {
		first = true
		p.mu.Lock()
		p.stopping = true
		close(p.stopped)
		procs := append([]*os.Process(nil), p.procs...)
		p.mu.Unlock()
		go func() {
			defer close(p.torn)
			for _, proc := range procs {
				if proc != nil {
					proc.Signal(syscall.SIGTERM)
				}
			}
			exited := make(chan struct{})
			go func() { p.sup.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(time.Minute):
			case <-ctx.Done():
			}
			for _, proc := range procs {
				if proc != nil {
					proc.Kill() // a no-op for a process already waited for
				}
			}
			<-exited
			p.nc.Close()
			p.srv.Shutdown()
		}()
	})
	select {
	case <-p.torn:
		return nil
	case <-ctx.Done():
		if first {
			<-p.torn // the processes are being killed
		}
		return ctx.Err()
	}
}
