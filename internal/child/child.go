// Package child is the protocol between a process pool and its worker
// processes: the environment a pool starts a worker process with. The
// process pool (executor/processpool's New) writes it and the worker runtime
// (worker.ConfigFromEnv, worker.ServeIfChild) reads it; this package holds
// what both must agree on and nothing else, so that a producer links no
// part of the worker runtime.
package child

import (
	"os"
	"strconv"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// The environment variables of a worker process. Connection settings use
// the NATS ecosystem's own (NATS_URL, NATS_CREDS, ...).
const (
	EnvChild       = "JETPOOL_CHILD" // set to 1 in processes started by a process pool
	EnvID          = "JETPOOL_WORKER_ID"
	EnvPool        = "JETPOOL_POOL"
	EnvPrefix      = "JETPOOL_PREFIX"
	EnvConcurrency = "JETPOOL_CONCURRENCY"
	EnvKinds       = "JETPOOL_KINDS"
	EnvAckWait     = "JETPOOL_ACK_WAIT"
	EnvGrace       = "JETPOOL_GRACE"
	EnvReplicas    = "JETPOOL_REPLICAS"
	// A worker's retry policy: attempts in all, the first backoff and its cap.
	EnvRetryAttempts   = "JETPOOL_RETRY_ATTEMPTS"
	EnvRetryBackoff    = "JETPOOL_RETRY_BACKOFF"
	EnvRetryMaxBackoff = "JETPOOL_RETRY_MAX_BACKOFF"
)

// Is reports whether this process was started by a process pool.
func Is() bool { return os.Getenv(EnvChild) == "1" }

// Env is the environment a process pool gives its worker processes, on top
// of its own: the broker at url, concurrency, pc's lease and grace, and
// retry. Zero settings are left out, and so keep their defaults.
func Env(url string, concurrency int, pc broker.PoolConfig, retry task.RetryPolicy) []string {
	env := []string{
		EnvChild + "=1",
		"NATS_URL=" + url,
		EnvConcurrency + "=" + strconv.Itoa(concurrency),
	}
	if pc.AckWait > 0 {
		env = append(env, EnvAckWait+"="+pc.AckWait.String())
	}
	if pc.Grace > 0 {
		env = append(env, EnvGrace+"="+pc.Grace.String())
	}
	if retry.Attempts > 0 {
		env = append(env, EnvRetryAttempts+"="+strconv.Itoa(retry.Attempts))
	}
	if retry.Backoff > 0 {
		env = append(env, EnvRetryBackoff+"="+retry.Backoff.String())
	}
	if retry.MaxBackoff > 0 {
		env = append(env, EnvRetryMaxBackoff+"="+retry.MaxBackoff.String())
	}
	return env
}
