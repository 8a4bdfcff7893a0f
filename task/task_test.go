package task_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/task"
)

var square = task.New[int, int]("square")

func TestValidateKind(t *testing.T) {
	for _, ok := range []string{"a", "square", "say-hi", "snake_case", "K9", strings.Repeat("x", task.MaxKindLen)} {
		if err := task.ValidateKind(ok); err != nil {
			t.Errorf("ValidateKind(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a.b", "a*", ">", "ü", "tab\t", strings.Repeat("x", task.MaxKindLen+1)} {
		if err := task.ValidateKind(bad); !errors.Is(err, task.ErrInvalidKind) {
			t.Errorf("ValidateKind(%q): %v, want ErrInvalidKind", bad, err)
		}
	}
}

func TestNewPanicsOnAnInvalidKind(t *testing.T) {
	defer func() {
		if p := recover(); p == nil {
			t.Fatal("New accepted the kind \"a.b\"")
		}
	}()
	task.New[int, int]("a.b")
}

func TestRegisterTwicePanics(t *testing.T) {
	reg := task.NewRegistry()
	task.Handle(reg, square, func(context.Context, int) (int, error) { return 0, nil })
	defer func() {
		if p := recover(); p == nil {
			t.Fatal("a second handler for square was accepted")
		}
	}()
	task.Handle(reg, square, func(context.Context, int) (int, error) { return 0, nil })
}

func TestCodecRoundTrip(t *testing.T) {
	c := square.Codec()
	if c.Kind != "square" {
		t.Fatalf("codec kind %q", c.Kind)
	}
	in, err := c.EncodeIn(12)
	if err != nil {
		t.Fatal(err)
	}
	reg := task.NewRegistry()
	task.Handle(reg, square, func(_ context.Context, n int) (int, error) { return n * n, nil })
	h, _ := reg.Lookup("square")
	out, err := h.CallRaw(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.DecodeOut(out)
	if err != nil || v != 144 {
		t.Fatalf("DecodeOut = %v, %v; want 144", v, err)
	}
	if _, err := c.DecodeOut([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Fatal("DecodeOut accepted a huge length prefix")
	}
}

func TestCallRawErrors(t *testing.T) {
	reg := task.NewRegistry()
	task.Handle(reg, square, func(_ context.Context, n int) (int, error) {
		switch n {
		case 1:
			panic("boom")
		case 2:
			return 0, errors.New("plain failure")
		}
		return n * n, nil
	})
	h, ok := reg.Lookup("square")
	if !ok {
		t.Fatal("square not registered")
	}
	enc := func(v any) []byte {
		b, _ := msgpack.Marshal(v)
		return b
	}
	var te *task.Error
	if _, err := h.CallRaw(context.Background(), enc("seven")); !errors.As(err, &te) || te.Type != task.TypeBadInput || te.Kind != "square" {
		t.Fatalf("wrong-typed input: %v, want a bad_input task error", err)
	}
	if _, err := h.CallRaw(context.Background(), []byte{0xc1}); !errors.As(err, &te) || te.Type != task.TypeBadInput {
		t.Fatalf("garbage input: %v, want bad_input", err)
	}
	_, err := h.CallRaw(context.Background(), enc(1))
	if !errors.As(err, &te) || te.Type != task.TypePanic || te.Message != "boom" || !strings.Contains(te.Stack, "task_test.go") {
		t.Fatalf("panic: %#v, want a panic error with the handler's stack", err)
	}
	if _, err := h.CallRaw(context.Background(), enc(2)); !errors.As(err, &te) || te.Message != "plain failure" || te.Type != "*errors.errorString" {
		t.Fatalf("plain error: %#v", err)
	}
	if _, err := h.Call(context.Background(), "seven"); !errors.As(err, &te) || te.Type != task.TypeBadInput {
		t.Fatalf("Call with a string: %v", err)
	}
	if v, err := h.Call(context.Background(), 5); err != nil || v != 25 {
		t.Fatalf("Call(5) = %v, %v", v, err)
	}
}

type quotaError struct{}

func (quotaError) Error() string     { return "quota exceeded" }
func (quotaError) ErrorType() string { return "quota" }

func TestErrorsMatch(t *testing.T) {
	deadline := &task.Error{Kind: "k", Type: task.TypeDeadline}
	if !errors.Is(deadline, context.DeadlineExceeded) || errors.Is(deadline, context.Canceled) {
		t.Error("a deadline error does not match context.DeadlineExceeded alone")
	}
	if !errors.Is(&task.Error{Type: task.TypeInterrupted}, context.Canceled) {
		t.Error("an interrupted error does not match context.Canceled")
	}
	e := task.NewError("k", quotaError{})
	if e.Type != "quota" || e.Message != "quota exceeded" || !errors.As(e, new(quotaError)) {
		t.Errorf("NewError(quotaError) = %+v", e)
	}
	if got := task.NewError("k", context.DeadlineExceeded); got.Type != task.TypeDeadline {
		t.Errorf("a context deadline becomes %q", got.Type)
	}
	if e := task.NewError("k", deadline); e != deadline {
		t.Error("NewError rewrapped a *task.Error")
	}
	if got := deadline.Error(); got != "task k: deadline_exceeded: " {
		t.Errorf("Error() = %q", got)
	}
}

func TestRetryable(t *testing.T) {
	if task.Retryable(nil) != nil {
		t.Fatal("Retryable(nil) is not nil")
	}
	base := errors.New("flaky")
	r := task.Retryable(base)
	if !task.IsRetryable(r) || task.IsRetryable(base) || !errors.Is(r, base) {
		t.Fatal("Retryable does not mark and wrap")
	}
	if e := task.NewError("k", r); !e.Retryable || e.Type != "*errors.errorString" {
		t.Fatalf("NewError(retryable) = %+v", e)
	}
}

func TestRetryPolicy(t *testing.T) {
	p := task.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	calls := 0
	err := p.Do(context.Background(), func() error { calls++; return task.Retryable(errors.New("again")) })
	if calls != 3 || err == nil {
		t.Fatalf("retryable error: %d calls, %v; want 3 calls and the error", calls, err)
	}
	calls = 0
	err = p.Do(context.Background(), func() error { calls++; return errors.New("final") })
	if calls != 1 || err == nil {
		t.Fatalf("plain error: %d calls, want 1", calls)
	}
	calls = 0
	err = p.Do(context.Background(), func() error {
		if calls++; calls < 2 {
			return task.Retryable(errors.New("once"))
		}
		return nil
	})
	if calls != 2 || err != nil {
		t.Fatalf("success on the second call: %d calls, %v", calls, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	slow := task.RetryPolicy{Attempts: 5, Backoff: time.Hour}
	if err := slow.Do(ctx, func() error { calls++; return task.Retryable(errors.New("x")) }); calls != 1 || err == nil {
		t.Fatalf("ended context: %d calls, %v; want 1 call", calls, err)
	}
}

func TestWorkerID(t *testing.T) {
	if got := task.WorkerID(context.Background()); got != "" {
		t.Fatalf("WorkerID of a bare context = %q", got)
	}
	if got := task.WorkerID(task.WithWorker(context.Background(), "w-1")); got != "w-1" {
		t.Fatalf("WorkerID = %q", got)
	}
}
