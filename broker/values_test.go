package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker/wire"
)

func newValues(t *testing.T) (*Values, jetstream.ObjectStore) {
	t.Helper()
	_, js, s := newPoolConn(t)
	ctx := context.Background()
	v, err := EnsureValues(ctx, js, s, PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureValues(ctx, js, s, PoolConfig{}); err != nil {
		t.Fatalf("EnsureValues on an existing bucket: %v", err)
	}
	obs, err := js.ObjectStore(ctx, s.ValuesBucket())
	if err != nil {
		t.Fatal(err)
	}
	return v, obs
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n)})
	r.Read(b)
	return b
}

// TestValuesRoundTrip: a value of any size, at and around the frame
// boundaries, reads back as written, by Get and through Open, and is sealed
// in the bucket: its bytes do not appear there.
func TestValuesRoundTrip(t *testing.T) {
	v, obs := newValues(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range []int{0, 1, frame - 1, frame, frame + 1, 3*frame + 5, 5 << 20} {
		data := randomBytes(n)
		name := "v" + strings.Repeat("x", n%7)
		ref, err := v.PutBytes(ctx, name, data)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if ref.Name != name || ref.Size != int64(n) || len(ref.Key) != wire.RefKeyLen {
			t.Fatalf("%d bytes: ref %+v", n, ref)
		}
		got, err := v.Get(ctx, ref)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes (%v)", n, len(got), err)
		}
		rc, err := v.Open(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyBuffer(h, rc, make([]byte, 1000)); err != nil {
			t.Fatalf("%d bytes through Open: %v", n, err)
		}
		rc.Close()
		if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("%d bytes through Open: another value", n)
		}
		if n >= 64 {
			stored, err := obs.GetBytes(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(stored, data[:64]) {
				t.Fatalf("%d bytes: the bucket holds the value in the clear", n)
			}
		}
		if err := v.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if names, err := v.Names(ctx); err != nil || len(names) != 0 {
		t.Fatalf("after every delete the bucket holds %v (%v)", names, err)
	}
}

// TestValuesRefuseWhatTheirReferenceDoesNotName: a value written again
// under its name by someone else, cut short, reordered, grown, or deleted,
// or a reference that claims another size or key, fails with ErrValueLost;
// none reads as a value.
func TestValuesRefuseWhatTheirReferenceDoesNotName(t *testing.T) {
	v, obs := newValues(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := randomBytes(3*frame + 100)
	ref, err := v.PutBytes(ctx, "victim", data)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := obs.GetBytes(ctx, "victim")
	if err != nil {
		t.Fatal(err)
	}
	frames := [][]byte{sealed[:sealedFrame], sealed[sealedFrame : 2*sealedFrame], sealed[2*sealedFrame : 3*sealedFrame], sealed[3*sealedFrame:]}
	otherKey := bytes.Clone(ref.Key)
	otherKey[0] ^= 1
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 0x80
	cases := []struct {
		name   string
		stored []byte // written raw under the name; nil: leave what is there
		ref    wire.Ref
	}{
		{"another key", nil, wire.Ref{Name: ref.Name, Size: ref.Size, Key: otherKey}},
		{"a smaller size", nil, wire.Ref{Name: ref.Name, Size: ref.Size - 1, Key: ref.Key}},
		{"a larger size", nil, wire.Ref{Name: ref.Name, Size: ref.Size + 1, Key: ref.Key}},
		{"a flipped bit", flipped, ref},
		{"the last frame dropped", bytes.Join(frames[:3], nil), ref},
		{"two frames swapped", bytes.Join([][]byte{frames[1], frames[0], frames[2], frames[3]}, nil), ref},
		{"a frame repeated", bytes.Join([][]byte{frames[0], frames[1], frames[2], frames[2], frames[3]}, nil), ref},
		{"bytes appended", append(bytes.Clone(sealed), 1, 2, 3), ref},
		{"empty", []byte{}, ref},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.stored != nil {
				if _, err := obs.PutBytes(ctx, ref.Name, c.stored); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := v.Get(ctx, c.ref); !errors.Is(err, ErrValueLost) {
				t.Fatalf("read %d bytes (%v), want an error matching ErrValueLost", len(got), err)
			}
		})
	}
	// Another value put under the name, by a party with its own key.
	if _, err := v.PutBytes(ctx, ref.Name, data); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, ref); !errors.Is(err, ErrValueLost) {
		t.Fatalf("a value put again under its name: %v, want ErrValueLost", err)
	}
	if err := v.Delete(ctx, ref.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, ref); !errors.Is(err, ErrValueLost) {
		t.Fatalf("a deleted value: %v, want ErrValueLost", err)
	}
	if err := v.Delete(ctx, ref.Name); err != nil {
		t.Fatalf("deleting a value that is gone: %v", err)
	}
}

// TestValuesPutChecksTheSize: a reader that yields fewer or more bytes than
// said fails the put and leaves nothing.
func TestValuesPutChecksTheSize(t *testing.T) {
	v, _ := newValues(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := randomBytes(2*frame + 3)
	for _, size := range []int64{int64(len(data)) + 1, int64(len(data)) - 1, 2 * frame} {
		if _, err := v.Put(ctx, "short", bytes.NewReader(data), size); err == nil {
			t.Fatalf("%d bytes put as %d: no error", len(data), size)
		}
	}
	if names, err := v.Names(ctx); err != nil || len(names) != 0 {
		t.Fatalf("failed puts left %v (%v)", names, err)
	}
}
