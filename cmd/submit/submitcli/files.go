package submitcli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

const downloadUsage = `
Usage: submit download URL... --to DIR [flags]

Downloads each URL (or each line of standard input when no URL is given)
into DIR on the worker that runs it, one task per file, and prints one JSON
line per file in input order: its source, path, size, SHA-256 and time, or
its error. Exit code 1 if any file failed.
` + destRules + `
Examples:
  submit download https://example.org/a.csv https://example.org/b.csv --to /data/in --embedded
  cat urls.txt | submit download --to /data/in --server nats://127.0.0.1:4222 --timeout 10m
`

const copyUsage = `
Usage: submit copy SRC... --to DIR [flags]

Copies each SRC file (or each line of standard input when none is given)
into DIR, on the worker that runs it, one task per file, and prints one JSON
line per file in input order: its source, path, size, SHA-256 and time, or
its error. Exit code 1 if any file failed.
` + destRules + `
Examples:
  submit copy /data/in/a.csv /data/in/b.csv --to /data/out --embedded
  ls /data/in/*.csv | submit copy --to /data/out --server nats://127.0.0.1:4222
`

// destRules is the part of download's and copy's help on where files go.
const destRules = `
DIR is a directory, created with its parents if missing; if something else
is there, every file fails (type not_directory). A file is never replaced:
if DIR holds one of that name with the same bytes, it counts as done (so a
command can be run again); with other bytes, that file fails (type exists)
and both are left as they were. Sources that would write the same name in
DIR are refused after the first (type duplicate_name) and not submitted. A
file's line is printed only once it is synced to disk with that SHA-256.
`

type fileFlags struct {
	common
	to      string
	timeout time.Duration
	quiet   bool
}

// register sets up the command's flags and returns its parser, which yields
// the sources, or ok false and the exit code after saying what is wrong.
func (f *fileFlags) register(name, usage string, io IO) func([]string) (sources []string, code int, ok bool) {
	fs := newFlagSet(name, usage, io.Err)
	f.common.register(fs)
	fs.StringVar(&f.to, "to", "", "destination directory, on the workers' hosts, created if missing (required)")
	fs.DurationVar(&f.timeout, "timeout", 0, "time limit for the whole job, counted from its start (0: none)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	return func(args []string) ([]string, int, bool) {
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return nil, usageErr(err), false
		}
		if f.to == "" {
			fmt.Fprintf(io.Err, "submit %s: missing --to DIR\n", name)
			return nil, ExitUsage, false
		}
		if err := f.validate(fs); err != nil {
			fmt.Fprintf(io.Err, "submit %s: %v\n", name, err)
			return nil, ExitUsage, false
		}
		if f.timeout < 0 {
			fmt.Fprintf(io.Err, "submit %s: --timeout %v: want 0 (none) or more\n", name, f.timeout)
			return nil, ExitUsage, false
		}
		if len(pos) == 0 {
			var lines []string
			sc := bufio.NewScanner(io.In)
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); l != "" {
					lines = append(lines, l)
				}
			}
			if err := sc.Err(); err != nil {
				fmt.Fprintf(io.Err, "submit %s: input: %v\n", name, err)
				return nil, ExitUsage, false
			}
			pos = lines
		}
		if len(pos) == 0 {
			fmt.Fprintf(io.Err, "submit %s: nothing to do: give sources as arguments or lines on standard input\n", name)
			return nil, ExitUsage, false
		}
		// Workers of an embedded pool share this directory; elsewhere a
		// relative path would mean the worker's own.
		if f.embedded {
			f.to, _ = filepath.Abs(f.to)
		}
		return pos, ExitOK, true
	}
}

func runDownload(ctx context.Context, args []string, io IO) int {
	var f fileFlags
	parse := f.register("download", downloadUsage, io)
	urls, code, ok := parse(args)
	if !ok {
		return code
	}
	inputs := make([]builtin.DownloadArgs, len(urls))
	names := make([]string, len(urls))
	for i, u := range urls {
		inputs[i] = builtin.DownloadArgs{URL: u, Dest: f.to}
		names[i], _ = inputs[i].FileName() // a bad URL fails in its task
	}
	return runFiles(ctx, io, "download", &f, builtin.Download, urls, inputs, names)
}

func runCopy(ctx context.Context, args []string, io IO) int {
	var f fileFlags
	parse := f.register("copy", copyUsage, io)
	srcs, code, ok := parse(args)
	if !ok {
		return code
	}
	inputs := make([]builtin.CopyArgs, len(srcs))
	names := make([]string, len(srcs))
	for i, s := range srcs {
		if f.embedded {
			s, _ = filepath.Abs(s)
		}
		inputs[i] = builtin.CopyArgs{Src: s, Dest: f.to}
		names[i], _ = inputs[i].FileName() // a source that names no file fails in its task
	}
	return runFiles(ctx, io, "copy", &f, builtin.Copy, srcs, inputs, names)
}

// fileLine is one file's outcome as printed.
type fileLine struct {
	Source string `json:"source"`
	builtin.FileResult
}

// TypeDuplicateName is the error type of a file input refused without being
// submitted, since an earlier input writes a file of the same name.
const TypeDuplicateName = "duplicate_name"

// runFiles runs one task per file and prints each file's line in order.
// names[i] is the name inputs[i] writes in the destination, "" if it is not
// known before the task runs. An input whose name an earlier one already
// has is refused, with an error line and no task, since only one of the two
// files could be kept.
func runFiles[In any](ctx context.Context, io IO, name string, f *fileFlags, t task.Task[In, builtin.FileResult], sources []string, inputs []In, names []string) int {
	refused := make([]*task.Error, len(inputs))
	var submit []In
	var submitted []int // the index in inputs of each of submit
	first := make(map[string]int)
	for i, n := range names {
		if j, dup := first[n]; dup {
			refused[i] = &task.Error{Kind: t.Kind(), Type: TypeDuplicateName, Message: fmt.Sprintf(
				"%s: not submitted: %s, given before it, also writes %s", name, sources[j], filepath.Join(f.to, n))}
			continue
		}
		if n != "" {
			first[n] = i
		}
		submit = append(submit, inputs[i])
		submitted = append(submitted, i)
	}
	io.Err = syncWriter(io.Err) // shared with the warning about unserved kinds
	s, code := open(ctx, &f.common, io)
	if s == nil {
		return code
	}
	defer s.close()
	var opts []executor.MapOption
	if f.timeout > 0 {
		opts = append(opts, executor.MapTimeout(f.timeout))
	}
	bar := newProgress(io, len(inputs), !f.quiet && io.Terminal)
	defer bar.finish()
	out := newLineWriter(io.Out)
	defer out.flush()
	var failed, cancelled, timedOut bool
	next := 0
	// printRefused prints the lines of the refused inputs before index end.
	printRefused := func(end int) {
		for ; next < end; next++ {
			failed = true
			out.writeJSON(map[string]any{"source": sources[next], "error": errorJSON(refused[next])})
			bar.add(true)
		}
	}
	stopWarn := s.warnUnserved(ctx, t.Kind(), noWorkerAfter, io)
	defer stopWarn()
	// Once a task comes back cancelled ('submit cancel'), the inputs not
	// yet submitted are not.
	submitting := func(yield func(In) bool) {
		for _, in := range submit {
			if cancelled || !yield(in) {
				return
			}
		}
	}
	k := 0
	for res, err := range executor.Map(ctx, s.ex, t, submitting, opts...) {
		i := submitted[k]
		printRefused(i)
		var te *task.Error
		switch {
		case err == nil:
			out.writeJSON(fileLine{Source: sources[i], FileResult: res})
			bar.add(false)
		case errors.As(err, &te):
			failed = true
			timedOut = timedOut || errors.Is(err, context.DeadlineExceeded)
			out.writeJSON(map[string]any{"source": sources[i], "error": errorJSON(te)})
			bar.add(true)
		case errors.Is(err, executor.ErrCancelled):
			cancelled = true
			out.writeJSON(map[string]any{"source": sources[i], "error": cancelledJSON(t.Kind())})
			bar.add(true)
		default:
			out.flush()
			bar.finish()
			fmt.Fprintf(io.Err, "submit %s: %v\n", name, err)
			if errors.Is(err, context.DeadlineExceeded) {
				return ExitTimeout
			}
			if errors.Is(err, broker.ErrTooLarge) {
				return ExitUsage
			}
			return ExitUnavailable
		}
		next, k = i+1, k+1
	}
	if !cancelled {
		printRefused(len(inputs))
	}
	if err := out.close(); err != nil {
		fmt.Fprintf(io.Err, "submit %s: %v\n", name, err)
		return ExitOutput
	}
	return outcome(failed, cancelled, timedOut)
}
