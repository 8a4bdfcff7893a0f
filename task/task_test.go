package task_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// TestValidateName: pools, prefixes, workers and producers are named by the
// rules of kinds, and their errors say name, not kind.
func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "default", "say-hi", "snake_case", "K9", strings.Repeat("x", task.MaxNameLen)} {
		if err := task.ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a.b", "a*", ">", "ü", "tab\t", strings.Repeat("x", task.MaxNameLen+1)} {
		err := task.ValidateName(bad)
		if !errors.Is(err, task.ErrInvalidName) || errors.Is(err, task.ErrInvalidKind) {
			t.Errorf("ValidateName(%q): %v, want ErrInvalidName", bad, err)
		}
		kerr := task.ValidateKind(bad)
		if want := strings.Replace(err.Error(), "invalid name", "invalid kind", 1); kerr.Error() != want {
			t.Errorf("ValidateKind(%q) = %q, want %q", bad, kerr, want)
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
	out, err := h.CallRaw(t.Context(), in)
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
	if _, err := h.CallRaw(t.Context(), enc("seven")); !errors.As(err, &te) || te.Type != task.TypeBadInput || te.Kind != "square" {
		t.Fatalf("wrong-typed input: %v, want a bad_input task error", err)
	}
	if _, err := h.CallRaw(t.Context(), []byte{0xc1}); !errors.As(err, &te) || te.Type != task.TypeBadInput {
		t.Fatalf("garbage input: %v, want bad_input", err)
	}
	_, err := h.CallRaw(t.Context(), enc(1))
	if !errors.As(err, &te) || te.Type != task.TypePanic || te.Message != "boom" || !strings.Contains(te.Stack, "task_test.go") {
		t.Fatalf("panic: %#v, want a panic error with the handler's stack", err)
	}
	if _, err := h.CallRaw(t.Context(), enc(2)); !errors.As(err, &te) || te.Message != "plain failure" || te.Type != "*errors.errorString" {
		t.Fatalf("plain error: %#v", err)
	}
	if _, err := h.Call(t.Context(), "seven"); !errors.As(err, &te) || te.Type != task.TypeBadInput {
		t.Fatalf("Call with a string: %v", err)
	}
	if v, err := h.Call(t.Context(), 5); err != nil || v != 25 {
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
	err := p.Do(t.Context(), func() error { calls++; return task.Retryable(errors.New("again")) })
	if calls != 3 || err == nil {
		t.Fatalf("retryable error: %d calls, %v; want 3 calls and the error", calls, err)
	}
	calls = 0
	err = p.Do(t.Context(), func() error { calls++; return errors.New("final") })
	if calls != 1 || err == nil {
		t.Fatalf("plain error: %d calls, want 1", calls)
	}
	calls = 0
	err = p.Do(t.Context(), func() error {
		if calls++; calls < 2 {
			return task.Retryable(errors.New("once"))
		}
		return nil
	})
	if calls != 2 || err != nil {
		t.Fatalf("success on the second call: %d calls, %v", calls, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls = 0
	slow := task.RetryPolicy{Attempts: 5, Backoff: time.Hour}
	if err := slow.Do(ctx, func() error { calls++; return task.Retryable(errors.New("x")) }); calls != 1 || err == nil {
		t.Fatalf("ended context: %d calls, %v; want 1 call", calls, err)
	}
}

func TestWorkerID(t *testing.T) {
	if got := task.WorkerID(t.Context()); got != "" {
		t.Fatalf("WorkerID of a bare context = %q", got)
	}
	if got := task.WorkerID(task.WithWorker(t.Context(), "w-1")); got != "w-1" {
		t.Fatalf("WorkerID = %q", got)
	}
}

func TestValidateKindCases(t *testing.T) {
	cases := []struct {
		name, kind string
		ok         bool
	}{
		{"one letter", "a", true},
		{"upper case", "SQUARE", true},
		{"digits only", "42", true},
		{"dash and underscore only", "-_", true},
		{"longest", strings.Repeat("k", task.MaxKindLen), true},
		{"empty", "", false},
		{"one too long", strings.Repeat("k", task.MaxKindLen+1), false},
		{"very long", strings.Repeat("k", 1<<16), false},
		{"dot", "a.b", false},
		{"star", "*", false},
		{"greater-than", "a>", false},
		{"space", "say hi", false},
		{"newline", "sq\n", false},
		{"nul", "sq\x00", false},
		{"delete", "\x7f", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"non-ASCII", "carré", false},
		{"invalid UTF-8", "\xc3", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := task.ValidateKind(c.kind)
			if c.ok != (err == nil) {
				t.Fatalf("ValidateKind(%q) = %v, want ok=%v", c.kind, err, c.ok)
			}
			if err != nil && !errors.Is(err, task.ErrInvalidKind) {
				t.Fatalf("ValidateKind(%q) = %v, want an error matching ErrInvalidKind", c.kind, err)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Fatalf("an error of %d bytes", len(err.Error()))
			}
		})
	}
}

func TestNewPanicsWithTheKindError(t *testing.T) {
	for _, kind := range []string{"", "a b", "a.b", strings.Repeat("x", task.MaxKindLen+1)} {
		func() {
			defer func() {
				err, ok := recover().(error)
				if !ok || !errors.Is(err, task.ErrInvalidKind) {
					t.Errorf("New(%q) panicked with %v, want an error matching ErrInvalidKind", kind, err)
				}
			}()
			task.New[int, int](kind)
		}()
	}
	if k := task.New[string, []byte]("say-hi").Kind(); k != "say-hi" {
		t.Fatalf("Kind() = %q", k)
	}
}

// mustPanic runs fn and returns what it panicked with, failing the test if
// it did not.
func mustPanic(t *testing.T, fn func()) (p any) {
	t.Helper()
	defer func() { p = recover() }()
	fn()
	t.Fatal("no panic")
	return nil
}

type namedHandler string

func (h namedHandler) Kind() string                                    { return string(h) }
func (h namedHandler) Call(context.Context, any) (any, error)          { return nil, nil }
func (h namedHandler) CallRaw(context.Context, []byte) ([]byte, error) { return nil, nil }

func TestRegistry(t *testing.T) {
	var reg task.Registry // the zero value is ready to use
	if _, ok := reg.Lookup("square"); ok {
		t.Fatal("an empty registry found square")
	}
	if kinds := reg.Kinds(); len(kinds) != 0 {
		t.Fatalf("Kinds() of an empty registry = %v", kinds)
	}
	task.Handle(&reg, square, func(_ context.Context, n int) (int, error) { return n * n, nil })
	reg.Register(namedHandler("b-raw"))
	reg.Register(namedHandler("A_upper"))
	if got, want := reg.Kinds(), []string{"A_upper", "b-raw", "square"}; !slices.Equal(got, want) {
		t.Fatalf("Kinds() = %v, want %v", got, want)
	}
	if h, ok := reg.Lookup("square"); !ok || h.Kind() != "square" {
		t.Fatalf("Lookup(square) = %v, %v", h, ok)
	}
	if _, ok := reg.Lookup("Square"); ok {
		t.Fatal("kinds are matched without case")
	}

	if p := mustPanic(t, func() { reg.Register(namedHandler("square")) }); !strings.Contains(fmt.Sprint(p), `"square" registered twice`) {
		t.Errorf("a duplicate kind panicked with %v", p)
	}
	if p := mustPanic(t, func() { reg.Register(namedHandler("bad kind")) }); !errors.Is(p.(error), task.ErrInvalidKind) {
		t.Errorf("an invalid kind panicked with %v", p)
	}
	var zero task.Task[int, int]
	if p := mustPanic(t, func() {
		task.Handle(&reg, zero, func(context.Context, int) (int, error) { return 0, nil })
	}); !strings.Contains(fmt.Sprint(p), "zero Task") {
		t.Errorf("a zero Task panicked with %v", p)
	}
}

// TestRegistryConcurrentUse: registering and looking up from many goroutines
// at once is safe (run with -race).
func TestRegistryConcurrentUse(t *testing.T) {
	reg := task.NewRegistry()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			kind := fmt.Sprintf("k%d", i)
			reg.Register(namedHandler(kind))
			if _, ok := reg.Lookup(kind); !ok {
				t.Errorf("%s not found after Register", kind)
			}
			reg.Kinds()
		})
	}
	wg.Wait()
	if n := len(reg.Kinds()); n != 16 {
		t.Fatalf("%d kinds, want 16", n)
	}
}

type point struct {
	X, Y int
}

var (
	norm    = task.New[point, float64]("norm")
	anyEcho = task.New[any, any]("any-echo")
)

func TestCallWithWrongTypedInput(t *testing.T) {
	reg := task.NewRegistry()
	ran := false
	task.Handle(reg, norm, func(_ context.Context, p point) (float64, error) {
		ran = true
		return float64(p.X*p.X + p.Y*p.Y), nil
	})
	h, _ := reg.Lookup("norm")
	cases := []struct {
		name string
		in   any
		want string
	}{
		{"string", "3,4", "input is string, want task_test.point"},
		{"nil", nil, "input is <nil>, want task_test.point"},
		{"pointer", &point{3, 4}, "input is *task_test.point, want task_test.point"},
		{"map", map[string]int{"X": 3}, "input is map[string]int, want task_test.point"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Call(t.Context(), c.in)
			var te *task.Error
			if !errors.As(err, &te) || te.Kind != "norm" || te.Type != task.TypeBadInput || te.Message != c.want {
				t.Fatalf("Call(%#v) = %#v, want a bad_input error %q", c.in, err, c.want)
			}
			if want := "task norm: bad_input: " + c.want; err.Error() != want {
				t.Fatalf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
	if ran {
		t.Fatal("the handler ran on a wrong-typed input")
	}
	if v, err := h.Call(t.Context(), point{3, 4}); err != nil || v != 25.0 {
		t.Fatalf("Call(point{3, 4}) = %v, %v", v, err)
	}

	task.Handle(reg, anyEcho, func(_ context.Context, v any) (any, error) { return v, nil })
	h, _ = reg.Lookup("any-echo")
	for _, in := range []any{nil, 1, "x", point{}} {
		if v, err := h.Call(t.Context(), in); err != nil || v != in {
			t.Errorf("an any handler: Call(%#v) = %v, %v", in, v, err)
		}
	}
}

func TestCallRawWithWrongTypedInput(t *testing.T) {
	reg := task.NewRegistry()
	task.Handle(reg, norm, func(_ context.Context, p point) (float64, error) { return float64(p.X + p.Y), nil })
	h, _ := reg.Lookup("norm")
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, raw := range map[string][]byte{
		"a string":                enc("3,4"),
		"a bool field":            enc(map[string]any{"X": true}),
		"empty":                   {},
		"truncated":               enc(point{3, 4})[:3],
		"a trailing byte":         append(enc(point{3, 4}), 0x01),
		"a huge length prefix":    {0xdf, 0xff, 0xff, 0xff, 0xff},
		"nested beyond the limit": append(bytes.Repeat([]byte{0x91}, 1000), 0x01),
	} {
		_, err := h.CallRaw(t.Context(), raw)
		var te *task.Error
		if !errors.As(err, &te) || te.Type != task.TypeBadInput || te.Kind != "norm" || te.Message == "" {
			t.Errorf("%s: %#v, want a bad_input error with a message", name, err)
		}
	}
	out, err := h.CallRaw(t.Context(), enc(point{3, 4}))
	if err != nil {
		t.Fatal(err)
	}
	v, err := norm.Codec().DecodeOut(out)
	if err != nil || v != 7.0 {
		t.Fatalf("DecodeOut = %v, %v", v, err)
	}
}

// panicsInHandler is a named function so that the test can find it in the
// recovered stack.
func panicsInHandler(_ context.Context, n int) (int, error) {
	switch n {
	case 0:
		panic("a string")
	case 1:
		panic(fmt.Errorf("an error %d", n))
	case 2:
		var m map[string]int
		//lint:ignore SA5000 the runtime error is the point
		m["x"] = 1
	}
	panic(nil)
}

func TestPanicIsRecoveredWithStack(t *testing.T) {
	reg := task.NewRegistry()
	task.Handle(reg, square, panicsInHandler)
	h, _ := reg.Lookup("square")
	for n, want := range []string{"a string", "an error 1", "assignment to entry in nil map", "panic called with nil argument"} {
		for name, call := range map[string]func() error{
			"Call": func() error { _, err := h.Call(t.Context(), n); return err },
			"CallRaw": func() error {
				raw, _ := msgpack.Marshal(n)
				_, err := h.CallRaw(t.Context(), raw)
				return err
			},
		} {
			err := call()
			var te *task.Error
			if !errors.As(err, &te) || te.Type != task.TypePanic || te.Kind != "square" {
				t.Errorf("%s(%d) = %#v, want a panic error", name, n, err)
				continue
			}
			if !strings.Contains(te.Message, want) {
				t.Errorf("%s(%d): message %q, want it to contain %q", name, n, te.Message, want)
			}
			if !strings.Contains(te.Stack, "panicsInHandler") || !strings.Contains(te.Stack, "task_test.go") {
				t.Errorf("%s(%d): the stack does not show the handler:\n%s", name, n, te.Stack)
			}
		}
	}
	// The registry still works after its handler panicked.
	task.Handle(reg, task.New[int, int]("after"), func(_ context.Context, n int) (int, error) { return n, nil })
	if h, _ := reg.Lookup("after"); h == nil {
		t.Fatal("the registry lost its state")
	}
}

var errQuota = errors.New("quota exceeded")

func TestHandlerErrorsKeepTheirCause(t *testing.T) {
	reg := task.NewRegistry()
	task.Handle(reg, square, func(_ context.Context, n int) (int, error) {
		switch n {
		case 0:
			return 0, fmt.Errorf("user 7: %w", errQuota)
		case 1:
			return 0, quotaError{}
		case 2:
			return 0, task.Retryable(errQuota)
		}
		return 0, &task.Error{Kind: "other", Type: "custom", Message: "as is"}
	})
	h, _ := reg.Lookup("square")
	cases := []struct {
		in        int
		typ, msg  string
		retryable bool
		cause     error
	}{
		{0, "*fmt.wrapError", "user 7: quota exceeded", false, errQuota},
		{1, "quota", "quota exceeded", false, quotaError{}},
		{2, "*errors.errorString", "quota exceeded", true, errQuota},
		{3, "custom", "as is", false, nil},
	}
	for _, c := range cases {
		_, err := h.Call(t.Context(), c.in)
		var te *task.Error
		if !errors.As(err, &te) || te.Type != c.typ || te.Message != c.msg || te.Retryable != c.retryable || te.Stack != "" {
			t.Errorf("Call(%d) = %#v, want type %q, message %q, retryable %v", c.in, err, c.typ, c.msg, c.retryable)
			continue
		}
		if c.cause != nil && !errors.Is(err, c.cause) {
			t.Errorf("Call(%d) = %v does not match its cause %v", c.in, err, c.cause)
		}
	}
}

func TestCallRawResultsAreNotShared(t *testing.T) {
	big := task.New[int, string]("big")
	reg := task.NewRegistry()
	task.Handle(reg, big, func(_ context.Context, n int) (string, error) {
		return strings.Repeat(string(rune('a'+n%26)), n), nil
	})
	h, _ := reg.Lookup("big")
	call := func(n int) []byte {
		raw, _ := msgpack.Marshal(n)
		out, err := h.CallRaw(t.Context(), raw)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := call(10)
	want := bytes.Clone(first)
	call(11)
	call(200 << 10) // larger than any buffer kept for reuse
	call(12)
	if !bytes.Equal(first, want) {
		t.Fatal("a later call changed an earlier call's output")
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			n := 100 + i
			var s string
			if err := msgpack.Unmarshal(call(n), &s); err != nil || len(s) != n || s[0] != byte('a'+n%26) {
				t.Errorf("concurrent CallRaw(%d) = %d bytes of %q..., %v", n, len(s), s[:min(len(s), 1)], err)
			}
		})
	}
	wg.Wait()
}

func TestCallRawOutputThatDoesNotEncode(t *testing.T) {
	ch := task.New[int, chan int]("channel")
	reg := task.NewRegistry()
	task.Handle(reg, ch, func(context.Context, int) (chan int, error) { return make(chan int), nil })
	h, _ := reg.Lookup("channel")
	raw, _ := msgpack.Marshal(1)
	_, err := h.CallRaw(t.Context(), raw)
	var te *task.Error
	if !errors.As(err, &te) || te.Type != "encode" || te.Kind != "channel" {
		t.Fatalf("CallRaw = %#v, want an encode error", err)
	}
}

func TestCodecs(t *testing.T) {
	c := norm.Codec()
	raw, err := c.EncodeIn(point{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	var p point
	if err := msgpack.Unmarshal(raw, &p); err != nil || p != (point{1, 2}) {
		t.Fatalf("EncodeIn wrote %x (%v)", raw, err)
	}
	if _, err := c.EncodeIn(make(chan int)); err == nil {
		t.Fatal("EncodeIn encoded a channel")
	}
	out, _ := msgpack.Marshal(2.5)
	if v, err := c.DecodeOut(out); err != nil || v != 2.5 {
		t.Fatalf("DecodeOut = %v, %v", v, err)
	}
	for name, bad := range map[string][]byte{
		"empty": {}, "a string for a float": mustMarshal(t, "x"), "truncated": out[:2], "reserved byte": {0xc1},
		"huge str prefix": {0xdb, 0xff, 0xff, 0xff, 0xff},
	} {
		if v, err := c.DecodeOut(bad); err == nil || !strings.HasPrefix(err.Error(), "task: decode result") {
			t.Errorf("DecodeOut(%s) = %v, %v; want a decode error", name, v, err)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCallWithAnInterfaceInput(t *testing.T) {
	str := task.New[fmt.Stringer, string]("stringer")
	reg := task.NewRegistry()
	task.Handle(reg, str, func(_ context.Context, s fmt.Stringer) (string, error) {
		if s == nil {
			return "nil", nil
		}
		return s.String(), nil
	})
	h, _ := reg.Lookup("stringer")
	if v, err := h.Call(t.Context(), nil); err != nil || v != "nil" {
		t.Fatalf("Call(nil) = %v, %v", v, err)
	}
	if v, err := h.Call(t.Context(), time.Second); err != nil || v != "1s" {
		t.Fatalf("Call(time.Second) = %v, %v", v, err)
	}
	_, err := h.Call(t.Context(), 5)
	var te *task.Error
	if !errors.As(err, &te) || te.Type != task.TypeBadInput || te.Message != "input is int, want fmt.Stringer" {
		t.Fatalf("Call(5) = %v, want a bad_input error naming fmt.Stringer", err)
	}
}

func TestErrorMatching(t *testing.T) {
	remote := func(typ string) *task.Error { return &task.Error{Kind: "k", Type: typ, Message: "m"} }
	cases := []struct {
		name               string
		err                error
		deadline, canceled bool
	}{
		{"deadline", remote(task.TypeDeadline), true, false},
		{"interrupted", remote(task.TypeInterrupted), false, true},
		{"panic", remote(task.TypePanic), false, false},
		{"bad input", remote(task.TypeBadInput), false, false},
		{"unknown kind", remote(task.TypeUnknownKind), false, false},
		{"wrapped deadline", fmt.Errorf("chunk 3: %w", remote(task.TypeDeadline)), true, false},
		{"local deadline", task.NewError("k", fmt.Errorf("fetch: %w", context.DeadlineExceeded)), true, false},
		{"local cancel", task.NewError("k", context.Canceled), false, true},
		{"retryable deadline", task.NewError("k", task.Retryable(context.DeadlineExceeded)), true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := errors.Is(c.err, context.DeadlineExceeded); got != c.deadline {
				t.Errorf("errors.Is(%v, DeadlineExceeded) = %v", c.err, got)
			}
			if got := errors.Is(c.err, context.Canceled); got != c.canceled {
				t.Errorf("errors.Is(%v, Canceled) = %v", c.err, got)
			}
			if errors.Is(c.err, errQuota) || errors.Is(c.err, task.ErrInvalidKind) {
				t.Errorf("%v matches an unrelated sentinel", c.err)
			}
			var te *task.Error
			if !errors.As(c.err, &te) || te.Kind != "k" {
				t.Errorf("errors.As(%v) = %+v", c.err, te)
			}
		})
	}
	if errors.Unwrap(remote(task.TypePanic)) != nil {
		t.Error("an error from the wire unwraps to something")
	}
	local := task.NewError("k", errQuota)
	if errors.Unwrap(local) != errQuota {
		t.Errorf("Unwrap = %v, want the handler's error", errors.Unwrap(local))
	}
	inner := remote("custom")
	if got := task.NewError("other", fmt.Errorf("wrapped: %w", inner)); got != inner {
		t.Errorf("NewError of a wrapped *Error = %+v, want the *Error itself", got)
	}
	if got := remote(task.TypePanic).Error(); got != "task k: panic: m" {
		t.Errorf("Error() = %q", got)
	}
}

func TestNewErrorTypes(t *testing.T) {
	cases := []struct {
		err       error
		typ       string
		retryable bool
	}{
		{errors.New("x"), "*errors.errorString", false},
		{fmt.Errorf("x: %w", errQuota), "*fmt.wrapError", false},
		{quotaError{}, "quota", false},
		{fmt.Errorf("x: %w", quotaError{}), "quota", false},
		{task.Retryable(quotaError{}), "quota", true},
		{task.Retryable(errors.New("x")), "*errors.errorString", true},
		{fmt.Errorf("x: %w", task.Retryable(errors.New("y"))), "*fmt.wrapError", true},
		{context.DeadlineExceeded, task.TypeDeadline, false},
		{fmt.Errorf("x: %w", context.Canceled), task.TypeInterrupted, false},
	}
	for _, c := range cases {
		e := task.NewError("k", c.err)
		if e.Kind != "k" || e.Type != c.typ || e.Retryable != c.retryable || e.Message != c.err.Error() {
			t.Errorf("NewError(%v) = %+v, want type %q, retryable %v", c.err, e, c.typ, c.retryable)
		}
	}
}

func TestRetryableMarks(t *testing.T) {
	base := errors.New("flaky")
	r := task.Retryable(base)
	if r.Error() != "flaky" {
		t.Errorf("Retryable changed the message to %q", r.Error())
	}
	if task.IsRetryable(nil) || task.IsRetryable(base) || !task.IsRetryable(r) {
		t.Error("IsRetryable misreads nil, a plain error or a marked one")
	}
	if !task.IsRetryable(fmt.Errorf("a: %w", fmt.Errorf("b: %w", r))) {
		t.Error("a mark under two wraps is lost")
	}
	if !task.IsRetryable(errors.Join(errors.New("x"), r)) {
		t.Error("a mark inside errors.Join is lost")
	}
	if !errors.Is(task.Retryable(r), base) {
		t.Error("a twice-marked error no longer matches its cause")
	}
}

// callTimes returns fn wrapped to record the time of each call.
func callTimes(fn func(n int) error) (func() error, *[]time.Time) {
	var at []time.Time
	return func() error {
		at = append(at, time.Now())
		return fn(len(at))
	}, &at
}

func TestRetryPolicyAttempts(t *testing.T) {
	flaky := func(int) error { return task.Retryable(errQuota) }
	cases := []struct {
		name     string
		p        task.RetryPolicy
		fn       func(n int) error
		calls    int
		wantNil  bool
		wantLast bool // the error of the last call is returned
	}{
		{"zero policy is the default", task.RetryPolicy{Backoff: time.Millisecond}, flaky, task.DefaultAttempts, false, true},
		{"negative attempts mean one", task.RetryPolicy{Attempts: -3, Backoff: time.Millisecond}, flaky, 1, false, true},
		{"one attempt", task.RetryPolicy{Attempts: 1, Backoff: time.Millisecond}, flaky, 1, false, true},
		{"every attempt used", task.RetryPolicy{Attempts: 4, Backoff: time.Millisecond}, flaky, 4, false, true},
		{"plain error is final", task.RetryPolicy{Attempts: 4, Backoff: time.Millisecond}, func(int) error { return errQuota }, 1, false, true},
		{"wrapped mark retried", task.RetryPolicy{Attempts: 3, Backoff: time.Millisecond},
			func(int) error { return fmt.Errorf("w: %w", task.Retryable(errQuota)) }, 3, false, true},
		{"success stops", task.RetryPolicy{Attempts: 5, Backoff: time.Millisecond}, func(n int) error {
			if n < 3 {
				return task.Retryable(errQuota)
			}
			return nil
		}, 3, true, false},
		{"plain error after retries", task.RetryPolicy{Attempts: 5, Backoff: time.Millisecond}, func(n int) error {
			if n < 2 {
				return task.Retryable(errQuota)
			}
			return fmt.Errorf("final %d", n)
		}, 2, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var last error
			fn, at := callTimes(func(n int) error { last = c.fn(n); return last })
			err := c.p.Do(t.Context(), fn)
			if len(*at) != c.calls {
				t.Fatalf("%d calls, want %d", len(*at), c.calls)
			}
			if c.wantNil != (err == nil) || c.wantLast && err != last {
				t.Fatalf("Do = %v, want the last call's %v", err, last)
			}
		})
	}
}

func TestRetryPolicyBackoff(t *testing.T) {
	p := task.RetryPolicy{Attempts: 5, Backoff: 4 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	fn, at := callTimes(func(int) error { return task.Retryable(errQuota) })
	p.Do(t.Context(), fn)
	if len(*at) != 5 {
		t.Fatalf("%d calls, want 5", len(*at))
	}
	// Timers never fire early: each wait is at least its backoff, doubling
	// from 4ms and capped at 10ms.
	for i, want := range []time.Duration{4 * time.Millisecond, 8 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond} {
		if gap := (*at)[i+1].Sub((*at)[i]); gap < want {
			t.Errorf("wait %d: %v, want at least %v", i+1, gap, want)
		}
	}

	// With the cap, 20 attempts from 1ms take about 40ms; doubling without
	// it would take over 8 minutes.
	capped := task.RetryPolicy{Attempts: 20, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	start := time.Now()
	capped.Do(t.Context(), func() error { return task.Retryable(errQuota) })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("20 capped attempts took %v", d)
	}
}

func TestRetryPolicyDefaultBackoff(t *testing.T) {
	fn, at := callTimes(func(int) error { return task.Retryable(errQuota) })
	task.RetryPolicy{Attempts: 2}.Do(t.Context(), fn)
	if len(*at) != 2 {
		t.Fatalf("%d calls, want 2", len(*at))
	}
	if gap := (*at)[1].Sub((*at)[0]); gap < 100*time.Millisecond {
		t.Fatalf("the default backoff waited %v, want at least 100ms", gap)
	}
}

// TestRetryPolicyStopsWhenContextEnds: a context that ends during a backoff
// ends Do at once with the last error.
func TestRetryPolicyStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	last := task.Retryable(errQuota)
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- task.RetryPolicy{Attempts: 10, Backoff: time.Hour}.Do(ctx, func() error {
			calls++
			cancel()
			return last
		})
	}()
	select {
	case err := <-done:
		if err != last || calls != 1 {
			t.Fatalf("Do = %v after %d calls, want the last error after 1", err, calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do still waits its backoff after its context ended")
	}
}

func TestWorkerIDs(t *testing.T) {
	ctx := task.WithWorker(t.Context(), "w-1")
	inner := task.WithWorker(ctx, "w-2")
	if task.WorkerID(ctx) != "w-1" || task.WorkerID(inner) != "w-2" {
		t.Fatalf("WorkerID = %q, %q; want w-1, w-2", task.WorkerID(ctx), task.WorkerID(inner))
	}
	child, cancel := context.WithTimeout(inner, time.Minute)
	defer cancel()
	if task.WorkerID(child) != "w-2" {
		t.Fatalf("a derived context names %q", task.WorkerID(child))
	}
	type otherKey struct{}
	if task.WorkerID(context.WithValue(t.Context(), otherKey{}, "x")) != "" {
		t.Fatal("WorkerID read another package's value")
	}

	// A runner names its worker; the handler sees it.
	reg := task.NewRegistry()
	task.Handle(reg, task.New[int, string]("whoami"), func(ctx context.Context, _ int) (string, error) { return task.WorkerID(ctx), nil })
	h, _ := reg.Lookup("whoami")
	if v, err := h.Call(task.WithWorker(t.Context(), "host-7"), 0); err != nil || v != "host-7" {
		t.Fatalf("the handler saw %v, %v", v, err)
	}
}

// TestAppendRaw: AppendRaw extends the caller's buffer with what CallRaw
// returns, and leaves it as it was when the call fails.
func TestAppendRaw(t *testing.T) {
	type appender interface {
		AppendRaw(ctx context.Context, dst, raw []byte) ([]byte, error)
	}
	type point struct{ X, Y int }
	reg := task.NewRegistry()
	task.Handle(reg, task.New[int, int]("square"), func(_ context.Context, n int) (int, error) {
		if n < 0 {
			return 0, errors.New("negative")
		}
		return n * n, nil
	})
	task.Handle(reg, task.New[int, point]("point"), func(_ context.Context, n int) (point, error) { return point{n, -n}, nil })
	task.Handle(reg, task.New[int, chan int]("channel"), func(context.Context, int) (chan int, error) { return make(chan int), nil })
	prefix := []byte("prefix")
	for _, c := range []struct {
		kind    string
		in      int
		wantErr bool
	}{
		{"square", 3, false},
		{"square", 1 << 20, false},
		{"square", -1, true},
		{"point", 7, false},
		{"channel", 1, true},
	} {
		h, _ := reg.Lookup(c.kind)
		a, ok := h.(appender)
		if !ok {
			t.Fatalf("the %s handler has no AppendRaw", c.kind)
		}
		raw, _ := msgpack.Marshal(c.in)
		dst := append(make([]byte, 0, 64), prefix...)
		got, err := a.AppendRaw(t.Context(), dst, raw)
		if c.wantErr {
			if err == nil || !bytes.Equal(got, prefix) {
				t.Errorf("%s(%d): %q, %v; want the buffer unchanged and an error", c.kind, c.in, got, err)
			}
			continue
		}
		want, err2 := h.CallRaw(t.Context(), raw)
		if err != nil || err2 != nil || !bytes.Equal(got, append(bytes.Clone(prefix), want...)) {
			t.Errorf("%s(%d): AppendRaw %x, %v; CallRaw %x, %v", c.kind, c.in, got, err, want, err2)
		}
	}
}

func TestRetryPolicyMaxAttempts(t *testing.T) {
	for _, c := range []struct {
		attempts, want int
	}{{0, task.DefaultAttempts}, {-2, 1}, {1, 1}, {7, 7}} {
		if got := (task.RetryPolicy{Attempts: c.attempts}).MaxAttempts(); got != c.want {
			t.Errorf("RetryPolicy{Attempts: %d}.MaxAttempts() = %d, want %d", c.attempts, got, c.want)
		}
	}
}

// jsonOnly is a struct written for JSON: json tags and no msgpack tags.
type jsonOnly struct {
	Text  string `json:"text"`
	Count int    `json:"count,omitempty"`
}

// TestStructsTakeTheirJSONNames: a struct with json tags only travels with
// its json names, so JSON written for it (as the submit CLI sends it)
// fills its fields; a field it does not have and a value of the wrong type
// are refused in words.
func TestStructsTakeTheirJSONNames(t *testing.T) {
	words := task.New[jsonOnly, jsonOnly]("words")
	reg := task.NewRegistry()
	task.Handle(reg, words, func(_ context.Context, in jsonOnly) (jsonOnly, error) {
		in.Count = len(strings.Fields(in.Text))
		return in, nil
	})
	h, _ := reg.Lookup("words")
	call := func(in any) (jsonOnly, error) {
		t.Helper()
		raw, err := msgpack.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := h.CallRaw(t.Context(), raw)
		if err != nil {
			return jsonOnly{}, err
		}
		v, err := words.Codec().DecodeOut(out)
		if err != nil {
			t.Fatal(err)
		}
		return v.(jsonOnly), nil
	}
	if got, err := call(map[string]any{"text": "a b c"}); err != nil || got != (jsonOnly{Text: "a b c", Count: 3}) {
		t.Fatalf("JSON-named input: %+v, %v; want text \"a b c\" and count 3", got, err)
	}
	// A Go producer's encoding takes the same names.
	raw, err := words.Codec().EncodeIn(jsonOnly{Text: "x y"})
	if err != nil {
		t.Fatal(err)
	}
	var asMap map[string]any
	if err := msgpack.Unmarshal(raw, &asMap); err != nil || asMap["text"] != "x y" {
		t.Fatalf("encoded input %v, %v; want the key \"text\"", asMap, err)
	}
	for _, c := range []struct {
		in   any
		want string
	}{
		{map[string]any{"txt": "a"}, `an object (task_test.jsonOnly) has no field "txt"`},
		{map[string]any{"text": 7}, "want an object (task_test.jsonOnly) (a string in it), got an integer"},
		{"just text", "want an object (task_test.jsonOnly), got a string"},
	} {
		_, err := call(c.in)
		var te *task.Error
		if !errors.As(err, &te) || te.Type != task.TypeBadInput || !strings.Contains(te.Message, c.want) {
			t.Errorf("input %v: %v; want a bad_input error saying %q", c.in, err, c.want)
		}
	}
	square := task.New[int, int]("sq")
	task.Handle(reg, square, func(_ context.Context, n int) (int, error) { return n * n, nil })
	hs, _ := reg.Lookup("sq")
	rawStr, _ := msgpack.Marshal("x")
	if _, err := hs.CallRaw(t.Context(), rawStr); err == nil || !strings.Contains(err.Error(), "want an integer, got a string") {
		t.Errorf("a string for an int: %v, want it said in words", err)
	}
}
