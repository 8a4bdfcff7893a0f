// Package bytesize writes sizes in bytes for messages people read.
package bytesize

import "strconv"

var units = []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// unitOf is the index in units of the largest binary unit n reaches.
func unitOf(n int64) int {
	if n < 0 {
		n = -n
	}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return i
}

// in writes n in units[u], with one decimal where it has one.
func in(n int64, u int) string {
	if u == 0 {
		if n == 1 {
			return "1 byte"
		}
		return strconv.FormatInt(n, 10) + " bytes"
	}
	f := float64(n)
	for range u {
		f /= 1024
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " " + units[u]
}

// Format writes n bytes in the largest binary unit it reaches, with one
// decimal where it has one: "512 bytes", "1.3 KiB", "1 MiB", "2.5 GiB".
func Format(n int64) string { return in(n, unitOf(n)) }

// Compare writes a and b as Format does, unless the two would read the same
// although they differ (in the unit of the larger): then it writes both in
// bytes, so that a message that says one is above the other shows it.
func Compare(a, b int64) (string, string) {
	u := max(unitOf(a), unitOf(b))
	if a != b && in(a, u) == in(b, u) {
		return in(a, 0), in(b, 0)
	}
	return Format(a), Format(b)
}
