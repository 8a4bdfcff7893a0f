package submitcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/processpool"
	"github.com/jetpool/jetpool/task"
)

const mapUsage = `
Usage: submit map KIND [ARG...] [flags]

Runs task KIND once per argument, or once per JSON line on standard input when
no argument is given, and prints one JSON line per result on standard output,
in input order, each at most 100ms after it comes (also while standard input
is still open). A failed task prints {"error": {...}} in its place. Tasks of
a kind no worker online serves wait for one; after a few seconds the command
says so on standard error.

The inputs of a built-in kind are decoded into its Go input type first (its
JSON field names, no unknown fields), and one of the wrong type is refused
before anything is submitted (exit 2). Inputs and results too large for a
message travel through the pool's values bucket; a named job's input must
fit in a message, and one that does not is refused the same way.
Tasks cancelled by 'submit cancel' print an error of type cancelled in their
place; the command then reads no more input and exits 5.

With --job NAME the map is a named job: its chunks, their starts and their
results are kept in JetStream, so the job runs on when the command is
interrupted or killed, and the same command run again resumes it: results
already stored print without running again, chunks queued or running are
awaited, and only inputs never published are published. Another input
under the same name is refused. Inputs go out in chunks of exactly
--chunksize (the last may be shorter), so that a resumed run chunks them
alike. With --job, --timeout bounds how long the command waits for
results (exit 3), and cancels nothing: the job's tasks run on. --retention
applies when the job is made; another for a job that exists is refused.
A map that has published all of its input says in the job's records that
its input ended. 'submit job NAME' shows the job's progress from any terminal, 'submit results NAME' prints
its results, 'submit cancel --job NAME' and 'submit delete NAME' end it.
With --embedded, --store DIR keeps the job between runs on this host (its
workers end with the command, and the next run resumes it).

Examples:
  submit map square 1 2 3 --embedded
  seq 1 10000 | submit map square --chunksize 100 --embedded --workers 4
  submit map sleep 100 200 --server nats://127.0.0.1:4222 --timeout 5s
  seq 1 1000000 | submit map square --chunksize 1000 --job squares --server nats://127.0.0.1:4222
`

const runUsage = `
Usage: submit run KIND ARG [flags]

Runs task KIND once with the JSON argument ARG and prints its result. The
argument of a built-in kind is decoded into its Go input type first, as for
'submit map'. A task of a kind no worker online serves waits for one; after a
few seconds the command says so on standard error.

Examples:
  submit run square 7 --embedded
  submit run say-hi '"ada"' --server nats://127.0.0.1:4222
`

type mapFlags struct {
	common
	chunksize  int
	buffersize int
	timeout    time.Duration
	quiet      bool
	job        string
	retention  time.Duration

	// noWorkerAfter is not a flag: it is how long tasks are outstanding
	// before the command looks for a worker online that serves their kind,
	// and warns if there is none.
	noWorkerAfter time.Duration
}

func runMap(ctx context.Context, args []string, io IO) int {
	f := mapFlags{noWorkerAfter: noWorkerAfter}
	return f.runMap(ctx, args, io)
}

func runOne(ctx context.Context, args []string, io IO) int {
	f := mapFlags{noWorkerAfter: noWorkerAfter}
	return f.runOne(ctx, args, io)
}

// runMap is 'submit map' with f's settings; the flags fill in the rest of f.
func (f *mapFlags) runMap(ctx context.Context, args []string, io IO) int {
	start := time.Now()
	fs := newFlagSet("map", mapUsage, io.Err)
	f.register(fs)
	fs.IntVar(&f.chunksize, "chunksize", 1, "inputs per chunk (one message, run in order by one worker), at least 1")
	fs.IntVar(&f.buffersize, "buffersize", executor.DefaultBuffersize, "chunks in flight ahead of the output, at least 1")
	fs.DurationVar(&f.timeout, "timeout", 0, "time limit for the whole map, counted from its start (0: none)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	fs.StringVar(&f.job, "job", "", "run the map as the named job NAME, which outlives the command and resumes when it runs again")
	fs.DurationVar(&f.retention, "retention", 0, "with --job: how long the job's records and results are kept (0: until 'submit delete')")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) == 0 {
		fmt.Fprintln(io.Err, "submit map: missing KIND")
		fs.Usage()
		return ExitUsage
	}
	kind, rawArgs := pos[0], pos[1:]
	if err := task.ValidateKind(kind); err != nil {
		fmt.Fprintln(io.Err, "submit map:", err)
		return ExitUsage
	}
	if err := f.validate(fs); err != nil {
		fmt.Fprintln(io.Err, "submit map:", err)
		return ExitUsage
	}
	switch {
	case f.chunksize < 1:
		fmt.Fprintf(io.Err, "submit map: --chunksize %d: want at least 1\n", f.chunksize)
		return ExitUsage
	case f.buffersize < 1:
		fmt.Fprintf(io.Err, "submit map: --buffersize %d: want at least 1\n", f.buffersize)
		return ExitUsage
	case f.timeout < 0:
		fmt.Fprintf(io.Err, "submit map: --timeout %v: want 0 (none) or more\n", f.timeout)
		return ExitUsage
	case f.retention < 0 || f.retention > 0 && f.retention < time.Second:
		fmt.Fprintf(io.Err, "submit map: --retention %v: want 0 (until deleted) or at least 1s\n", f.retention)
		return ExitUsage
	case f.retention > 0 && f.job == "":
		fmt.Fprintln(io.Err, "submit map: --retention: only with --job")
		return ExitUsage
	case f.job != "" && f.embedded && f.storeDir == "":
		fmt.Fprintln(io.Err, "submit map: --job with --embedded needs --store DIR, where the job is kept from one run to the next")
		return ExitUsage
	}
	if f.job != "" {
		if err := task.ValidateName(f.job); err != nil {
			fmt.Fprintf(io.Err, "submit map: --job %q: %s\n", f.job, nameWhy(err))
			return ExitUsage
		}
	}
	decode := inputDecoder(kind)
	var vals []any
	for i, a := range rawArgs {
		v, err := decode([]byte(a))
		if err != nil {
			fmt.Fprintln(io.Err, "submit:", &inputError{where: "argument " + strconv.Itoa(i+1), raw: []byte(a), err: err})
			return ExitUsage
		}
		vals = append(vals, v)
	}

	io.Err = syncWriter(io.Err) // shared with the warning about unserved kinds
	s, code := open(ctx, &f.common, io)
	if s == nil {
		return code
	}
	defer s.close()
	if f.job != "" {
		if code := s.attach(ctx, f.job, f.retention, io); code != ExitOK {
			return code
		}
	}
	st := &stream{ex: s.ex, t: task.New[any, any](kind), chunksize: f.chunksize, buffersize: f.buffersize,
		limit: inputLimit(s.nc.MaxPayload(), f.job != ""), where: "argument", steady: f.job != ""}
	if f.timeout > 0 {
		st.deadline = start.Add(f.timeout)
	}
	bar := newProgress(io, len(vals), !f.quiet && io.Terminal)
	defer bar.finish()
	done := make(chan struct{})
	defer close(done)
	var items <-chan item
	if len(rawArgs) > 0 {
		// Every argument is checked before any is submitted.
		for i, v := range vals {
			if err := st.check(i+1, v); err != nil {
				fmt.Fprintln(io.Err, "submit:", err)
				return ExitUsage
			}
		}
		st.checked = true
		items = argItems(vals)
	} else {
		st.where, st.ended = "line", bar.setTotal
		items = lineItems(io.In, decode, done)
	}

	out := newLineWriter(io.Out)
	defer out.flush()
	stopWarn := s.warnUnserved(ctx, kind, f.noWorkerAfter, io)
	defer stopWarn()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks, wait := st.run(runCtx, items)
	var failed, cancelled, timedOut bool
	var fatal func() int // the failure that ended the map, reported once every goroutine is done
	for c := range chunks {
		if c.err != nil {
			if fatal == nil {
				err := c.err
				fatal = func() int {
					if errors.Is(err, context.DeadlineExceeded) {
						fmt.Fprintln(io.Err, "submit map: timed out after", f.timeout)
						return ExitTimeout
					}
					fmt.Fprintln(io.Err, "submit:", err)
					return ExitUsage
				}
				cancel()
			}
			continue
		}
		for r := range c.results {
			if fatal != nil {
				continue // drained so that the chunk's goroutine ends
			}
			var te *task.Error
			switch err := r.err; {
			case err == nil:
				out.writeJSON(r.v)
				bar.add(false)
			case errors.As(err, &te):
				failed = true
				// A task cut off by the map's timeout makes the run a timeout.
				timedOut = timedOut || errors.Is(err, context.DeadlineExceeded)
				out.writeJSON(map[string]any{"error": errorJSON(te)})
				bar.add(true)
			case errors.Is(err, executor.ErrJobInput):
				fatal = func() int {
					fmt.Fprintf(io.Err, "submit map: %v: job %s was made with other inputs; run it with the same ones, or give another --job\n", err, f.job)
					return ExitUsage
				}
				cancel()
			case errors.Is(err, executor.ErrCancelled):
				// Cancelled by 'submit cancel': no more inputs are
				// submitted, and what was submitted before still
				// prints, in order.
				cancelled = true
				st.halt()
				out.writeJSON(map[string]any{"error": cancelledJSON(kind)})
				bar.add(true)
			default:
				cause := c
				fatal = func() int {
					switch {
					case errors.Is(err, broker.ErrTooLarge):
						fmt.Fprintln(io.Err, "submit:", st.tooLarge(cause, err))
						return ExitUsage
					case errors.Is(err, context.DeadlineExceeded):
						fmt.Fprintln(io.Err, "submit map: timed out after", f.timeout)
						return ExitTimeout
					}
					fmt.Fprintln(io.Err, "submit map:", err)
					return ExitUnavailable
				}
				cancel()
			}
		}
	}
	wait()
	werr := out.close()
	if fatal != nil {
		bar.finish()
		return fatal()
	}
	if job, ok := s.ex.(*executor.Job); ok && !cancelled {
		// Every input was read and published: the job's input ended
		// here, which 'submit results' and 'submit job' report.
		if err := job.EndInput(ctx); err != nil {
			fmt.Fprintln(io.Err, "submit map:", err)
			return ExitUnavailable
		}
	}
	if werr != nil {
		fmt.Fprintln(io.Err, "submit map:", werr)
		return ExitOutput
	}
	return outcome(failed, cancelled, timedOut)
}

// TypeCancelled is the error type of a task cancelled before it started, by
// 'submit cancel' (or a program's Future.Cancel).
const TypeCancelled = "cancelled"

func cancelledJSON(kind string) map[string]any {
	return map[string]any{"kind": kind, "type": TypeCancelled, "message": "cancelled before it started"}
}

// runOne is 'submit run' with f's settings; the flags fill in the rest of f.
func (f *mapFlags) runOne(ctx context.Context, args []string, io IO) int {
	fs := newFlagSet("run", runUsage, io.Err)
	f.register(fs)
	fs.DurationVar(&f.timeout, "timeout", 0, "time limit for the task (0: none)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != 2 {
		fmt.Fprintln(io.Err, "submit run: want KIND and one JSON ARG")
		fs.Usage()
		return ExitUsage
	}
	kind := pos[0]
	if err := task.ValidateKind(kind); err != nil {
		fmt.Fprintln(io.Err, "submit run:", err)
		return ExitUsage
	}
	if err := f.validate(fs); err != nil {
		fmt.Fprintln(io.Err, "submit run:", err)
		return ExitUsage
	}
	if f.timeout < 0 {
		fmt.Fprintf(io.Err, "submit run: --timeout %v: want 0 (none) or more\n", f.timeout)
		return ExitUsage
	}
	arg, err := inputDecoder(kind)([]byte(pos[1]))
	if err != nil {
		fmt.Fprintln(io.Err, "submit:", &inputError{where: "argument 1", raw: []byte(pos[1]), err: err})
		return ExitUsage
	}
	io.Err = syncWriter(io.Err) // shared with the warning about unserved kinds
	s, code := open(ctx, &f.common, io)
	if s == nil {
		return code
	}
	defer s.close()
	t := task.New[any, any](kind)
	st := stream{t: t, where: "argument", limit: inputLimit(s.nc.MaxPayload(), false)}
	if err := st.check(1, arg); err != nil {
		fmt.Fprintln(io.Err, "submit:", err)
		return ExitUsage
	}
	var opts []executor.SubmitOption
	wait := ctx
	if f.timeout > 0 {
		opts = append(opts, executor.SubmitTimeout(f.timeout))
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	fut, err := executor.Submit(ctx, s.ex, t, arg, opts...)
	if err != nil {
		fmt.Fprintln(io.Err, "submit run:", err)
		if errors.Is(err, broker.ErrTooLarge) {
			return ExitUsage
		}
		return ExitUnavailable
	}
	stopWarn := s.warnUnserved(ctx, kind, f.noWorkerAfter, io)
	v, err := fut.Result(wait)
	stopWarn()
	var te *task.Error
	switch {
	case err == nil:
		writeJSON(io.Out, v)
		return ExitOK
	case errors.As(err, &te):
		writeJSON(io.Out, map[string]any{"error": errorJSON(te)})
		fmt.Fprintln(io.Err, "submit run:", te)
		if errors.Is(err, context.DeadlineExceeded) {
			return ExitTimeout
		}
		return ExitTaskFailed
	case errors.Is(err, executor.ErrCancelled):
		writeJSON(io.Out, map[string]any{"error": cancelledJSON(kind)})
		fmt.Fprintln(io.Err, "submit run: the task was cancelled before it started")
		return ExitCancelled
	case errors.Is(err, context.DeadlineExceeded):
		fut.Cancel()
		fmt.Fprintln(io.Err, "submit run: timed out after", f.timeout)
		return ExitTimeout
	default:
		fmt.Fprintln(io.Err, "submit run:", err)
		return ExitUnavailable
	}
}

// session is the executor a command submits to, with a connection to its
// broker and the name of its pool, for looking up the workers online.
type session struct {
	ex    executor.Executor
	nc    *nats.Conn
	pool  string
	close func() // shuts the executor down and closes nc

	nats  *executor.NATS // the NATS executor, when the session has one
	named bool           // ex is a named job: close cancels nothing
}

// shutdown is how close shuts the session's executor down: it waits for
// the running tasks and cancels those not started. A named job's tasks are
// the job's: they run on when the command ends (done, timed out or
// interrupted) and a run of it again resumes them, so nothing is cancelled
// and none is waited for, but the job's record is given at most 5s to say
// that no producer is attached.
func (s *session) shutdown(ctx context.Context) (sctx context.Context, wait, cancelFutures bool, done func()) {
	if !s.named {
		return ctx, true, true, func() {}
	}
	sctx, done = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	return sctx, false, false, done
}

// attach makes the session's executor the named job name, for 'submit map
// --job'. On failure it has printed why and returns the exit code.
func (s *session) attach(ctx context.Context, name string, retention time.Duration, io IO) int {
	job, err := attachJob(ctx, s.nats, name, retention, io)
	if err != nil {
		fmt.Fprintln(io.Err, "submit map:", err)
		if errors.Is(err, executor.ErrInvalidOption) {
			return ExitUsage
		}
		return ExitUnavailable
	}
	s.ex, s.named = job, true
	return ExitOK
}

// open returns the executor the flags ask for: a process pool on an embedded
// broker, or a NATS executor on a connection. On failure it has printed why
// and returns a nil session and the exit code. The session's close cancels
// the tasks not started and waits for the running ones, unless ctx ends (an
// interrupt): then it returns at once, killing an embedded pool's workers.
func open(ctx context.Context, c *common, io IO) (*session, int) {
	if c.embedded {
		p, err := processpool.New(ctx, c.workers, processpool.Concurrency(c.perWorker),
			processpool.StoreDir(c.storeDir), executor.NATSPoolConfig(c.poolConfig()))
		if err != nil {
			fmt.Fprintln(io.Err, "submit: start embedded pool:", err)
			if errors.Is(err, executor.ErrInvalidOption) {
				return nil, ExitUsage
			}
			return nil, ExitUnavailable
		}
		nc, err := broker.Connect(broker.ConnectOptions{URL: p.URL(), Name: "jetpool-submit"})
		if err != nil {
			p.Shutdown(ctx, true, true)
			fmt.Fprintln(io.Err, "submit: connect to embedded pool:", err)
			return nil, ExitUnavailable
		}
		// A process pool serves the default pool of its own broker.
		s := &session{ex: p, nc: nc, pool: broker.DefaultPool, nats: p.NATS}
		s.close = func() {
			nc.Close() // before its server stops, so that it does not reconnect
			sctx, wait, cancelFutures, done := s.shutdown(ctx)
			defer done()
			p.Shutdown(sctx, wait, cancelFutures)
		}
		return s, ExitOK
	}
	c.conn.Name = "jetpool-submit"
	// A lost connection is said on stderr, so that a job that pauses while
	// the connection moves to another server does not pause in silence.
	c.conn.Logger = stderrLogger(io.Err)
	nc, err := broker.Connect(c.conn)
	if err != nil {
		fmt.Fprintln(io.Err, "submit:", err)
		if errors.Is(err, broker.ErrInvalidConnect) {
			return nil, ExitUsage
		}
		return nil, ExitUnavailable
	}
	opts := []executor.NATSOption{executor.NATSPool(c.pool), executor.NATSPrefix(c.prefix), executor.NATSPoolConfig(c.poolConfig())}
	if c.name != "" {
		opts = append(opts, executor.NATSName(c.name))
	}
	ex, err := executor.NewNATS(ctx, nc, opts...)
	if err != nil {
		nc.Close()
		fmt.Fprintln(io.Err, "submit:", err)
		if errors.Is(err, executor.ErrInvalidOption) || errors.Is(err, broker.ErrInvalidName) {
			return nil, ExitUsage
		}
		return nil, ExitUnavailable
	}
	s := &session{ex: ex, nc: nc, pool: c.pool, nats: ex}
	s.close = func() {
		sctx, wait, cancelFutures, done := s.shutdown(ctx)
		defer done()
		ex.Shutdown(sctx, wait, cancelFutures)
		nc.Drain()
	}
	return s, ExitOK
}

func errorJSON(te *task.Error) map[string]any {
	m := map[string]any{"kind": te.Kind, "type": te.Type, "message": te.Message}
	if te.Stack != "" {
		m["stack"] = te.Stack
	}
	return m
}

// outcome is the exit code of a run whose tasks all reported: a
// cancellation wins over a timeout, which wins over a failure.
func outcome(failed, cancelled, timedOut bool) int {
	switch {
	case cancelled:
		return ExitCancelled
	case timedOut:
		return ExitTimeout
	case failed:
		return ExitTaskFailed
	}
	return ExitOK
}

// stderrLogger logs connection events to w as "submit: " lines of text,
// without times: a person reads them beside the results.
func stderrLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch {
			case len(groups) > 0:
			case a.Key == slog.TimeKey:
				return slog.Attr{}
			case a.Key == slog.MessageKey:
				return slog.String(a.Key, "submit: "+a.Value.String())
			}
			return a
		},
	}))
}
