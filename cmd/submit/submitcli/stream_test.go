package submitcli

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// runMapOn runs 'submit map' in-process with stdin a pipe the test keeps
// open, and returns the pipe's writer and the exit code to come.
func runMapOn(t *testing.T, ctx context.Context, out io.Writer, args ...string) (*io.PipeWriter, <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	code := make(chan int, 1)
	go func() {
		code <- runMap(ctx, args, IO{In: pr, Out: out, Err: io.Discard})
	}()
	return pw, code
}

func exitWithin(t *testing.T, code <-chan int, what string) int {
	t.Helper()
	select {
	case c := <-code:
		return c
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: submit map still runs 20s later, its stdin open", what)
		return 0
	}
}

// TestMapEndsWhileStdinStaysOpen: a map fed from a pipe that stays open,
// as 'tail -f | submit map' is, ends when 'submit cancel' cancels it, when
// its --timeout passes with no task out, and when its context ends (the
// signal), without waiting for more input.
func TestMapEndsWhileStdinStaysOpen(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)

	// Four sleeps take the worker's four slots; the fifth waits in the
	// stream, and 'submit cancel' cancels it.
	var out lockedBuilder
	pw, code := runMapOn(t, t.Context(), &out, "sleep", "--chunksize", "1")
	if _, err := io.WriteString(pw, strings.Repeat("2000\n", 5)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "four sleeps running and one queued", func() bool {
		c, o, _ := run(t, "", "status", "--json", "--wait", "100ms")
		return c == ExitOK && strings.Contains(o, `"queued": 1,`) && strings.Contains(o, `"in_flight": 4,`)
	})
	if c, o, e := run(t, "", "cancel"); c != ExitOK {
		t.Fatalf("cancel: exit %d %s %s", c, o, e)
	}
	if c := exitWithin(t, code, "after submit cancel"); c != ExitCancelled {
		t.Fatalf("after submit cancel: exit %d, want %d", c, ExitCancelled)
	}
	if lines := strings.Count(out.String(), "\n"); lines != 5 || strings.Count(out.String(), `"cancelled"`) != 1 {
		t.Fatalf("output %q, want four results and one cancelled line", out.String())
	}

	// --timeout with nothing out.
	_, code = runMapOn(t, t.Context(), io.Discard, "square", "--timeout", "500ms")
	if c := exitWithin(t, code, "--timeout 500ms with no input"); c != ExitTimeout {
		t.Fatalf("--timeout with no input: exit %d, want %d", c, ExitTimeout)
	}

	// The context, which Main ends on SIGINT or SIGTERM.
	ctx, cancel := context.WithCancel(t.Context())
	pw, code = runMapOn(t, ctx, io.Discard, "square")
	io.WriteString(pw, "3\n")
	cancel()
	exitWithin(t, code, "its context ended")
}

// failingWriter fails every write, as a closed pipe or a full disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestMapSaysWhenItCannotWriteResults: results that cannot be written end
// the map with ExitOutput and a message, not with success.
func TestMapSaysWhenItCannotWriteResults(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)
	var errb strings.Builder
	c := runMap(t.Context(), []string{"square", "1", "2", "3"}, IO{In: strings.NewReader(""), Out: failingWriter{}, Err: &errb})
	if c != ExitOutput || !strings.Contains(errb.String(), "no space left on device") {
		t.Fatalf("exit %d, stderr %q; want %d and the write's error", c, errb.String(), ExitOutput)
	}
}
