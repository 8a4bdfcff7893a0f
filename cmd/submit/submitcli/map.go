package submitcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

const mapUsage = `
Usage: submit map KIND [ARG...] [flags]

Runs task KIND once per argument, or once per JSON line on standard input when
no argument is given, and prints one JSON line per result on standard output,
in input order. A failed task prints {"error": {...}} in its place. Tasks of a
kind no worker online serves wait for one; after a few seconds the command
says so on standard error.

Examples:
  submit map square 1 2 3 --embedded
  seq 1 10000 | submit map square --chunksize 100 --embedded --workers 4
  submit map sleep 100 200 --server nats://127.0.0.1:4222 --timeout 5s
`

const runUsage = `
Usage: submit run KIND ARG [flags]

Runs task KIND once with the JSON argument ARG and prints its result. A task
of a kind no worker online serves waits for one; after a few seconds the
command says so on standard error.

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
	fs := newFlagSet("map", mapUsage, io.Err)
	f.register(fs)
	fs.IntVar(&f.chunksize, "chunksize", 1, "inputs per chunk (one message, run in order by one worker)")
	fs.IntVar(&f.buffersize, "buffersize", executor.DefaultBuffersize, "chunks in flight ahead of the output")
	fs.DurationVar(&f.timeout, "timeout", 0, "time limit for the whole map, counted from its start (0: none)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
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
	opts := []executor.MapOption{executor.MapChunksize(max(f.chunksize, 0)), executor.MapBuffersize(max(f.buffersize, 0))}
	if f.chunksize < 1 || f.buffersize < 1 || f.timeout < 0 {
		fmt.Fprintln(io.Err, "submit map: --chunksize and --buffersize must be at least 1 and --timeout not negative")
		return ExitUsage
	}
	if f.timeout > 0 {
		opts = append(opts, executor.MapTimeout(f.timeout))
	}

	var inputs iter.Seq[any]
	var total int
	var inputErr error
	if len(rawArgs) > 0 {
		vals := make([]any, len(rawArgs))
		for i, a := range rawArgs {
			if vals[i], err = parseJSON([]byte(a)); err != nil {
				fmt.Fprintf(io.Err, "submit map: argument %d: %v\n", i+1, err)
				return ExitUsage
			}
		}
		inputs, total = func(yield func(any) bool) {
			for _, v := range vals {
				if !yield(v) {
					return
				}
			}
		}, len(vals)
	} else {
		inputs = jsonLines(io.In, &inputErr)
	}

	io.Err = syncWriter(io.Err) // shared with the warning about unserved kinds
	s, code := open(ctx, &f.common, io)
	if s == nil {
		return code
	}
	defer s.close()

	bar := newProgress(io, total, !f.quiet && io.Terminal)
	defer bar.finish()
	out := bufio.NewWriter(io.Out)
	defer out.Flush()
	failed, timedOut := false, false
	stopWarn := s.warnUnserved(ctx, kind, f.noWorkerAfter, io)
	defer stopWarn()
	for v, err := range executor.Map(ctx, s.ex, task.New[any, any](kind), inputs, opts...) {
		var te *task.Error
		switch {
		case err == nil:
			writeJSON(out, v)
			bar.add(false)
		case errors.As(err, &te):
			failed = true
			// A task cut off by the map's timeout makes the run a timeout.
			timedOut = timedOut || errors.Is(err, context.DeadlineExceeded)
			writeJSON(out, map[string]any{"error": errorJSON(te)})
			bar.add(true)
		default:
			out.Flush()
			bar.finish()
			fmt.Fprintln(io.Err, "submit map:", err)
			if errors.Is(err, context.DeadlineExceeded) {
				return ExitTimeout
			}
			return ExitUnavailable
		}
		if bar.enabled {
			out.Flush()
		}
	}
	if inputErr != nil {
		out.Flush()
		bar.finish()
		fmt.Fprintln(io.Err, "submit map: input:", inputErr)
		return ExitUsage
	}
	return outcome(failed, timedOut)
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
	if err := task.ValidateKind(pos[0]); err != nil {
		fmt.Fprintln(io.Err, "submit run:", err)
		return ExitUsage
	}
	arg, err := parseJSON([]byte(pos[1]))
	if err != nil {
		fmt.Fprintln(io.Err, "submit run: argument:", err)
		return ExitUsage
	}
	if f.timeout < 0 {
		fmt.Fprintln(io.Err, "submit run: --timeout must not be negative")
		return ExitUsage
	}
	io.Err = syncWriter(io.Err) // shared with the warning about unserved kinds
	s, code := open(ctx, &f.common, io)
	if s == nil {
		return code
	}
	defer s.close()
	var opts []executor.SubmitOption
	wait := ctx
	if f.timeout > 0 {
		opts = append(opts, executor.SubmitTimeout(f.timeout))
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	fut, err := executor.Submit(ctx, s.ex, task.New[any, any](pos[0]), arg, opts...)
	if err != nil {
		fmt.Fprintln(io.Err, "submit run:", err)
		return ExitUnavailable
	}
	stopWarn := s.warnUnserved(ctx, pos[0], f.noWorkerAfter, io)
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
}

// open returns the executor the flags ask for: a process pool on an embedded
// broker, or a NATS executor on a connection. On failure it has printed why
// and returns a nil session and the exit code. The session's close cancels
// the tasks not started and waits for the running ones, unless ctx ends (an
// interrupt): then it returns at once, killing an embedded pool's workers.
func open(ctx context.Context, c *common, io IO) (*session, int) {
	if c.embedded {
		if c.workers < 1 || c.workers > executor.MaxProcesses || c.perWorker < 1 {
			fmt.Fprintf(io.Err, "submit: --workers must be from 1 to %d and --worker-concurrency at least 1\n", executor.MaxProcesses)
			return nil, ExitUsage
		}
		p, err := executor.NewProcessPool(ctx, c.workers, executor.ProcessConcurrency(c.perWorker),
			executor.ProcessStoreDir(c.storeDir), executor.NATSPoolConfig(c.poolConfig()))
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
		return &session{ex: p, nc: nc, pool: broker.DefaultPool, close: func() {
			nc.Close() // before its server stops, so that it does not reconnect
			p.Shutdown(ctx, true, true)
		}}, ExitOK
	}
	c.conn.Name = "jetpool-submit"
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
	return &session{ex: ex, nc: nc, pool: c.pool, close: func() {
		ex.Shutdown(ctx, true, true)
		nc.Drain()
	}}, ExitOK
}

// jsonLines yields one parsed JSON value per non-empty line of r. A line that
// is not JSON ends the sequence and sets *errp.
func jsonLines(r interface{ Read([]byte) (int, error) }, errp *error) iter.Seq[any] {
	return func(yield func(any) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		line := 0
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			v, err := parseJSON(b)
			if err != nil {
				*errp = fmt.Errorf("line %d: %w", line, err)
				return
			}
			if !yield(v) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			*errp = err
		}
	}
}

// parseJSON decodes one JSON value, keeping integers as int64 so workers
// decode them into integer inputs. A bare word that is not JSON is taken as
// a string, so `submit map say-hi ada bob` works.
func parseJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		if isBareWord(b) {
			return string(b), nil
		}
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	return normalize(v), nil
}

func isBareWord(b []byte) bool {
	s := string(b)
	return s != "" && !strings.ContainsAny(s, "{}[]\"") && !strings.HasPrefix(s, "-") && (s[0] < '0' || s[0] > '9')
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

func errorJSON(te *task.Error) map[string]any {
	m := map[string]any{"kind": te.Kind, "type": te.Type, "message": te.Message}
	if te.Stack != "" {
		m["stack"] = te.Stack
	}
	return m
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) {
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"type": task.TypeEncode, "message": err.Error()}})
	}
	w.Write(append(b, '\n'))
}

// jsonable turns msgpack's decoded maps with non-string keys into ones JSON
// can hold.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case map[string]any:
		for k, val := range x {
			x[k] = jsonable(val)
		}
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
	}
	return v
}

// outcome is the exit code of a run whose tasks all reported: a timeout
// wins over a failure.
func outcome(failed, timedOut bool) int {
	switch {
	case timedOut:
		return ExitTimeout
	case failed:
		return ExitTaskFailed
	}
	return ExitOK
}
