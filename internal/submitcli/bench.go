package submitcli

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/internal/bench"
)

const benchUsage = `
Usage: submit bench [flags]

Measures a pool on this host (an embedded broker and an in-process worker)
against the raw JetStream ceiling in the same run, and, with --python, runs
Python's ProcessPoolExecutor on the same workloads. Prints one line per figure.

Examples:
  submit bench
  submit bench --python bench/processpool.py --scaling
  submit bench --tasks 5000 --map-items 100000 --memory-items 0
`

func runBench(ctx context.Context, args []string, io IO) int {
	fs := newFlagSet("bench", benchUsage, io.Err)
	tasks := fs.Int("tasks", 20_000, "tasks for the submit throughput figure")
	mapItems := fs.Int("map-items", 1_000_000, "items for the map figure")
	chunk := fs.Int("chunksize", 1000, "chunk size of the map figures")
	samples := fs.Int("latency-samples", 2000, "sequential tasks for the latency figures")
	memItems := fs.Int("memory-items", 10_000_000, "items of the streamed map whose peak memory is measured (0: skip)")
	concurrency := fs.Int("concurrency", 256, "chunks the in-process worker runs at once (square is trivial: the slots bound the chunks in flight, not CPU use)")
	python := fs.String("python", "", "run this Python script (bench/processpool.py) on the same workloads and print ratios")
	scaling := fs.Bool("scaling", false, "also measure sleep-bound scaling over 4 worker processes x 16 slots")
	scalingTasks := fs.Int("scaling-tasks", 32_000, "10ms tasks of the scaling figure (32000: 5s of ideal time)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return usageErr(err)
	}
	if *tasks < 1 || *mapItems < 1 || *chunk < 1 || *samples < 1 || *memItems < 0 || *concurrency < 1 || *scalingTasks < 64 {
		fmt.Fprintln(io.Err, "submit bench: counts must be positive")
		return ExitUsage
	}
	env, err := bench.StartEnv(ctx, *concurrency)
	if err != nil {
		fmt.Fprintln(io.Err, "submit bench:", err)
		return ExitUnavailable
	}
	defer env.Close()
	fmt.Fprintf(io.Out, "# %s, %d CPUs, %s\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	got := map[string]float64{}
	print := func(figs ...bench.Figure) {
		for _, f := range figs {
			fmt.Fprintln(io.Out, f)
			got[f.Name] = f.Value
		}
	}
	steps := []func() ([]bench.Figure, error){
		func() ([]bench.Figure, error) {
			if *memItems == 0 {
				return nil, nil
			}
			f, err := bench.MapMemory(ctx, env.Ex, *memItems, *chunk)
			return []bench.Figure{f}, err
		},
		func() ([]bench.Figure, error) { return bench.RawCeiling(ctx, env.Srv.ClientURL(), *tasks, *samples) },
		func() ([]bench.Figure, error) {
			f, err := bench.SubmitThroughput(ctx, env.Ex, *tasks)
			return []bench.Figure{f}, err
		},
		func() ([]bench.Figure, error) {
			ex, err := env.NewExecutor(ctx, executor.WithAutoBatch(*chunk))
			if err != nil {
				return nil, err
			}
			f, err := bench.SubmitThroughput(ctx, ex, *tasks)
			f.Name = fmt.Sprintf("submit->result, WithAutoBatch(%d)", *chunk)
			return []bench.Figure{f}, err
		},
		func() ([]bench.Figure, error) {
			f, err := bench.MapThroughput(ctx, env.Ex, *mapItems, *chunk)
			return []bench.Figure{f}, err
		},
		func() ([]bench.Figure, error) { return bench.Latency(ctx, env.Ex, *samples) },
	}
	if *scaling {
		steps = append(steps, func() ([]bench.Figure, error) { return benchScaling(ctx, *scalingTasks) })
	}
	for _, step := range steps {
		figs, err := step()
		if err != nil {
			fmt.Fprintln(io.Err, "submit bench:", err)
			return ExitUnavailable
		}
		print(figs...)
	}
	fmt.Fprintf(io.Out, "%-44s %14.2f x\n", "submit throughput / raw ceiling",
		got["submit->result, chunk 1"]/got["raw ceiling: publish->pull->ack->reply"])
	fmt.Fprintf(io.Out, "%-44s %14.2f x\n", "latency p50 / raw ceiling p50",
		got["submit->result latency p50"]/got["raw ceiling latency p50"])
	if *python != "" {
		py, err := runPython(ctx, *python, *tasks, *mapItems, *chunk)
		if err != nil {
			fmt.Fprintln(io.Err, "submit bench: python:", err)
			return ExitUnavailable
		}
		for _, f := range py {
			fmt.Fprintln(io.Out, f)
		}
		if len(py) == 2 {
			fmt.Fprintf(io.Out, "%-44s %14.2f x\n", "submit throughput / python ProcessPool", got["submit->result, chunk 1"]/py[0].Value)
			fmt.Fprintf(io.Out, "%-44s %14.2f x\n", "auto-batched submit / python ProcessPool", got[fmt.Sprintf("submit->result, WithAutoBatch(%d)", *chunk)]/py[0].Value)
			fmt.Fprintf(io.Out, "%-44s %14.2f x\n", "map throughput / python ProcessPool", got[fmt.Sprintf("map %d ints, chunksize %d", *mapItems, *chunk)]/py[1].Value)
		}
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
	const procs, slots, ms = 4, 16, 10
	p, err := executor.NewProcessPool(ctx, procs, executor.Concurrency(slots))
	if err != nil {
		return nil, err
	}
	defer p.Shutdown(context.Background(), true, true)
	// Warm up: every process connected and pulling.
	if _, err := bench.MapThroughput(ctx, p, 1000, 10); err != nil {
		return nil, err
	}
	inputs := func(yield func(int) bool) {
		for range n {
			if !yield(ms) {
				return
			}
		}
	}
	ideal := time.Duration(n) * ms * time.Millisecond / (procs * slots)
	var figs []bench.Figure
	for _, chunk := range []int{1, 2} {
		start := time.Now()
		for _, err := range executor.Map(ctx, p, builtin.Sleep, inputs, executor.Chunksize(chunk), executor.Buffersize(4*procs*slots)) {
			if err != nil {
				return nil, err
			}
		}
		took := time.Since(start)
		figs = append(figs,
			bench.Figure{Name: fmt.Sprintf("scaling: %d x %dms, chunksize %d, %d procs x %d", n, ms, chunk, procs, slots), Value: float64(took.Milliseconds()), Unit: "ms"},
			bench.Figure{Name: fmt.Sprintf("scaling efficiency, chunksize %d", chunk), Value: 100 * ideal.Seconds() / took.Seconds(), Unit: "%"})
	}
	return figs, nil
}
