package worker

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
// data ($SRV.STATS replies) is a [Status].
const StatusEndpoint = "status"

// Status is a worker's live load and counters as its service stats report
// them, encoded as JSON.
type Status struct {
	InFlight         int64 `json:"in_flight"`   // chunks running now
	Concurrency      int   `json:"concurrency"` // chunks it runs at once
	ChunksStarted    int64 `json:"chunks_started"`
	ChunksDropped    int64 `json:"chunks_dropped"`
	ChunksTerminated int64 `json:"chunks_terminated"`
	Redelivered      int64 `json:"redelivered"`
	TasksSucceeded   int64 `json:"tasks_succeeded"`
	TasksFailed      int64 `json:"tasks_failed"`
	TasksRetried     int64 `json:"tasks_retried"`
}
