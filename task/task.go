// Package task declares units of work shared by producers and workers.
//
// A task is a stable string kind with a typed input and output, declared once
// and imported by both sides:
//
//	var Square = task.New[int, int]("square")
//
// Workers register a handler for it with [Handle]; producers submit it through
// the executor package. The kind, not a Go type name, identifies the task on
// the wire, so renaming Go types never breaks queued work.
package task

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// MaxKindLen is the longest kind accepted by [ValidateKind].
const MaxKindLen = 64

// ErrInvalidKind is matched by errors for kinds that are empty, too long or
// contain characters other than letters, digits, '-' and '_'.
var ErrInvalidKind = errors.New("task: invalid kind")

// Task is a typed handle on a kind. Its zero value is not usable; create one
// with [New].
type Task[In, Out any] struct {
	kind string
}

// New declares a task of the given kind. It panics if the kind is invalid (see
// [ValidateKind]): tasks are declared once at package level, like a regexp
// with regexp.MustCompile, and a bad kind is a programming error.
func New[In, Out any](kind string) Task[In, Out] {
	if err := ValidateKind(kind); err != nil {
		panic(err)
	}
	return Task[In, Out]{kind: kind}
}

// Kind returns the task's kind.
func (t Task[In, Out]) Kind() string { return t.kind }

// Codec returns the untyped view of t used by executors: how to encode its
// input and decode its output.
func (t Task[In, Out]) Codec() Codec {
	return Codec{Kind: t.kind, EncodeIn: encodeIn, AppendIn: appendIn, DecodeOut: decodeOut[Out]}
}

func encodeIn(in any) ([]byte, error) { return appendIn(nil, in) }

// appendIn appends in's msgpack encoding to dst: a scalar directly, anything
// else with msgpack's pooled encoder, reset as msgpack.Marshal resets it.
func appendIn(dst []byte, in any) ([]byte, error) {
	if b, ok := appendScalar(dst, in); ok {
		return b, nil
	}
	buf := bytes.NewBuffer(dst)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	if err := enc.Encode(in); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}

// decodeOut decodes a result of type Out. Unless it is a scalar that
// decodeScalar takes, the msgpack is checked first so that hostile bytes
// cannot make it allocate by a declared length.
func decodeOut[Out any](raw []byte) (any, error) {
	if out, ok := decodeScalar[Out](raw); ok {
		return out, nil
	}
	var out Out
	if err := msgp.Check(raw); err != nil {
		return nil, fmt.Errorf("task: decode result: %w", err)
	}
	if err := msgpack.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("task: decode result: %w", err)
	}
	return out, nil
}

// Codec is the untyped form of a [Task]: its kind and the msgpack encoding of
// its input and output. Executors use it where type parameters cannot reach.
// Values of Go's predeclared scalar types (numbers, string, bool, []byte) are
// encoded and decoded without reflection, to the same bytes and values as
// msgpack's Marshal and Unmarshal; values of every other type, including
// named types such as `type Celsius float64`, go through msgpack's reflective
// encoder and decoder.
type Codec struct {
	Kind string
	// EncodeIn returns the msgpack encoding of in, a value of the task's
	// input type, in a new slice.
	EncodeIn func(in any) ([]byte, error)
	// AppendIn appends the msgpack encoding of in to dst and returns the
	// extended slice, so that many inputs can share one buffer. On error it
	// returns dst with its length unchanged.
	AppendIn func(dst []byte, in any) ([]byte, error)
	// DecodeOut decodes raw, exactly one msgpack value, into a value of the
	// task's output type. It fails on malformed or trailing bytes and on a
	// value msgpack cannot decode into the type.
	DecodeOut func(raw []byte) (any, error)
}

// ValidateKind reports whether kind can name a task. A kind is 1 to
// [MaxKindLen] characters of ASCII letters, digits, '-' and '_', so it is
// always a single NATS subject token and a valid consumer name.
func ValidateKind(kind string) error {
	if kind == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKind)
	}
	if len(kind) > MaxKindLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidKind, len(kind), MaxKindLen)
	}
	for i := 0; i < len(kind); i++ {
		if !tokenChar(kind[i]) {
			return fmt.Errorf("%w: %q has %q at %d (allowed: letters, digits, '-', '_')", ErrInvalidKind, kind, kind[i], i)
		}
	}
	return nil
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
