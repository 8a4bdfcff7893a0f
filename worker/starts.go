package worker

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/wire"
)

// startBatcher sends start requests to producers with at most
// maxRoundTrips round trips in flight per producer: a request that finds
// fewer in flight goes at once; requests made while the limit is reached
// wait and then go together in the next. At low load every chunk gets its
// own request with no added delay; under load one round trip answers as many
// chunks as arrived during the last ones.
//
// No goroutine of its own: a caller whose request opens a round trip sends
// it, and when the answer is in, hands the batch waiting by then to one of
// its callers to send.
type startBatcher struct {
	nc *nats.Conn

	mu     sync.Mutex
	queues map[string]*startQueue // by start subject
}

// maxRoundTrips bounds the start round trips in flight to one producer.
const maxRoundTrips = 2

// startQueue is one producer's pending start requests.
type startQueue struct {
	inFlight int // round trips being sent or handed over
	waiting  []*startCall
}

// startCall is one chunk's start request while it waits for its verdict.
type startCall struct {
	req   wire.Start
	reply wire.StartReply
	err   error
	// batch, when set before wake fires, is a batch this call's goroutine is
	// to send, itself in it; otherwise wake means the call is answered.
	batch []*startCall
	wake  chan struct{}
}

func newStartBatcher(nc *nats.Conn) *startBatcher {
	return &startBatcher{nc: nc, queues: make(map[string]*startQueue)}
}

// errShortReply is a producer's answer with fewer verdicts than requests.
var errShortReply = errors.New("worker: start reply does not answer every chunk")

// ask requests leave to start one chunk from the producer listening on
// subject and blocks until its verdict, or the round trip's error, is in. A
// round trip takes at most startTimeout.
func (b *startBatcher) ask(subject string, req wire.Start) (wire.StartReply, error) {
	call := &startCall{req: req, wake: make(chan struct{}, 1)}
	b.mu.Lock()
	q := b.queues[subject]
	if q == nil {
		q = &startQueue{}
		b.queues[subject] = q
	}
	q.waiting = append(q.waiting, call)
	var batch []*startCall
	if q.inFlight < maxRoundTrips {
		q.inFlight++
		batch, q.waiting = q.waiting, nil
	}
	b.mu.Unlock()
	if batch == nil {
		<-call.wake
		if batch = call.batch; batch == nil {
			return call.reply, call.err
		}
	}
	b.send(subject, batch)

	b.mu.Lock()
	var next []*startCall
	if len(q.waiting) > 0 {
		next, q.waiting = q.waiting, nil
	} else if q.inFlight--; q.inFlight == 0 {
		delete(b.queues, subject)
	}
	b.mu.Unlock()
	for _, c := range batch {
		if c != call {
			c.wake <- struct{}{}
		}
	}
	if next != nil {
		next[0].batch = next
		next[0].wake <- struct{}{}
	}
	return call.reply, call.err
}

// send makes one round trip for batch and records each call's verdict or the
// round trip's error.
func (b *startBatcher) send(subject string, batch []*startCall) {
	req := wire.Starts{Items: make([]wire.Start, len(batch))}
	for i, c := range batch {
		req.Items[i] = c.req
	}
	var replies wire.StartReplies
	data, err := wire.Encode(&req)
	if err == nil {
		var resp *nats.Msg
		if resp, err = b.nc.Request(subject, data, startTimeout); err == nil {
			if err = wire.Decode(resp.Data, &replies); err == nil && len(replies.Items) < len(batch) {
				err = fmt.Errorf("%w: %d verdicts for %d chunks", errShortReply, len(replies.Items), len(batch))
			}
		}
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
			continue
		}
		c.reply = replies.Items[i]
	}
}
