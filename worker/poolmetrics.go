package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// LabelWorker is the label [PoolMetrics] adds to every series: the id of
// the worker it came from.
const LabelWorker = "worker"

// serveMetrics answers a metrics request with the worker's metrics in
// Prometheus' text format.
func (w *Worker) serveMetrics(req micro.Request) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(w.Collector()); err != nil {
		req.Error("500", err.Error(), nil)
		return
	}
	families, err := reg.Gather()
	if err != nil {
		req.Error("500", err.Error(), nil)
		return
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			req.Error("500", err.Error(), nil)
			return
		}
	}
	req.Respond(b.Bytes())
}

// PoolMetrics gathers the metrics of every worker of pool ("" is
// broker.DefaultPool) that answers service discovery within wait (see
// [Discover]): one request per worker to its metrics endpoint over nc,
// each answer labelled [LabelWorker] with the worker's id, and the series
// of all of them merged into one family per metric name, sorted as a
// Prometheus registry sorts them. A worker that does not answer its request
// within wait, or answers with what does not parse, is left out; its id is
// in the error, which is returned with the rest (errors.Join). It blocks
// for about twice wait, or until ctx ends, in which case it returns ctx's
// error.
//
// It is what a single scrape target for a whole pool needs: `submit
// metrics --listen` serves it, so that neither the number of workers nor
// their addresses matter to the scraper.
func PoolMetrics(ctx context.Context, nc *nats.Conn, pool string, wait time.Duration) ([]*dto.MetricFamily, error) {
	subjects, err := metricsSubjects(ctx, nc, pool, wait)
	if err != nil {
		return nil, err
	}
	var (
		mu     sync.Mutex
		byName = make(map[string]*dto.MetricFamily)
		errs   []error
		ask    sync.WaitGroup
	)
	for id, subject := range subjects {
		ask.Go(func() {
			families, err := workerMetrics(ctx, nc, subject, wait)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("worker %s: %w", id, err))
				return
			}
			for name, mf := range families {
				for _, m := range mf.Metric {
					m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(LabelWorker), Value: proto.String(id)})
					sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
				}
				if have := byName[name]; have != nil && have.GetType() == mf.GetType() {
					have.Metric = append(have.Metric, mf.Metric...)
				} else if have == nil {
					byName[name] = mf
				}
			}
		})
	}
	ask.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		sort.SliceStable(mf.Metric, func(i, j int) bool { return labelKey(mf.Metric[i]) < labelKey(mf.Metric[j]) })
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, errors.Join(errs...)
}

// metricsSubjects finds the metrics endpoint of every worker of pool by
// service discovery, by worker id.
func metricsSubjects(ctx context.Context, nc *nats.Conn, pool string, wait time.Duration) (map[string]string, error) {
	var mu sync.Mutex
	found := make(map[string]string)
	err := gatherStats(ctx, nc, pool, wait, func(s *micro.Stats) {
		id := s.Metadata[MetaWorkerID]
		for _, ep := range s.Endpoints {
			if ep != nil && ep.Name == MetricsEndpoint && ep.Subject != "" && id != "" {
				mu.Lock()
				found[id] = ep.Subject
				mu.Unlock()
			}
		}
	})
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return maps.Clone(found), nil
}

// workerMetrics asks one worker for its metrics and parses them.
func workerMetrics(ctx context.Context, nc *nats.Conn, subject string, wait time.Duration) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subject, nil)
	if err != nil {
		return nil, err
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, fmt.Errorf("metrics endpoint: %s %s", code, m.Header.Get(micro.ErrorHeader))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(m.Data))
}

func labelKey(m *dto.Metric) string {
	var b bytes.Buffer
	for _, l := range m.Label {
		b.WriteString(l.GetName())
		b.WriteByte('=')
		b.WriteString(l.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}
