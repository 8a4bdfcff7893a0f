package submitcli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jetpool/jetpool/worker"
)

// noWorkerAfter is how long a command's tasks are outstanding before it looks
// for a worker online that serves their kind: long enough for the workers of
// a fresh embedded pool to start, short enough that nobody gives up first.
const noWorkerAfter = 3 * time.Second

// warnUnserved looks once, after the delay unless stop comes first, for a
// worker of s's pool online that serves kind, and if there is none says on
// io.Err that the tasks wait for one. Tasks of a kind no worker serves stay
// queued, so without it the command would wait in silence. The look costs one
// service discovery ([worker.DiscoverWait]); if it fails nothing is said.
// stop ends the look and waits for it; it is safe to call more than once.
// io.Err must be safe for concurrent writes (see syncWriter).
func (s *session) warnUnserved(ctx context.Context, kind string, after time.Duration, io IO) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(after)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		served, err := worker.ServedKinds(ctx, s.nc, s.pool)
		if err != nil || served[kind] > 0 {
			return
		}
		over := ""
		if io.Terminal {
			over = "\r\033[K" // over a progress bar's line
		}
		fmt.Fprintf(io.Err, "%ssubmit: no worker online serves kind %q in pool %q; tasks wait for one\n", over, kind, s.pool)
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

// syncWriter returns w made safe for writes from several goroutines, each
// write whole.
func syncWriter(w io.Writer) io.Writer {
	if _, ok := w.(*lockedWriter); ok {
		return w
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
