package worker

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/jetpool/jetpool/internal/version"
)

// ServiceName is the NATS micro service name every worker registers under,
// so `nats micro ls` and `submit status` list the workers online.
const ServiceName = "jetpool-worker"

// Metadata keys of a worker's service registration ($SRV.INFO replies).
const (
	MetaPool        = "pool"        // the pool the worker serves
	MetaKinds       = "kinds"       // the kinds it has handlers for, comma-separated
	MetaWorkerID    = "worker_id"   // its worker id, as task.WorkerID reports it
	MetaHost        = "host"        // host name
	MetaPID         = "pid"         // process id
	MetaConcurrency = "concurrency" // chunks it runs at once
)

// StatusEndpoint is the name of the worker's service endpoint whose stats
// data ($SRV.STATS replies) is a [Status], a worker's [Stats] as JSON.
const StatusEndpoint = "status"

// MetricsEndpoint is the service endpoint that answers with the worker's
// metrics ([Worker.Collector]) in Prometheus' text format, so that
// [PoolMetrics] gathers those of a whole pool over NATS, with no address
// per worker.
const MetricsEndpoint = "metrics"

// MetricsSubject is where the worker answers metrics requests:
// <prefix>.<pool>.worker.<id>.metrics.
func (w *Worker) MetricsSubject() string { return w.inbox + "." + MetricsEndpoint }

// StatusSubject returns the subject of the worker's status endpoint:
// <prefix>.<pool>.worker.<id>.status, apart from the pool's task and
// control subjects (interrupts and probes come to an inbox of the worker's
// connection instead, which a server can keep private to its user). A request to it is answered with the worker's [Status] as JSON,
// the same data its $SRV.STATS reply carries.
func (w *Worker) StatusSubject() string {
	return w.inbox + "." + StatusEndpoint
}

// addService adds the worker to the NATS service registry ($SRV.PING, INFO and
// STATS) under ServiceName, with the Meta* metadata and the status endpoint.
// The caller stops the returned service.
func (w *Worker) addService() (micro.Service, error) {
	host, _ := os.Hostname()
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        ServiceName,
		Version:     version.Version,
		Description: "jetpool worker of pool " + w.subj.Pool(),
		Metadata: map[string]string{
			MetaPool:        w.subj.Pool(),
			MetaKinds:       strings.Join(w.cfg.Kinds, ","),
			MetaWorkerID:    w.cfg.ID,
			MetaHost:        host,
			MetaPID:         strconv.Itoa(os.Getpid()),
			MetaConcurrency: strconv.Itoa(w.cfg.Concurrency),
		},
		StatsHandler: func(e *micro.Endpoint) any {
			if e.Name != StatusEndpoint {
				return nil
			}
			return w.Stats()
		},
		ErrorHandler: func(_ micro.Service, err *micro.NATSError) {
			w.log.Warn("worker: service registration", "subject", err.Subject, "err", err.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("worker: register service: %w", err)
	}
	err = svc.AddEndpoint(StatusEndpoint, micro.HandlerFunc(func(req micro.Request) {
		req.RespondJSON(w.Stats())
	}), micro.WithEndpointSubject(w.StatusSubject()), micro.WithEndpointQueueGroupDisabled())
	if err != nil {
		svc.Stop()
		return nil, fmt.Errorf("worker: register status endpoint: %w", err)
	}
	err = svc.AddEndpoint(MetricsEndpoint, micro.HandlerFunc(w.serveMetrics),
		micro.WithEndpointSubject(w.MetricsSubject()), micro.WithEndpointQueueGroupDisabled())
	if err != nil {
		svc.Stop()
		return nil, fmt.Errorf("worker: register metrics endpoint: %w", err)
	}
	return svc, nil
}
