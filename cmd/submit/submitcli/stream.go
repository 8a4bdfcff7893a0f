package submitcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/internal/bytesize"
	"github.com/jetpool/jetpool/task"
)

// idleFlush is how long a chunk that is not full waits for more input
// before it goes out as it is: input that trickles in (tail -f) runs as it
// comes instead of waiting for a chunk to fill.
const idleFlush = 10 * time.Millisecond

// item is one input with its argument or line number, or, with err set, why
// the input ended early.
type item struct {
	n   int
	v   any
	err error
}

// result is one task's outcome as executor.Map yields it.
type result struct {
	v   any
	err error
}

// chunk is a run of consecutive inputs that go out as one message, by an
// executor.Map of their own. Its results come on results, in input order,
// which is closed once its Map has ended. A chunk with err set was not run:
// err is what the writer reports in its place.
type chunk struct {
	first, last int // the inputs' numbers
	results     chan result
	err         error
	cancel      context.CancelFunc // ends a named job's chunk's Map at the map's deadline
}

// stream runs the inputs of a map: a chunker reads them, checks them and
// starts each chunk's executor.Map in a goroutine of its own, at most
// buffersize chunks ahead of the writer, which takes the chunks' results in
// input order as they come. Unlike one executor.Map over all the inputs,
// results go out while the input is still open and waits for more: Map
// reads its inputs on the goroutine that yields its results.
type stream struct {
	ex         executor.Executor
	t          task.Task[any, any]
	chunksize  int
	buffersize int
	deadline   time.Time // the map's; zero: none
	limit      int64     // the largest input a chunk carries
	where      string    // "argument" or "line", to name an input
	checked    bool      // the inputs were checked against limit before
	// steady sends chunks out only full, or at the end of the input, and
	// never because input waits: a named job's chunks are the same each
	// time its input is.
	steady bool
	ended  func(n int)

	quit     chan struct{} // closed by halt: start no more chunks
	haltOnce sync.Once
}

// halt tells the chunker to start no more chunks and end, even while it
// waits for input that may never come.
func (s *stream) halt() { s.haltOnce.Do(func() { close(s.quit) }) }

// errDeadline is a chunk's error once the map's time is up before the
// chunk could start.
var errDeadline = fmt.Errorf("the map's time ran out: %w", context.DeadlineExceeded)

// run starts the chunker on items and returns the chunks in input order.
// The chunker closes the channel when the input ends, on halt, after a
// chunk whose err is set, when the deadline passes (after a chunk with
// errDeadline), or when ctx ends. wait waits for the
// chunker and every chunk's goroutine; the caller calls it once it has
// drained every chunk's results.
func (s *stream) run(ctx context.Context, items <-chan item) (chunks <-chan *chunk, wait func()) {
	order := make(chan *chunk, max(s.buffersize-1, 0))
	s.quit = make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(order)
		s.chunker(ctx, items, order, &wg)
	}()
	return order, wg.Wait
}

func (s *stream) chunker(ctx context.Context, items <-chan item, order chan<- *chunk, wg *sync.WaitGroup) {
	var cur []any
	first, last, count := 0, 0, 0
	send := func(c *chunk) bool {
		select {
		case order <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	flush := func() bool {
		if len(cur) == 0 {
			return true
		}
		c := &chunk{first: first, last: last}
		cur, c = nil, s.start(ctx, c, cur, wg)
		return send(c)
	}
	idle := time.NewTimer(idleFlush)
	defer idle.Stop()
	// The map's time runs out also while no chunk is out to notice it,
	// waiting for input.
	var expired <-chan time.Time
	if !s.deadline.IsZero() {
		t := time.NewTimer(time.Until(s.deadline))
		defer t.Stop()
		expired = t.C
	}
	timedOut := func() {
		if flush() {
			send(&chunk{first: last + 1, last: last + 1, err: errDeadline})
		}
	}
	for {
		var it item
		var ok bool
		select {
		case it, ok = <-items:
		case <-ctx.Done():
			return
		case <-s.quit:
			return
		case <-expired:
			timedOut()
			return
		default:
			var wait <-chan time.Time
			if len(cur) > 0 && !s.steady {
				idle.Reset(idleFlush)
				wait = idle.C
			}
			select {
			case it, ok = <-items:
			case <-wait:
				if !flush() {
					return
				}
				continue
			case <-ctx.Done():
				return
			case <-s.quit:
				return
			case <-expired:
				timedOut()
				return
			}
		}
		select {
		case <-s.quit:
			return
		default:
		}
		if !ok {
			if flush() && s.ended != nil {
				s.ended(count)
			}
			return
		}
		if it.err == nil && !s.checked {
			it.err = s.check(it.n, it.v)
		}
		if it.err != nil {
			if s.steady {
				// A named job takes no chunk shorter than the rest but
				// its last: one cut by a bad input would refuse the
				// corrected input of the next run. Its inputs are not
				// submitted.
				cur = nil
			}
			if flush() {
				send(&chunk{first: it.n, last: it.n, err: it.err})
			}
			return
		}
		if len(cur) == 0 {
			first = it.n
		}
		cur, last = append(cur, it.v), it.n
		count++
		if len(cur) == s.chunksize && !flush() {
			return
		}
	}
}

// start runs c's inputs in an executor.Map of their own and returns c.
func (s *stream) start(ctx context.Context, c *chunk, inputs []any, wg *sync.WaitGroup) *chunk {
	// A buffersize of 2 lets Map read past its one chunk, and so publish
	// it, without waiting for its results first.
	opts := []executor.MapOption{executor.MapChunksize(len(inputs)), executor.MapBuffersize(2)}
	if !s.deadline.IsZero() {
		left := time.Until(s.deadline)
		if left <= 0 {
			c.err = errDeadline
			return c
		}
		if s.steady {
			// A named job's Map that ends with its ctx cancels nothing:
			// the time limit is the command's wait, and the job's tasks
			// run on.
			ctx, c.cancel = context.WithDeadline(ctx, s.deadline)
		} else {
			opts = append(opts, executor.MapTimeout(left))
		}
	}
	c.results = make(chan result, len(inputs)+1) // never blocks the Map
	// Map publishes the chunk once it has read its last input, before it
	// waits for results: the next chunk starts only then, so that chunks
	// go out, and are run, in input order.
	published := make(chan struct{})
	var once sync.Once
	signal := func() { once.Do(func() { close(published) }) }
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(c.results)
		defer signal()
		if c.cancel != nil {
			defer c.cancel()
		}
		for v, err := range executor.Map(ctx, s.ex, s.t, func(yield func(any) bool) {
			defer signal()
			for _, in := range inputs {
				if !yield(in) {
					return
				}
			}
		}, opts...) {
			if s.steady && errors.Is(err, executor.ErrJobInput) {
				// Refused before the chunk was published: no chunk after
				// it may go into the job.
				s.halt()
			}
			c.results <- result{v, err}
		}
	}()
	select {
	case <-published:
	case <-ctx.Done():
	}
	return c
}

// check refuses input n if its encoding is larger than a chunk can carry.
func (s *stream) check(n int, v any) error {
	b, err := s.t.Codec().EncodeIn(v)
	if err != nil {
		return fmt.Errorf("%s %d: cannot encode: %w", s.where, n, err)
	}
	if int64(len(b)) <= s.limit {
		return nil
	}
	size, limit := bytesize.Compare(int64(len(b)), s.limit)
	return fmt.Errorf("%s %d is too large: its input is %s, the limit is %s (the server's max_payload less %s for the chunk around it)",
		s.where, n, size, limit, bytesize.Format(chunkReserve))
}

// tooLarge says which inputs make up c, which the executor refused with err.
func (s *stream) tooLarge(c *chunk, err error) error {
	if c.first == c.last {
		return fmt.Errorf("%s %d is too large: %w", s.where, c.last, err)
	}
	return fmt.Errorf("%ss %d to %d, one chunk of --chunksize %d, are too large together: %w; a smaller --chunksize fits them",
		s.where, c.first, c.last, s.chunksize, err)
}

// chunkReserve is what a chunk's envelope and headers may take of the
// server's max_payload besides its inputs.
const chunkReserve = 1 << 10

// inputLimit is the size of the largest input of a task: what a chunk can
// carry for a named job's, none for unnamed work, whose inputs too large
// for a message travel by reference.
func inputLimit(maxPayload int64, named bool) int64 {
	if !named {
		return math.MaxInt64
	}
	return maxPayload - chunkReserve
}

// argItems returns the decoded arguments as the items of a closed channel.
func argItems(vals []any) <-chan item {
	ch := make(chan item, len(vals))
	for i, v := range vals {
		ch <- item{n: i + 1, v: v}
	}
	close(ch)
	return ch
}

// lineItems reads r's lines in a goroutine of its own and sends them as
// items, until the input ends or done is closed. A read of r cannot be
// interrupted: if done is closed while the input is still open and idle
// (the command ended early on a terminal or a pipe that stays open), the
// goroutine ends with the next line or the end of the input, or with the
// process.
func lineItems(r io.Reader, decode decodeInput, done <-chan struct{}) <-chan item {
	ch := make(chan item, 256)
	go func() {
		defer close(ch)
		var err error
		for n, v := range jsonLines(r, decode, &err) {
			select {
			case ch <- item{n: n, v: v}:
			case <-done:
				return
			}
		}
		if err != nil {
			select {
			case ch <- item{err: err}:
			case <-done:
			}
		}
	}()
	return ch
}
