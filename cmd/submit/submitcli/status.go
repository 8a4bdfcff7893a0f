package submitcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/worker"
)

const statusUsage = `
Usage: submit status [flags]

Shows a pool: its stream's depth, per kind the chunks queued, delivered and
not yet acknowledged, and redelivered, and the workers online (found through
NATS service discovery, as 'nats micro ls' finds them) with their kinds,
load and counters. Every kind with chunks in the stream is listed, with how
many workers online serve it: the chunks of a kind none serves wait for one.

Examples:
  submit status --server nats://127.0.0.1:4222
  submit status --pool batch --json
`

// Status is what 'submit status' reports, also as its --json document. Its
// JSON fields are the table's columns, in lower case with underscores for
// spaces, and its numbers are JSON numbers.
type Status struct {
	Pool    string         `json:"pool"`
	Stream  string         `json:"stream"`
	Exists  bool           `json:"exists"` // false: no stream yet, nothing was ever submitted or served
	Chunks  uint64         `json:"chunks"` // chunks the stream holds
	Bytes   uint64         `json:"bytes"`
	Kinds   []KindStatus   `json:"kinds"`
	Workers []WorkerStatus `json:"workers"`
}

// KindStatus is one kind's queue: its consumer's counts, or for a kind that
// has chunks but no consumer (no worker ever served it) those chunks as
// queued.
type KindStatus struct {
	Kind        string `json:"kind"`
	Queued      uint64 `json:"queued"`      // not yet delivered
	InFlight    int    `json:"in_flight"`   // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"` // delivered more than once, not yet acknowledged
	IdlePulls   int    `json:"idle_pulls"`  // pull requests of idle workers
	Workers     int    `json:"workers"`     // workers online that serve it; 0: its chunks wait
}

// WorkerStatus is one worker online: its service registration and its load
// and counters.
type WorkerStatus struct {
	Worker      string   `json:"worker"` // its id
	Host        string   `json:"host"`
	PID         int      `json:"pid"`
	Version     string   `json:"version"`
	Kinds       []string `json:"kinds"`
	InFlight    int64    `json:"in_flight"` // chunks running now
	Slots       int      `json:"slots"`     // chunks it runs at once
	Succeeded   int64    `json:"succeeded"` // tasks
	Failed      int64    `json:"failed"`
	Retried     int64    `json:"retried"`
	Redelivered int64    `json:"redelivered"` // chunks delivered to it more than once
}

func workerStatus(w worker.Online) WorkerStatus {
	pid, _ := strconv.Atoi(w.PID)
	return WorkerStatus{
		Worker: w.ID, Host: w.Host, PID: pid, Version: w.Version, Kinds: w.Kinds,
		InFlight: w.InFlight, Slots: w.Concurrency,
		Succeeded: w.TasksSucceeded, Failed: w.TasksFailed, Retried: w.TasksRetried, Redelivered: w.Redelivered,
	}
}

func runStatus(ctx context.Context, args []string, io IO) int {
	var asJSON bool
	p, wait, ok, code := parseDiscovery("status", statusUsage, args, io, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print one JSON document")
	})
	if !ok {
		return code
	}
	subj, err := broker.NewSubjects(p.prefix, p.pool)
	if err != nil {
		fmt.Fprintln(io.Err, "submit status:", err)
		return ExitUsage
	}
	nc, code := connect(&p, io, "status")
	if nc == nil {
		return code
	}
	defer nc.Close()
	st, err := poolStatus(ctx, nc, subj, wait)
	if err != nil {
		fmt.Fprintln(io.Err, "submit status:", err)
		return ExitUnavailable
	}
	if asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(io.Out, string(b))
		return ExitOK
	}
	printStatus(io, st)
	return ExitOK
}

// connect opens a connection with c's settings, printing why it cannot.
func connect(c *poolFlags, io IO, cmd string) (*nats.Conn, int) {
	c.conn.Name = "jetpool-submit"
	nc, err := broker.Connect(c.conn)
	if err != nil {
		fmt.Fprintf(io.Err, "submit %s: %v\n", cmd, err)
		if errors.Is(err, broker.ErrInvalidConnect) {
			return nil, ExitUsage
		}
		return nil, ExitUnavailable
	}
	return nc, ExitOK
}

// poolStatus reads the pool's stream, its consumers and its chunks per
// subject, and collects the workers' service registrations for wait.
func poolStatus(ctx context.Context, nc *nats.Conn, subj broker.Subjects, wait time.Duration) (Status, error) {
	st := Status{Pool: subj.Pool(), Stream: subj.Stream(), Kinds: []KindStatus{}, Workers: []WorkerStatus{}}
	js, err := jetstream.New(nc)
	if err != nil {
		return st, err
	}
	infoCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream, err := js.Stream(infoCtx, subj.Stream())
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return st, err
	default:
		// Per-subject counts find the kinds that have chunks but no
		// consumer: no worker ever served them.
		info, err := stream.Info(infoCtx, jetstream.WithSubjectFilter(subj.AllTasks()))
		if err != nil {
			return st, err
		}
		st.Exists, st.Chunks, st.Bytes = true, info.State.Msgs, info.State.Bytes
		hasConsumer := map[string]bool{}
		consumers := stream.ListConsumers(infoCtx)
		for ci := range consumers.Info() {
			hasConsumer[ci.Name] = true
			st.Kinds = append(st.Kinds, KindStatus{
				Kind: ci.Name, Queued: ci.NumPending, InFlight: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, IdlePulls: ci.NumWaiting,
			})
		}
		if err := consumers.Err(); err != nil {
			return st, err
		}
		for subject, n := range info.State.Subjects {
			if kind, ok := subj.TaskKind(subject); ok && !hasConsumer[subj.Consumer(kind)] {
				st.Kinds = append(st.Kinds, KindStatus{Kind: kind, Queued: n})
			}
		}
		sort.Slice(st.Kinds, func(i, j int) bool { return st.Kinds[i].Kind < st.Kinds[j].Kind })
	}
	workers, err := worker.Discover(ctx, nc, subj.Pool(), wait)
	if err != nil {
		return st, err
	}
	served := map[string]int{}
	for _, w := range workers {
		st.Workers = append(st.Workers, workerStatus(w))
		for _, k := range w.Kinds {
			served[k]++
		}
	}
	for i := range st.Kinds {
		st.Kinds[i].Workers = served[st.Kinds[i].Kind]
	}
	return st, nil
}

func printStatus(io IO, st Status) {
	if !st.Exists {
		fmt.Fprintf(io.Out, "pool %s: no stream %s yet (nothing was ever submitted or served)\n", st.Pool, st.Stream)
	} else {
		fmt.Fprintf(io.Out, "pool %s: stream %s holds %d chunks (%d bytes)\n\n", st.Pool, st.Stream, st.Chunks, st.Bytes)
		tw := tabwriter.NewWriter(io.Out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tQUEUED\tIN FLIGHT\tREDELIVERED\tIDLE PULLS\tWORKERS")
		for _, k := range st.Kinds {
			workers := strconv.Itoa(k.Workers)
			if k.Workers == 0 {
				workers = "0  (no worker online serves it; its chunks wait)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", k.Kind, k.Queued, k.InFlight, k.Redelivered, k.IdlePulls, workers)
		}
		tw.Flush()
	}
	fmt.Fprintf(io.Out, "\n%d workers online\n", len(st.Workers))
	if len(st.Workers) == 0 {
		return
	}
	tw := tabwriter.NewWriter(io.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHOST\tPID\tVERSION\tKINDS\tIN FLIGHT\tSLOTS\tSUCCEEDED\tFAILED\tRETRIED\tREDELIVERED")
	for _, w := range st.Workers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", w.Worker, w.Host, w.PID, w.Version,
			strings.Join(w.Kinds, ","), w.InFlight, w.Slots, w.Succeeded, w.Failed, w.Retried, w.Redelivered)
	}
	tw.Flush()
}
