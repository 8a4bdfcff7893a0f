package broker

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Hand-written msgpack codecs for the envelope types: chunks, starts and
// results are on every task's path, so their fields are read and written
// without reflection. They produce and accept exactly what the `as_array`
// struct tags describe: an array of the fields in order, where fewer elements
// leave the rest zero and extra ones are skipped. Encoders write to msgpack's
// in-memory buffer, which cannot fail, so only the last write's error is
// returned.

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
	e.EncodeArrayLen(4)
	e.EncodeUint(s.Chunk)
	e.EncodeString(s.Worker)
	e.EncodeString(s.Inbox)
	return e.EncodeUint(s.Delivery)
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
	e.EncodeArrayLen(3)
	e.EncodeUint(uint64(r.Verdict))
	encodeLen(e, r.Items == nil, len(r.Items))
	for _, seq := range r.Items {
		e.EncodeUint(uint64(seq))
	}
	return e.EncodeInt(r.LeaseMs)
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
	e.EncodeString(r.Ack)
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
		r.Ack, f.err = d.DecodeString()
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
	e.EncodeArrayLen(3)
	e.EncodeUint(l.Chunk)
	e.EncodeString(l.Worker)
	return e.EncodeUint(l.Delivery)
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (l *Lease) DecodeMsgpack(d *msgpack.Decoder) error {
	f := openFields(d)
	if f.more() {
		l.Chunk, f.err = d.DecodeUint64()
	}
	if f.more() {
		l.Worker, f.err = d.DecodeString()
	}
	if f.more() {
		l.Delivery, f.err = d.DecodeUint64()
	}
	return f.done()
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (in *Interrupt) EncodeMsgpack(e *msgpack.Encoder) error {
	e.EncodeArrayLen(3)
	e.EncodeString(in.Executor)
	e.EncodeUint(in.Chunk)
	return e.EncodeUint(uint64(in.Seq))
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
	return f.done()
}
