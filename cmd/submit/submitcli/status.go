package submitcli

import (
	"context"
	"encoding/json"
	"errors"
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

// Status is what 'submit status' reports, also as its --json document.
type Status struct {
	Pool    string          `json:"pool"`
	Stream  string          `json:"stream"`
	Exists  bool            `json:"exists"`
	Msgs    uint64          `json:"messages"`
	Bytes   uint64          `json:"bytes"`
	Kinds   []KindStatus    `json:"kinds"`
	Workers []worker.Online `json:"workers"`
}

// KindStatus is one kind's queue: its consumer's counts, or for a kind that
// has chunks but no consumer (no worker ever served it) those chunks as
// pending.
type KindStatus struct {
	Kind        string `json:"kind"`
	Pending     uint64 `json:"pending"`     // queued, not yet delivered
	InFlight    int    `json:"in_flight"`   // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"` // delivered more than once, not yet acknowledged
	Waiting     int    `json:"waiting"`     // pull requests of idle workers
	Workers     int    `json:"workers"`     // workers online that serve it; 0: its chunks wait
}

func runStatus(ctx context.Context, args []string, io IO) int {
	var c common
	fs := newFlagSet("status", statusUsage, io.Err)
	c.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON document")
	wait := fs.Duration("wait", 500*time.Millisecond, "how long to collect workers' answers")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 || c.embedded || *wait <= 0 {
		fmt.Fprintln(io.Err, "submit status: takes no arguments, no --embedded, and a positive --wait")
		return ExitUsage
	}
	subj, err := broker.NewSubjects(c.prefix, c.pool)
	if err != nil {
		fmt.Fprintln(io.Err, "submit status:", err)
		return ExitUsage
	}
	nc, code := connect(&c, io, "status")
	if nc == nil {
		return code
	}
	defer nc.Close()
	st, err := poolStatus(ctx, nc, subj, *wait)
	if err != nil {
		fmt.Fprintln(io.Err, "submit status:", err)
		return ExitUnavailable
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(io.Out, string(b))
		return ExitOK
	}
	printStatus(io, st)
	return ExitOK
}

// connect opens a connection with c's settings, printing why it cannot.
func connect(c *common, io IO, cmd string) (*nats.Conn, int) {
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
	st := Status{Pool: subj.Pool(), Stream: subj.Stream(), Kinds: []KindStatus{}, Workers: []worker.Online{}}
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
		st.Exists, st.Msgs, st.Bytes = true, info.State.Msgs, info.State.Bytes
		hasConsumer := map[string]bool{}
		consumers := stream.ListConsumers(infoCtx)
		for ci := range consumers.Info() {
			hasConsumer[ci.Name] = true
			st.Kinds = append(st.Kinds, KindStatus{
				Kind: ci.Name, Pending: ci.NumPending, InFlight: ci.NumAckPending,
				Redelivered: ci.NumRedelivered, Waiting: ci.NumWaiting,
			})
		}
		if err := consumers.Err(); err != nil {
			return st, err
		}
		for subject, n := range info.State.Subjects {
			if kind, ok := subj.TaskKind(subject); ok && !hasConsumer[subj.Consumer(kind)] {
				st.Kinds = append(st.Kinds, KindStatus{Kind: kind, Pending: n})
			}
		}
		sort.Slice(st.Kinds, func(i, j int) bool { return st.Kinds[i].Kind < st.Kinds[j].Kind })
	}
	workers, err := worker.Discover(ctx, nc, subj.Pool(), wait)
	if err != nil {
		return st, err
	}
	st.Workers = workers
	served := map[string]int{}
	for _, w := range workers {
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
		fmt.Fprintf(io.Out, "pool %s: stream %s holds %d chunks (%d bytes)\n\n", st.Pool, st.Stream, st.Msgs, st.Bytes)
		tw := tabwriter.NewWriter(io.Out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tQUEUED\tIN FLIGHT\tREDELIVERED\tIDLE PULLS\tWORKERS")
		for _, k := range st.Kinds {
			workers := strconv.Itoa(k.Workers)
			if k.Workers == 0 {
				workers = "0  (no worker online serves it; its chunks wait)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", k.Kind, k.Pending, k.InFlight, k.Redelivered, k.Waiting, workers)
		}
		tw.Flush()
	}
	fmt.Fprintf(io.Out, "\n%d workers online\n", len(st.Workers))
	if len(st.Workers) == 0 {
		return
	}
	tw := tabwriter.NewWriter(io.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHOST\tPID\tVERSION\tKINDS\tLOAD\tSUCCEEDED\tFAILED\tRETRIED\tREDELIVERED")
	for _, w := range st.Workers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\n", w.ID, w.Host, w.PID, w.Version,
			strings.Join(w.Kinds, ","), w.InFlight, w.Concurrency, w.TasksSucceeded, w.TasksFailed, w.TasksRetried, w.Redelivered)
	}
	tw.Flush()
}
