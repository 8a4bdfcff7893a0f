package executor_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// cutProxy forwards TCP connections to a NATS server and can cut them all
// and refuse new ones, as the loss of the node a client is connected to
// does.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	open  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, open: true}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if !p.open {
			p.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(s, c); s.Close() })
		p.wg.Go(func() { io.Copy(c, s); c.Close() })
	}
}

// cut closes every connection and refuses new ones until reopen.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = false
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) reopen() {
	p.mu.Lock()
	p.open = true
	p.mu.Unlock()
}

// TestLostFinalResultRunsAgainAtOnce: a worker's final result sent while
// its producer is cut off from the server is lost; the producer, back,
// finds that the worker no longer runs the chunk and has it run again at
// once, not after the 30s lease.
func TestLostFinalResultRunsAgainAtOnce(t *testing.T) {
	srv, wnc := startBroker(t)
	proxy := newCutProxy(t, srv.ClientURL()[len("nats://"):])
	disconnected := make(chan struct{}, 1)
	pnc, err := nats.Connect(proxy.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			select {
			case disconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pnc.Close)
	pc := broker.PoolConfig{AckWait: 30 * time.Second, Grace: 30 * time.Second}
	ex := newNATS(t, pnc, executor.NATSPoolConfig(pc))

	release := make(chan struct{})
	started := make(chan struct{}, 2)
	reg := task.NewRegistry()
	var mu sync.Mutex
	calls := 0
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		started <- struct{}{}
		if first {
			<-release
		}
		return n * n, nil
	})
	startWorker(t, wnc, reg, worker.Config{Concurrency: 1, PoolConfig: pc})

	// A spy sees the worker's result go by while the producer cannot.
	spy := connect(t, srv.ClientURL())
	subj, err := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	if err != nil {
		t.Fatal(err)
	}
	results, err := spy.SubscribeSync(subj.Control(ex.ID()) + broker.ResultSuffix)
	if err != nil {
		t.Fatal(err)
	}
	spy.Flush()

	f, err := executor.Submit(t.Context(), ex, Square, 7)
	if err != nil {
		t.Fatal(err)
	}
	recvWithin(t, started, "the task's start")
	proxy.cut()
	recvWithin(t, disconnected, "the producer's disconnection")
	close(release)
	if _, err := results.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("the worker sent no result: %v", err)
	}
	lost := time.Now()
	proxy.reopen()

	ctx, cancel := context.WithTimeout(t.Context(), pc.AckWait/3)
	defer cancel()
	if v, err := f.Result(ctx); err != nil || v != 49 {
		t.Fatalf("Square(7) after its final result was lost: %d, %v", v, err)
	}
	recvWithin(t, started, "the second run")
	t.Logf("ran again %v after its result was lost", time.Since(lost).Round(time.Millisecond))
}

func recvWithin[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}
