package executortest

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/task"
)

// The subjects a served Harness answers on, one per request; the payload is
// the task's id or Fail key. They are fixed, so one NATS server carries the
// harness of one test at a time.
const (
	subjectPrefix  = "executortest.harness."
	subjectRan     = subjectPrefix + "ran"     // reply once counted
	subjectAttempt = subjectPrefix + "attempt" // reply: the count, in decimal
	// A Gate task's start: marked at once, replied to once the gate opens.
	subjectStart = subjectPrefix + "start"
)

// errorHeader carries the harness's refusal, such as "stopped", in a reply.
const errorHeader = "Executortest-Error"

// Serve answers, over nc, the requests of the handlers [RegisterRemote]
// added in other processes, until stop is called: it records in h which
// tasks ran and started and how often each Fail key ran, answering each at
// once, and answers a Gate task's start once [Harness.Open] opens its gate.
// By the time [Harness.Started] reports the start, the answer is pending;
// each pending answer holds a goroutine. Serve returns once the NATS server
// has its subscription, or an error if it cannot subscribe.
//
// stop unsubscribes, answers the starts still pending with an error (their
// handlers fail with it), and returns once every goroutine Serve started has
// ended; later calls do nothing. Called after nc is closed, it still
// returns, but the pending answers are lost.
func (h *Harness) Serve(nc *nats.Conn) (stop func(), err error) {
	var (
		mu      sync.Mutex
		stopped bool
		waits   sync.WaitGroup
	)
	quit := make(chan struct{})
	sub, err := nc.Subscribe(subjectPrefix+"*", func(m *nats.Msg) {
		id := string(m.Data)
		switch m.Subject {
		case subjectRan:
			h.markRan(id)
			reply(m, "", "")
		case subjectAttempt:
			reply(m, strconv.Itoa(h.attempt(id)), "")
		case subjectStart:
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				reply(m, "", "stopped")
				return
			}
			g := h.gate(id)
			waits.Go(func() {
				select {
				case <-g:
					reply(m, "", "")
				case <-quit:
					reply(m, "", "stopped")
				}
			})
			h.markStarted(id)
		default:
			reply(m, "", "unknown request "+m.Subject)
		}
	})
	if err == nil {
		// Requests from other connections find the subscription.
		err = nc.Flush()
	}
	if err != nil {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		return nil, fmt.Errorf("executortest: serve the harness: %w", err)
	}
	return sync.OnceFunc(func() {
		// Unsubscribe fails only on a closed connection, whose
		// subscriptions are gone already.
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
		close(quit)
		waits.Wait()
	}), nil
}

// reply answers m with data, or with the refusal refused if it is not empty.
// A requester that is gone is no one's concern.
func reply(m *nats.Msg, data, refused string) {
	r := nats.NewMsg(m.Reply)
	r.Data = []byte(data)
	if refused != "" {
		r.Header.Set(errorHeader, refused)
	}
	_ = m.RespondMsg(r)
}

// RegisterRemote adds the suite's handlers to reg for workers in another
// process than the test's: they reach the Harness the test serves on the
// same NATS server ([Harness.Serve]) with request/reply over nc, one round
// trip per record. Record and Fail make one; Gate makes two: that it ran,
// then that it started, whose answer comes when the gate opens, unless the
// handler's ctx ends first, when the handler returns ctx's error at once.
// Records of runs and attempts are made even if the handler's ctx has ended,
// as [Harness.Register]'s are (a start only while it has not), and each
// waits at most 20 seconds for its answer. A handler whose request fails, or
// that the harness refuses (it stopped serving), fails with an error saying
// so.
func RegisterRemote(reg *task.Registry, nc *nats.Conn) { register(reg, remote{nc}) }

// remote is a Harness served over NATS.
type remote struct{ nc *nats.Conn }

func (r remote) markRan(ctx context.Context, id string) error {
	_, err := r.record(ctx, subjectRan, id)
	return err
}

func (r remote) attempt(ctx context.Context, key string) (int, error) {
	v, err := r.record(ctx, subjectAttempt, key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("executortest: harness counted %q attempts of %q", v, key)
	}
	return n, nil
}

func (r remote) start(ctx context.Context, id string) error {
	_, err := r.ask(ctx, subjectStart, id)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// record asks for a record that the handler's ending must not stop.
func (r remote) record(ctx context.Context, subject, id string) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), patience)
	defer cancel()
	return r.ask(ctx, subject, id)
}

func (r remote) ask(ctx context.Context, subject, id string) (string, error) {
	m, err := r.nc.RequestWithContext(ctx, subject, []byte(id))
	if err != nil {
		return "", fmt.Errorf("executortest: ask the harness %s %q: %w", subject, id, err)
	}
	if refused := m.Header.Get(errorHeader); refused != "" {
		return "", fmt.Errorf("executortest: harness refused %s %q: %s", subject, id, refused)
	}
	return string(m.Data), nil
}
