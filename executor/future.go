package executor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// status is a future's place in its state machine. Transitions only go
// forward: pending → running → finished, pending → finished (a failure or an
// expired deadline before any start), pending → cancelled.
type status uint8

const (
	pending status = iota
	running
	cancelled
	finished
)

// state is the untyped heart of a future, shared by Future[T] and the
// executors that resolve it. All transitions happen under mu, so a task is
// started at most once and resolved at most once, whichever side races.
type state struct {
	mu        sync.Mutex
	st        status
	seq       uint32 // the future's item in its owner's batch
	val       any
	err       error
	done      chan struct{} // made on first use; closed when done
	callbacks []*func()
	owner     owner // set by the executor; cleared once done
}

// closedChan is the Done channel of futures that finished before anyone
// asked for one. It is closed once and never written again.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// doneChan returns the channel closed when the future is done, making it on
// first use: most futures of a Map are awaited without one.
func (s *state) doneChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		if s.st == cancelled || s.st == finished {
			return closedChan
		}
		s.done = make(chan struct{})
	}
	return s.done
}

// isDone reports whether the future is finished or cancelled.
func (s *state) isDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st == cancelled || s.st == finished
}

// An owner is the executor's side of a future: it ends the context of the
// handler running item seq of its batch, and is told once the future is
// done, however it got done. An interface rather than closures: a chunk's
// futures share their owner and make no allocation of their own.
type owner interface {
	interrupt(seq uint32)
	settled()
}

// A canceller is an owner that decides Cancel itself, as a named job's
// chunk does in JetStream rather than in memory: cancel is given the items
// of pending futures to cancel, decides, and moves each future to cancelled
// or running as decided (cancelPending, start). It may block for round
// trips to the broker.
type canceller interface {
	owner
	cancel(seqs []uint32)
}

// interruptFunc owns a single future: it ends its handler's context.
type interruptFunc func()

func (f interruptFunc) interrupt(uint32) { f() }
func (f interruptFunc) settled()         {}

// own sets the future's owner and its item unless the future is done
// already, and reports whether it did.
func (s *state) own(o owner, seq uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == cancelled || s.st == finished {
		return false
	}
	s.owner, s.seq = o, seq
	return true
}

// start moves a pending future to running and reports whether it did. A
// cancelled or finished future is never started. o, if not nil, becomes the
// future's owner, which is how Interrupt reaches the running handler.
func (s *state) start(o owner) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != pending {
		return false
	}
	s.st = running
	if o != nil {
		s.owner = o
	}
	return true
}

// resolve finishes a pending or running future with a value or an error. It
// reports false, changing nothing, if the future was already done: a late or
// duplicated result never overwrites the first.
func (s *state) resolve(val any, err error) bool {
	s.mu.Lock()
	if s.st == cancelled || s.st == finished {
		s.mu.Unlock()
		return false
	}
	s.st, s.val, s.err = finished, val, err
	s.finishLocked()
	return true
}

// expire fails a pending future with err, as its deadline passed before it
// started, and reports whether it did. A running or done future is left as
// it is: the check and the change are one step, so a future that starts
// meanwhile is never failed as unstarted.
func (s *state) expire(err error) bool {
	s.mu.Lock()
	if s.st != pending {
		s.mu.Unlock()
		return false
	}
	s.st, s.err = finished, err
	s.finishLocked()
	return true
}

// cancel implements Future.Cancel. A future whose owner is a canceller is
// cancelled as the owner decides.
func (s *state) cancel() bool {
	s.mu.Lock()
	switch s.st {
	case cancelled:
		s.mu.Unlock()
		return true
	case running, finished:
		s.mu.Unlock()
		return false
	}
	if c, ok := s.owner.(canceller); ok {
		seq := s.seq
		s.mu.Unlock()
		c.cancel([]uint32{seq})
		return s.status() == cancelled
	}
	s.st, s.err = cancelled, ErrCancelled
	s.finishLocked()
	return true
}

// cancelPending cancels a pending future, as its canceller decided, and
// reports whether it did; a future in any other state is left as it is.
func (s *state) cancelPending() bool {
	s.mu.Lock()
	if s.st != pending {
		s.mu.Unlock()
		return false
	}
	s.st, s.err = cancelled, ErrCancelled
	s.finishLocked()
	return true
}

// cancelAll cancels the futures of states that have not started, as
// state.cancel would one by one, but asks each canceller once for all of
// its futures among them, and the cancellers at the same time, at most
// maxCancellers at once: each may wait for round trips to the broker.
func cancelAll(states []*state) {
	var (
		order []canceller
		seqs  = make(map[canceller][]uint32)
	)
	for _, s := range states {
		s.mu.Lock()
		o, seq, st := s.owner, s.seq, s.st
		s.mu.Unlock()
		if c, ok := o.(canceller); ok && st == pending {
			if seqs[c] == nil {
				order = append(order, c)
			}
			seqs[c] = append(seqs[c], seq)
			continue
		}
		s.cancel()
	}
	if len(order) == 1 {
		order[0].cancel(seqs[order[0]])
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxCancellers)
	for _, c := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.cancel(seqs[c])
		})
	}
	wg.Wait()
}

// maxCancellers bounds the cancellers cancelAll waits for at once.
const maxCancellers = 64

// finishLocked closes done, unlocks and runs the callbacks outside the lock so
// a callback may call back into the future.
func (s *state) finishLocked() {
	if s.done != nil {
		close(s.done)
	}
	cbs := s.callbacks
	s.callbacks = nil
	o := s.owner
	s.owner = nil
	s.mu.Unlock()
	if o != nil {
		o.settled()
	}
	for _, cb := range cbs {
		runCallback(*cb)
	}
}

// failed reports whether the future finished with an error other than
// cancellation.
func (s *state) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st == finished && s.err != nil
}

func (s *state) status() status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// addCallback runs cb once the future is done, at once if it already is. The
// returned func removes cb if it has not run yet, so waiters that give up do
// not pile up on long-lived futures.
func (s *state) addCallback(cb func()) (remove func()) {
	s.mu.Lock()
	if s.st == cancelled || s.st == finished {
		s.mu.Unlock()
		runCallback(cb)
		return func() {}
	}
	p := &cb
	s.callbacks = append(s.callbacks, p)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, q := range s.callbacks {
			if q == p {
				s.callbacks = append(s.callbacks[:i], s.callbacks[i+1:]...)
				return
			}
		}
	}
}

func runCallback(cb func()) {
	defer func() {
		if p := recover(); p != nil {
			slog.Error("executor: done-callback panicked", "panic", fmt.Sprint(p))
		}
	}()
	cb()
}

// wait blocks until the future is done or ctx ends.
func (s *state) wait(ctx context.Context) error {
	if s.isDone() {
		return nil
	}
	select {
	case <-s.doneChan():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Future is the pending result of one task, like Python's
// concurrent.futures.Future. It is safe for concurrent use. Futures are made
// by [Submit] and [Map]; the zero value is not usable.
type Future[T any] struct {
	s state
}

func newFuture[T any]() *Future[T] {
	return &Future[T]{}
}

// Result blocks until the future is done or ctx ends. It returns the task's
// value; an error matching [ErrCancelled] if the future was cancelled; a
// *task.Error carrying the remote type, message and stack if the task failed;
// or ctx's error (matching context.DeadlineExceeded on a deadline) if ctx
// ended first, in which case the future is left as it was.
func (f *Future[T]) Result(ctx context.Context) (T, error) {
	if err := f.s.wait(ctx); err != nil {
		var zero T
		return zero, err
	}
	return f.outcome()
}

// outcome is the result of a future its caller has seen done, under its
// lock or by its Done channel: neither field changes after that.
func (f *Future[T]) outcome() (T, error) {
	if f.s.err != nil {
		var zero T
		return zero, f.s.err
	}
	v, _ := f.s.val.(T)
	return v, nil
}

// Err is Python's exception(): it blocks like [Future.Result] and returns the
// task's error, nil if it succeeded.
func (f *Future[T]) Err(ctx context.Context) error {
	_, err := f.Result(ctx)
	return err
}

// Done returns a channel that is closed once the future is finished or
// cancelled.
func (f *Future[T]) Done() <-chan struct{} { return f.s.doneChan() }

// Running reports whether a worker has started the task and it has not
// finished yet.
func (f *Future[T]) Running() bool { return f.s.status() == running }

// Cancelled reports whether the future was cancelled.
func (f *Future[T]) Cancelled() bool { return f.s.status() == cancelled }

// Cancel stops the task if it has not started: it returns true if the task was
// pending and now will never run, on any worker; true if it was already
// cancelled; false if it is running or finished. A successful Cancel resolves
// the future with [ErrCancelled] and runs the done-callbacks.
func (f *Future[T]) Cancel() bool { return f.s.cancel() }

// Interrupt goes beyond Python: it cancels the context of the running handler,
// on whichever worker runs it, and reports whether the future was running. The
// future then resolves with whatever the handler returns, typically an error
// matching context.Canceled. A pending future is not affected; use Cancel.
func (f *Future[T]) Interrupt() bool {
	f.s.mu.Lock()
	o, seq := f.s.owner, f.s.seq
	ok := f.s.st == running
	f.s.mu.Unlock()
	if ok && o != nil {
		o.interrupt(seq)
	}
	return ok
}

// AddDoneCallback arranges for fn to be called with f once it is finished or
// cancelled; at once, in the caller's goroutine, if it already is. Otherwise fn
// runs in the goroutine that finishes the future, so it should be quick. A
// panic in fn is recovered and logged.
func (f *Future[T]) AddDoneCallback(fn func(*Future[T])) {
	f.s.addCallback(func() { fn(f) })
}

func (f *Future[T]) state() *state { return &f.s }
