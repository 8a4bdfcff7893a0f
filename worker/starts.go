package worker

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
)

// startBatcher sends start requests to producers, one round trip at a time
// per producer: a request that finds none in flight goes at once; requests
// made while one is in flight wait and then go together in the next. At low
// load every chunk gets its own request with no added delay; under load one
// round trip answers as many chunks as arrived during the last one.
//
// No goroutine of its own: the caller whose request opens a round trip sends
// it, and when the answer is in, hands the next batch to one of the callers
// waiting for it.
type startBatcher struct {
	nc *nats.Conn

	mu     sync.Mutex
	queues map[string]*startQueue // by start subject
}

// startQueue is one producer's pending start requests.
type startQueue struct {
	busy    bool // a round trip is in flight or being handed over
	waiting []*startCall
}

// startCall is one chunk's start request while it waits for its verdict.
type startCall struct {
	req   broker.Start
	reply broker.StartReply
	err   error
	// wake says the call is answered (false) or that its goroutine is to
	// send the next batch, itself in it (true).
	wake chan bool
}

func newStartBatcher(nc *nats.Conn) *startBatcher {
	return &startBatcher{nc: nc, queues: make(map[string]*startQueue)}
}

// errShortReply is a producer's answer with fewer verdicts than requests.
var errShortReply = errors.New("worker: start reply does not answer every chunk")

// ask requests leave to start one chunk from the producer listening on
// subject and blocks until its verdict, or the round trip's error, is in. A
// round trip takes at most startTimeout.
func (b *startBatcher) ask(subject string, req broker.Start) (broker.StartReply, error) {
	call := &startCall{req: req, wake: make(chan bool, 1)}
	b.mu.Lock()
	q := b.queues[subject]
	if q == nil {
		q = &startQueue{}
		b.queues[subject] = q
	}
	q.waiting = append(q.waiting, call)
	lead := !q.busy
	q.busy = true
	b.mu.Unlock()
	if !lead && !<-call.wake {
		return call.reply, call.err
	}
	// This goroutine sends the batch, its own request in it.
	b.mu.Lock()
	batch := q.waiting
	q.waiting = nil
	b.mu.Unlock()
	b.send(subject, batch)

	b.mu.Lock()
	var next *startCall
	if len(q.waiting) > 0 {
		next = q.waiting[0]
	} else {
		q.busy = false
		delete(b.queues, subject)
	}
	b.mu.Unlock()
	for _, c := range batch {
		if c != call {
			c.wake <- false
		}
	}
	if next != nil {
		next.wake <- true
	}
	return call.reply, call.err
}

// send makes one round trip for batch and records each call's verdict or the
// round trip's error.
func (b *startBatcher) send(subject string, batch []*startCall) {
	req := broker.Starts{Items: make([]broker.Start, len(batch))}
	for i, c := range batch {
		req.Items[i] = c.req
	}
	var replies broker.StartReplies
	data, err := broker.Encode(&req)
	if err == nil {
		var resp *nats.Msg
		if resp, err = b.nc.Request(subject, data, startTimeout); err == nil {
			if err = broker.Decode(resp.Data, &replies); err == nil && len(replies.Items) < len(batch) {
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
