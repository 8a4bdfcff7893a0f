package executor

import (
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/wire"
)

// Workers that are gone, and results that were lost. A worker that dies
// while it runs a chunk leaves the chunk unacked; JetStream would redeliver
// it only after AckWait, and the producer would grant the redelivery only
// once the attempt's lease lapsed. A final result lost on the way (the
// producer was reconnecting to another node as the worker sent it) would
// wait as long. The producer instead probes, once a second, each worker
// holding an attempt that has run for a second or more: a request to the
// inbox its Start named, listing those chunks (wire.Probe), which a live
// worker answers with the ones it still runs. An inbox that meets "no
// responders" twice in a row, a second apart, has no subscriber: its
// worker's connection is closed, and all its attempts end. An attempt its
// worker twice in a row says it no longer runs has had its final result
// lost, and ends. An attempt ends at once (endAttempt): the chunk is nakked
// and redelivered, and the new attempt is granted the items still owed a
// result. Cancel and Running stay exact, as only granted attempts run and
// their items stay running meanwhile; a worker cut off rather than dead may
// run such items a second time, as after any lapsed lease.

// probeAfter is how long an attempt runs before its worker is probed: most
// chunks end sooner.
const probeAfter = time.Second

// probeTimeout bounds one probe. A worker that does not answer in time is
// taken as there and running what it holds: only "no responders" says it is
// gone, and only its own answer that it does not run a chunk.
const probeTimeout = time.Second

// goneAfter is how many probes in a row must find no responder, or find the
// worker not running an attempt, before the attempt ends.
const goneAfter = 2

// probes is what probeWorkers remembers from one round to the next: how
// many probes in a row found each inbox without a responder, and each
// attempt not running.
type probes struct {
	gone map[string]int
	idle map[probed]int
}

// probed names one attempt of a chunk.
type probed struct {
	chunk *remoteChunk
	grant uint64
}

func newProbes() *probes { return &probes{gone: make(map[string]int), idle: make(map[probed]int)} }

// probeWorkers probes the worker of every attempt that has run for at least
// probeAfter, one request per worker, and ends the attempts of workers
// found gone and the attempts found no longer running. It blocks for at
// most probeTimeout. Inboxes and attempts no longer probed are forgotten.
func (n *NATS) probeWorkers(now time.Time, pr *probes) {
	byInbox := make(map[string][]probed)
	n.mu.Lock()
	for _, rc := range n.chunks {
		if a := rc.attempt; rc.started && !rc.lease.IsZero() && a.inbox != "" && now.Sub(a.since) >= probeAfter && rc.owed() > 0 {
			byInbox[a.inbox] = append(byInbox[a.inbox], probed{rc, a.grant})
		}
	}
	n.mu.Unlock()
	if len(byInbox) == 0 {
		clear(pr.gone)
		clear(pr.idle)
		return
	}
	type answer struct {
		gone    bool
		running map[uint64]bool // the grants it runs; nil: the worker did not say
	}
	var (
		mu      sync.Mutex
		answers = make(map[string]answer, len(byInbox))
		probe   sync.WaitGroup
	)
	for inbox, held := range byInbox {
		req := wire.Probe{Executor: n.id, Chunks: make([]uint64, len(held)), Grants: make([]uint64, len(held))}
		for i, p := range held {
			req.Chunks[i], req.Grants[i] = p.chunk.id, p.grant
		}
		data, err := wire.Encode(&req)
		if err != nil {
			continue
		}
		probe.Go(func() {
			var a answer
			m, err := n.nc.Request(inbox, data, probeTimeout)
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				a.gone = true
			case err == nil && len(m.Data) > 0:
				var reply wire.ProbeReply
				if wire.Decode(m.Data, &reply) == nil {
					a.running = make(map[uint64]bool, len(reply.Grants))
					for _, g := range reply.Grants {
						a.running[g] = true
					}
				}
			}
			mu.Lock()
			answers[inbox] = a
			mu.Unlock()
		})
	}
	probe.Wait()

	var end []probed
	idle := make(map[probed]int)
	// A worker's answer follows its final results on the wire, but not
	// into their handler: while result messages wait to be handled, an
	// attempt left out may have its result among them.
	backlog := false
	if n.results != nil {
		if msgs, _, err := n.results.Pending(); err == nil && msgs > 0 {
			backlog = true
		}
	}
	for inbox, held := range byInbox {
		a := answers[inbox]
		if !a.gone {
			delete(pr.gone, inbox)
		} else if pr.gone[inbox]++; pr.gone[inbox] >= goneAfter {
			delete(pr.gone, inbox)
			end = append(end, held...)
			continue
		}
		if a.running == nil {
			continue
		}
		for _, p := range held {
			if a.running[p.grant] {
				continue
			}
			if backlog {
				// Results not yet handled may be these attempts': this
				// round does not count against them.
				if c := pr.idle[p]; c > 0 {
					idle[p] = c
				}
				continue
			}
			if idle[p] = pr.idle[p] + 1; idle[p] >= goneAfter {
				delete(idle, p)
				end = append(end, p)
			}
		}
	}
	for inbox := range pr.gone {
		if byInbox[inbox] == nil {
			delete(pr.gone, inbox)
		}
	}
	pr.idle = idle
	for _, p := range end {
		n.endAttempt(p.chunk, p.grant, "its worker is gone or no longer runs it")
	}
}

// WorkerGone tells the executor that the worker with id is gone for good,
// as a process pool knows when one of its processes has exited: the
// attempts of the chunks that worker runs end at once, and other workers run
// those chunks again instead of waiting out its lease. It is for a party
// that knows the worker exited, as executor/processpool does for the
// processes it waited for: the attempts of a worker that still runs end all
// the same, and their tasks may run twice (each future is still set once,
// by the first result). Each call costs one pass over the executor's chunks.
func (n *NATS) WorkerGone(id string) {
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
