package executor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

// Values too large for a message. An input whose encoding is above the
// pool's threshold (broker.PoolConfig.SpillAbove) is put into the pool's
// values bucket before its chunk is published, and the chunk carries a
// wire.Ref to it; so are the largest inputs of a chunk that would not fit
// otherwise. A worker does the same with a result. The producer removes
// its inputs once every future of their chunk is done, and a result once it
// has read it; the bucket's TTL removes what a party that died left.
//
// A result by reference is read in a goroutine of its own, so that a large
// value holds up no other result. Meanwhile its future stays running, the
// item counts as answered (see remoteChunk.fetching): a final result of the
// attempt does not end it on that item's account, and a new attempt is not
// granted it.

// refSize bounds from above what an item by reference adds to its chunk.
const refSize = 64 + wire.RefKeyLen + wire.MaxRefName

// spill puts into the values bucket the inputs among items, rc's, that are
// above the pool's threshold, and then the largest of the rest while the
// chunk would still be larger than limit bytes, and makes those items refer
// to them. It costs nothing for a chunk that fits with no input above the
// threshold. On error the values it put are removed.
func (n *NATS) spill(ctx context.Context, rc *remoteChunk, items []wire.Item, limit int64) error {
	above := n.pc.SpillAbove(n.nc.MaxPayload())
	total, largest := int64(chunkEnvelope), 0
	for i := range items {
		size := len(items[i].Args)
		total += int64(size) + itemEnvelope
		largest = max(largest, size)
	}
	if int64(largest) <= above && total <= limit {
		return nil
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(items[b].Args), len(items[a].Args)) })
	for _, i := range order {
		size := int64(len(items[i].Args))
		if size <= above && total <= limit || size <= refSize {
			break
		}
		name := wire.InputName()
		ref, err := n.vals.Write(ctx, name, items[i].Args)
		if err != nil {
			n.removeValues(rc.values)
			rc.values = nil
			return fmt.Errorf("executor: keep a %s input of %d bytes in the values bucket: %w", rc.b.codec.Kind, size, err)
		}
		rc.values = append(rc.values, name)
		items[i] = wire.Item{Seq: items[i].Seq, Ref: &ref}
		total -= size - refSize
	}
	return nil
}

// What a chunk message needs besides its items' inputs, and each item
// besides its input, at most.
const (
	chunkEnvelope = 512
	itemEnvelope  = 16
)

// deleteValues removes the values under names in the background. Once the
// executor has finished it leaves them to the bucket's TTL.
func (n *NATS) deleteValues(names ...string) {
	if len(names) == 0 {
		return
	}
	n.mu.Lock()
	done := n.valuesDone
	if !done {
		n.valueOps.Add(1)
	}
	n.mu.Unlock()
	if done {
		return
	}
	go func() {
		defer n.valueOps.Done()
		n.removeValues(names)
	}()
}

// removeValues removes the values under names, each retried as a transfer
// is (see broker.LazyValues); what it cannot remove, the bucket's TTL does.
func (n *NATS) removeValues(names []string) {
	for _, name := range names {
		if err := n.vals.Remove(context.Background(), name); err != nil {
			n.log.Debug("executor: remove a value; the bucket's TTL will", "name", name, "err", err)
		}
	}
}

// awaitValues waits until the executor's reads and removals of values are
// over; none starts after it.
func (n *NATS) awaitValues() {
	n.mu.Lock()
	n.valuesDone = true
	n.mu.Unlock()
	n.valueOps.Wait()
}

// fetchResult reads the result by reference of item seq of rc, which the
// attempt with grant reported, and resolves the item's future with it. It
// reads the value only under the name that result must have
// (wire.ResultName), removes it once read, and stops reading once the
// future is done otherwise (it expired, another attempt's result came
// first). n.valueOps counts it.
func (n *NATS) fetchResult(rc *remoteChunk, grant uint64, seq uint32, ref wire.Ref) {
	defer n.valueOps.Done()
	s := rc.b.calls[seq].s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer s.addCallback(cancel)()
	name := wire.ResultName(n.id, rc.id, seq, grant)
	kind := rc.b.codec.Kind
	var (
		v   any
		err error
	)
	if ref.Name != name {
		err = fmt.Errorf("%w: the result is named %q, not %q", broker.ErrValueLost, ref.Name, name)
	} else {
		var data []byte
		if data, err = n.vals.Read(ctx, ref); err == nil {
			if v, err = rc.b.codec.DecodeOut(data); err != nil {
				err = &task.Error{Kind: kind, Type: task.TypeBadOutput, Message: err.Error()}
			}
		}
	}
	if err != nil && !errors.As(err, new(*task.Error)) {
		err = &task.Error{Kind: kind, Type: task.TypeValueLost, Message: "read the result: " + err.Error()}
	}
	// Removed before the future is resolved: its resolution may let the
	// executor finish, after which nothing is removed.
	n.deleteValues(name)
	s.resolve(v, err)
	n.mu.Lock()
	delete(rc.fetching, seq)
	n.mu.Unlock()
}

// fetchLater starts reading the result by reference of item seq of rc,
// unless that item is done or being read already: then the value, which
// the producer will not read, is removed. n.mu is not held.
func (n *NATS) fetchLater(rc *remoteChunk, grant uint64, seq uint32, ref wire.Ref) {
	n.mu.Lock()
	fresh := !n.valuesDone && !rc.fetching[seq] && !rc.b.calls[seq].s.isDone()
	if fresh {
		if rc.fetching == nil {
			rc.fetching = make(map[uint32]bool)
		}
		rc.fetching[seq] = true
		n.valueOps.Add(1)
	}
	n.mu.Unlock()
	if !fresh {
		n.deleteValues(wire.ResultName(n.id, rc.id, seq, grant))
		return
	}
	go n.fetchResult(rc, grant, seq, ref)
}
