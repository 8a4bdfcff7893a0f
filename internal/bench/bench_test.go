package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// TestFiguresOnAPool runs each workload small on a real embedded pool, so
// the bench command cannot rot: every figure comes out positive.
func TestFiguresOnAPool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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
	if f, err = MapMemory(ctx, env.Ex, 2000, 100); err != nil {
		t.Fatal(err)
	}
	figs = append(figs, f)
	for _, f := range figs {
		if f.Value <= 0 {
			t.Errorf("%s = %v", f.Name, f.Value)
		}
	}
}
