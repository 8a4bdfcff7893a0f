package executor

import (
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Workers that are gone. A worker that dies while it runs a chunk leaves
// the chunk unacked; JetStream would redeliver it only after AckWait, and
// the producer would grant the redelivery only once the attempt's lease
// lapsed. The producer instead checks, once a second, that each worker
// holding a running attempt is still there, with an empty request to the
// inbox its Start named, which a live worker answers. An inbox that meets
// "no responders" twice in a row, a second apart, has no subscriber: its
// worker's connection is closed. Its attempts end at once (endAttempt): the
// chunk is nakked and redelivered, and the new attempt is granted the items
// still owed a result. Cancel and Running stay exact, as only granted
// attempts run and their items stay running meanwhile; a worker cut off
// rather than dead may run such items a second time, as after any lapsed
// lease.

// probeAfter is how long an attempt runs before its worker is probed: most
// chunks end sooner.
const probeAfter = time.Second

// probeTimeout bounds one probe. A worker that does not answer in time is
// taken as there: only "no responders" says it is gone.
const probeTimeout = time.Second

// goneAfter is how many probes in a row must find no responder.
const goneAfter = 2

// probeWorkers probes the worker of every attempt that has run for at least
// probeAfter, one request per worker, and ends the attempts of workers
// found gone. It blocks for at most probeTimeout. missed counts each
// inbox's probes without a responder in a row; inboxes no longer probed
// are forgotten.
func (n *NATS) probeWorkers(now time.Time, missed map[string]int) {
	byInbox := make(map[string][]*remoteChunk)
	n.mu.Lock()
	for _, rc := range n.chunks {
		if a := rc.attempt; rc.started && !rc.lease.IsZero() && a.inbox != "" && now.Sub(a.since) >= probeAfter {
			byInbox[a.inbox] = append(byInbox[a.inbox], rc)
		}
	}
	n.mu.Unlock()
	for inbox := range missed {
		if byInbox[inbox] == nil {
			delete(missed, inbox)
		}
	}
	if len(byInbox) == 0 {
		return
	}
	var (
		mu    sync.Mutex
		gone  = make(map[string]bool)
		probe sync.WaitGroup
	)
	for inbox := range byInbox {
		probe.Go(func() {
			if _, err := n.nc.Request(inbox, nil, probeTimeout); errors.Is(err, nats.ErrNoResponders) {
				mu.Lock()
				gone[inbox] = true
				mu.Unlock()
			}
		})
	}
	probe.Wait()
	for inbox, held := range byInbox {
		if !gone[inbox] {
			delete(missed, inbox)
			continue
		}
		if missed[inbox]++; missed[inbox] < goneAfter {
			continue
		}
		delete(missed, inbox)
		for _, rc := range held {
			n.endAttemptOf(rc, inbox, "its worker is gone")
		}
	}
}

// endAttemptOf ends rc's latest attempt if its worker's inbox is inbox.
func (n *NATS) endAttemptOf(rc *remoteChunk, inbox, why string) {
	n.mu.Lock()
	a := rc.attempt
	n.mu.Unlock()
	if a.inbox == inbox {
		n.endAttempt(rc, a.grant, why)
	}
}

// workerGone tells the executor that the worker with id is gone for good,
// as a process pool knows when one of its processes exits: the chunks that
// worker runs are run again by other workers at once.
func (n *NATS) workerGone(id string) {
	n.mu.Lock()
	var held []*remoteChunk
	for _, rc := range n.chunks {
		if rc.started && rc.attempt.worker == id {
			held = append(held, rc)
		}
	}
	n.mu.Unlock()
	for _, rc := range held {
		n.mu.Lock()
		a := rc.attempt
		n.mu.Unlock()
		if a.worker == id {
			n.endAttempt(rc, a.grant, "its worker process exited")
		}
	}
}
