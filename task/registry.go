package task

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime/debug"
	"sort"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// Handler is the untyped form of a registered handler, used by runners (the
// local executor and the worker) that cannot name type parameters. Both calls
// recover a panic in the handler and return it as an *[Error] of type
// [TypePanic] with the stack.
type Handler interface {
	Kind() string
	// Call runs the handler on an input of the task's In type and returns a
	// value of its Out type. An input of another type fails with TypeBadInput.
	Call(ctx context.Context, in any) (any, error)
	// CallRaw runs the handler on msgpack-encoded input and returns the
	// msgpack-encoded output. The handlers [Handle] registers also have
	// AppendRaw(ctx, dst, raw []byte) ([]byte, error), which appends the
	// output to dst instead, for runners that reuse one buffer.
	CallRaw(ctx context.Context, raw []byte) ([]byte, error)
}

// Registry maps kinds to handlers. It is safe for concurrent use. The zero
// value is an empty registry ready to use.
type Registry struct {
	mu       sync.RWMutex
	handlers map[string]Handler
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Handle registers fn as the handler of t in r. It panics if t's kind is
// already registered, like http.Handle for a duplicate pattern: two handlers
// for one kind is a programming error.
func Handle[In, Out any](r *Registry, t Task[In, Out], fn func(ctx context.Context, in In) (Out, error)) {
	if t.kind == "" {
		panic("task: Handle with a zero Task; declare it with task.New")
	}
	r.Register(&handler[In, Out]{kind: t.kind, fn: fn})
}

// Register adds an untyped handler. It panics on a duplicate kind or an
// invalid one.
func (r *Registry) Register(h Handler) {
	if err := ValidateKind(h.Kind()); err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handlers == nil {
		r.handlers = make(map[string]Handler)
	}
	if _, dup := r.handlers[h.Kind()]; dup {
		panic(fmt.Sprintf("task: kind %q registered twice", h.Kind()))
	}
	r.handlers[h.Kind()] = h
}

// Lookup returns the handler of kind, if any.
func (r *Registry) Lookup(kind string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handlers[kind]
	return h, ok
}

// Kinds returns the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kinds := make([]string, 0, len(r.handlers))
	for k := range r.handlers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

type handler[In, Out any] struct {
	kind   string
	fn     func(context.Context, In) (Out, error)
	codecs sync.Pool // of *rawCodec, reused across CallRaw calls
}

// maxPooledBuffer is the largest encode buffer kept for reuse, so one huge
// result does not pin its memory.
const maxPooledBuffer = 64 << 10

// rawCodec is a msgpack decoder and encoder with their reader and buffer,
// kept between calls so a call allocates only for its values.
type rawCodec struct {
	r   bytes.Reader
	dec *msgpack.Decoder
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func (h *handler[In, Out]) codec() *rawCodec {
	if c, ok := h.codecs.Get().(*rawCodec); ok {
		return c
	}
	c := &rawCodec{}
	c.dec = msgpack.NewDecoder(&c.r)
	c.enc = msgpack.NewEncoder(&c.buf)
	return c
}

// release returns c to the pool unless its buffer grew too large to keep.
func (h *handler[In, Out]) release(c *rawCodec) {
	if c.buf.Cap() <= maxPooledBuffer {
		h.codecs.Put(c)
	}
}

func (h *handler[In, Out]) Kind() string { return h.kind }

func (h *handler[In, Out]) Call(ctx context.Context, in any) (out any, err error) {
	v, ok := in.(In)
	// A nil input is a valid In when In is an interface type, though no
	// type assertion accepts it.
	if !ok && (in != nil || any(v) != nil) {
		return nil, &Error{Kind: h.kind, Type: TypeBadInput, Message: fmt.Sprintf("input is %T, want %v", in, reflect.TypeFor[In]())}
	}
	return h.call(ctx, v)
}

func (h *handler[In, Out]) CallRaw(ctx context.Context, raw []byte) ([]byte, error) {
	return h.AppendRaw(ctx, nil, raw)
}

// AppendRaw is CallRaw appending the encoded output to dst and returning the
// extended buffer; on error it returns dst unchanged. A runner that reuses
// one buffer for many calls allocates nothing per output of a scalar type.
func (h *handler[In, Out]) AppendRaw(ctx context.Context, dst, raw []byte) ([]byte, error) {
	in, err := h.decode(raw)
	if err != nil {
		return dst, &Error{Kind: h.kind, Type: TypeBadInput, Message: err.Error()}
	}
	out, err := h.call(ctx, in)
	if err != nil {
		return dst, err
	}
	b, err := h.encode(dst, out)
	if err != nil {
		return dst, &Error{Kind: h.kind, Type: TypeEncode, Message: err.Error()}
	}
	return b, nil
}

// decode decodes an input: a scalar directly, anything else with a pooled
// decoder once msgp.Check has bounded every length raw declares by its size.
func (h *handler[In, Out]) decode(raw []byte) (In, error) {
	if in, ok := decodeScalar[In](raw); ok {
		return in, nil
	}
	var in In
	if err := msgp.Check(raw); err != nil {
		return in, err
	}
	c := h.codec()
	defer h.release(c)
	c.r.Reset(raw)
	defer c.r.Reset(nil)
	c.dec.Reset(&c.r)
	// As msgpack.Unmarshal does, with json tags and unknown fields as
	// jsonStructs says.
	c.dec.UsePreallocateValues(true)
	c.dec.SetCustomStructTag(jsonStructs)
	c.dec.DisallowUnknownFields(true)
	if err := c.dec.Decode(&in); err != nil {
		return in, inWords(err, reflect.TypeFor[In]())
	}
	return in, nil
}

// encode appends out's msgpack encoding to dst: a scalar directly, anything
// else with the handler's pooled encoder.
func (h *handler[In, Out]) encode(dst []byte, out Out) ([]byte, error) {
	if b, ok := appendScalar(dst, any(out)); ok {
		return b, nil
	}
	c := h.codec()
	defer h.release(c)
	c.buf.Reset()
	c.enc.Reset(&c.buf)
	c.enc.SetCustomStructTag(jsonStructs)
	if err := c.enc.Encode(out); err != nil {
		return dst, err
	}
	return append(dst, c.buf.Bytes()...), nil
}

func (h *handler[In, Out]) call(ctx context.Context, in In) (out Out, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Kind: h.kind, Type: TypePanic, Message: fmt.Sprint(p), Stack: string(debug.Stack())}
		}
	}()
	out, err = h.fn(ctx, in)
	if err != nil {
		return out, NewError(h.kind, err)
	}
	return out, nil
}
