package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/worker"
)

// TestPoolMetrics: one call gathers every worker's series of a pool over
// NATS, each labelled with its worker, and none of another pool's.
func TestPoolMetrics(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	w1 := e.startWorker(squares(nil), worker.Config{ID: "w-1", Concurrency: 1})
	w2 := e.startWorker(squares(nil), worker.Config{ID: "w-2", Concurrency: 1})
	other, err := worker.New(e.nc, squares(nil), worker.Config{ID: "w-other", Pool: "other"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- other.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "workers ready", func() bool { return w1.Ready() && w2.Ready() && other.Ready() })
	for i := range 4 {
		p.submit(uint64(i+1), Square.Kind(), i)
	}
	p.collect(4)

	wctx, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	families, err := worker.PoolMetrics(wctx, e.nc, "", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	succeeded := map[string]float64{}
	var names []string
	for _, mf := range families {
		names = append(names, mf.GetName())
		if mf.GetName() != worker.MetricTasksSucceeded {
			continue
		}
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["pool"] != "default" || labels["kind"] != Square.Kind() {
				t.Errorf("series with labels %v", labels)
			}
			succeeded[labels[worker.LabelWorker]] += m.GetCounter().GetValue()
		}
	}
	if len(succeeded) != 2 || succeeded["w-1"]+succeeded["w-2"] != 4 {
		t.Fatalf("tasks succeeded by worker %v, want w-1 and w-2 with 4 in all", succeeded)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("families not sorted by name: %v", names)
		}
	}
	// What it returns encodes as one valid exposition.
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(b.String(), `worker="w-2"`) {
		t.Errorf("exposition without w-2's series:\n%s", b.String())
	}

	// A worker's endpoint answers alone too.
	nc, err := nats.Connect(e.nc.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.Request(w1.MetricsSubject(), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Data), worker.MetricTasksSucceeded+`{kind="square",pool="default"}`) {
		t.Errorf("w-1's metrics endpoint answered:\n%s", m.Data)
	}
}
