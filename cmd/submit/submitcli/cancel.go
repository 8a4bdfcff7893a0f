package submitcli

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
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

Examples:
  submit cancel --server nats://127.0.0.1:4222
  submit cancel --kind download --pool batch
  submit cancel --purge
`

func runCancel(ctx context.Context, args []string, io IO) int {
	var c common
	fs := newFlagSet("cancel", cancelUsage, io.Err)
	c.register(fs)
	kind := fs.String("kind", "", "only tasks of this kind")
	producer := fs.String("producer", "", "only this producer's tasks (its executor id)")
	purge := fs.Bool("purge", false, "also remove the queued chunks from the stream")
	wait := fs.Duration("wait", 500*time.Millisecond, "how long to collect producers' answers")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageErr(err)
	}
	if len(pos) > 0 || c.embedded || *wait <= 0 {
		fmt.Fprintln(io.Err, "submit cancel: takes no arguments, no --embedded, and a positive --wait")
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
			fmt.Fprintln(io.Err, "submit cancel:", err)
			return ExitUsage
		}
	}
	subj, err := broker.NewSubjects(c.prefix, c.pool)
	if err != nil {
		fmt.Fprintln(io.Err, "submit cancel:", err)
		return ExitUsage
	}
	nc, code := connect(&c, io, "cancel")
	if nc == nil {
		return code
	}
	defer nc.Close()

	replies, err := askCancel(ctx, nc, subj, broker.CancelRequest{Executor: *producer, Kind: *kind}, *wait)
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
func askCancel(ctx context.Context, nc *nats.Conn, subj broker.Subjects, req broker.CancelRequest, wait time.Duration) ([]broker.CancelReply, error) {
	data, err := broker.Encode(&req)
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	got := make(chan broker.CancelReply, 1024)
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		var r broker.CancelReply
		if broker.Decode(m.Data, &r) == nil {
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
	var replies []broker.CancelReply
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
