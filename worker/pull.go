package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// noWaitTimeout bounds the wait for a server's answer to a no-wait pull
// request, which it answers at once.
const noWaitTimeout = 2 * time.Second

// puller fetches one kind's chunks over a single subscription for the life
// of Run: each pull request names the same inbox, so a fetch costs one
// request and its answers, not a subscription of its own.
//
// A request the server answers late (after fetch gave up on it) is not lost:
// its chunks arrive on the same inbox and are returned by the next fetch,
// which may then return more than it asked for.
type puller struct {
	nc    *nats.Conn
	next  string // the consumer's pull request subject
	inbox string
	sub   *nats.Subscription

	mu      sync.Mutex
	arrived []*nats.Msg   // chunks and status messages not yet taken
	signal  chan struct{} // a message arrived

	// A request fetch gave up on when ctx ended: when it expires at the
	// server and how many chunks it still waits for.
	open       time.Time
	openChunks int
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

// giveBack puts msgs back in front of what arrived since they were taken.
func (p *puller) giveBack(msgs []*nats.Msg) {
	if len(msgs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.arrived = append(msgs[:len(msgs):len(msgs)], p.arrived...)
}

// errPullStatus is a pull request the server refused or ended with an error
// status (consumer deleted, leadership change, no responders...).
var errPullStatus = errors.New("worker: pull request refused")

// fetch asks for up to n chunks and returns those delivered before the
// server ends the request: at once if wait is 0 (a no-wait request), else
// once n arrived or wait has passed (a long poll). It returns early if ctx
// ends.
func (p *puller) fetch(ctx context.Context, n int, wait time.Duration) ([]*nats.Msg, error) {
	req := make([]byte, 0, 48)
	req = append(req, `{"batch":`...)
	req = strconv.AppendInt(req, int64(n), 10)
	timeout := noWaitTimeout
	if wait == 0 {
		req = append(req, `,"no_wait":true}`...)
	} else {
		req = append(req, `,"expires":`...)
		req = strconv.AppendInt(req, wait.Nanoseconds(), 10)
		req = append(req, '}')
		timeout = wait + time.Second
	}
	if err := p.nc.PublishRequest(p.next, p.inbox, req); err != nil {
		return nil, err
	}
	var (
		got   []*nats.Msg
		timer *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		msgs := p.take()
		for i, m := range msgs {
			switch status(m) {
			case isChunk:
				got = append(got, m)
			case isEnd:
				// A chunk after the status answers a later request.
				p.giveBack(msgs[i+1:])
				return got, nil
			case isError:
				p.giveBack(msgs[i+1:])
				return got, fmt.Errorf("%w: %s %s", errPullStatus, m.Header.Get("Status"), m.Header.Get("Description"))
			}
		}
		if len(got) >= n {
			return got, nil
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
		}
		select {
		case <-p.signal:
		case <-timer.C:
			return got, nil
		case <-ctx.Done():
			return got, nil
		}
	}
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
// not taken. It drains rather than unsubscribes: a request fetch gave up on
// may still be answered, and a chunk delivered to an inbox nobody listens to
// would wait out its AckWait before anyone else gets it. Once the server has
// the end of the subscription it drops such requests, and whatever it sent
// before that is received and returned.
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
