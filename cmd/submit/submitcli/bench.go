package submitcli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/processpool"
	"github.com/jetpool/jetpool/internal/bench"
)

const benchUsage = `
Usage: submit bench [flags]

Measures a pool on this host (an embedded broker and an in-process worker)
against the raw JetStream ceiling in the same run, and, with --python, runs
Python's ProcessPoolExecutor on the same workloads. Prints one line per figure.
With --runs N it measures everything N times, each run in a process of its
own, and ends with each figure's median and range; ratios are taken within
each run.

Examples:
  submit bench
  submit bench --python bench/processpool.py --scaling
  submit bench --tasks 5000 --map-items 100000 --memory-items 0
  submit bench --runs 5 --python bench/processpool.py --scaling
`

func runBench(ctx context.Context, args []string, io IO) int {
	fs := newFlagSet("bench", benchUsage, io.Err)
	var o benchOptions
	fs.IntVar(&o.tasks, "tasks", 20_000, "tasks for the submit throughput figure")
	fs.IntVar(&o.mapItems, "map-items", 1_000_000, "items for the map figure")
	fs.IntVar(&o.chunk, "chunksize", 1000, "chunk size of the map figures")
	fs.IntVar(&o.samples, "latency-samples", 2000, "sequential tasks for the latency figures")
	fs.IntVar(&o.memItems, "memory-items", 10_000_000, "items of the streamed map whose peak memory is measured (0: skip)")
	fs.IntVar(&o.concurrency, "concurrency", 256, "chunks the in-process worker runs at once (square is trivial: the slots bound the chunks in flight, not CPU use)")
	fs.StringVar(&o.python, "python", "", "run this Python script (bench/processpool.py) on the same workloads and print ratios")
	fs.BoolVar(&o.scaling, "scaling", false, "also measure sleep-bound scaling over 4 worker processes x 16 slots")
	fs.IntVar(&o.scalingTasks, "scaling-tasks", 32_000, "10ms tasks of the scaling figure (32000: 5s of ideal time)")
	runs := fs.Int("runs", 1, "repeat everything this many times, each run in a process of its own, then print each figure's median and range")
	if _, err := parseInterspersed(fs, args); err != nil {
		return usageErr(err)
	}
	if o.tasks < 1 || o.mapItems < 1 || o.chunk < 1 || o.samples < 1 || o.memItems < 0 || o.concurrency < 1 || o.scalingTasks < 64 || *runs < 1 {
		fmt.Fprintln(io.Err, "submit bench: counts must be positive")
		return ExitUsage
	}
	if *runs == 1 {
		return benchOnce(ctx, o, io)
	}
	all, code := benchRuns(ctx, args, *runs, io)
	if code != ExitOK {
		return code
	}
	fmt.Fprintf(io.Out, "# median (min-max) of %d runs\n", *runs)
	for _, s := range bench.Summarize(all) {
		fmt.Fprintln(io.Out, s)
	}
	return ExitOK
}

// benchRuns runs bench with args once per run, each in a process of its own
// so that no run's memory figure or heap carries what an earlier run left,
// echoes the runs' lines and returns their figures.
func benchRuns(ctx context.Context, args []string, runs int, io IO) ([][]bench.Figure, int) {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(io.Err, "submit bench:", err)
		return nil, ExitUnavailable
	}
	// The last --runs given is the one that counts.
	args = append(append([]string{"bench"}, args...), "--runs", "1")
	var all [][]bench.Figure
	for i := range runs {
		fmt.Fprintf(io.Out, "# run %d of %d\n", i+1, runs)
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Stderr = io.Err
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			fmt.Fprintln(io.Err, "submit bench:", err)
			return nil, ExitUnavailable
		}
		var figs []bench.Figure
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(io.Out, sc.Text())
			if f, ok := bench.ParseFigure(sc.Text()); ok {
				figs = append(figs, f)
			}
		}
		if err := cmd.Wait(); err != nil {
			fmt.Fprintf(io.Err, "submit bench: run %d: %v\n", i+1, err)
			return nil, ExitUnavailable
		}
		all = append(all, figs)
	}
	return all, ExitOK
}

// benchOptions are bench's flags but --runs.
type benchOptions struct {
	tasks, mapItems, chunk, samples, memItems, concurrency, scalingTasks int
	python                                                               string
	scaling                                                              bool
}

// benchOnce measures every figure once on a fresh embedded broker and
// prints each as it is measured, then the ratios.
func benchOnce(ctx context.Context, o benchOptions, io IO) int {
	env, err := bench.StartEnv(ctx, o.concurrency)
	if err != nil {
		fmt.Fprintln(io.Err, "submit bench:", err)
		return ExitUnavailable
	}
	defer env.Close()
	fmt.Fprintf(io.Out, "# %s, %d CPUs, %s\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	print := func(figs ...bench.Figure) {
		for _, f := range figs {
			fmt.Fprintln(io.Out, f)
		}
	}
	ratio := func(name string, num, den bench.Figure) {
		print(bench.Figure{Name: name, Value: num.Value / den.Value, Unit: "x"})
	}
	// The figures the ratios are taken of, as the steps measure them.
	var submit, batched, mapped, rawBatched, namedSubmit, namedMap bench.Figure
	var ceiling, latency []bench.Figure // throughput, p50, p99; p50, p99
	one := func(f bench.Figure, err error) ([]bench.Figure, error) { return []bench.Figure{f}, err }
	steps := []func() ([]bench.Figure, error){
		func() ([]bench.Figure, error) {
			if o.memItems == 0 {
				return nil, nil
			}
			return one(bench.MapMemory(ctx, env.Ex, o.memItems, o.chunk))
		},
		func() (figs []bench.Figure, err error) {
			ceiling, err = bench.RawCeiling(ctx, env.Srv.ClientURL(), o.tasks, o.samples)
			return ceiling, err
		},
		func() (figs []bench.Figure, err error) {
			submit, err = bench.SubmitThroughput(ctx, env.Ex, o.tasks)
			return one(submit, err)
		},
		func() ([]bench.Figure, error) {
			ex, err := env.NewExecutor(ctx, executor.NATSAutoBatch(o.chunk))
			if err != nil {
				return nil, err
			}
			batched, err = bench.SubmitThroughput(ctx, ex, o.tasks)
			batched.Name = fmt.Sprintf("submit->result, NATSAutoBatch(%d)", o.chunk)
			return one(batched, err)
		},
		func() (figs []bench.Figure, err error) {
			mapped, err = bench.MapThroughput(ctx, env.Ex, o.mapItems, o.chunk)
			return one(mapped, err)
		},
		func() (figs []bench.Figure, err error) {
			rawBatched, err = bench.RawBatchCeiling(ctx, env.Srv.ClientURL(), o.mapItems, o.chunk)
			return one(rawBatched, err)
		},
		func() (figs []bench.Figure, err error) {
			latency, err = bench.Latency(ctx, env.Ex, o.samples)
			return latency, err
		},
		func() (figs []bench.Figure, err error) {
			namedSubmit, err = bench.JobSubmitThroughput(ctx, env.Ex, o.tasks)
			return one(namedSubmit, err)
		},
		func() (figs []bench.Figure, err error) {
			namedMap, err = bench.JobMapThroughput(ctx, env.Ex, o.mapItems, o.chunk)
			return one(namedMap, err)
		},
		func() ([]bench.Figure, error) {
			// A job 90% done, in whole chunks, resumed.
			done := o.mapItems * 9 / 10 / o.chunk * o.chunk
			if done == 0 || done >= o.mapItems {
				return nil, nil
			}
			return bench.JobResume(ctx, env, o.mapItems, done, o.chunk)
		},
	}
	if o.scaling {
		steps = append(steps, func() ([]bench.Figure, error) { return benchScaling(ctx, o.scalingTasks) })
	}
	for _, step := range steps {
		figs, err := step()
		if err != nil {
			fmt.Fprintln(io.Err, "submit bench:", err)
			return ExitUnavailable
		}
		print(figs...)
	}
	ratio("submit throughput / raw ceiling", submit, ceiling[0])
	ratio("latency p50 / raw ceiling p50", latency[0], ceiling[1])
	ratio("map throughput / batched raw ceiling", mapped, rawBatched)
	ratio("named job submit / submit", namedSubmit, submit)
	ratio("named job map / map", namedMap, mapped)
	if o.python != "" {
		py, err := runPython(ctx, o.python, o.tasks, o.mapItems, o.chunk)
		if err != nil {
			fmt.Fprintln(io.Err, "submit bench: python:", err)
			return ExitUnavailable
		}
		if len(py) != 2 {
			fmt.Fprintf(io.Err, "submit bench: python: %s printed %d figures, want 2\n", o.python, len(py))
			return ExitUnavailable
		}
		print(py...)
		ratio("submit throughput / python ProcessPool", submit, py[0])
		ratio("auto-batched submit / python ProcessPool", batched, py[0])
		ratio("map throughput / python ProcessPool", mapped, py[1])
		ratio("named job map / python ProcessPool", namedMap, py[1])
	}
	return ExitOK
}

// runPython runs the Python side and parses its "name: value unit" lines.
func runPython(ctx context.Context, script string, tasks, items, chunk int) ([]bench.Figure, error) {
	cmd := exec.CommandContext(ctx, "python3", script, strconv.Itoa(tasks), strconv.Itoa(items), strconv.Itoa(chunk))
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var figs []bench.Figure
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		figs = append(figs, bench.Figure{Name: name, Value: v, Unit: f[1]})
	}
	return figs, sc.Err()
}

// benchScaling runs n sleep-bound tasks of 10ms over 4 worker processes with
// 16 slots each, in chunks of one task and then of two, and compares the
// time with the ideal n*10ms/64.
func benchScaling(ctx context.Context, n int) ([]bench.Figure, error) {
	const procs, slots = 4, 16
	p, err := processpool.New(ctx, procs, processpool.Concurrency(slots))
	if err != nil {
		return nil, err
	}
	defer p.Shutdown(context.Background(), true, true)
	var figs []bench.Figure
	for _, chunk := range []int{1, 2} {
		f, err := bench.Scaling(ctx, p, builtin.Sleep, n, chunk, procs, slots)
		if err != nil {
			return nil, err
		}
		figs = append(figs, f...)
	}
	return figs, nil
}
