package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/internal/msgp"
)

// Hand-written msgpack codecs for the envelope types: chunks, starts and
// results are on every task's path, so their fields are read and written
// without reflection. They produce and accept exactly what the `as_array`
// struct tags describe: an array of the fields in order, where fewer elements
// leave the rest zero and extra ones are skipped.
//
// Each type has its codec twice. EncodeMsgpack and DecodeMsgpack serve
// msgpack.Marshal and msgpack.Unmarshal, so these types still work inside any
// msgpack value. appendTo and read, below them, are what Encode and Decode
// use: they write into one slice sized up front and read straight from the
// message, without msgpack's Encoder, Decoder, reader or reflection. Both
// forms must write the same bytes and accept the same input into the same
// values; codec_test.go and the fuzz targets hold them to that.
//
// The msgpack.Encoder-based encoders write to msgpack's in-memory buffer,
// which cannot fail, so only the last write's error is returned.

var (
	_ msgpack.CustomEncoder = (*Chunk)(nil)
	_ msgpack.CustomDecoder = (*Chunk)(nil)
	_ msgpack.CustomEncoder = (*Start)(nil)
	_ msgpack.CustomDecoder = (*Start)(nil)
	_ msgpack.CustomEncoder = (*Starts)(nil)
	_ msgpack.CustomDecoder = (*Starts)(nil)
	_ msgpack.CustomEncoder = (*StartReplies)(nil)
	_ msgpack.CustomDecoder = (*StartReplies)(nil)
	_ msgpack.CustomEncoder = (*StartReply)(nil)
	_ msgpack.CustomDecoder = (*StartReply)(nil)
	_ msgpack.CustomEncoder = (*Result)(nil)
	_ msgpack.CustomDecoder = (*Result)(nil)
	_ msgpack.CustomEncoder = (*Lease)(nil)
	_ msgpack.CustomDecoder = (*Lease)(nil)
	_ msgpack.CustomEncoder = (*Interrupt)(nil)
	_ msgpack.CustomDecoder = (*Interrupt)(nil)
)

// fields walks the elements of an array-encoded struct: more reports whether
// the next field is there to decode (and no error happened), done skips the
// elements no field knows and returns the first error.
type fields struct {
	d    *msgpack.Decoder
	n, i int
	err  error
}

func openFields(d *msgpack.Decoder) fields {
	n, err := d.DecodeArrayLen()
	return fields{d: d, n: n, err: err}
}

func (f *fields) more() bool {
	if f.err != nil || f.i >= f.n {
		return false
	}
	f.i++
	return true
}

func (f *fields) done() error {
	for ; f.err == nil && f.i < f.n; f.i++ {
		f.err = f.d.Skip()
	}
	return f.err
}

// arrayLen reads an array header (-1 for nil) and refuses more than MaxItems
// elements before anything is allocated for them.
func arrayLen(d *msgpack.Decoder) (int, error) {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if n > MaxItems {
		return 0, fmt.Errorf("array of %d elements", n)
	}
	return n, nil
}

// encodeLen writes the header of a slice of n elements, nil as nil.
func encodeLen(e *msgpack.Encoder, isNil bool, n int) {
	if isNil {
		e.EncodeNil()
		return
	}
	e.EncodeArrayLen(n)
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (c *Chunk) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(6)
	e.EncodeString(c.Executor)
	e.EncodeUint(c.ID)
	e.EncodeString(c.Kind)
	e.EncodeString(c.Control)
	e.EncodeInt(c.Deadline)
	encodeLen(e, c.Items == nil, len(c.Items))
	for i := range c.Items {
		e.EncodeArrayLen(2)
		e.EncodeUint(uint64(c.Items[i].Seq))
		if err := e.EncodeBytes(c.Items[i].Args); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (c *Chunk) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		c.Executor, f.err = d.DecodeString()
	}
	if f.more() {
		c.ID, f.err = d.DecodeUint64()
	}
	if f.more() {
		c.Kind, f.err = d.DecodeString()
	}
	if f.more() {
		c.Control, f.err = d.DecodeString()
	}
	if f.more() {
		c.Deadline, f.err = d.DecodeInt64()
	}
	if f.more() {
		var n int
		if n, f.err = arrayLen(d); f.err == nil && n >= 0 {
			c.Items = make([]Item, n)
			for i := 0; i < n && f.err == nil; i++ {
				f.err = c.Items[i].decode(d)
			}
		}
	}
	return f.done()
}

func (it *Item) decode(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		it.Seq, f.err = d.DecodeUint32()
	}
	if f.more() {
		it.Args, f.err = d.DecodeBytes()
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *Start) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(6)
	e.EncodeUint(s.Chunk)
	e.EncodeString(s.Worker)
	e.EncodeString(s.Inbox)
	e.EncodeUint(s.Delivery)
	e.EncodeBytes(s.Digest)
	return e.EncodeString(s.Ack)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *Start) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		s.Chunk, f.err = d.DecodeUint64()
	}
	if f.more() {
		s.Worker, f.err = d.DecodeString()
	}
	if f.more() {
		s.Inbox, f.err = d.DecodeString()
	}
	if f.more() {
		s.Delivery, f.err = d.DecodeUint64()
	}
	if f.more() {
		s.Digest, f.err = d.DecodeBytes()
	}
	if f.more() {
		s.Ack, f.err = d.DecodeString()
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *Starts) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(1)
	encodeLen(e, s.Items == nil, len(s.Items))
	for i := range s.Items {
		if err := s.Items[i].EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (s *Starts) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		var n int
		if n, f.err = arrayLen(d); f.err == nil && n >= 0 {
			s.Items = make([]Start, n)
			for i := 0; i < n && f.err == nil; i++ {
				f.err = s.Items[i].DecodeMsgpack(d)
			}
		}
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *StartReplies) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(1)
	encodeLen(e, r.Items == nil, len(r.Items))
	for i := range r.Items {
		if err := r.Items[i].EncodeMsgpack(e); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *StartReplies) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		var n int
		if n, f.err = arrayLen(d); f.err == nil && n >= 0 {
			r.Items = make([]StartReply, n)
			for i := 0; i < n && f.err == nil; i++ {
				f.err = r.Items[i].DecodeMsgpack(d)
			}
		}
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *StartReply) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(4)
	e.EncodeUint(uint64(r.Verdict))
	encodeLen(e, r.Items == nil, len(r.Items))
	for _, seq := range r.Items {
		e.EncodeUint(uint64(seq))
	}
	e.EncodeInt(r.LeaseMs)
	return e.EncodeUint(r.Grant)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *StartReply) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		r.Verdict, f.err = d.DecodeUint8()
	}
	if f.more() {
		var n int
		if n, f.err = arrayLen(d); f.err == nil && n >= 0 {
			r.Items = make([]uint32, n)
			for i := 0; i < n && f.err == nil; i++ {
				r.Items[i], f.err = d.DecodeUint32()
			}
		}
	}
	if f.more() {
		r.LeaseMs, f.err = d.DecodeInt64()
	}
	if f.more() {
		r.Grant, f.err = d.DecodeUint64()
	}
	return f.done()
}

// msgpackNil is msgpack's nil code.
const msgpackNil = 0xc0

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *Result) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(5)
	e.EncodeUint(r.Chunk)
	e.EncodeString(r.Worker)
	e.EncodeBool(r.Final)
	e.EncodeUint(r.Grant)
	encodeLen(e, r.Items == nil, len(r.Items))
	for i := range r.Items {
		it := &r.Items[i]
		e.EncodeArrayLen(3)
		e.EncodeUint(uint64(it.Seq))
		e.EncodeBytes(it.Value)
		if it.Err == nil {
			e.EncodeNil()
			continue
		}
		e.EncodeArrayLen(4)
		e.EncodeString(it.Err.Type)
		e.EncodeString(it.Err.Message)
		e.EncodeString(it.Err.Stack)
		if err := e.EncodeBool(it.Err.Retryable); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *Result) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		r.Chunk, f.err = d.DecodeUint64()
	}
	if f.more() {
		r.Worker, f.err = d.DecodeString()
	}
	if f.more() {
		r.Final, f.err = d.DecodeBool()
	}
	if f.more() {
		r.Grant, f.err = d.DecodeUint64()
	}
	if f.more() {
		var n int
		if n, f.err = arrayLen(d); f.err == nil && n >= 0 {
			r.Items = make([]ItemResult, n)
			for i := 0; i < n && f.err == nil; i++ {
				f.err = r.Items[i].decode(d)
			}
		}
	}
	return f.done()
}

func (it *ItemResult) decode(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		it.Seq, f.err = d.DecodeUint32()
	}
	if f.more() {
		it.Value, f.err = d.DecodeBytes()
	}
	if f.more() {
		var code byte
		if code, f.err = d.PeekCode(); f.err == nil {
			if code == msgpackNil {
				f.err = d.DecodeNil()
			} else {
				it.Err = &ErrorInfo{}
				f.err = it.Err.decode(d)
			}
		}
	}
	return f.done()
}

func (e *ErrorInfo) decode(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		e.Type, f.err = d.DecodeString()
	}
	if f.more() {
		e.Message, f.err = d.DecodeString()
	}
	if f.more() {
		e.Stack, f.err = d.DecodeString()
	}
	if f.more() {
		e.Retryable, f.err = d.DecodeBool()
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (l *Lease) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(2)
	e.EncodeUint(l.Chunk)
	return e.EncodeUint(l.Grant)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (l *Lease) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		l.Chunk, f.err = d.DecodeUint64()
	}
	if f.more() {
		l.Grant, f.err = d.DecodeUint64()
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (in *Interrupt) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(4)
	e.EncodeString(in.Executor)
	e.EncodeUint(in.Chunk)
	e.EncodeUint(uint64(in.Seq))
	return e.EncodeUint(in.Grant)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (in *Interrupt) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		in.Executor, f.err = d.DecodeString()
	}
	if f.more() {
		in.Chunk, f.err = d.DecodeUint64()
	}
	if f.more() {
		in.Seq, f.err = d.DecodeUint32()
	}
	if f.more() {
		in.Grant, f.err = d.DecodeUint64()
	}
	return f.done()
}

// The byte-slice codecs: read and appendTo.

// errTruncated fails a read past the end of a message. It is a sentinel so
// that a decoder running on after its first error allocates nothing more.
var errTruncated = errors.New("message ends early")

// reader decodes msgpack straight from a message. Each read accepts exactly
// what the msgpack.Decoder method named in its comment accepts, and checks
// every length against the bytes left before using it. The first error
// sticks and moves the reader to the end: every read after it returns a zero
// value, so a decoder runs on to its end without effect.
type reader struct {
	b   []byte
	off int
	err error
	// recent holds the last strings read, so that a string repeated within
	// the message is allocated once: every start in a request names the same
	// worker and inbox, and the items of a result often fail alike. A cache
	// across messages would also catch the producer's id and subjects in
	// chunks, but would be state shared by every decoder, for a few
	// allocations out of the hundreds each task makes.
	recent [4]string
	slot   int // where the next string goes in recent
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *reader) left() uint64 { return uint64(len(r.b) - r.off) }

// code reads one byte. Past the end it fails and reads nil, which every
// read below takes for its zero value.
func (r *reader) code() byte {
	if r.off >= len(r.b) {
		r.fail(errTruncated)
		return msgpackNil
	}
	c := r.b[r.off]
	r.off++
	return c
}

// next returns the next n bytes, capped at n so that an append to them
// cannot run into what follows; nil if fewer are left.
func (r *reader) next(n uint64) []byte {
	if n > r.left() {
		r.fail(errTruncated)
		return nil
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p
}

// be reads an n-byte big-endian number, n being 1, 2, 4 or 8.
func (r *reader) be(n uint64) uint64 {
	p := r.next(n)
	switch len(p) {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	case 8:
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// int reads an integer as DecodeInt64 does: nil is 0, and every int and
// uint code is taken, the narrower signed ones sign-extended; floats are
// refused.
func (r *reader) int() int64 {
	c := r.code()
	if c <= 0x7f || c >= 0xe0 { // fixnums
		return int64(int8(c))
	}
	switch c {
	case msgpackNil:
		return 0
	case 0xcc:
		return int64(r.be(1))
	case 0xcd:
		return int64(r.be(2))
	case 0xce:
		return int64(r.be(4))
	case 0xcf, 0xd3:
		return int64(r.be(8))
	case 0xd0:
		return int64(int8(r.be(1)))
	case 0xd1:
		return int64(int16(r.be(2)))
	case 0xd2:
		return int64(int32(r.be(4)))
	}
	r.fail(fmt.Errorf("invalid code=%x decoding an integer", c))
	return 0
}

// uint reads an integer as DecodeUint64 does, which takes the same codes as
// DecodeInt64 and keeps the same bits; DecodeUint32 and DecodeUint8 truncate
// it.
func (r *reader) uint() uint64 { return uint64(r.int()) }

// bool reads a bool as DecodeBool does: nil is false.
func (r *reader) bool() bool {
	switch c := r.code(); c {
	case msgpackNil, 0xc2:
		return false
	case 0xc3:
		return true
	default:
		r.fail(fmt.Errorf("invalid code=%x decoding bool", c))
		return false
	}
}

// bytesLen reads the header of a str or a bin, either taken for the other,
// as msgpack's bytesLen does: nil is -1. A length beyond the bytes left
// fails.
func (r *reader) bytesLen() int {
	c := r.code()
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n = uint64(c & 0x1f)
	case c == msgpackNil:
		return -1
	case c == 0xd9 || c == 0xc4:
		n = r.be(1)
	case c == 0xda || c == 0xc5:
		n = r.be(2)
	case c == 0xdb || c == 0xc6:
		n = r.be(4)
	default:
		r.fail(fmt.Errorf("invalid code=%x decoding string/bytes length", c))
		return -1
	}
	if n > r.left() {
		r.fail(errTruncated)
		return -1
	}
	return int(n)
}

// str reads a string as DecodeString does: nil is "".
func (r *reader) str() string {
	n := r.bytesLen()
	if n <= 0 {
		return ""
	}
	p := r.next(uint64(n))
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

// bin reads a byte slice as DecodeBytes does (nil is nil, an empty one is
// empty and not nil) except that it is not a copy: it aliases the message.
func (r *reader) bin() []byte {
	n := r.bytesLen()
	if n < 0 {
		return nil
	}
	return r.next(uint64(n))
}

// arrayLen reads an array header as DecodeArrayLen does: nil is -1. A
// length beyond the bytes left fails at once, each element taking at least
// one.
func (r *reader) arrayLen() int {
	c := r.code()
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f: // fixarray
		n = uint64(c & 0x0f)
	case c == msgpackNil:
		return -1
	case c == 0xdc:
		n = r.be(2)
	case c == 0xdd:
		n = r.be(4)
	default:
		r.fail(fmt.Errorf("invalid code=%x decoding array length", c))
		return -1
	}
	if n > r.left() {
		r.fail(fmt.Errorf("array of %d elements, %d bytes left", n, r.left()))
		return -1
	}
	return int(n)
}

// items reads the header of a slice field as arrayLen (the function) does:
// more than MaxItems elements fail before anything is allocated for them.
func (r *reader) items() int {
	n := r.arrayLen()
	if n > MaxItems {
		r.fail(fmt.Errorf("array of %d elements", n))
		return -1
	}
	return n
}

// skip reads past one value of any type as Skip does and, as msgp.Check
// does, refuses the reserved code and containers nested deeper than
// msgp.MaxDepth. depth is the number of non-empty containers around the
// value; the recursion goes no deeper than that bound.
func (r *reader) skip(depth int) {
	c := r.code()
	var n uint64 // values inside
	switch {
	case c <= 0x7f || c >= 0xe0: // fixnums
		return
	case c <= 0x8f: // fixmap
		n = 2 * uint64(c&0x0f)
	case c <= 0x9f: // fixarray
		n = uint64(c & 0x0f)
	case c <= 0xbf: // fixstr
		r.next(uint64(c & 0x1f))
		return
	default:
		n = r.skipScalar(c)
	}
	if n == 0 {
		return
	}
	if n > r.left() {
		r.fail(fmt.Errorf("%d values declared, %d bytes left", n, r.left()))
		return
	}
	if depth+1 > msgp.MaxDepth {
		r.fail(fmt.Errorf("nested deeper than %d", msgp.MaxDepth))
		return
	}
	for ; n > 0 && r.err == nil; n-- {
		r.skip(depth + 1)
	}
}

// skipScalar reads past the rest of a value whose code c is 0xc0 to 0xdf,
// as skip does, and returns how many values follow if it is an array or a
// map.
func (r *reader) skipScalar(c byte) uint64 {
	switch c {
	case msgpackNil, 0xc2, 0xc3:
	case 0xc4, 0xd9: // bin8, str8
		r.next(r.be(1))
	case 0xc5, 0xda:
		r.next(r.be(2))
	case 0xc6, 0xdb:
		r.next(r.be(4))
	case 0xc7: // ext8: length, type, data
		r.next(r.be(1) + 1)
	case 0xc8:
		r.next(r.be(2) + 1)
	case 0xc9:
		r.next(r.be(4) + 1)
	case 0xcc, 0xd0:
		r.next(1)
	case 0xcd, 0xd1:
		r.next(2)
	case 0xca, 0xce, 0xd2:
		r.next(4)
	case 0xcb, 0xcf, 0xd3:
		r.next(8)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext: type, 1 to 16 bytes
		r.next(1 + 1<<(c-0xd4))
	case 0xdc:
		return r.be(2)
	case 0xdd:
		return r.be(4)
	case 0xde:
		return 2 * r.be(2)
	case 0xdf:
		return 2 * r.be(4)
	default: // 0xc1
		r.fail(fmt.Errorf("unknown code %x", c))
	}
	return 0
}

// sliceFields walks the elements of an array-encoded struct as fields does
// for a msgpack.Decoder: more reports whether the next field is there to
// read (and no error happened), done skips the elements no field knows.
type sliceFields struct {
	r     *reader
	n, i  int
	depth int // containers around the fields; the elements of a list field have one more
}

// open reads the header of a struct with depth non-empty containers around
// it.
func (r *reader) open(depth int) sliceFields {
	return sliceFields{r: r, n: r.arrayLen(), depth: depth + 1}
}

func (f *sliceFields) more() bool {
	if f.r.err != nil || f.i >= f.n {
		return false
	}
	f.i++
	return true
}

func (f *sliceFields) done() {
	for ; f.r.err == nil && f.i < f.n; f.i++ {
		f.r.skip(f.depth)
	}
}

// readEnvelope decodes data into v, as msgp.Check and msgpack.Unmarshal
// together would, if v is a pointer to an envelope type with a read method;
// ok is false for any other v. Byte slices in the result (Item.Args,
// ItemResult.Value) alias data rather than copy it, saving an allocation
// per item: data must not change while they are in use. The messages
// nats.go delivers are never reused, and the worker and the producer only
// read Args and Value, each decoding them into values of its own.
func readEnvelope(data []byte, v any) (ok bool, err error) {
	r := reader{b: data}
	switch v := v.(type) {
	case *Chunk:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *Starts:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *Start:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *StartReplies:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *StartReply:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *Result:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *Lease:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	case *Interrupt:
		if readable(&r, v) {
			v.read(&r, 0)
		}
	default:
		return false, nil
	}
	if r.err == nil && r.off != len(r.b) {
		return true, fmt.Errorf("%d trailing bytes", len(r.b)-r.off)
	}
	return true, r.err
}

// result reads the Result at r's offset into res and validates it, as
// Decode would a message holding it alone, minus the check for trailing
// bytes: in a result message, the next Result follows.
func (r *reader) result(res *Result) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	if readable(r, res) {
		res.read(r, 0)
	}
	if r.err != nil {
		return r.err
	}
	return res.validate()
}

// readable reports whether there is a message to read into v once the
// cases msgpack's decoder of a custom type handles first are taken: a nil v
// fails, and a nil message makes *v zero.
func readable[T any](r *reader, v *T) bool {
	if v == nil {
		r.fail(fmt.Errorf("decode into a nil %T", v))
		return false
	}
	if r.off < len(r.b) && r.b[r.off] == msgpackNil {
		r.off++
		var zero T
		*v = zero
		return false
	}
	return true
}

func (c *Chunk) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		c.Executor = r.str()
	}
	if f.more() {
		c.ID = r.uint()
	}
	if f.more() {
		c.Kind = r.str()
	}
	if f.more() {
		c.Control = r.str()
	}
	if f.more() {
		c.Deadline = r.int()
	}
	if f.more() {
		if n := r.items(); n >= 0 {
			c.Items = make([]Item, n)
			for i := 0; i < n && r.err == nil; i++ {
				c.Items[i].read(r, f.depth+1)
			}
		}
	}
	f.done()
}

func (it *Item) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		it.Seq = uint32(r.uint())
	}
	if f.more() {
		it.Args = r.bin()
	}
	f.done()
}

func (s *Start) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		s.Chunk = r.uint()
	}
	if f.more() {
		s.Worker = r.str()
	}
	if f.more() {
		s.Inbox = r.str()
	}
	if f.more() {
		s.Delivery = r.uint()
	}
	if f.more() {
		s.Digest = r.bin()
	}
	if f.more() {
		s.Ack = r.str()
	}
	f.done()
}

func (s *Starts) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		if n := r.items(); n >= 0 {
			s.Items = make([]Start, n)
			for i := 0; i < n && r.err == nil; i++ {
				s.Items[i].read(r, f.depth+1)
			}
		}
	}
	f.done()
}

func (rs *StartReplies) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		if n := r.items(); n >= 0 {
			rs.Items = make([]StartReply, n)
			for i := 0; i < n && r.err == nil; i++ {
				rs.Items[i].read(r, f.depth+1)
			}
		}
	}
	f.done()
}

func (rp *StartReply) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		rp.Verdict = uint8(r.uint())
	}
	if f.more() {
		if n := r.items(); n >= 0 {
			rp.Items = make([]uint32, n)
			for i := 0; i < n && r.err == nil; i++ {
				rp.Items[i] = uint32(r.uint())
			}
		}
	}
	if f.more() {
		rp.LeaseMs = r.int()
	}
	if f.more() {
		rp.Grant = r.uint()
	}
	f.done()
}

func (res *Result) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		res.Chunk = r.uint()
	}
	if f.more() {
		res.Worker = r.str()
	}
	if f.more() {
		res.Final = r.bool()
	}
	if f.more() {
		res.Grant = r.uint()
	}
	if f.more() {
		if n := r.items(); n >= 0 {
			res.Items = make([]ItemResult, n)
			for i := 0; i < n && r.err == nil; i++ {
				res.Items[i].read(r, f.depth+1)
			}
		}
	}
	f.done()
}

func (it *ItemResult) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		it.Seq = uint32(r.uint())
	}
	if f.more() {
		it.Value = r.bin()
	}
	if f.more() {
		if r.off < len(r.b) && r.b[r.off] == msgpackNil {
			r.off++
		} else {
			it.Err = &ErrorInfo{}
			it.Err.read(r, f.depth)
		}
	}
	f.done()
}

func (e *ErrorInfo) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		e.Type = r.str()
	}
	if f.more() {
		e.Message = r.str()
	}
	if f.more() {
		e.Stack = r.str()
	}
	if f.more() {
		e.Retryable = r.bool()
	}
	f.done()
}

func (l *Lease) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		l.Chunk = r.uint()
	}
	if f.more() {
		l.Grant = r.uint()
	}
	f.done()
}

func (in *Interrupt) read(r *reader, depth int) {
	f := r.open(depth)
	if f.more() {
		in.Executor = r.str()
	}
	if f.more() {
		in.Chunk = r.uint()
	}
	if f.more() {
		in.Seq = uint32(r.uint())
	}
	if f.more() {
		in.Grant = r.uint()
	}
	f.done()
}

// appendEnvelope encodes v, as msgpack.Marshal would, into one slice of
// exactly its size if v is a non-nil pointer to an envelope type with an
// appendTo method; ok is false for any other v.
func appendEnvelope(v any) (b []byte, ok bool) {
	switch v := v.(type) {
	case *Chunk:
		return appendExact(v)
	case *Starts:
		return appendExact(v)
	case *Start:
		return appendExact(v)
	case *StartReplies:
		return appendExact(v)
	case *StartReply:
		return appendExact(v)
	case *Result:
		return appendExact(v)
	case *Lease:
		return appendExact(v)
	case *Interrupt:
		return appendExact(v)
	}
	return nil, false
}

func appendExact[T any, P interface {
	*T
	size() int
	appendTo(b []byte) []byte
}](v P) ([]byte, bool) {
	if v == nil {
		return nil, false
	}
	return v.appendTo(make([]byte, 0, v.size())), true
}

func (c *Chunk) size() int {
	n := 1 + msgp.StringSize(c.Executor) + uintSize(c.ID) + msgp.StringSize(c.Kind) + msgp.StringSize(c.Control) +
		intSize(c.Deadline) + listSize(c.Items == nil, len(c.Items))
	for i := range c.Items {
		n += 1 + uintSize(uint64(c.Items[i].Seq)) + msgp.BytesSize(c.Items[i].Args)
	}
	return n
}

func (c *Chunk) appendTo(b []byte) []byte {
	b = append(b, 0x96)
	b = msgp.AppendString(b, c.Executor)
	b = msgp.AppendUint(b, c.ID)
	b = msgp.AppendString(b, c.Kind)
	b = msgp.AppendString(b, c.Control)
	b = msgp.AppendInt(b, c.Deadline)
	b = appendList(b, c.Items == nil, len(c.Items))
	for i := range c.Items {
		b = append(b, 0x92)
		b = msgp.AppendUint(b, uint64(c.Items[i].Seq))
		b = msgp.AppendBytes(b, c.Items[i].Args)
	}
	return b
}

func (s *Start) size() int {
	return 1 + uintSize(s.Chunk) + msgp.StringSize(s.Worker) + msgp.StringSize(s.Inbox) + uintSize(s.Delivery) +
		msgp.BytesSize(s.Digest) + msgp.StringSize(s.Ack)
}

func (s *Start) appendTo(b []byte) []byte {
	b = append(b, 0x96)
	b = msgp.AppendUint(b, s.Chunk)
	b = msgp.AppendString(b, s.Worker)
	b = msgp.AppendString(b, s.Inbox)
	b = msgp.AppendUint(b, s.Delivery)
	b = msgp.AppendBytes(b, s.Digest)
	return msgp.AppendString(b, s.Ack)
}

func (s *Starts) size() int {
	n := 1 + listSize(s.Items == nil, len(s.Items))
	for i := range s.Items {
		n += s.Items[i].size()
	}
	return n
}

func (s *Starts) appendTo(b []byte) []byte {
	b = append(b, 0x91)
	b = appendList(b, s.Items == nil, len(s.Items))
	for i := range s.Items {
		b = s.Items[i].appendTo(b)
	}
	return b
}

func (rs *StartReplies) size() int {
	n := 1 + listSize(rs.Items == nil, len(rs.Items))
	for i := range rs.Items {
		n += rs.Items[i].size()
	}
	return n
}

func (rs *StartReplies) appendTo(b []byte) []byte {
	b = append(b, 0x91)
	b = appendList(b, rs.Items == nil, len(rs.Items))
	for i := range rs.Items {
		b = rs.Items[i].appendTo(b)
	}
	return b
}

func (rp *StartReply) size() int {
	n := 1 + uintSize(uint64(rp.Verdict)) + listSize(rp.Items == nil, len(rp.Items)) + intSize(rp.LeaseMs) + uintSize(rp.Grant)
	for _, seq := range rp.Items {
		n += uintSize(uint64(seq))
	}
	return n
}

func (rp *StartReply) appendTo(b []byte) []byte {
	b = append(b, 0x94)
	b = msgp.AppendUint(b, uint64(rp.Verdict))
	b = appendList(b, rp.Items == nil, len(rp.Items))
	for _, seq := range rp.Items {
		b = msgp.AppendUint(b, uint64(seq))
	}
	b = msgp.AppendInt(b, rp.LeaseMs)
	return msgp.AppendUint(b, rp.Grant)
}

func (res *Result) size() int {
	n := 1 + uintSize(res.Chunk) + msgp.StringSize(res.Worker) + 1 + uintSize(res.Grant) + listSize(res.Items == nil, len(res.Items))
	for i := range res.Items {
		it := &res.Items[i]
		n += 1 + uintSize(uint64(it.Seq)) + msgp.BytesSize(it.Value) + 1
		if it.Err != nil {
			n += msgp.StringSize(it.Err.Type) + msgp.StringSize(it.Err.Message) + msgp.StringSize(it.Err.Stack) + 1
		}
	}
	return n
}

func (res *Result) appendTo(b []byte) []byte {
	b = append(b, 0x95)
	b = msgp.AppendUint(b, res.Chunk)
	b = msgp.AppendString(b, res.Worker)
	b = appendBool(b, res.Final)
	b = msgp.AppendUint(b, res.Grant)
	b = appendList(b, res.Items == nil, len(res.Items))
	for i := range res.Items {
		it := &res.Items[i]
		b = append(b, 0x93)
		b = msgp.AppendUint(b, uint64(it.Seq))
		b = msgp.AppendBytes(b, it.Value)
		if it.Err == nil {
			b = append(b, msgpackNil)
			continue
		}
		b = append(b, 0x94)
		b = msgp.AppendString(b, it.Err.Type)
		b = msgp.AppendString(b, it.Err.Message)
		b = msgp.AppendString(b, it.Err.Stack)
		b = appendBool(b, it.Err.Retryable)
	}
	return b
}

func (l *Lease) size() int {
	return 1 + uintSize(l.Chunk) + uintSize(l.Grant)
}

func (l *Lease) appendTo(b []byte) []byte {
	b = append(b, 0x92)
	b = msgp.AppendUint(b, l.Chunk)
	return msgp.AppendUint(b, l.Grant)
}

func (in *Interrupt) size() int {
	return 1 + msgp.StringSize(in.Executor) + uintSize(in.Chunk) + uintSize(uint64(in.Seq)) + uintSize(in.Grant)
}

func (in *Interrupt) appendTo(b []byte) []byte {
	b = append(b, 0x94)
	b = msgp.AppendString(b, in.Executor)
	b = msgp.AppendUint(b, in.Chunk)
	b = msgp.AppendUint(b, uint64(in.Seq))
	return msgp.AppendUint(b, in.Grant)
}

// The sizes are those of what msgp's functions and the appenders below
// write; the appenders write what the msgpack.Encoder method named in each
// comment writes.

func uintSize(n uint64) int {
	switch {
	case n <= math.MaxInt8:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

func intSize(n int64) int {
	switch {
	case n >= 0:
		return uintSize(uint64(n))
	case n >= -32:
		return 1
	case n >= math.MinInt8:
		return 2
	case n >= math.MinInt16:
		return 3
	case n >= math.MinInt32:
		return 5
	}
	return 9
}

// appendBool writes as EncodeBool.
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// appendList writes the header of a slice of n elements as encodeLen does:
// nil for nil, else an array header as EncodeArrayLen writes it.
func appendList(b []byte, isNil bool, n int) []byte {
	switch {
	case isNil:
		return append(b, msgpackNil)
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func listSize(isNil bool, n int) int {
	switch {
	case isNil, n < 16:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}
