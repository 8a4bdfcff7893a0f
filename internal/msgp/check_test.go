package msgp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestCheckAcceptsWhatTheEncoderWrites(t *testing.T) {
	values := []any{
		nil, true, 0, -1, 127, -33, 1 << 20, -(1 << 40), uint64(1) << 63, 1.5, float32(2.5),
		"", "hi", string(bytes.Repeat([]byte{'x'}, 300)), string(bytes.Repeat([]byte{'y'}, 70000)),
		[]byte{}, []byte{1, 2, 3}, bytes.Repeat([]byte{1}, 70000),
		[]any{1, "a", []any{2, []any{3}}}, map[string]any{"a": 1, "b": []any{true, nil}},
		make([]int, 20), make([]int, 70000),
	}
	for _, v := range values {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(b); err != nil {
			t.Errorf("Check(%T) = %v", v, err)
		}
	}
}

func TestCheckRejects(t *testing.T) {
	tests := map[string][]byte{
		"empty":             {},
		"reserved":          {0xc1},
		"bin32 of 4 GiB":    {0xc6, 0xff, 0xff, 0xff, 0xff},
		"str32 of 4 GiB":    {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		"array32 of 4G":     {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 of 4G":       {0xdf, 0xff, 0xff, 0xff, 0xff},
		"ext32 of 4 GiB":    {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
		"truncated uint16":  {0xcd, 0x01},
		"truncated array":   {0x92, 0x01},
		"truncated length":  {0xc5, 0x01},
		"trailing bytes":    {0x01, 0x02},
		"depth bomb":        append(bytes.Repeat([]byte{0x91}, 100_000), 0x01),
		"fixmap one key":    {0x81, 0x01},
		"fixstr past end":   {0xa5, 'a'},
		"float64 truncated": {0xcb, 0, 0, 0},
	}
	for name, b := range tests {
		if err := Check(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Check = %v, want ErrInvalid", name, err)
		}
	}
}

func TestCheckDepthLimit(t *testing.T) {
	ok := append(bytes.Repeat([]byte{0x91}, MaxDepth), 0x01)
	if err := Check(ok); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	deep := append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0x01)
	if err := Check(deep); !errors.Is(err, ErrInvalid) {
		t.Errorf("depth %d: %v, want ErrInvalid", MaxDepth+1, err)
	}
}

func FuzzCheck(f *testing.F) {
	for _, v := range []any{1, "x", []any{1, map[string]any{"a": []byte{1}}}} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b) != nil {
			return
		}
		// What Check accepts decodes without a huge allocation or a crash.
		var v any
		_ = msgpack.Unmarshal(b, &v)
	})
}
