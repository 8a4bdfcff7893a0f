package executor

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jetpool/jetpool/task"
)

// Local runs tasks in this process on a pool of goroutines, Python's
// ThreadPoolExecutor. Goroutines are started on demand up to the pool size
// and exit at Shutdown; the queue is unbounded. A queued task with a deadline
// holds a timer that fails its future at the deadline, however long the
// queue. Create it with [NewLocal].
type Local struct {
	reg   *task.Registry
	max   int
	retry task.RetryPolicy

	mu      sync.Mutex
	cond    sync.Cond
	queue   []localJob // FIFO; head at queue[0]
	idle    int        // goroutines waiting for work and not yet signalled
	started int
	closed  bool
	wg      sync.WaitGroup
}

type localJob struct {
	b      *batch
	h      task.Handler
	expiry *time.Timer // fails b's pending futures at its deadline; nil without one
}

// stop releases the job's timer: once the job has run, or will never run,
// nothing of it is left to expire.
func (j localJob) stop() {
	if j.expiry != nil {
		j.expiry.Stop()
	}
}

// expirePending fails the futures of b that have not started: b's deadline
// passed while they waited for a slot, and they must never start.
func expirePending(b *batch) {
	err := errExpired(b.codec.Kind)
	for i := range b.calls {
		b.calls[i].s.expire(err)
	}
}

// NewLocal returns a pool that runs the handlers registered in reg. It fails
// with ErrInvalidOption for a bad option.
func NewLocal(reg *task.Registry, opts ...LocalOption) (*Local, error) {
	l := &Local{reg: reg, max: min(32, runtime.GOMAXPROCS(0)+4)}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	l.cond.L = &l.mu
	return l, nil
}

func (l *Local) enqueue(_ context.Context, b *batch) error {
	h, ok := l.reg.Lookup(b.codec.Kind)
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKind, b.codec.Kind)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrShutdown
	}
	j := localJob{b: b, h: h}
	if !b.deadline.IsZero() {
		j.expiry = time.AfterFunc(time.Until(b.deadline), func() { expirePending(b) })
	}
	l.queue = append(l.queue, j)
	switch {
	case l.idle > 0:
		l.idle-- // the woken goroutine no longer counts as idle
		l.cond.Signal()
	case l.started < l.max:
		l.started++
		l.wg.Add(1)
		go l.work(l.started)
	}
	return nil
}

// work is one pool goroutine: it runs jobs until the queue is closed and empty.
func (l *Local) work(n int) {
	defer l.wg.Done()
	ctx := task.WithWorker(context.Background(), "local-"+strconv.Itoa(n))
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.idle++
			l.cond.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return
		}
		j := l.queue[0]
		l.queue[0] = localJob{}
		l.queue = l.queue[1:]
		l.mu.Unlock()
		l.run(ctx, j)
	}
}

// run runs the calls of j one after another. A call its expiry timer or a
// Cancel has settled meanwhile is skipped.
func (l *Local) run(ctx context.Context, j localJob) {
	defer j.stop()
	b := j.b
	for i := range b.calls {
		c := &b.calls[i]
		if b.expired(time.Now()) {
			c.s.expire(errExpired(b.codec.Kind))
			continue
		}
		hctx, cancel := handlerContext(ctx, b.deadline)
		if !c.s.start(interruptFunc(cancel)) {
			cancel()
			continue
		}
		var out any
		err := l.retry.Do(hctx, func() (err error) {
			out, err = j.h.Call(hctx, c.arg)
			return err
		})
		cancel()
		c.s.resolve(out, err)
	}
}

// Shutdown implements [Executor.Shutdown]. Running tasks are never stopped;
// with wait it returns once they and every queued task are done.
func (l *Local) Shutdown(ctx context.Context, wait, cancelFutures bool) error {
	l.mu.Lock()
	l.closed = true
	queued := l.queue
	if cancelFutures {
		l.queue = nil
	}
	l.cond.Broadcast()
	l.mu.Unlock()
	if cancelFutures {
		for _, j := range queued {
			j.stop()
			for _, c := range j.b.calls {
				c.s.cancel()
			}
		}
	}
	if !wait {
		return nil
	}
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handlerContext is the context a handler runs in: cancelled by Interrupt and
// ended by the task's deadline, if any.
func handlerContext(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline)
}
