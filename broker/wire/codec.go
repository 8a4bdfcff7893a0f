package wire

import (
	"fmt"
	"reflect"
	"time"

	"github.com/jetpool/jetpool/internal/msgp"
)

// Hand-written msgpack codecs for the envelope types: chunks, starts and
// results are on every task's path, so Encode and Decode write and read
// their fields straight into and from byte slices, without msgpack's
// Encoder, Decoder or reflection. They write what msgpack.Marshal writes for
// the `as_array` struct tags with compact integers (an array of the fields
// in order, each integer in its shortest form), and read what msgpack's
// decoder reads for those tags, with the one rule that lets a peer add
// fields at the end: fewer elements than fields leave the rest as they are,
// and extra ones are skipped. codec_test.go and the fuzz targets hold them
// to msgpack's reflection.

// envelope is a wire type with a codec of its own, which Encode and Decode
// use instead of msgpack's reflection. Each also has a read method, which
// reads the value at a reader's offset with depth non-empty containers
// around it, and which its decode calls with a reader on its own stack:
// read is not in the interface because a reader passed through an interface
// method escapes to the heap, an allocation per message.
type envelope interface {
	// size is the length of what appendTo writes.
	size() int
	appendTo(b []byte) []byte
	// decode reads data, one message holding a value other than nil.
	decode(data []byte) error
}

var (
	_ envelope = (*Chunk)(nil)
	_ envelope = (*Start)(nil)
	_ envelope = (*Starts)(nil)
	_ envelope = (*StartReplies)(nil)
	_ envelope = (*StartReply)(nil)
	_ envelope = (*Result)(nil)
	_ envelope = (*JobResult)(nil)
	_ envelope = (*Lease)(nil)
	_ envelope = (*Interrupt)(nil)
)

// encodeEnvelope writes e into one slice of exactly its size.
func encodeEnvelope(e envelope) []byte { return e.appendTo(make([]byte, 0, e.size())) }

// decodeEnvelope decodes data, one message, into e as msgpack's decoder
// would: a nil e fails, and a nil message makes *e zero. Byte slices in the
// result (Item.Args, ItemResult.Value) alias data rather than copy it,
// saving an allocation per item: data must not change while they are in
// use. The messages nats.go delivers are never reused, and the worker and
// the producer only read Args and Value, each decoding them into values of
// their own.
func decodeEnvelope(data []byte, e envelope) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	switch v := reflect.ValueOf(e); {
	case v.IsNil():
		return fmt.Errorf("decode into a nil %T", e)
	case len(data) > 0 && data[0] == msgp.Nil:
		v.Elem().SetZero()
		if len(data) > 1 {
			return fmt.Errorf("%d trailing bytes", len(data)-1)
		}
		return nil
	}
	return e.decode(data)
}

// reader is a msgp.Reader that allocates a string repeated within a
// message once: every start in a request names the same worker and inbox,
// and the items of a result often fail alike. A cache across messages would
// also catch the producer's id and subjects in chunks, but would be state
// shared by every decoder, for a few allocations out of the hundreds each
// task makes.
type reader struct {
	msgp.Reader
	recent [4]string // the last strings read
	slot   int       // where the next string goes in recent
}

// end returns the first error the reads met, or one for the bytes they
// left.
func (r *reader) end() error {
	if r.Err() == nil && r.Len() > 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return r.Err()
}

// str reads a string as msgp.Reader.Str does.
func (r *reader) str() string {
	p := r.Bin()
	if len(p) == 0 {
		return ""
	}
	for _, s := range r.recent {
		if s == string(p) {
			return s
		}
	}
	s := string(p)
	r.recent[r.slot%len(r.recent)] = s
	r.slot++
	return s
}

// list reads the header of a list field and makes its slice, of the length
// declared, or nil for nil as msgpack's decoder does; more than MaxItems
// elements fail before anything is allocated for them.
func list[E any](r *reader) []E {
	n, ok := r.listLen()
	if !ok {
		return nil
	}
	return make([]E, n)
}

// listLen reads the header of a list field, reporting false for nil and
// for more than MaxItems elements, which fail the read.
func (r *reader) listLen() (int, bool) {
	n := r.ArrayLen()
	if n > MaxItems {
		r.Fail(fmt.Errorf("array of %d elements", n))
		return 0, false
	}
	return n, n >= 0
}

// fields is how many fields c's encoding has: a chunk of unnamed work
// leaves out the named job's, so that it costs not a byte more for them.
func (c *Chunk) fields() int {
	if c.Named() {
		return 11
	}
	return 6
}

func (c *Chunk) size() int {
	n := msgp.ArrayHeaderSize(c.fields()) + msgp.StringSize(c.Executor) + msgp.UintSize(c.ID) + msgp.StringSize(c.Kind) +
		msgp.StringSize(c.Control) + msgp.IntSize(c.Deadline) + msgp.ListHeaderSize(c.Items)
	for i := range c.Items {
		n += c.Items[i].size()
	}
	if c.Named() {
		n += msgp.StringSize(c.Job) + msgp.UintSize(c.Ord) + msgp.UintSize(c.Pos) + msgp.BytesSize(c.Key) + msgp.IntSize(int64(c.TTL))
	}
	return n
}

func (c *Chunk) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, c.fields())
	b = msgp.AppendString(b, c.Executor)
	b = msgp.AppendUint(b, c.ID)
	b = msgp.AppendString(b, c.Kind)
	b = msgp.AppendString(b, c.Control)
	b = msgp.AppendInt(b, c.Deadline)
	b = msgp.AppendListHeader(b, c.Items)
	for i := range c.Items {
		b = c.Items[i].appendTo(b)
	}
	if c.Named() {
		b = msgp.AppendString(b, c.Job)
		b = msgp.AppendUint(b, c.Ord)
		b = msgp.AppendUint(b, c.Pos)
		b = msgp.AppendBytes(b, c.Key)
		b = msgp.AppendInt(b, int64(c.TTL))
	}
	return b
}

func (c *Chunk) decode(data []byte) error {
	var r reader
	r.Reset(data)
	c.read(&r, 0)
	return r.end()
}

func (c *Chunk) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		c.Executor = r.str()
	}
	if f.More() {
		c.ID = r.Uint()
	}
	if f.More() {
		c.Kind = r.str()
	}
	if f.More() {
		c.Control = r.str()
	}
	if f.More() {
		c.Deadline = r.Int()
	}
	if f.More() {
		c.Items = list[Item](r)
		for i := 0; i < len(c.Items) && r.Err() == nil; i++ {
			c.Items[i].read(r, f.Depth()+1)
		}
	}
	if f.More() {
		c.Job = r.str()
	}
	if f.More() {
		c.Ord = r.Uint()
	}
	if f.More() {
		c.Pos = r.Uint()
	}
	if f.More() {
		c.Key = r.Bin()
	}
	if f.More() {
		c.TTL = time.Duration(r.Int())
	}
	f.Done()
}

// An Item without a Ref, and an ItemResult without one, leave it out: a
// value in the message costs not a byte more for it.

func (it *Item) size() int {
	n := msgp.UintSize(uint64(it.Seq)) + msgp.BytesSize(it.Args)
	if it.Ref == nil {
		return n + msgp.ArrayHeaderSize(2)
	}
	return n + msgp.ArrayHeaderSize(3) + it.Ref.size()
}

func (it *Item) appendTo(b []byte) []byte {
	if it.Ref == nil {
		b = msgp.AppendArrayHeader(b, 2)
	} else {
		b = msgp.AppendArrayHeader(b, 3)
	}
	b = msgp.AppendUint(b, uint64(it.Seq))
	b = msgp.AppendBytes(b, it.Args)
	if it.Ref != nil {
		b = it.Ref.appendTo(b)
	}
	return b
}

func (it *Item) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		it.Seq = uint32(r.Uint())
	}
	if f.More() {
		it.Args = r.Bin()
	}
	if f.More() && !r.Nil() {
		it.Ref = &Ref{}
		it.Ref.read(r, f.Depth())
	}
	f.Done()
}

func (ref *Ref) size() int {
	return msgp.ArrayHeaderSize(3) + msgp.StringSize(ref.Name) + msgp.IntSize(ref.Size) + msgp.BytesSize(ref.Key)
}

func (ref *Ref) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 3)
	b = msgp.AppendString(b, ref.Name)
	b = msgp.AppendInt(b, ref.Size)
	return msgp.AppendBytes(b, ref.Key)
}

func (ref *Ref) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		ref.Name = r.str()
	}
	if f.More() {
		ref.Size = r.Int()
	}
	if f.More() {
		ref.Key = r.Bin()
	}
	f.Done()
}

func (s *Start) size() int {
	return msgp.ArrayHeaderSize(6) + msgp.UintSize(s.Chunk) + msgp.StringSize(s.Worker) + msgp.StringSize(s.Inbox) +
		msgp.UintSize(s.Delivery) + msgp.BytesSize(s.Digest) + msgp.StringSize(s.Ack)
}

func (s *Start) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 6)
	b = msgp.AppendUint(b, s.Chunk)
	b = msgp.AppendString(b, s.Worker)
	b = msgp.AppendString(b, s.Inbox)
	b = msgp.AppendUint(b, s.Delivery)
	b = msgp.AppendBytes(b, s.Digest)
	return msgp.AppendString(b, s.Ack)
}

func (s *Start) decode(data []byte) error {
	var r reader
	r.Reset(data)
	s.read(&r, 0)
	return r.end()
}

func (s *Start) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		s.Chunk = r.Uint()
	}
	if f.More() {
		s.Worker = r.str()
	}
	if f.More() {
		s.Inbox = r.str()
	}
	if f.More() {
		s.Delivery = r.Uint()
	}
	if f.More() {
		s.Digest = r.Bin()
	}
	if f.More() {
		s.Ack = r.str()
	}
	f.Done()
}

func (s *Starts) size() int {
	n := msgp.ArrayHeaderSize(1) + msgp.ListHeaderSize(s.Items)
	for i := range s.Items {
		n += s.Items[i].size()
	}
	return n
}

func (s *Starts) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 1)
	b = msgp.AppendListHeader(b, s.Items)
	for i := range s.Items {
		b = s.Items[i].appendTo(b)
	}
	return b
}

func (s *Starts) decode(data []byte) error {
	var r reader
	r.Reset(data)
	s.read(&r, 0)
	return r.end()
}

func (s *Starts) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		s.Items = list[Start](r)
		for i := 0; i < len(s.Items) && r.Err() == nil; i++ {
			s.Items[i].read(r, f.Depth()+1)
		}
	}
	f.Done()
}

func (rs *StartReplies) size() int {
	n := msgp.ArrayHeaderSize(1) + msgp.ListHeaderSize(rs.Items)
	for i := range rs.Items {
		n += rs.Items[i].size()
	}
	return n
}

func (rs *StartReplies) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 1)
	b = msgp.AppendListHeader(b, rs.Items)
	for i := range rs.Items {
		b = rs.Items[i].appendTo(b)
	}
	return b
}

func (rs *StartReplies) decode(data []byte) error {
	var r reader
	r.Reset(data)
	rs.read(&r, 0)
	return r.end()
}

func (rs *StartReplies) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		rs.Items = list[StartReply](r)
		for i := 0; i < len(rs.Items) && r.Err() == nil; i++ {
			rs.Items[i].read(r, f.Depth()+1)
		}
	}
	f.Done()
}

func (rp *StartReply) size() int {
	n := msgp.ArrayHeaderSize(4) + msgp.UintSize(uint64(rp.Verdict)) + msgp.ListHeaderSize(rp.Items) + msgp.IntSize(rp.LeaseMs) +
		msgp.UintSize(rp.Grant)
	for _, seq := range rp.Items {
		n += msgp.UintSize(uint64(seq))
	}
	return n
}

func (rp *StartReply) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 4)
	b = msgp.AppendUint(b, uint64(rp.Verdict))
	b = msgp.AppendListHeader(b, rp.Items)
	for _, seq := range rp.Items {
		b = msgp.AppendUint(b, uint64(seq))
	}
	b = msgp.AppendInt(b, rp.LeaseMs)
	return msgp.AppendUint(b, rp.Grant)
}

func (rp *StartReply) decode(data []byte) error {
	var r reader
	r.Reset(data)
	rp.read(&r, 0)
	return r.end()
}

func (rp *StartReply) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		rp.Verdict = uint8(r.Uint())
	}
	if f.More() {
		rp.Items = list[uint32](r)
		for i := 0; i < len(rp.Items) && r.Err() == nil; i++ {
			rp.Items[i] = uint32(r.Uint())
		}
	}
	if f.More() {
		rp.LeaseMs = r.Int()
	}
	if f.More() {
		rp.Grant = r.Uint()
	}
	f.Done()
}

// boolSize is the size of a bool.
const boolSize = 1

func (res *Result) size() int {
	return msgp.ArrayHeaderSize(5) + msgp.UintSize(res.Chunk) + msgp.StringSize(res.Worker) + boolSize + msgp.UintSize(res.Grant) +
		itemResultsSize(res.Items)
}

func (res *Result) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 5)
	b = msgp.AppendUint(b, res.Chunk)
	b = msgp.AppendString(b, res.Worker)
	b = msgp.AppendBool(b, res.Final)
	b = msgp.AppendUint(b, res.Grant)
	return appendItemResults(b, res.Items)
}

// itemResultsSize is the length of what appendItemResults writes.
func itemResultsSize(items []ItemResult) int {
	const errSize = 1 // a nil error, or the header of one
	n := msgp.ListHeaderSize(items)
	for i := range items {
		it := &items[i]
		n += msgp.ArrayHeaderSize(3) + msgp.UintSize(uint64(it.Seq)) + msgp.BytesSize(it.Value) + errSize
		if it.Err != nil {
			n += msgp.StringSize(it.Err.Type) + msgp.StringSize(it.Err.Message) + msgp.StringSize(it.Err.Stack) + boolSize
		}
		if it.Ref != nil {
			n += msgp.ArrayHeaderSize(4) - msgp.ArrayHeaderSize(3) + it.Ref.size()
		}
	}
	return n
}

// appendItemResults writes the list of items, the last field of a Result
// and of a JobResult.
func appendItemResults(b []byte, items []ItemResult) []byte {
	b = msgp.AppendListHeader(b, items)
	for i := range items {
		it := &items[i]
		if it.Ref == nil {
			b = msgp.AppendArrayHeader(b, 3)
		} else {
			b = msgp.AppendArrayHeader(b, 4)
		}
		b = msgp.AppendUint(b, uint64(it.Seq))
		b = msgp.AppendBytes(b, it.Value)
		if it.Err == nil {
			b = append(b, msgp.Nil)
		} else {
			b = msgp.AppendArrayHeader(b, 4)
			b = msgp.AppendString(b, it.Err.Type)
			b = msgp.AppendString(b, it.Err.Message)
			b = msgp.AppendString(b, it.Err.Stack)
			b = msgp.AppendBool(b, it.Err.Retryable)
		}
		if it.Ref != nil {
			b = it.Ref.appendTo(b)
		}
	}
	return b
}

func (res *Result) decode(data []byte) error {
	var r reader
	r.Reset(data)
	res.read(&r, 0)
	return r.end()
}

func (res *Result) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		res.Chunk = r.Uint()
	}
	if f.More() {
		res.Worker = r.str()
	}
	if f.More() {
		res.Final = r.Bool()
	}
	if f.More() {
		res.Grant = r.Uint()
	}
	if f.More() {
		res.Items = readItemResults(r, f.Depth()+1)
	}
	f.Done()
}

// readItemResults reads what appendItemResults writes, each item at depth.
func readItemResults(r *reader, depth int) []ItemResult {
	items := list[ItemResult](r)
	for i := 0; i < len(items) && r.Err() == nil; i++ {
		items[i].read(r, depth)
	}
	return items
}

func (res *JobResult) size() int {
	return msgp.ArrayHeaderSize(5) + msgp.StringSize(res.Worker) + msgp.UintSize(res.Nonce) + msgp.BytesSize(res.Proof) + boolSize +
		itemResultsSize(res.Items)
}

func (res *JobResult) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 5)
	b = msgp.AppendString(b, res.Worker)
	b = msgp.AppendUint(b, res.Nonce)
	b = msgp.AppendBytes(b, res.Proof)
	b = msgp.AppendBool(b, res.Final)
	return appendItemResults(b, res.Items)
}

func (res *JobResult) decode(data []byte) error {
	var r reader
	r.Reset(data)
	res.read(&r, 0)
	return r.end()
}

func (res *JobResult) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		res.Worker = r.str()
	}
	if f.More() {
		res.Nonce = r.Uint()
	}
	if f.More() {
		res.Proof = r.Bin()
	}
	if f.More() {
		res.Final = r.Bool()
	}
	if f.More() {
		res.Items = readItemResults(r, f.Depth()+1)
	}
	f.Done()
}

func (it *ItemResult) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		it.Seq = uint32(r.Uint())
	}
	if f.More() {
		it.Value = r.Bin()
	}
	if f.More() && !r.Nil() {
		it.Err = &ErrorInfo{}
		it.Err.read(r, f.Depth())
	}
	if f.More() && !r.Nil() {
		it.Ref = &Ref{}
		it.Ref.read(r, f.Depth())
	}
	f.Done()
}

func (e *ErrorInfo) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		e.Type = r.str()
	}
	if f.More() {
		e.Message = r.str()
	}
	if f.More() {
		e.Stack = r.str()
	}
	if f.More() {
		e.Retryable = r.Bool()
	}
	f.Done()
}

func (l *Lease) size() int {
	return msgp.ArrayHeaderSize(2) + msgp.UintSize(l.Chunk) + msgp.UintSize(l.Grant)
}

func (l *Lease) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 2)
	b = msgp.AppendUint(b, l.Chunk)
	return msgp.AppendUint(b, l.Grant)
}

func (l *Lease) decode(data []byte) error {
	var r reader
	r.Reset(data)
	l.read(&r, 0)
	return r.end()
}

func (l *Lease) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		l.Chunk = r.Uint()
	}
	if f.More() {
		l.Grant = r.Uint()
	}
	f.Done()
}

func (in *Interrupt) size() int {
	return msgp.ArrayHeaderSize(4) + msgp.StringSize(in.Executor) + msgp.UintSize(in.Chunk) + msgp.UintSize(uint64(in.Seq)) +
		msgp.UintSize(in.Grant)
}

func (in *Interrupt) appendTo(b []byte) []byte {
	b = msgp.AppendArrayHeader(b, 4)
	b = msgp.AppendString(b, in.Executor)
	b = msgp.AppendUint(b, in.Chunk)
	b = msgp.AppendUint(b, uint64(in.Seq))
	return msgp.AppendUint(b, in.Grant)
}

func (in *Interrupt) decode(data []byte) error {
	var r reader
	r.Reset(data)
	in.read(&r, 0)
	return r.end()
}

func (in *Interrupt) read(r *reader, depth int) {
	f := r.Fields(depth)
	if f.More() {
		in.Executor = r.str()
	}
	if f.More() {
		in.Chunk = r.Uint()
	}
	if f.More() {
		in.Seq = uint32(r.Uint())
	}
	if f.More() {
		in.Grant = r.Uint()
	}
	f.Done()
}
