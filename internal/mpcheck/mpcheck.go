// Package mpcheck validates msgpack before it is decoded. The msgpack decoder
// sizes its allocations by the lengths the input declares, so a few hostile
// bytes (a bin32 of 4 GiB) could make it allocate gigabytes, and deep
// nesting could make it recurse without bound. Check walks the input once,
// without allocating, and rejects both.
package mpcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDepth is the deepest nesting of arrays and maps Check accepts.
const MaxDepth = 256

// ErrInvalid is matched by every error Check returns.
var ErrInvalid = errors.New("invalid msgpack")

// Check reports whether b holds exactly one well-formed msgpack value whose
// declared lengths fit in b and whose nesting is at most MaxDepth.
func Check(b []byte) error {
	// pending[i] is how many values the i-th open container still holds.
	var pending [MaxDepth + 1]uint64
	depth := 0
	pending[0] = 1
	i := 0
	for {
		for depth >= 0 && pending[depth] == 0 {
			depth--
		}
		if depth < 0 {
			break
		}
		pending[depth]--
		if i >= len(b) {
			return fmt.Errorf("%w: truncated at byte %d", ErrInvalid, i)
		}
		c := b[i]
		i++
		var skip, count uint64 // bytes to skip; values to open
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			count = 2 * uint64(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			count = uint64(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			skip = uint64(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			n, err := length(b, &i, 1)
			if err != nil {
				return err
			}
			skip = n
		case c == 0xc5 || c == 0xda:
			n, err := length(b, &i, 2)
			if err != nil {
				return err
			}
			skip = n
		case c == 0xc6 || c == 0xdb:
			n, err := length(b, &i, 4)
			if err != nil {
				return err
			}
			skip = n
		case c == 0xc7 || c == 0xc8 || c == 0xc9:
			n, err := length(b, &i, 1<<(c-0xc7))
			if err != nil {
				return err
			}
			skip = n + 1 // the type byte
		case c == 0xca, c == 0xce, c == 0xd2:
			skip = 4
		case c == 0xcb, c == 0xcf, c == 0xd3:
			skip = 8
		case c == 0xcc, c == 0xd0:
			skip = 1
		case c == 0xcd, c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			n, err := length(b, &i, 2)
			if err != nil {
				return err
			}
			count = n
		case c == 0xdd:
			n, err := length(b, &i, 4)
			if err != nil {
				return err
			}
			count = n
		case c == 0xde:
			n, err := length(b, &i, 2)
			if err != nil {
				return err
			}
			count = 2 * n
		case c == 0xdf:
			n, err := length(b, &i, 4)
			if err != nil {
				return err
			}
			count = 2 * n
		default: // 0xc1
			return fmt.Errorf("%w: reserved byte 0x%x at %d", ErrInvalid, c, i-1)
		}
		if skip > uint64(len(b)-i) {
			return fmt.Errorf("%w: %d bytes declared at %d, %d left", ErrInvalid, skip, i, len(b)-i)
		}
		i += int(skip)
		if count > 0 {
			// Every value takes at least one byte.
			if count > uint64(len(b)-i) {
				return fmt.Errorf("%w: %d values declared at %d, %d bytes left", ErrInvalid, count, i, len(b)-i)
			}
			if depth+1 > MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d", ErrInvalid, MaxDepth)
			}
			depth++
			pending[depth] = count
		}
	}
	if i != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(b)-i)
	}
	return nil
}

func length(b []byte, i *int, size int) (uint64, error) {
	if len(b)-*i < size {
		return 0, fmt.Errorf("%w: truncated length at %d", ErrInvalid, *i)
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(b[*i])
	case 2:
		n = uint64(binary.BigEndian.Uint16(b[*i:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(b[*i:]))
	}
	*i += size
	return n, nil
}
