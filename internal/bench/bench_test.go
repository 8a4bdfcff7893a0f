package bench

import (
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetpool/jetpool/builtin"
)

func TestPercentiles(t *testing.T) {
	lat := make([]time.Duration, 101)
	for i := range lat {
		lat[i] = time.Duration(100-i) * time.Microsecond // unsorted on purpose
	}
	figs := percentiles("x", lat)
	if len(figs) != 2 || figs[0].Name != "x p50" || figs[0].Value != 50 || figs[1].Name != "x p99" || figs[1].Value != 99 || figs[0].Unit != "µs" {
		t.Fatalf("percentiles = %+v", figs)
	}
}

func TestFigureString(t *testing.T) {
	got := Figure{"map items", 1234.56, "items/s"}.String()
	if !strings.HasPrefix(got, "map items ") || !strings.HasSuffix(got, " 1234.6 items/s") {
		t.Fatalf("String() = %q", got)
	}
}

func TestPercentilesOfFewSamples(t *testing.T) {
	cases := []struct {
		name     string
		lat      []time.Duration
		p50, p99 float64
	}{
		{"one sample", []time.Duration{7 * time.Millisecond}, 7000, 7000},
		{"two samples", []time.Duration{3 * time.Microsecond, time.Microsecond}, 1, 1},
		{"ten samples", []time.Duration{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 0, 0},
		{"sub-microsecond rounds down", []time.Duration{999, 1999, 2999}, 1, 1},
		{"one outlier in a thousand stays out of p99", append(make([]time.Duration, 1000), time.Second), 0, 0},
		{"two outliers in a hundred reach p99", append(repeat(time.Millisecond, 98), time.Second, time.Second), 1000, 1_000_000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			figs := percentiles("lat", c.lat)
			if len(figs) != 2 || figs[0].Value != c.p50 || figs[1].Value != c.p99 {
				t.Fatalf("percentiles = %+v, want p50 %v, p99 %v", figs, c.p50, c.p99)
			}
			if !slices.IsSorted(c.lat) {
				t.Fatal("the samples were not sorted in place")
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}

func TestFigureStringAligns(t *testing.T) {
	a := Figure{"short", 1, "ms"}.String()
	b := Figure{"a much longer name of a figure", 123456.78, "tasks/s"}.String()
	if strings.Index(a, "1.0")+3 != strings.Index(b, "123456.8")+8 {
		t.Fatalf("values not aligned:\n%s\n%s", a, b)
	}
}

func TestRatiosHaveTwoDecimals(t *testing.T) {
	if got := (Figure{"a / b", 0.5649, "x"}).String(); !strings.HasSuffix(got, " 0.56 x") {
		t.Fatalf("String() = %q", got)
	}
}

func TestParseFigureReadsString(t *testing.T) {
	for _, f := range []Figure{
		{"scaling: 32000 x 10ms, chunksize 1, 4 procs x 16", 6368, "ms"},
		{"submit throughput / raw ceiling", 0.53, "x"},
		{"raw ceiling latency p50", 402, "µs"},
	} {
		got, ok := ParseFigure(f.String())
		if !ok || got != f {
			t.Errorf("ParseFigure(%q) = %+v, %v; want %+v", f.String(), got, ok, f)
		}
	}
	for _, line := range []string{"# go1.26, 2 CPUs", "", "python: done", "name notanumber ms"} {
		if f, ok := ParseFigure(line); ok {
			t.Errorf("ParseFigure(%q) = %+v, want no figure", line, f)
		}
	}
}

func TestSummarize(t *testing.T) {
	runs := [][]Figure{
		{{"tput", 30, "tasks/s"}, {"ratio", 0.5, "x"}},
		{{"tput", 10, "tasks/s"}, {"ratio", 0.7, "x"}},
		{{"tput", 20, "tasks/s"}, {"ratio", 0.6, "x"}, {"late", 4, "ms"}},
		{{"tput", 40, "tasks/s"}, {"ratio", 0.6, "x"}, {"late", 2, "ms"}},
	}
	got := Summarize(runs)
	want := []Summary{
		{Figure{"tput", 25, "tasks/s"}, 10, 40},
		{Figure{"ratio", 0.6, "x"}, 0.5, 0.7},
		{Figure{"late", 3, "ms"}, 2, 4},
	}
	if len(got) != len(want) {
		t.Fatalf("Summarize = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Unit != w.Unit || math.Abs(g.Value-w.Value) > 1e-9 || g.Min != w.Min || g.Max != w.Max {
			t.Errorf("summary %d = %+v, want %+v", i, g, w)
		}
	}
	if s := got[1].String(); !strings.HasSuffix(s, " 0.60 x  (0.50-0.70)") {
		t.Errorf("String() = %q", s)
	}
	if s := got[0].String(); !strings.HasSuffix(s, " 25.0 tasks/s  (10.0-40.0)") {
		t.Errorf("String() = %q", s)
	}
}

func TestCountStopsEarly(t *testing.T) {
	var got []int
	for i := range count(10) {
		if i == 3 {
			break
		}
		got = append(got, i)
	}
	if !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("count(10) up to 3 = %v", got)
	}
	n := 0
	for range count(0) {
		n++
	}
	if n != 0 {
		t.Fatalf("count(0) yielded %d values", n)
	}
}

func TestRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/statm"); err != nil {
		if got := rss(); got != 0 {
			t.Fatalf("rss() = %d without /proc", got)
		}
		return
	}
	if got := rss(); got < 1<<20 {
		t.Fatalf("rss() = %d bytes, want at least 1 MiB for a running test", got)
	}
}

// TestFiguresOnAPool runs each workload small on a real embedded pool, so
// the bench command cannot rot: every figure comes out positive.
func TestFiguresOnAPool(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	env, err := StartEnv(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var figs []Figure
	f, err := SubmitThroughput(ctx, env.Ex, 200)
	if err != nil {
		t.Fatal(err)
	}
	figs = append(figs, f)
	if f, err = MapThroughput(ctx, env.Ex, 2000, 100); err != nil {
		t.Fatal(err)
	}
	figs = append(figs, f)
	lat, err := Latency(ctx, env.Ex, 20)
	if err != nil {
		t.Fatal(err)
	}
	figs = append(figs, lat...)
	raw, err := RawCeiling(ctx, env.Srv.ClientURL(), 200, 20)
	if err != nil {
		t.Fatal(err)
	}
	figs = append(figs, raw...)
	if f, err = RawBatchCeiling(ctx, env.Srv.ClientURL(), 2000, 100); err != nil {
		t.Fatal(err)
	}
	if f.Name != "raw ceiling, 100 items a message" || f.Unit != "items/s" {
		t.Errorf("batched ceiling figure %v", f)
	}
	figs = append(figs, f)
	if f, err = MapMemory(ctx, env.Ex, 2000, 100); err != nil {
		t.Fatal(err)
	}
	figs = append(figs, f)
	// The in-process worker has 8 slots: as one process of 8.
	scaling, err := Scaling(ctx, env.Ex, builtin.Sleep, 80, 2, 1, 8)
	if err != nil {
		t.Fatal(err)
	}
	// 80 sleeps of 10ms over 8 slots: 100ms at best.
	if len(scaling) != 2 || scaling[0].Value < 100 || scaling[1].Value > 100 {
		t.Errorf("scaling figures %v: faster than the ideal", scaling)
	}
	figs = append(figs, scaling...)
	for _, f := range figs {
		if f.Value <= 0 {
			t.Errorf("%s = %v", f.Name, f.Value)
		}
	}
}
