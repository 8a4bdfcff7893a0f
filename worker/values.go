package worker

import (
	"context"
	"errors"
	"math"

	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/internal/bytesize"
	"github.com/jetpool/jetpool/task"
)

// Values too large for a message (see broker.Values): an item whose input
// travels by reference reads it from the pool's values bucket as the item
// begins, under the item's context, so an interrupt ends the read too; a
// result above the pool's threshold is put there before it is reported,
// under the name its producer reads it by (wire.ResultName). Both happen
// while the item runs: its chunk's heartbeats go on and the worker answers
// probes for it, however long the value takes.

// input reads the input of item seq by reference. If it cannot, ok is
// false and res is the item's failure.
func (r *chunkRun) input(ctx context.Context, seq uint32, ref wire.Ref) (args []byte, res wire.ItemResult, ok bool) {
	args, err := r.w.vals.Read(ctx, ref)
	switch {
	case err == nil:
		return args, wire.ItemResult{}, true
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, failed(seq, task.TypeDeadline, "deadline passed while its input was read"), false
	case ctx.Err() != nil:
		return nil, failed(seq, task.TypeInterrupted, "interrupted while its input was read"), false
	}
	return nil, failed(seq, task.TypeValueLost, "read the input: "+err.Error()), false
}

// spillAbove is the size above which a result of c travels by reference; a
// named job's results never do: they are stored in its results stream.
func spillAbove(w *Worker, c *wire.Chunk) int {
	if c.Named() {
		return math.MaxInt
	}
	return int(w.cfg.PoolConfig.SpillAbove(w.nc.MaxPayload()))
}

// spill puts value, the result of item seq, into the values bucket and
// returns the result that refers to it, or the item's failure.
func (r *chunkRun) spill(ctx context.Context, seq uint32, value []byte) wire.ItemResult {
	name := wire.ResultName(r.c.Executor, r.c.ID, seq, r.grant)
	ref, err := r.w.vals.Write(ctx, name, value)
	if err != nil {
		return failed(seq, task.TypeValueLost, "store the result of "+bytesize.Format(int64(len(value)))+": "+err.Error())
	}
	return wire.ItemResult{Seq: seq, Ref: &ref}
}
