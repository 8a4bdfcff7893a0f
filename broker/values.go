package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker/wire"
)

// ErrValueLost is matched by errors for a value by reference that cannot be
// read back: its object is gone (deleted, or swept by the bucket's TTL) or
// does not open under the reference's key (written or changed by someone
// else, or cut short).
var ErrValueLost = errors.New("broker: value lost")

// DefaultValueTTL is how long the values bucket keeps a value unless the
// pool says otherwise (PoolConfig.ValueTTL): the sweep of what a producer or
// worker that died left behind.
const DefaultValueTTL = 24 * time.Hour

// DefaultValueThreshold is the default of PoolConfig.ValueThreshold: an
// input or a result whose encoding is larger travels by reference.
const DefaultValueThreshold = 256 << 10

// SpillAbove is the size above which a value travels by reference on a
// connection to a server that takes messages of maxPayload bytes: the
// pool's threshold, at most half of maxPayload, so that a message keeps
// room for the values that stay in it and for its envelope.
func (c PoolConfig) SpillAbove(maxPayload int64) int64 {
	return min(c.WithDefaults().ValueThreshold, maxPayload/2)
}

// Values keeps the values too large for a message (an input, a result) in
// the pool's values bucket, a JetStream object store. Each value is sealed
// under a key of its own (AES-256-GCM, in frames of 64 KiB, each bound to
// its place and to whether it is the last), which travels only in the
// message that names it (wire.Ref): a party that may not read that message
// cannot read the value, and a value that anyone else wrote, changed or cut
// short under its name fails to open (ErrValueLost) rather than reads as
// another. Values stream in and out: neither side holds more than a frame
// of its own beyond what the caller gives or takes.
type Values struct {
	obs   jetstream.ObjectStore
	chunk uint32 // the size of the object store's messages
}

// valueChunk is the size of a values bucket's messages where the server
// takes them: the object store's default.
const valueChunk = 128 << 10

// EnsureValues returns the pool's values bucket, creating it if it does not
// exist: file storage, cfg.Replicas, and cfg.ValueTTL, after which the
// server removes a value whatever happened to the parties that used it. An
// existing bucket is used as it is. It is safe to race from many processes.
func EnsureValues(ctx context.Context, js jetstream.JetStream, s Subjects, cfg PoolConfig) (*Values, error) {
	cfg = cfg.WithDefaults()
	obs, err := js.ObjectStore(ctx, s.ValuesBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      s.ValuesBucket(),
			Description: "values too large for a message, sealed",
			TTL:         cfg.ValueTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = js.ObjectStore(ctx, s.ValuesBucket())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("broker: values bucket %s: %w", s.ValuesBucket(), err)
	}
	// Room for the headers of each message.
	chunk := uint32(min(valueChunk, js.Conn().MaxPayload()-1024))
	return &Values{obs: obs, chunk: chunk}, nil
}

// LazyValues is the pool's values bucket, provisioned on first use: most
// pools never move a value too large for a message.
type LazyValues struct {
	js   jetstream.JetStream
	subj Subjects
	cfg  PoolConfig

	v     atomic.Pointer[Values] // nil until provisioned
	ready chan struct{}          // a token: whoever holds it provisions
}

// NewLazyValues returns the values bucket of the pool of s, to be
// provisioned with cfg (see EnsureValues) when first asked for.
func NewLazyValues(js jetstream.JetStream, s Subjects, cfg PoolConfig) *LazyValues {
	l := &LazyValues{js: js, subj: s, cfg: cfg, ready: make(chan struct{}, 1)}
	l.ready <- struct{}{}
	return l
}

// Get returns the bucket, provisioning it if no call has yet; a call that
// waits for another's provisioning gives up when its own ctx ends.
func (l *LazyValues) Get(ctx context.Context) (*Values, error) {
	if v := l.v.Load(); v != nil {
		return v, nil
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { l.ready <- struct{}{} }()
	if v := l.v.Load(); v != nil {
		return v, nil
	}
	v, err := EnsureValues(ctx, l.js, l.subj, l.cfg)
	if err != nil {
		return nil, err
	}
	l.v.Store(v)
	return v, nil
}

// Read reads the value ref names whole, retrying what may pass for the
// pool's grace period (see retryValue).
func (l *LazyValues) Read(ctx context.Context, ref wire.Ref) (data []byte, err error) {
	err = l.retry(ctx, ref.Size, func(ctx context.Context, v *Values) (err error) {
		data, err = v.Get(ctx, ref)
		return err
	})
	return data, err
}

// Write stores data under name (see Values.PutBytes), retrying what may
// pass for the pool's grace period.
func (l *LazyValues) Write(ctx context.Context, name string, data []byte) (ref wire.Ref, err error) {
	err = l.retry(ctx, int64(len(data)), func(ctx context.Context, v *Values) (err error) {
		ref, err = v.PutBytes(ctx, name, data)
		return err
	})
	return ref, err
}

// Remove removes the value under name (see Values.Delete), retrying what
// may pass for the pool's grace period.
func (l *LazyValues) Remove(ctx context.Context, name string) error {
	return l.retry(ctx, 0, func(ctx context.Context, v *Values) error { return v.Delete(ctx, name) })
}

// retry runs op, a transfer of size bytes, on the bucket, provisioning it
// first if need be, with the retries of retryValue.
func (l *LazyValues) retry(ctx context.Context, size int64, op func(context.Context, *Values) error) error {
	return retryValue(ctx, l.cfg.WithDefaults().Grace, size, func(ctx context.Context) error {
		v, err := l.Get(ctx)
		if err == nil {
			err = op(ctx, v)
		}
		return err
	})
}

// Put stores the value that r yields, size bytes, under name, sealed under
// a new key, and returns its reference. A reader that yields another number
// of bytes fails the put, and nothing is left under name.
func (v *Values) Put(ctx context.Context, name string, r io.Reader, size int64) (wire.Ref, error) {
	ref := wire.Ref{Name: name, Size: size, Key: make([]byte, wire.RefKeyLen)}
	rand.Read(ref.Key)
	aead, err := newAEAD(ref.Key)
	if err != nil {
		return wire.Ref{}, err
	}
	sr := &sealer{aead: aead, r: io.LimitReader(r, size+1), want: size}
	meta := jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: v.chunk}}
	if _, err := v.obs.Put(ctx, meta, sr); err != nil {
		if sr.err != nil {
			err = sr.err
		}
		v.obs.Delete(context.WithoutCancel(ctx), name)
		return wire.Ref{}, fmt.Errorf("broker: put value %s: %w", name, err)
	}
	return ref, nil
}

// PutBytes stores data under name (see Put).
func (v *Values) PutBytes(ctx context.Context, name string, data []byte) (wire.Ref, error) {
	return v.Put(ctx, name, bytes.NewReader(data), int64(len(data)))
}

// Open returns a reader of the value ref names, which fails with an error
// matching ErrValueLost as soon as the value does not open under ref's key,
// and at its end if it does not hold exactly ref.Size bytes. The caller
// closes it.
func (v *Values) Open(ctx context.Context, ref wire.Ref) (io.ReadCloser, error) {
	return v.open(ctx, ref)
}

func (v *Values) open(ctx context.Context, ref wire.Ref) (*opener, error) {
	aead, err := newAEAD(ref.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrValueLost, ref.Name, err)
	}
	obj, err := v.obs.Get(ctx, ref.Name)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			err = fmt.Errorf("%w: %s is not in the bucket", ErrValueLost, ref.Name)
		}
		return nil, fmt.Errorf("broker: get value %s: %w", ref.Name, err)
	}
	return &opener{aead: aead, r: bufio.NewReaderSize(obj, sealedFrame+1), obj: obj, name: ref.Name, want: ref.Size}, nil
}

// Get reads the whole value ref names (see Open) into one buffer of its
// size, made once: no larger than the object, so a reference that claims
// more than its object holds costs no more memory than the object.
func (v *Values) Get(ctx context.Context, ref wire.Ref) ([]byte, error) {
	rc, err := v.open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	size := ref.Size
	if info, err := rc.obj.Info(); err == nil {
		size = min(size, int64(info.Size))
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	// The reader checks at its end that the value held ref.Size bytes.
	if n, err := rc.Read(make([]byte, 1)); n > 0 || !errors.Is(err, io.EOF) {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %s holds more than %d bytes", ErrValueLost, ref.Name, size)
		}
		return nil, err
	}
	return buf, nil
}

// Delete removes the value under name; one that is gone already is no
// error.
func (v *Values) Delete(ctx context.Context, name string) error {
	if err := v.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("broker: delete value %s: %w", name, err)
	}
	return nil
}

// Names lists the values in the bucket.
func (v *Values) Names(ctx context.Context) ([]string, error) {
	infos, err := v.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: list values: %w", err)
	}
	names := make([]string, len(infos))
	for i, info := range infos {
		names[i] = info.Name
	}
	return names, nil
}

// retryValue calls op, a transfer of a value of size bytes, until it
// succeeds or fails with ErrValueLost, retrying other errors (the broker
// restarts, a leader is elected) with backoff from 50ms to 1s until grace
// has passed since the first of them. Each call of op gets a context that
// ends after grace plus a second per MiB of the value, so that a transfer
// that stalls is tried again; ctx ends it all.
func retryValue(ctx context.Context, grace time.Duration, size int64, op func(context.Context) error) error {
	each := grace + time.Duration(size>>20)*time.Second
	var giveUp time.Time
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, each)
		err := op(actx)
		cancel()
		if err == nil || errors.Is(err, ErrValueLost) || ctx.Err() != nil {
			return err
		}
		now := time.Now()
		if giveUp.IsZero() {
			giveUp = now.Add(grace)
		}
		if !now.Before(giveUp) {
			return err
		}
		t := time.NewTimer(min(backoff, giveUp.Sub(now)))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// A sealed value is a sequence of frames, each the AES-GCM seal of up to
// frame bytes of the value, with the frame's number as its nonce and, as
// its additional data, whether it is the last: so frames cannot be
// reordered, dropped or cut off without the open failing. The last frame
// may be empty; every other is full.
const (
	frame       = 64 << 10
	sealedFrame = frame + 16 // the GCM tag
)

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != wire.RefKeyLen {
		return nil, fmt.Errorf("a key of %d bytes", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// frameNonce is frame n's nonce; aad is its additional data.
func frameNonce(nonce []byte, n uint64) []byte {
	clear(nonce)
	binary.BigEndian.PutUint64(nonce[4:], n)
	return nonce
}

func frameAAD(last bool) []byte {
	if last {
		return []byte{1}
	}
	return []byte{0}
}

// sealer reads r, which must yield want bytes, as sealed frames.
type sealer struct {
	aead  cipher.AEAD
	r     io.Reader
	want  int64
	read  int64
	n     uint64 // the next frame's number
	plain []byte
	out   []byte // sealed bytes not yet returned
	nonce [12]byte
	done  bool
	err   error // what made the reads fail, for Put to tell
}

func (s *sealer) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.done {
			return 0, io.EOF
		}
		if err := s.seal(); err != nil {
			s.err = err
			return 0, err
		}
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// seal reads and seals the next frame.
func (s *sealer) seal() error {
	if s.plain == nil {
		s.plain = make([]byte, frame)
		s.out = make([]byte, 0, sealedFrame)
	}
	want := int(min(frame, s.want-s.read))
	n, err := io.ReadFull(s.r, s.plain[:want])
	s.read += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if n < want {
		return fmt.Errorf("the value ended after %d of %d bytes", s.read, s.want)
	}
	last := s.read == s.want
	if last {
		// One byte more than want means the value is longer than said.
		var extra [1]byte
		if m, _ := s.r.Read(extra[:]); m > 0 {
			return fmt.Errorf("the value is longer than %d bytes", s.want)
		}
	}
	s.out = s.aead.Seal(s.out[:0], frameNonce(s.nonce[:], s.n), s.plain[:n], frameAAD(last))
	s.n++
	s.done = last
	return nil
}

// opener reads sealed frames from r and yields the value, want bytes.
type opener struct {
	aead  cipher.AEAD
	r     *bufio.Reader
	obj   jetstream.ObjectResult
	name  string
	want  int64
	read  int64
	n     uint64
	buf   []byte
	plain []byte // opened bytes not yet returned
	nonce [12]byte
	done  bool
	err   error
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		switch {
		case o.err != nil:
			return 0, o.err
		case o.done:
			return 0, io.EOF
		}
		if err := o.open(); err != nil {
			o.err = fmt.Errorf("%w: %s: %v", ErrValueLost, o.name, err)
		}
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

// open reads and opens the next frame.
func (o *opener) open() error {
	if o.buf == nil {
		o.buf = make([]byte, sealedFrame)
	}
	n, err := io.ReadFull(o.r, o.buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		if errors.Is(err, io.EOF) {
			return errors.New("it ends before its last frame")
		}
		return err
	}
	// The last frame is the one no byte follows.
	_, peek := o.r.Peek(1)
	last := errors.Is(peek, io.EOF)
	if peek != nil && !last {
		return peek
	}
	plain, err := o.aead.Open(o.buf[:0], frameNonce(o.nonce[:], o.n), o.buf[:n], frameAAD(last))
	if err != nil {
		return errors.New("it does not open under its key")
	}
	o.n++
	o.read += int64(len(plain))
	if o.read > o.want || last && o.read != o.want {
		return fmt.Errorf("it holds %d bytes or more, not %d", o.read, o.want)
	}
	o.plain, o.done = plain, last
	return nil
}

func (o *opener) Close() error { return o.obj.Close() }
