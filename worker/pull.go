package worker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// lostAfter is how long a no-wait pull request may go unanswered before
// the puller takes it as lost (a server restart, a leader change) and asks
// again. A server holds such a request while the consumer is at its
// MaxAckPending and answers it once chunks are acked.
const lostAfter = time.Second

// puller fetches one kind's chunks over a single subscription for the life
// of Run: each pull request names the same inbox, so a fetch costs one
// request and its answers, not a subscription of its own. It has at most
// one request in flight and never blocks: the pull loop sends a request,
// waits on signal with its other work, and polls what arrived.
//
// Only the pull loop calls its methods, but receive, which the
// subscription calls.
type puller struct {
	nc    *nats.Conn
	next  string // the consumer's pull request subject
	inbox string
	sub   *nats.Subscription

	mu      sync.Mutex
	arrived []*nats.Msg   // chunks and status messages not yet polled
	signal  chan struct{} // a message arrived

	owed int       // chunks the request in flight may still deliver; 0 if none is in flight
	lost time.Time // when the request in flight is taken as lost
	// idle is set when a request ended short, the stream having no more
	// chunks to give, and cleared by the next chunk.
	idle bool
}

// newPuller subscribes to a fresh inbox for the consumer of stream.
func newPuller(nc *nats.Conn, apiPrefix, stream, consumer string) (*puller, error) {
	p := &puller{
		nc:     nc,
		next:   apiPrefix + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
		inbox:  nc.NewInbox(),
		signal: make(chan struct{}, 1),
	}
	sub, err := nc.Subscribe(p.inbox, p.receive)
	if err != nil {
		return nil, fmt.Errorf("worker: subscribe to pulled chunks: %w", err)
	}
	// The requests bound what arrives; the client must never drop any of it.
	sub.SetPendingLimits(-1, -1)
	p.sub = sub
	return p, nil
}

func (p *puller) receive(m *nats.Msg) {
	p.mu.Lock()
	p.arrived = append(p.arrived, m)
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// take removes and returns what has arrived.
func (p *puller) take() []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.arrived
	p.arrived = nil
	return got
}

// errPullStatus is a pull request the server refused or ended with an error
// status (consumer deleted, leadership change, no responders...).
var errPullStatus = errors.New("worker: pull request refused")

// inFlight reports whether a request may still deliver chunks.
func (p *puller) inFlight() bool { return p.owed > 0 && time.Now().Before(p.lost) }

// request asks for up to n chunks, delivered as soon as the stream has them:
// a no-wait request, ended by the server as soon as the stream runs out, or,
// if wait is positive, a long poll that waits up to wait for the first.
func (p *puller) request(n int, wait time.Duration) error {
	req := make([]byte, 0, 48)
	req = append(req, `{"batch":`...)
	req = strconv.AppendInt(req, int64(n), 10)
	lost := lostAfter
	if wait == 0 {
		req = append(req, `,"no_wait":true}`...)
	} else {
		req = append(req, `,"expires":`...)
		req = strconv.AppendInt(req, wait.Nanoseconds(), 10)
		req = append(req, '}')
		lost = wait + time.Second
	}
	if err := p.nc.PublishRequest(p.next, p.inbox, req); err != nil {
		return err
	}
	p.owed, p.lost = n, time.Now().Add(lost)
	return nil
}

// poll returns the chunks that have arrived and notes the end of the
// request in flight. A chunk arriving after its request was taken as lost
// is returned all the same. The error is a refused request's.
func (p *puller) poll() ([]*nats.Msg, error) {
	msgs := p.take()
	chunks := msgs[:0]
	var err error
	for _, m := range msgs {
		switch status(m) {
		case isChunk:
			chunks = append(chunks, m)
			p.idle = false
			if p.owed > 0 {
				p.owed--
			}
		case isEnd:
			p.owed, p.idle = 0, true
		case isError:
			p.owed = 0
			err = fmt.Errorf("%w: %s %s", errPullStatus, m.Header.Get("Status"), m.Header.Get("Description"))
		}
	}
	return chunks, err
}

// What a message on the pull inbox is.
const (
	isChunk = iota
	isEnd   // the server ended a pull request: no messages (404), expired (408) or complete
	isError // the server refused a pull request
	isOther // a heartbeat or flow control message, though none is asked for
)

func status(m *nats.Msg) int {
	if len(m.Data) > 0 || len(m.Header) == 0 {
		return isChunk
	}
	switch m.Header.Get("Status") {
	case "":
		return isChunk
	case "404", "408":
		return isEnd
	case "409":
		// Only with max_bytes, which is not asked for.
		if strings.Contains(m.Header.Get("Description"), "Batch Completed") {
			return isEnd
		}
		return isError
	case "100":
		return isOther
	default:
		return isError
	}
}

// drainTimeout bounds close's wait for the server to confirm the end of the
// subscription.
const drainTimeout = 5 * time.Second

// close ends the subscription and returns the chunks that arrived but were
// not polled. It drains rather than unsubscribes: a request still in flight,
// or one taken as lost, may yet be answered, and a chunk delivered to an
// inbox nobody listens to would wait out its AckWait before anyone else gets
// it. Once the server has the end of the subscription it drops such
// requests, and whatever it sent before that is received and returned.
func (p *puller) close() []*nats.Msg {
	closed := p.sub.StatusChanged(nats.SubscriptionClosed)
	if err := p.sub.Drain(); err == nil {
		timer := time.NewTimer(drainTimeout)
		select {
		case <-closed:
		case <-timer.C:
			p.sub.Unsubscribe()
		}
		timer.Stop()
	}
	var left []*nats.Msg
	for _, m := range p.take() {
		if status(m) == isChunk {
			left = append(left, m)
		}
	}
	return left
}
