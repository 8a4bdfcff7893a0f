package msgp

import "fmt"

// Check reports whether b holds exactly one well-formed msgpack value whose
// declared lengths fit in b and whose nesting is at most MaxDepth; its
// errors match ErrInvalid. msgpack's decoder sizes its allocations by the
// lengths the input declares, so a few hostile bytes (a bin32 of 4 GiB)
// could make it allocate gigabytes, and deep nesting could make it recurse
// without bound: what Check accepts, it decodes in memory and recursion
// bounded by len(b). Check reads b once, as Reader.Skip does, and allocates
// only for an error.
func Check(b []byte) error {
	var r Reader
	r.Reset(b)
	r.Skip(0)
	if r.err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, r.err)
	}
	if r.Len() > 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalid, r.Len())
	}
	return nil
}
