//lint:file-ignore U1000 the _msgpack fields are read by reflection: they carry msgpack's as_array tag.

package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
	"github.com/jetpool/jetpool/task"
)

// The envelope. Every message is msgpack with structs encoded as arrays,
// so field names never travel. The flow of one chunk (a chunk of a named
// job, whose state lives in JetStream, follows the flow in job.go
// instead):
//
//  1. The producer publishes a [Chunk] to Subjects.Tasks(kind) with the
//     header Nats-Msg-Id = MsgID(executor, chunk id), so a retried publish is
//     stored once. Chunk ids are drawn at random, so nobody can publish a
//     chunk under the id of one a producer is about to publish.
//  2. A worker pulls it and asks leave to start it: a [Starts] request to
//     Control+".start" carrying a [Start] for this chunk and for any other
//     chunks of the same producer it holds and has not asked about yet, so
//     one round trip serves many chunks under load. A Start carries the
//     [Digest] of the message it holds, which proves it holds the chunk the
//     producer published (the chunk id alone is no secret), and the message's
//     ack subject. The producer, the only arbiter of its futures, answers
//     [StartReplies], one [StartReply] per Start in order: VerdictGo with the
//     items still to run (cancelled ones left out, the rest now Running) and
//     a Grant, a random token that only this reply carries; VerdictDrop
//     (nothing left to run, or not a chunk of this producer: ack the
//     message) or VerdictBusy (another attempt holds a live lease: nak with a
//     delay). A request with no Starts at all is a ping: the producer answers
//     it with no verdicts, which tells a worker that it is there.
//  3. While running, the worker sends JetStream InProgress and a [Lease]
//     with its Grant to Control+".lease" every LeaseMs/3. Once a second the
//     producer sends each worker that has run an attempt for a second or
//     more a [Probe], a request to the inbox its Start named listing those
//     attempts by chunk and grant; the worker answers a [ProbeReply] with the
//     grants of those it still runs or is still asking to start. A worker
//     whose inbox has no responders twice in a row is gone, and an attempt
//     it leaves out twice in a row has had its final result lost (say while the producer was reconnecting): either way the
//     producer ends the attempt at once rather than after the lease, naking
//     the chunk so that the items still owed a result run again. An empty
//     request is a ping, answered with an empty reply.
//  4. The worker publishes [Result]s, each with its Grant, to
//     Control+".result"; the last has Final set. The producer takes results
//     only with a grant it gave for that chunk, sets each future once, and
//     once every item of the chunk is done acks the chunk itself, on the ack
//     subject the granted Start named. A final result that leaves granted
//     items without one ends the attempt: the producer naks the message, and
//     the redelivery is granted the items still missing. A lost result means
//     a redelivery whose Start is answered VerdictDrop, so nothing runs
//     twice. A result message holds one or more Results back to back (their
//     encodings concatenated), so that under load one message carries the
//     results of many chunks; [DecodeResults] reads it.
//  5. Interrupt: the producer publishes an [Interrupt] to the worker's
//     inbox named in its Start; the handler's context ends.
//
// Values too large for a message travel by reference: an [Item] carries a
// [Ref] instead of Args to an input the producer put into the pool's values
// bucket under a random [InputName] before step 1, and an [ItemResult] a
// Ref instead of Value to a result the worker put there under
// [ResultName] before step 4. A Ref holds the key the value is sealed
// under, so only the readers of its message can open it. The worker reads
// an input as its item begins; the producer reads a result only under the
// ResultName it makes itself from the chunk, the item and the attempt's
// grant, and meanwhile counts the item as answered: the attempt's final
// result does not end the attempt on its account, and no new attempt is
// granted it. The producer removes an input once every future of its chunk
// is done, and a result once read.

// Limits enforced by the decoders, so hostile input cannot make them
// allocate without bound.
const (
	// MaxItems is the largest number of items in one chunk or result.
	MaxItems = 1 << 20
	// MaxStackLen bounds the stack carried by a panic error.
	MaxStackLen = 64 << 10
)

// ErrMalformed is matched by errors for messages that do not decode or
// break the envelope's rules.
var ErrMalformed = errors.New("wire: malformed message")

// Chunk is a batch of calls of one kind, the unit published, delivered,
// started and acked.
type Chunk struct {
	_msgpack struct{} `msgpack:",as_array"`
	Executor string   // the producer's id
	ID       uint64   // unique within the producer
	Kind     string
	Control  string // the producer's control subject
	Deadline int64  // Unix nanoseconds; 0: none
	Items    []Item

	// The fields of a chunk of a named job (see the job flow in job.go);
	// a chunk of unnamed work has them zero and does not carry them.
	Job string        // "<owner>.<name>": the job's keys in the pool's jobs bucket
	Ord uint64        // the chunk's place among the job's chunks, its key
	Pos uint64        // the place of its first item in the job's input
	Key []byte        // JobKeyLen bytes; proofs of holding the chunk are keyed with it
	TTL time.Duration // how long the job's records are kept; 0: until the job is deleted
}

// Named reports whether c is a chunk of a named job.
func (c *Chunk) Named() bool { return c.Job != "" }

// Item is one call in a chunk: its index in the chunk and its msgpack input.
// Args travel as a msgpack bin, not inline, so the envelope stays well formed
// whatever bytes a producer puts in them; a worker that cannot decode them
// fails that item with task.TypeBadInput.
type Item struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint32
	Args     []byte
	Ref      *Ref // set instead of Args for an input kept in the pool's values bucket
}

// Ref names a value too large for a message, kept in the pool's values
// bucket (broker.Values) sealed under Key: the message that carries the Ref
// is what lets its readers open the value, and a value anyone else wrote or
// changed under Name fails to open rather than reads as another. A Ref
// travels only in messages whose readers may read the value: a chunk (its
// workers) and a result (its producer).
type Ref struct {
	_msgpack struct{} `msgpack:",as_array"`
	Name     string   // the object's name in the bucket
	Size     int64    // of the value, unsealed
	Key      []byte   // RefKeyLen bytes
}

// RefKeyLen is the length of a Ref's Key.
const RefKeyLen = 32

// Verdicts a producer gives to a Start request.
const (
	VerdictGo   uint8 = 1
	VerdictDrop uint8 = 2
	VerdictBusy uint8 = 3
)

// Start asks the producer for leave to run a chunk.
type Start struct {
	_msgpack struct{} `msgpack:",as_array"`
	Chunk    uint64
	Worker   string // the worker's id
	Inbox    string // where to send interrupts for this attempt
	Delivery uint64 // JetStream's delivery count; with Worker it names the attempt
	Digest   []byte // Digest of the chunk's message as the worker holds it
	Ack      string // the message's JetStream ack subject
}

// Digest is what a Start proves its chunk with: the SHA-256 of the chunk's
// message as published. A chunk's id and the digest of a random id make it
// unguessable by anyone who was not delivered the chunk.
func Digest(data []byte) [sha256.Size]byte { return sha256.Sum256(data) }

// Starts is one start request: leave to start each of its chunks.
type Starts struct {
	_msgpack struct{} `msgpack:",as_array"`
	Items    []Start
}

// StartReplies answers a Starts request: Items[i] is the verdict on the
// request's Items[i].
type StartReplies struct {
	_msgpack struct{} `msgpack:",as_array"`
	Items    []StartReply
}

// StartReply is the producer's verdict on a Start.
type StartReply struct {
	_msgpack struct{} `msgpack:",as_array"`
	Verdict  uint8
	Items    []uint32 // with VerdictGo: the seqs to run
	LeaseMs  int64    // with VerdictGo: renew the lease at least every LeaseMs/3
	Grant    uint64   // with VerdictGo: the attempt's token, carried by its leases and results
}

// Lease renews a running attempt's lease.
type Lease struct {
	_msgpack struct{} `msgpack:",as_array"`
	Chunk    uint64
	Grant    uint64
}

// Result carries the outcomes of some items of a chunk.
type Result struct {
	_msgpack struct{} `msgpack:",as_array"`
	Chunk    uint64
	Worker   string
	Final    bool   // no more results follow for this attempt
	Grant    uint64 // the attempt's grant
	Items    []ItemResult
}

// ItemResult is one item's outcome: Value (msgpack) or Err.
type ItemResult struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint32
	Value    []byte // msgpack, as a bin
	Err      *ErrorInfo
	Ref      *Ref // set instead of Value for a value kept in the pool's values bucket
}

// ErrorInfo is a task's error on the wire.
type ErrorInfo struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Type      string
	Message   string
	Stack     string
	Retryable bool
}

// Interrupt asks a worker to end a running task's context.
type Interrupt struct {
	_msgpack struct{} `msgpack:",as_array"`
	Executor string
	Chunk    uint64
	Seq      uint32
	Grant    uint64 // the running attempt's grant
}

// Probe asks a worker which of the producer's attempts it runs (flow step
// 3): Chunks[i] granted Grants[i].
type Probe struct {
	_msgpack struct{} `msgpack:",as_array"`
	Executor string
	Chunks   []uint64
	Grants   []uint64
}

// ProbeReply lists the grants of a Probe's attempts that the worker runs
// (it has not yet sent their final result) or is still asking to start
// (the grant has not reached it yet).
type ProbeReply struct {
	_msgpack struct{} `msgpack:",as_array"`
	Grants   []uint64
}

// CancelRequest asks producers to cancel every future they hold that has not
// started, as Future.Cancel does: the chunks stay queued, and workers that
// pull them are told to drop them. Empty fields match every producer and
// every kind.
type CancelRequest struct {
	_msgpack struct{} `msgpack:",as_array"`
	Executor string   // only this producer
	Kind     string   // only tasks of this kind
}

// CancelReply is one producer's answer to a CancelRequest.
type CancelReply struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Executor  string
	Cancelled int64 // futures cancelled
	Running   int64 // futures running, left to finish
}

// NewErrorInfo converts a handler's error for the wire.
func NewErrorInfo(kind string, err error) *ErrorInfo {
	te := task.NewError(kind, err)
	stack := te.Stack
	if len(stack) > MaxStackLen {
		stack = stack[:MaxStackLen]
	}
	return &ErrorInfo{Type: te.Type, Message: te.Message, Stack: stack, Retryable: te.Retryable}
}

// TaskError converts a wire error back into a *task.Error of kind.
func (e *ErrorInfo) TaskError(kind string) *task.Error {
	return &task.Error{Kind: kind, Type: e.Type, Message: e.Message, Stack: e.Stack, Retryable: e.Retryable}
}

// maxWireTime is the latest time a Chunk's Deadline can carry.
var maxWireTime = time.Unix(0, math.MaxInt64)

// Deadline is t as a Chunk's Deadline, in Unix nanoseconds. The zero
// time is 0, no deadline, and so is a time after the year 2262, beyond what
// the field holds: a deadline that far off is none. A time before 1970 is
// 1, long past.
func Deadline(t time.Time) int64 {
	switch {
	case t.IsZero() || t.After(maxWireTime):
		return 0
	case t.UnixNano() < 1:
		return 1
	}
	return t.UnixNano()
}

// MsgID is the JetStream dedup id of a chunk.
func MsgID(executorID string, chunk uint64) string {
	return executorID + "." + strconv.FormatUint(chunk, 10)
}

// InputName returns a name in the values bucket for an input a producer
// keeps there: random, so that a party that may list the bucket learns
// nothing from it (not the chunk's id, which would let it take the chunk's
// dedup id before the chunk is published).
func InputName() string {
	var b [16]byte
	rand.Read(b[:])
	return "in." + hex.EncodeToString(b[:])
}

// ResultName is the name in the values bucket of the result of item seq of a
// chunk, kept there by the worker of the attempt with grant. A producer
// reads a result by reference only under this name, which it makes itself:
// a worker cannot point it at any other value. The grant goes into the name
// only through SHA-256, so that a party that may list the bucket cannot
// read it there.
func ResultName(executorID string, chunk uint64, seq uint32, grant uint64) string {
	h := sha256.New()
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], grant)
	h.Write(g[:])
	h.Write([]byte(MsgID(executorID, chunk) + "." + strconv.FormatUint(uint64(seq), 10)))
	return "out." + hex.EncodeToString(h.Sum(nil)[:16])
}

// ParseMsgID splits a chunk's dedup id into its producer's id and the chunk
// id; ok is false for anything MsgID does not make.
func ParseMsgID(id string) (executorID string, chunk uint64, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return "", 0, false
	}
	chunk, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[:i], chunk, true
}

// Encode marshals a wire message. An envelope type is written straight into
// one slice of its exact size; any other value goes through msgpack.Marshal.
func Encode(v any) ([]byte, error) {
	if e, ok := v.(envelope); ok && !reflect.ValueOf(e).IsNil() {
		return encodeEnvelope(e), nil
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("broker: encode %T: %w", v, err)
	}
	return b, nil
}

// Decode unmarshals a wire message into v, a pointer to one of the envelope
// types, and validates it. Malformed input of any shape returns an error
// matching ErrMalformed; it never panics and never allocates more than the
// input's length allows. The byte slices of a decoded Chunk or Result
// (Item.Args, ItemResult.Value) share data's memory rather than copy it, so
// data must not change while they are in use.
func Decode(data []byte, v any) error {
	if err := decode(data, v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrMalformed, v, err)
	}
	if val, ok := v.(interface{ validate() error }); ok {
		if err := val.validate(); err != nil {
			return fmt.Errorf("%w: %T: %v", ErrMalformed, v, err)
		}
	}
	return nil
}

// DecodeResults reads a result message: one or more Results back to back,
// each decoded and validated as Decode would decode it alone. It returns the
// Results before the first that fails, and then an error matching
// ErrMalformed; a message holding no Result is malformed too. Like Decode's,
// the Results' byte slices share data's memory.
func DecodeResults(data []byte) (rs []Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: result %d of the message: decoder panic: %v", ErrMalformed, len(rs), p)
		}
	}()
	if len(data) == 0 {
		return rs, fmt.Errorf("%w: empty result message", ErrMalformed)
	}
	var r reader
	r.Reset(data)
	for r.Len() > 0 {
		var res Result
		if !r.Nil() { // a nil Result is a zero one
			res.read(&r, 0)
		}
		err := r.Err()
		if err == nil {
			err = res.validate()
		}
		if err != nil {
			return rs, fmt.Errorf("%w: result %d of the message: %v", ErrMalformed, len(rs), err)
		}
		rs = append(rs, res)
	}
	return rs, nil
}

// decode reads an envelope type straight from data, and any other type with
// decodeMsgpack.
func decode(data []byte, v any) error {
	if e, ok := v.(envelope); ok {
		return decodeEnvelope(data, e)
	}
	return decodeMsgpack(data, v)
}

// decodeMsgpack decodes with msgpack.Unmarshal once msgp.Check has bounded
// every length and the nesting data declares.
func decodeMsgpack(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	if err := msgp.Check(data); err != nil {
		return err
	}
	return msgpack.Unmarshal(data, v)
}

func (c *Chunk) validate() error {
	if c.Named() {
		if err := validateJob(c.Job); err != nil {
			return err
		}
		if len(c.Key) != JobKeyLen {
			return fmt.Errorf("job chunk with a key of %d bytes", len(c.Key))
		}
		if c.TTL < 0 {
			return fmt.Errorf("job chunk with retention %v", c.TTL)
		}
	} else if c.Executor == "" || c.Control == "" {
		return errors.New("chunk without executor or control subject")
	}
	if err := task.ValidateKind(c.Kind); err != nil {
		return err
	}
	if len(c.Items) == 0 || len(c.Items) > MaxItems {
		return fmt.Errorf("chunk with %d items", len(c.Items))
	}
	for _, it := range c.Items {
		if it.Ref != nil {
			if err := it.Ref.validate(); err != nil {
				return fmt.Errorf("item %d: %w", it.Seq, err)
			}
		}
	}
	return nil
}

// MaxRefName bounds the name of a Ref.
const MaxRefName = 256

func (ref *Ref) validate() error {
	switch {
	case ref.Name == "" || len(ref.Name) > MaxRefName:
		return fmt.Errorf("a value's name of %d bytes", len(ref.Name))
	case ref.Size < 0:
		return fmt.Errorf("a value of %d bytes", ref.Size)
	case len(ref.Key) != RefKeyLen:
		return fmt.Errorf("a value's key of %d bytes", len(ref.Key))
	}
	return nil
}

func (r *Result) validate() error {
	if len(r.Items) > MaxItems {
		return fmt.Errorf("result with %d items", len(r.Items))
	}
	for _, it := range r.Items {
		if it.Ref != nil {
			if err := it.Ref.validate(); err != nil {
				return fmt.Errorf("item %d: %w", it.Seq, err)
			}
			continue
		}
		if it.Err == nil && it.Value == nil {
			return fmt.Errorf("item %d has neither value nor error", it.Seq)
		}
	}
	return nil
}

func (p *Probe) validate() error {
	if len(p.Chunks) > MaxItems || len(p.Grants) != len(p.Chunks) {
		return fmt.Errorf("probe of %d chunks with %d grants", len(p.Chunks), len(p.Grants))
	}
	return nil
}

func (r *ProbeReply) validate() error {
	if len(r.Grants) > MaxItems {
		return fmt.Errorf("probe reply of %d grants", len(r.Grants))
	}
	return nil
}

func (s *Starts) validate() error {
	if len(s.Items) > MaxItems {
		return fmt.Errorf("start request for %d chunks", len(s.Items))
	}
	return nil
}

func (r *StartReplies) validate() error {
	if len(r.Items) > MaxItems {
		return fmt.Errorf("%d start replies", len(r.Items))
	}
	for i := range r.Items {
		if err := r.Items[i].validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r *StartReply) validate() error {
	switch r.Verdict {
	case VerdictGo, VerdictDrop, VerdictBusy:
		return nil
	}
	return fmt.Errorf("unknown verdict %d", r.Verdict)
}

// EncodeMsgpack writes it as Encode does, for msgpack's encoder by
// reflection: without its Ref when that is nil.
func (it Item) EncodeMsgpack(enc *msgpack.Encoder) error {
	if it.Ref == nil {
		return encodeFields(enc, it.Seq, it.Args)
	}
	return encodeFields(enc, it.Seq, it.Args, it.Ref)
}

// EncodeMsgpack writes it as Encode does, for msgpack's encoder by
// reflection: without its Ref when that is nil.
func (it ItemResult) EncodeMsgpack(enc *msgpack.Encoder) error {
	if it.Ref == nil {
		return encodeFields(enc, it.Seq, it.Value, it.Err)
	}
	return encodeFields(enc, it.Seq, it.Value, it.Err, it.Ref)
}

// encodeFields writes fields as an array, each by reflection.
func encodeFields(enc *msgpack.Encoder, fields ...any) error {
	if err := enc.EncodeArrayLen(len(fields)); err != nil {
		return err
	}
	for _, f := range fields {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack reads what EncodeMsgpack writes, for msgpack's decoder by
// reflection, under the wire's rule: fewer elements leave the other fields
// as they are, more are skipped.
func (it *Item) DecodeMsgpack(dec *msgpack.Decoder) error {
	return decodeFields(dec, &it.Seq, &it.Args, &it.Ref)
}

// DecodeMsgpack reads what EncodeMsgpack writes (see Item.DecodeMsgpack).
func (it *ItemResult) DecodeMsgpack(dec *msgpack.Decoder) error {
	return decodeFields(dec, &it.Seq, &it.Value, &it.Err, &it.Ref)
}

// decodeFields reads an array into fields, in order; nil zeroes them, as
// msgpack's reflection zeroes a struct.
func decodeFields(dec *msgpack.Decoder, fields ...any) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n < 0 {
		for _, f := range fields {
			reflect.ValueOf(f).Elem().SetZero()
		}
		return nil
	}
	for i := range n {
		if i >= len(fields) {
			err = dec.Skip()
		} else {
			err = dec.Decode(fields[i])
		}
		if err != nil {
			return err
		}
	}
	return nil
}
