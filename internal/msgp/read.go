package msgp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// errTruncated fails a read past the end of the input. It is a sentinel so
// that a reader running on after its first error allocates nothing more.
var errTruncated = errors.New("message ends early")

// Reader decodes msgpack straight from a byte slice. Each read accepts
// exactly what the msgpack.Decoder method named in its comment accepts, and
// checks every length against the bytes left before using it, so a reader
// allocates at most in proportion to its input. The first error sticks and
// moves the reader to the end: every read after it returns a zero value, so
// a decoder built of reads runs on to its end without effect and looks at
// Err once. The zero Reader reads an empty input.
type Reader struct {
	b   []byte
	off int
	err error
}

// Reset makes r a Reader of b, from its start. What r reads may alias b;
// see Bin.
func (r *Reader) Reset(b []byte) { *r = Reader{b: b} }

// Err returns the first error a read met, or nil.
func (r *Reader) Err() error { return r.err }

// Len returns how many bytes are left to read: none after an error.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Fail records err, unless an error came first, and moves the reader to the
// end.
func (r *Reader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *Reader) left() uint64 { return uint64(len(r.b) - r.off) }

// code reads one byte. Past the end it fails and reads nil, which every
// read below takes for its zero value.
func (r *Reader) code() byte {
	if r.off >= len(r.b) {
		r.Fail(errTruncated)
		return Nil
	}
	c := r.b[r.off]
	r.off++
	return c
}

// next returns the next n bytes, capped at n so that an append to them
// cannot run into what follows; nil if fewer are left.
func (r *Reader) next(n uint64) []byte {
	if n > r.left() {
		r.Fail(errTruncated)
		return nil
	}
	p := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return p
}

// be1, be2, be4 and be8 read a big-endian number of 1, 2, 4 and 8 bytes.

func (r *Reader) be1() uint8 {
	if r.off >= len(r.b) {
		r.Fail(errTruncated)
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *Reader) be2() uint16 {
	if len(r.b)-r.off < 2 {
		r.Fail(errTruncated)
		return 0
	}
	r.off += 2
	return binary.BigEndian.Uint16(r.b[r.off-2:])
}

func (r *Reader) be4() uint32 {
	if len(r.b)-r.off < 4 {
		r.Fail(errTruncated)
		return 0
	}
	r.off += 4
	return binary.BigEndian.Uint32(r.b[r.off-4:])
}

func (r *Reader) be8() uint64 {
	if len(r.b)-r.off < 8 {
		r.Fail(errTruncated)
		return 0
	}
	r.off += 8
	return binary.BigEndian.Uint64(r.b[r.off-8:])
}

// Nil reads a nil and reports true if a nil is next; otherwise it reads
// nothing and reports false.
func (r *Reader) Nil() bool {
	if r.off < len(r.b) && r.b[r.off] == Nil {
		r.off++
		return true
	}
	return false
}

// Int reads an integer as DecodeInt64 does: nil is 0, and every int and
// uint code is taken, the narrower signed ones sign-extended; floats are
// refused. Converted to a narrower integer type, it is what DecodeInt8 to
// DecodeInt32, or reflection, gives.
func (r *Reader) Int() int64 {
	c := r.code()
	if c <= 0x7f || c >= 0xe0 { // fixnums
		return int64(int8(c))
	}
	switch c {
	case Nil:
		return 0
	case 0xcc:
		return int64(r.be1())
	case 0xcd:
		return int64(r.be2())
	case 0xce:
		return int64(r.be4())
	case 0xcf, 0xd3:
		return int64(r.be8())
	case 0xd0:
		return int64(int8(r.be1()))
	case 0xd1:
		return int64(int16(r.be2()))
	case 0xd2:
		return int64(int32(r.be4()))
	}
	r.Fail(fmt.Errorf("invalid code=%x decoding an integer", c))
	return 0
}

// Uint reads an integer as DecodeUint64 does, which takes the same codes as
// DecodeInt64 and keeps the same bits; converted to a narrower unsigned
// type, it is what DecodeUint8 to DecodeUint32, or reflection, gives.
func (r *Reader) Uint() uint64 { return uint64(r.Int()) }

// Float32 reads a number as DecodeFloat32 does: a float32, or an integer as
// Int reads it, converted.
func (r *Reader) Float32() float32 {
	if r.off < len(r.b) && r.b[r.off] == 0xca {
		r.off++
		return math.Float32frombits(r.be4())
	}
	return float32(r.Int())
}

// Float64 reads a number as DecodeFloat64 does: a float64, a float32
// widened, or an integer as Int reads it, converted.
func (r *Reader) Float64() float64 {
	if r.off < len(r.b) {
		switch r.b[r.off] {
		case 0xcb:
			r.off++
			return math.Float64frombits(r.be8())
		case 0xca:
			r.off++
			return float64(math.Float32frombits(r.be4()))
		}
	}
	return float64(r.Int())
}

// Bool reads a bool as DecodeBool does: nil is false.
func (r *Reader) Bool() bool {
	switch c := r.code(); c {
	case Nil, 0xc2:
		return false
	case 0xc3:
		return true
	default:
		r.Fail(fmt.Errorf("invalid code=%x decoding bool", c))
		return false
	}
}

// bytesLen reads the header of a str or a bin, either taken for the other,
// as msgpack's bytesLen does: nil is -1. A length beyond the bytes left
// fails.
func (r *Reader) bytesLen() int {
	c := r.code()
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n = uint64(c & 0x1f)
	case c == Nil:
		return -1
	case c == 0xd9 || c == 0xc4:
		n = uint64(r.be1())
	case c == 0xda || c == 0xc5:
		n = uint64(r.be2())
	case c == 0xdb || c == 0xc6:
		n = uint64(r.be4())
	default:
		r.Fail(fmt.Errorf("invalid code=%x decoding string/bytes length", c))
		return -1
	}
	if n > r.left() {
		r.Fail(errTruncated)
		return -1
	}
	return int(n)
}

// Str reads a string as DecodeString does: a str or a bin; nil is "".
func (r *Reader) Str() string {
	n := r.bytesLen()
	if n <= 0 {
		return ""
	}
	return string(r.next(uint64(n)))
}

// Bin reads a byte slice as DecodeBytes does (a bin or a str; nil is nil,
// an empty one is empty and not nil) except that it is not a copy: it
// aliases the input, capped at its length so that an append to it cannot
// overwrite what follows.
func (r *Reader) Bin() []byte {
	n := r.bytesLen()
	if n < 0 {
		return nil
	}
	return r.next(uint64(n))
}

// ArrayLen reads an array header as DecodeArrayLen does: nil is -1. A
// length beyond the bytes left fails, as every element takes at least one.
func (r *Reader) ArrayLen() int {
	c := r.code()
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f: // fixarray
		n = uint64(c & 0x0f)
	case c == Nil:
		return -1
	case c == 0xdc:
		n = uint64(r.be2())
	case c == 0xdd:
		n = uint64(r.be4())
	default:
		r.Fail(fmt.Errorf("invalid code=%x decoding array length", c))
		return -1
	}
	if n > r.left() {
		r.Fail(fmt.Errorf("array of %d elements, %d bytes left", n, r.left()))
		return -1
	}
	return int(n)
}

// Skip reads past one value of any type as msgpack.Decoder's Skip does and,
// as Check does,
// refuses the reserved code and containers nested deeper than MaxDepth.
// depth is the number of non-empty containers around the value; the
// recursion goes no deeper than that bound.
func (r *Reader) Skip(depth int) {
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
		r.Fail(fmt.Errorf("%d values declared, %d bytes left", n, r.left()))
		return
	}
	if depth+1 > MaxDepth {
		r.Fail(fmt.Errorf("nested deeper than %d", MaxDepth))
		return
	}
	for ; n > 0 && r.err == nil; n-- {
		r.Skip(depth + 1)
	}
}

// skipScalar reads past the rest of a value whose code c is 0xc0 to 0xdf,
// as Skip does, and returns how many values follow if it is an array or a
// map.
func (r *Reader) skipScalar(c byte) uint64 {
	switch c {
	case Nil, 0xc2, 0xc3:
	case 0xc4, 0xd9: // bin8, str8
		r.next(uint64(r.be1()))
	case 0xc5, 0xda:
		r.next(uint64(r.be2()))
	case 0xc6, 0xdb:
		r.next(uint64(r.be4()))
	case 0xc7: // ext8: length, type, data
		r.next(uint64(r.be1()) + 1)
	case 0xc8:
		r.next(uint64(r.be2()) + 1)
	case 0xc9:
		r.next(uint64(r.be4()) + 1)
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
		return uint64(r.be2())
	case 0xdd:
		return uint64(r.be4())
	case 0xde:
		return 2 * uint64(r.be2())
	case 0xdf:
		return 2 * uint64(r.be4())
	default: // 0xc1
		r.Fail(fmt.Errorf("reserved code %x", c))
	}
	return 0
}

// Fields reads the header of an array-encoded struct with depth non-empty
// containers around it, and walks its elements under a rule that lets a
// newer peer add fields at the end, where msgpack's reflection wants as
// many elements as fields: More reports whether the next field is there to
// read, and Done skips the elements no field knows. So fewer elements than
// fields leave the rest as they are, and a nil leaves them all.
func (r *Reader) Fields(depth int) Fields {
	return Fields{r: r, n: r.ArrayLen(), depth: depth + 1}
}

// Fields walks the elements of an array-encoded struct; see Reader.Fields.
type Fields struct {
	r     *Reader
	n, i  int
	depth int
}

// More reports whether the struct has its next field and no read has
// failed; the caller then reads that field.
func (f *Fields) More() bool {
	if f.r.err != nil || f.i >= f.n {
		return false
	}
	f.i++
	return true
}

// Done skips the elements after the last field read.
func (f *Fields) Done() {
	for ; f.r.err == nil && f.i < f.n; f.i++ {
		f.r.Skip(f.depth)
	}
}

// Depth is the number of non-empty containers around the struct's fields:
// a struct read as a field has this depth, and the elements of a list field
// one more.
func (f *Fields) Depth() int { return f.depth }
