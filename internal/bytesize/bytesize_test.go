package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 bytes", 1: "1 byte", 1023: "1023 bytes", 1024: "1 KiB", 1536: "1.5 KiB",
		1 << 20: "1 MiB", 1363149: "1.3 MiB", 5 << 30: "5 GiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCompareReadsInOrder(t *testing.T) {
	for _, c := range []struct {
		a, b   int64
		wa, wb string
	}{
		{1363149, 1 << 20, "1.3 MiB", "1 MiB"},
		{1<<20 + 1, 1<<20 - 100, "1048577 bytes", "1048476 bytes"},
		{1<<20 + 1, 1023 << 10, "1048577 bytes", "1047552 bytes"},
		{1<<20 + 1, 900 << 10, "1 MiB", "900 KiB"},
		{100 << 10, 63 << 10, "100 KiB", "63 KiB"},
		{2 << 20, 512, "2 MiB", "512 bytes"},
	} {
		if a, b := Compare(c.a, c.b); a != c.wa || b != c.wb {
			t.Errorf("Compare(%d, %d) = %q, %q, want %q, %q", c.a, c.b, a, b, c.wa, c.wb)
		}
	}
}
