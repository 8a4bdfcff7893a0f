package worker

import (
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/internal/bytesize"
	"github.com/jetpool/jetpool/task"
)

// headroom is what a Result message needs besides its items' own bytes: the
// envelope, the worker id and the ack subject.
const headroom = 1024

// reporter batches a running chunk's results: finished items wait at most
// ResultInterval before they are sent, messages are split to stay under the
// server's maximum payload, and the final message comes last.
type reporter struct {
	w     *Worker
	c     *wire.Chunk
	m     *kindMetrics
	grant uint64
	limit int // bytes of items per message
	// store, if set, takes each results message in the reporter's stead: a
	// named job's chunk stores its results in the owner's results stream.
	store func(items []wire.ItemResult, final bool)

	mu       sync.Mutex
	pending  []wire.ItemResult
	size     int
	lastSent time.Time
	timer    *time.Timer // flushes pending results when they are due
	done     bool        // the final result is sent
	// The outcomes of the pending results and the durations of their
	// tasks, counted in m just before they are sent, so that the items cost
	// no atomic operation each.
	succeeded, failed int64
	took              durationTally
}

// newReporter returns the reporter of c's run of items granted items under
// grant, counting their outcomes in m.
func newReporter(w *Worker, c *wire.Chunk, m *kindMetrics, grant uint64, items int) *reporter {
	r := &reporter{
		w: w, c: c, m: m, grant: grant,
		limit:    max(int(w.nc.MaxPayload())-headroom-len(w.cfg.ID), 1024),
		lastSent: time.Now(),
	}
	if p, ok := pendingPool.Get().(*[]wire.ItemResult); ok {
		r.pending = (*p)[:0]
	} else {
		r.pending = make([]wire.ItemResult, 0, min(items, maxPendingCap))
	}
	return r
}

// maxPendingCap bounds the results a reporter makes room for up front.
const maxPendingCap = 1024

// pendingPool holds the pending lists of reporters that sent their final
// result, cleared: a chunk of a thousand items would otherwise allocate
// tens of kilobytes for them.
var pendingPool sync.Pool

// add queues an item's result, finished at now after its handler ran for
// took, or took < 0 if it never ran. more says whether items follow;
// without, the final flush follows at once and no timer is armed. It
// reports whether every result queued so far has been sent, so the buffers
// their values are in may be reused.
func (r *reporter) add(res wire.ItemResult, more bool, now time.Time, took time.Duration) (sent bool) {
	sz := itemSize(res)
	if sz > r.limit {
		res = r.fit(res)
		sz = itemSize(res)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.size+sz > r.limit {
		r.sendLocked(false)
	}
	r.pending = append(r.pending, res)
	r.size += sz
	if res.Err != nil {
		r.failed++
	} else {
		r.succeeded++
	}
	if took >= 0 {
		r.took.observe(took)
	}
	if !more {
		return false
	}
	due := r.lastSent.Add(r.w.cfg.ResultInterval)
	if wait := due.Sub(now); wait <= 0 {
		r.sendLocked(false)
		return true
	} else if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.flushDue)
	}
	return false
}

func (r *reporter) flushDue() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timer = nil
	if !r.done {
		r.sendLocked(false)
	}
}

// final sends what is pending with Final set: no more results follow. The
// reporter is not used again.
func (r *reporter) final() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.sendLocked(true)
	if cap(r.pending) <= maxPendingCap {
		p := r.pending[:0]
		clear(p[:cap(p)]) // nothing of this chunk's outputs stays reachable
		pendingPool.Put(&p)
	}
	r.pending = nil
}

func (r *reporter) sendLocked(final bool) {
	if len(r.pending) == 0 && !final {
		return
	}
	r.m.succeeded.Add(r.succeeded)
	r.m.failed.Add(r.failed)
	r.succeeded, r.failed = 0, 0
	r.took.addTo(&r.m.durations)
	if r.store != nil {
		r.store(r.pending, final)
		r.pending, r.size, r.lastSent = r.pending[:0], 0, time.Now()
		return
	}
	data, err := wire.Encode(&wire.Result{Chunk: r.c.ID, Worker: r.w.cfg.ID, Final: final, Grant: r.grant, Items: r.pending})
	if err != nil {
		// A lost result means a redelivery that the producer drops or
		// reruns: the chunk is not acked without its final result.
		r.w.log.Warn("worker: encode results", "executor", r.c.Executor, "chunk", r.c.ID, "final", final, "err", err)
	} else {
		r.w.results.send(r.c.Control+broker.ResultSuffix, data)
	}
	r.pending, r.size, r.lastSent = r.pending[:0], 0, time.Now()
}

// resultSender coalesces the result messages bound for one producer. A
// message that finds no send to its subject under way is published at once,
// by its caller; messages that come while one is under way wait, and that
// send's caller publishes them after its own, back to back in as few
// messages as the server's maximum payload allows (wire.DecodeResults
// reads them). At low load every result goes alone and at once; under load
// one message carries the results of every chunk that finished during the
// previous send. Messages to one subject leave in the order they came, so a
// chunk's final result is still its last.
//
// Like startBatcher it has no goroutine of its own, and send never waits for
// another caller: a message handed over is published before the send under
// way returns.
type resultSender struct {
	nc  *nats.Conn
	log *slog.Logger

	mu      sync.Mutex
	waiting map[string][][]byte // by subject, while a send to it is under way
}

func newResultSender(nc *nats.Conn, log *slog.Logger) *resultSender {
	return &resultSender{nc: nc, log: log, waiting: make(map[string][][]byte)}
}

// send publishes data, one encoded wire.Result, to subject, or hands it to
// the send to subject under way. A failure is logged: a lost result means a
// redelivery that the producer drops or reruns, since the chunk is not acked
// without its final result.
func (s *resultSender) send(subject string, data []byte) {
	for batch := s.queue(subject, data); batch != nil; batch = s.next(subject, batch) {
		s.publish(subject, batch)
	}
}

// queue returns data as the batch its caller is to publish when no send to
// subject is under way, and otherwise hands data to that send and returns
// nil.
func (s *resultSender) queue(subject string, data []byte) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, busy := s.waiting[subject]; busy {
		s.waiting[subject] = append(q, data)
		return nil
	}
	s.waiting[subject] = nil
	return [][]byte{data}
}

// next returns what was handed over while sent, the batch just published,
// was on its way, or nil, ending the send, when nothing was.
func (s *resultSender) next(subject string, sent [][]byte) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.waiting[subject]
	if len(q) == 0 {
		delete(s.waiting, subject)
		return nil
	}
	s.waiting[subject] = sent[:0]
	return q
}

// publish sends batch's results in as few messages as fit under the server's
// maximum payload; each result fits alone.
func (s *resultSender) publish(subject string, batch [][]byte) {
	limit := int(s.nc.MaxPayload())
	for len(batch) > 0 {
		n, size := 1, len(batch[0])
		for n < len(batch) && size+len(batch[n]) <= limit {
			size += len(batch[n])
			n++
		}
		msg := batch[0]
		if n > 1 {
			msg = slices.Concat(batch[:n]...)
		}
		if err := s.nc.Publish(subject, msg); err != nil {
			s.log.Warn("worker: send results", "subject", subject, "results", n, "err", err)
		}
		batch = batch[n:]
	}
}

// fit makes res small enough to travel in a message of its own.
func (r *reporter) fit(res wire.ItemResult) wire.ItemResult {
	if itemSize(res) <= r.limit {
		return res
	}
	if res.Err == nil {
		// The value fits if itemSize is within the limit: its own limit
		// is the limit less the item's envelope.
		size, limit := bytesize.Compare(int64(len(res.Value)), int64(r.limit-itemSize(wire.ItemResult{})))
		return failed(res.Seq, task.TypeResultTooLarge, "result is "+size+", the limit is "+limit+
			" (the server's maximum payload less the result message's envelope)")
	}
	e := *res.Err
	e.Stack = ""
	e.Type = truncate(e.Type, 256)
	e.Message = truncate(e.Message, r.limit/2)
	return wire.ItemResult{Seq: res.Seq, Err: &e}
}

// itemSize bounds an item result's encoded size from above.
func itemSize(res wire.ItemResult) int {
	n := 16 + len(res.Value)
	if ref := res.Ref; ref != nil {
		n += 32 + len(ref.Name) + len(ref.Key)
	}
	if e := res.Err; e != nil {
		n += 24 + len(e.Type) + len(e.Message) + len(e.Stack)
	}
	return n
}

// truncate cuts s to at most n bytes at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
