package submitcli

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jetpool/jetpool/task"
)

// flushEvery bounds how long a result line waits in the output's buffer.
const flushEvery = 100 * time.Millisecond

// flushAt is the buffered size at which the output is written at once.
const flushAt = 64 << 10

// lineWriter is the results' way to standard output. It gathers whole lines
// and writes them out at most flushEvery after the first of them was put,
// or once flushAt bytes wait, always in writes of whole lines: a reader of a
// pipe or of a file (tail -f) sees each result within flushEvery, a command
// killed meanwhile leaves no partial line, and a million results cost far
// fewer than a million writes. Its timer is its only goroutine, and flush
// stops it. A write that fails drops every later line; close reports it.
type lineWriter struct {
	mu    sync.Mutex
	w     io.Writer
	buf   []byte
	timer *time.Timer // runs while buf holds lines
	err   error       // the first failed write; later lines are dropped
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: w} }

// line puts one line, b and a newline.
func (l *lineWriter) line(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(append(l.buf, b...), '\n')
	switch {
	case len(l.buf) >= flushAt:
		l.flushLocked()
	case l.timer == nil:
		l.timer = time.AfterFunc(flushEvery, l.flush)
	}
}

// flush writes every line put so far.
func (l *lineWriter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func (l *lineWriter) flushLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if len(l.buf) == 0 {
		return
	}
	if l.err == nil {
		_, l.err = l.w.Write(l.buf)
	}
	l.buf = l.buf[:0]
}

// close writes every line put so far and returns the first write that
// failed, so that a command whose results did not all reach its output
// says so and exits ExitOutput.
func (l *lineWriter) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
	if l.err != nil {
		return fmt.Errorf("write results: %w", l.err)
	}
	return nil
}

// writeJSON puts v as one line of JSON; a value JSON cannot hold is put as
// an error of type encode in its place.
func (l *lineWriter) writeJSON(v any) {
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"type": task.TypeEncode, "message": err.Error()}})
	}
	l.line(b)
}

// writeJSON writes v to w as one line of JSON, as lineWriter.writeJSON.
func writeJSON(w io.Writer, v any) {
	l := newLineWriter(w)
	l.writeJSON(v)
	l.flush()
}

// jsonable turns msgpack's decoded maps with non-string keys into ones JSON
// can hold.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case map[string]any:
		for k, val := range x {
			x[k] = jsonable(val)
		}
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
	}
	return v
}
