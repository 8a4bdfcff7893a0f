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
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// MaxNameLen is the longest name accepted by [ValidateName].
const MaxNameLen = 64

// MaxKindLen is the longest kind accepted by [ValidateKind].
const MaxKindLen = MaxNameLen

var (
	// ErrInvalidName is matched by errors for names that are empty, too long
	// or contain characters other than letters, digits, '-' and '_'.
	ErrInvalidName = errors.New("task: invalid name")
	// ErrInvalidKind is matched by errors for kinds that are empty, too long
	// or contain characters other than letters, digits, '-' and '_'.
	ErrInvalidKind = errors.New("task: invalid kind")
)

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
	enc.SetCustomStructTag(jsonStructs)
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
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(raw))
	dec.UsePreallocateValues(true)
	dec.SetCustomStructTag(jsonStructs)
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("task: decode result: %w", inWords(err, reflect.TypeFor[Out]()))
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

// ValidateName reports whether name can name a kind, a pool, a subject
// prefix, a worker or a producer: 1 to [MaxNameLen] characters of ASCII
// letters, digits, '-' and '_', so that it is always a single NATS subject
// token and a valid JetStream stream or consumer name. Its errors match
// [ErrInvalidName].
func ValidateName(name string) error {
	if why := invalid(name); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidName, why)
	}
	return nil
}

// ValidateKind reports whether kind can name a task: whether it is a valid
// name (see [ValidateName]). Its errors match [ErrInvalidKind].
func ValidateKind(kind string) error {
	if why := invalid(kind); why != "" {
		return fmt.Errorf("%w: %s", ErrInvalidKind, why)
	}
	return nil
}

// invalid says what makes name no valid name, or "" if it is one.
func invalid(name string) string {
	if name == "" {
		return "empty"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("%d characters, at most %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !tokenChar(name[i]) {
			return fmt.Sprintf("%q has %q at %d (allowed: letters, digits, '-', '_')", name, name[i], i)
		}
	}
	return ""
}

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
