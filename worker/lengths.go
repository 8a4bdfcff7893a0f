package worker

import (
	"encoding/binary"
	"fmt"

	"github.com/jetpool/jetpool/broker"
)

// checkLengths rejects msgpack data with an array or map header that
// declares more elements than bytes remain. The msgpack decoder allocates a
// slice for the declared length before it reads an element (v5.4.1 ignores
// its own allocation limit), so a 19-byte chunk claiming 2^31 items would
// otherwise exhaust memory. Each element takes at least one byte, so data
// that passes makes the decoder allocate in proportion to its length. It
// costs one pass over data without allocating.
func checkLengths(data []byte) error {
	pending, i := 1, 0 // values still to read; read position
	for ; pending > 0; pending-- {
		if i >= len(data) {
			return fmt.Errorf("%w: truncated", broker.ErrMalformed)
		}
		c := data[i]
		i++
		var elems, skip uint64 // child values; bytes to skip after the header
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			// fixint, nil, bool
		case c <= 0x8f:
			elems = 2 * uint64(c&0x0f)
		case c <= 0x9f:
			elems = uint64(c & 0x0f)
		case c <= 0xbf:
			skip = uint64(c & 0x1f)
		default:
			n, size, err := header(c, data[i:])
			if err != nil {
				return err
			}
			i += size
			switch c {
			case 0xdc, 0xdd:
				elems = n
			case 0xde, 0xdf:
				elems = 2 * n
			default:
				skip = n
			}
		}
		if rest := uint64(len(data) - i); elems > rest || skip > rest {
			return fmt.Errorf("%w: a length of %d at byte %d with %d bytes left", broker.ErrMalformed, max(elems, skip), i, rest)
		}
		pending += int(elems)
		i += int(skip)
	}
	return nil
}

var errBadCode = fmt.Errorf("%w: invalid msgpack code", broker.ErrMalformed)

// header decodes what follows format code c in b: the count the header
// declares (bytes to skip, or elements for arrays and maps) and the size of
// the header itself.
func header(c byte, b []byte) (n uint64, size int, err error) {
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return 1, 0, nil
	case 0xcd, 0xd1, 0xd4: // uint16, int16, fixext1
		return 2, 0, nil
	case 0xd5: // fixext2
		return 3, 0, nil
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return 4, 0, nil
	case 0xd6: // fixext4
		return 5, 0, nil
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return 8, 0, nil
	case 0xd7: // fixext8
		return 9, 0, nil
	case 0xd8: // fixext16
		return 17, 0, nil
	case 0xc4, 0xd9: // bin8, str8
		size = 1
	case 0xc5, 0xda, 0xdc, 0xde: // bin16, str16, array16, map16
		size = 2
	case 0xc6, 0xdb, 0xdd, 0xdf: // bin32, str32, array32, map32
		size = 4
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32
		size = 1 << (c - 0xc7)
	default: // 0xc1 is never used
		return 0, 0, errBadCode
	}
	if len(b) < size {
		return 0, 0, fmt.Errorf("%w: truncated header", broker.ErrMalformed)
	}
	switch size {
	case 1:
		n = uint64(b[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b))
	default:
		n = uint64(binary.BigEndian.Uint32(b))
	}
	if c >= 0xc7 && c <= 0xc9 {
		n++ // the extension's type byte
	}
	return n, size, nil
}
