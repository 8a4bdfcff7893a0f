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
	"sort"
	"strings"
	"syscall"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Exit codes: a script can tell success from task failures from timeouts.
const (
	ExitOK          = 0 // every task succeeded
	ExitTaskFailed  = 1 // at least one task failed; the others' results were printed
	ExitUsage       = 2 // bad command line or input
	ExitTimeout     = 3 // the timeout passed before every result came
	ExitUnavailable = 4 // the broker could not be reached or the pool not set up
	ExitInterrupted = 130
)

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
}

func commands() []command {
	return []command{
		{"map", "run a task over many inputs, results in input order", runMap},
		{"run", "run one task and print its result", runOne},
		{"download", "download URLs into a directory, one task per file", runDownload},
		{"copy", "copy files into a directory, one task per file", runCopy},
		{"status", "show a pool's queues and the workers online", runStatus},
		{"cancel", "cancel a pool's pending work", runCancel},
		{"kinds", "list the built-in task kinds", runKinds},
		{"bench", "measure throughput and latency on this host", runBench},
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
			if ctx.Err() != nil && code != ExitOK {
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
	fmt.Fprintln(w, "\nExit codes: 0 success, 1 a task failed, 2 usage, 3 timeout, 4 broker unavailable.")
}

func runKinds(_ context.Context, args []string, io IO) int {
	fs := newFlagSet("kinds", "Usage: submit kinds\n\nLists the tasks the stock worker serves.", io.Err)
	if _, err := parseInterspersed(fs, args); err != nil {
		return usageErr(err)
	}
	kinds := builtin.Kinds()
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(io.Out, "%-10s %s\n", k, kinds[k])
	}
	return ExitOK
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
