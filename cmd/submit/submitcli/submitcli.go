// Package submitcli is the producer command line, cmd/submit: it submits
// tasks by kind with JSON arguments to a pool and prints JSON results.
package submitcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Exit codes: a script can tell success from task failures from timeouts.
// 'submit --help' and the README list them.
const (
	ExitOK          = 0   // every task succeeded
	ExitTaskFailed  = 1   // at least one task failed; the others' results were printed
	ExitUsage       = 2   // a bad command line, setting or input; an input refused was not submitted
	ExitTimeout     = 3   // the timeout passed before every result came
	ExitUnavailable = 4   // the broker could not be reached or the pool not set up
	ExitCancelled   = 5   // tasks were cancelled before they started (submit cancel); the others' results were printed
	ExitNoWorkers   = 6   // submit kinds, submit metrics: no worker of the pool answered
	ExitOutput      = 7   // the results could not all be written to standard output (closed, full)
	ExitIncomplete  = 8   // submit results: the job's input did not end; the results of what was published were printed
	ExitInterrupted = 130 // SIGINT or SIGTERM: tasks not started are cancelled, running ones are left to finish
)

// exitCode is an exit code and what it means.
type exitCode struct {
	code int
	what string
}

// exitCodes describes each exit code, for the usage text.
func exitCodes() []exitCode {
	return []exitCode{
		{ExitOK, "success"},
		{ExitTaskFailed, "a task failed (its line is {\"error\": {...}}); the others printed"},
		{ExitUsage, "bad command line, setting or input"},
		{ExitTimeout, "--timeout passed"},
		{ExitUnavailable, "broker unavailable"},
		{ExitCancelled, "tasks cancelled by 'submit cancel' before they started (submit results: the job holds cancelled tasks)"},
		{ExitNoWorkers, "'submit kinds', 'submit metrics': no worker online"},
		{ExitOutput, "the results could not all be written (stdout closed or full)"},
		{ExitIncomplete, "'submit results': the job's input did not end (its producer stopped before publishing all of it)"},
		{ExitInterrupted, "interrupted (SIGINT, SIGTERM)"},
	}
}

// IO is where a command reads and writes.
type IO struct {
	In       io.Reader
	Out      io.Writer
	Err      io.Writer
	Terminal bool // Err is a terminal: show progress bars
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, io IO) int
	// serves is set for a command that runs until a signal ends it: the
	// signal is its normal end, not an interruption.
	serves bool
}

func commands() []command {
	return []command{
		{name: "map", summary: "run a task over many inputs, results in input order", run: runMap},
		{name: "run", summary: "run one task and print its result", run: runOne},
		{name: "download", summary: "download URLs into a directory, one task per file", run: runDownload},
		{name: "copy", summary: "copy files into a directory, one task per file", run: runCopy},
		{name: "status", summary: "show a pool's queues and the workers online", run: runStatus},
		{name: "cancel", summary: "cancel a pool's pending work, or a named job's", run: runCancel},
		{name: "jobs", summary: "list the named jobs and their progress", run: runJobs},
		{name: "job", summary: "show a named job's progress, once or --watch", run: runJob, serves: true},
		{name: "results", summary: "print a named job's results in input order", run: runResults},
		{name: "delete", summary: "delete a named job and its results", run: runDelete},
		{name: "kinds", summary: "list the kinds the workers online serve", run: runKinds},
		{name: "metrics", summary: "print or serve the Prometheus metrics of a pool's workers", run: runMetrics, serves: true},
		{name: "bench", summary: "measure throughput and latency on this host", run: runBench},
	}
}

// Main runs the command line and returns the process exit code. When this
// process was started as a worker of a --embedded pool it serves as that
// worker instead.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if worker.IsChild() {
		reg := task.NewRegistry()
		builtin.Register(reg, builtin.Config{})
		if err := worker.ServeChild(reg); err != nil {
			fmt.Fprintln(stderr, "worker:", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	io := IO{In: stdin, Out: stdout, Err: stderr, Terminal: isTerminal(stderr)}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			code := c.run(ctx, args[1:], io)
			if ctx.Err() != nil && (code != ExitOK || !c.serves) {
				return ExitInterrupted
			}
			return code
		}
	}
	fmt.Fprintf(stderr, "submit: unknown command %q\n\n", args[0])
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "submit runs tasks on a jetpool worker pool over NATS JetStream.")
	fmt.Fprintln(w, "\nUsage: submit COMMAND [flags] [args]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'submit COMMAND --help' for a command's flags and examples.")
	fmt.Fprintln(w, "\nExit codes:")
	for _, c := range exitCodes() {
		fmt.Fprintf(w, "  %-4d %s\n", c.code, c.what)
	}
}

func usageErr(err error) int {
	if errors.Is(err, errHelp) || strings.Contains(err.Error(), "help requested") {
		return ExitOK
	}
	return ExitUsage
}

var errHelp = errors.New("help requested")

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
