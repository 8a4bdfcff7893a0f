package submitcli

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

const cancelUsage = `
Usage: submit cancel [flags]

Cancels a pool's pending work. Every producer of the pool (or only the one
named with --producer) cancels its futures that have not started, of every
kind or only --kind, exactly as Future.Cancel would: a cancelled task never
runs, running tasks finish, and workers drop the cancelled chunks when they
pull them. Prints what each producer cancelled.

With --purge it then also removes the chunks queued in the stream (of --kind,
or all), for work whose producer is gone: every live producer has cancelled
its pending tasks first, so none of its futures waits for a purged chunk.

With --job NAME it cancels every task of that named job that no worker has
started, whether a producer is attached or not, exactly as Future.Cancel
would; a cancelled task never runs, also when the job is resumed, and its
result is an error of type cancelled.

Examples:
  submit cancel --server nats://127.0.0.1:4222
  submit cancel --kind download --pool batch
  submit cancel --purge
  submit cancel --job nightly-2026-12-01
`

func runCancel(ctx context.Context, args []string, io IO) int {
	var j jobFlags
	fs := newFlagSet("cancel", cancelUsage, io.Err)
	j.register(fs)
	p := &j.poolFlags
	job := fs.String("job", "", "cancel the tasks of this named job that have not started (its owner: --name)")
	kind := fs.String("kind", "", "only tasks of this kind")
	producer := fs.String("producer", "", "only this producer's tasks (its executor id)")
	purge := fs.Bool("purge", false, "also remove the queued chunks from the stream")
	wait := fs.Duration("wait", 500*time.Millisecond, "how long to collect producers' answers")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 {
		fmt.Fprintln(io.Err, "submit cancel: takes no arguments")
		return ExitUsage
	}
	if *wait <= 0 {
		fmt.Fprintf(io.Err, "submit cancel: --wait %v: want more than 0\n", *wait)
		return ExitUsage
	}
	if err := j.validate(fs); err != nil {
		fmt.Fprintln(io.Err, "submit cancel:", err)
		return ExitUsage
	}
	if *job != "" {
		for _, name := range []string{"kind", "producer", "purge", "wait"} {
			if isSet(fs, name) {
				fmt.Fprintf(io.Err, "submit cancel: --%s: not with --job, which cancels the whole job\n", name)
				return ExitUsage
			}
		}
		if err := task.ValidateName(*job); err != nil {
			fmt.Fprintf(io.Err, "submit cancel: --job %q: %s\n", *job, nameWhy(err))
			return ExitUsage
		}
		return cancelJob(ctx, &j, *job, io)
	}
	if isSet(fs, "name") {
		fmt.Fprintln(io.Err, "submit cancel: --name: only with --job, to name the job's owner")
		return ExitUsage
	}
	if *purge && *producer != "" {
		// Purging by subject would take other producers' queued chunks too,
		// whose futures would then wait for ever.
		fmt.Fprintln(io.Err, "submit cancel: --purge removes every producer's queued chunks and cannot be limited to one --producer")
		return ExitUsage
	}
	if *kind != "" {
		if err := task.ValidateKind(*kind); err != nil {
			fmt.Fprintf(io.Err, "submit cancel: --kind: %v\n", err)
			return ExitUsage
		}
	}
	subj, err := broker.NewSubjects(p.prefix, p.pool)
	if err != nil {
		fmt.Fprintln(io.Err, "submit cancel:", err)
		return ExitUsage
	}
	nc, code := connect(p, io, "cancel")
	if nc == nil {
		return code
	}
	defer nc.Close()

	replies, err := askCancel(ctx, nc, subj, wire.CancelRequest{Executor: *producer, Kind: *kind}, *wait)
	if err != nil {
		fmt.Fprintln(io.Err, "submit cancel:", err)
		return ExitUnavailable
	}
	var cancelled, running int64
	for _, r := range replies {
		fmt.Fprintf(io.Out, "producer %s: %d cancelled, %d running\n", r.Executor, r.Cancelled, r.Running)
		cancelled += r.Cancelled
		running += r.Running
	}
	fmt.Fprintf(io.Out, "%d producers answered: %d tasks cancelled, %d running to their end\n", len(replies), cancelled, running)
	if !*purge {
		return ExitOK
	}
	removed, err := purgeChunks(ctx, nc, subj, *kind)
	if err != nil {
		fmt.Fprintln(io.Err, "submit cancel: purge:", err)
		return ExitUnavailable
	}
	fmt.Fprintf(io.Out, "%d queued chunks removed from %s\n", removed, subj.Stream())
	return ExitOK
}

// askCancel sends req to the pool's producers and collects their replies for
// wait.
func askCancel(ctx context.Context, nc *nats.Conn, subj broker.Subjects, req wire.CancelRequest, wait time.Duration) ([]wire.CancelReply, error) {
	data, err := wire.Encode(&req)
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	got := make(chan wire.CancelReply, 1024)
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		var r wire.CancelReply
		if wire.Decode(m.Data, &r) == nil {
			select {
			case got <- r:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj.Cancel(), inbox, data); err != nil {
		return nil, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var replies []wire.CancelReply
	for {
		select {
		case r := <-got:
			replies = append(replies, r)
		case <-t.C:
			return replies, nil
		case <-ctx.Done():
			return replies, ctx.Err()
		}
	}
}

// purgeChunks removes the queued chunks of kind, or of every kind, from the
// pool's stream and returns how many it removed.
func purgeChunks(ctx context.Context, nc *nats.Conn, subj broker.Subjects, kind string) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, subj.Stream())
	if err != nil {
		return 0, err
	}
	before, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	var opts []jetstream.StreamPurgeOpt
	if kind != "" {
		opts = append(opts, jetstream.WithPurgeSubject(subj.Tasks(kind)))
	}
	if err := stream.Purge(ctx, opts...); err != nil {
		return 0, err
	}
	after, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return before.State.Msgs - min(after.State.Msgs, before.State.Msgs), nil
}
