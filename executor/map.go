package executor

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jetpool/jetpool/task"
)

type mapConfig struct {
	chunksize  int
	buffersize int
	timeout    time.Duration
}

// DefaultBuffersize is how many chunks [Map] keeps in flight unless told
// otherwise with [MapBuffersize].
const DefaultBuffersize = 64

// Map runs t on every input and yields the results in input order, like
// Python's Executor.map. Nothing is submitted until the iteration starts; then
// inputs are read and submitted in chunks (see [MapChunksize]), at most
// [MapBuffersize] chunks ahead of the consumer.
//
// A failed task yields (zero, its error) in its place and the iteration goes on
// if the caller keeps ranging. A timeout (see [MapTimeout]), the end of ctx, an
// invalid option or a submission error yields one error and ends the
// iteration. When the iteration ends early, for any reason including a break
// by the caller, every task that has not started is cancelled; running tasks
// finish on their own. On a named job ([Job]) an iteration that ctx ended
// cancels nothing: the job runs its tasks on, for a producer that resumes it.
func Map[In, Out any](ctx context.Context, ex Executor, t task.Task[In, Out], inputs iter.Seq[In], opts ...MapOption) iter.Seq2[Out, error] {
	start := time.Now()
	cfg := mapConfig{chunksize: 1, buffersize: DefaultBuffersize}
	var cfgErr error
	for _, o := range opts {
		if cfgErr = o(&cfg); cfgErr != nil {
			break
		}
	}
	return func(yield func(Out, error) bool) {
		var zero Out
		if cfgErr != nil {
			yield(zero, cfgErr)
			return
		}
		m := mapRun[In, Out]{ctx: ctx, ex: ex, codec: t.Codec(), cfg: cfg, yield: yield}
		if cfg.timeout > 0 {
			m.deadline = start.Add(cfg.timeout)
			timer := time.NewTimer(time.Until(m.deadline))
			defer timer.Stop()
			m.timer = timer.C
		}
		defer m.cancelRest()
		chunk := make([]In, 0, cfg.chunksize)
		for in := range inputs {
			chunk = append(chunk, in)
			if len(chunk) < cfg.chunksize {
				continue
			}
			if !m.submit(chunk) {
				return
			}
			chunk = chunk[:0]
			for len(m.inflight) >= cfg.buffersize {
				if !m.drainHead() {
					return
				}
			}
		}
		if len(chunk) > 0 && !m.submit(chunk) {
			return
		}
		for len(m.inflight) > 0 {
			if !m.drainHead() {
				return
			}
		}
	}
}

// mapRun is the state of one iteration of a Map.
type mapRun[In, Out any] struct {
	ctx      context.Context
	ex       Executor
	codec    task.Codec
	cfg      mapConfig
	deadline time.Time
	timer    <-chan time.Time
	yield    func(Out, error) bool
	inflight [][]Future[Out] // chunks in input order; consumed from the head
}

func (m *mapRun[In, Out]) submit(chunk []In) bool {
	futs := make([]Future[Out], len(chunk)) // one allocation for the chunk's futures
	b := &batch{codec: m.codec, calls: make([]call, len(chunk)), deadline: m.deadline}
	for i, in := range chunk {
		b.calls[i] = call{s: &futs[i].s, arg: in}
	}
	if err := m.ex.enqueue(m.ctx, b); err != nil {
		var zero Out
		m.yield(zero, m.submitErr(err))
		return false
	}
	m.inflight = append(m.inflight, futs)
	return true
}

// submitErr is the error a map ends with when a chunk could not be
// submitted with err: ctx's if ctx ended, as a caller that stopped the map
// stopped its submissions too, and else err.
func (m *mapRun[In, Out]) submitErr(err error) error {
	if m.ctx.Err() != nil && !errors.Is(err, m.ctx.Err()) {
		return fmt.Errorf("executor: map stopped: %w", m.ctx.Err())
	}
	return err
}

// drainHead yields the results of the oldest chunk, waiting for each. It
// reports false if the iteration must end.
func (m *mapRun[In, Out]) drainHead() bool {
	var zero Out
	head := m.inflight[0]
	for len(head) > 0 {
		f := &head[0]
		// A result already in is yielded even past the timeout, as Python's
		// map does.
		if !f.s.isDone() {
			select {
			case <-f.Done():
			case <-m.timer:
				m.yield(zero, fmt.Errorf("executor: map timed out after %v: %w", m.cfg.timeout, context.DeadlineExceeded))
				return false
			case <-m.ctx.Done():
				m.yield(zero, fmt.Errorf("executor: map stopped: %w", m.ctx.Err()))
				return false
			}
		}
		head = head[1:]
		m.inflight[0] = head
		v, err := f.outcome()
		if se, ok := errors.AsType[*enqueueError](err); ok {
			// A chunk that could not be submitted after all.
			m.yield(zero, m.submitErr(se.err))
			return false
		}
		if err != nil && errors.Is(err, context.DeadlineExceeded) && m.timer != nil && !time.Now().Before(m.deadline) {
			// The task ran out of the map's own time: that is the map's
			// timeout, which ends the iteration.
			m.yield(zero, fmt.Errorf("executor: map timed out after %v: %w", m.cfg.timeout, context.DeadlineExceeded))
			return false
		}
		if !m.yield(v, err) {
			return false
		}
	}
	m.inflight[0] = nil
	m.inflight = m.inflight[1:]
	return true
}

// cancelRest cancels every future the caller has not consumed. Finished and
// running ones are unaffected. On a named job, an iteration that ctx ended
// cancels nothing: its tasks are the job's, which runs them on.
func (m *mapRun[In, Out]) cancelRest() {
	if _, ok := m.ex.(*Job); ok && m.ctx.Err() != nil {
		return
	}
	var states []*state
	for _, chunk := range m.inflight {
		for i := range chunk {
			states = append(states, &chunk[i].s)
		}
	}
	cancelAll(states)
}
