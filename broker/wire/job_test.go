package wire

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestUnnamedChunkCarriesNoJobFields: a chunk of unnamed work encodes as
// it always has, six fields, so that it costs not a byte for named jobs;
// a named one carries eleven.
func TestUnnamedChunkCarriesNoJobFields(t *testing.T) {
	c := Chunk{Executor: "ex", ID: 1, Kind: "k", Control: "c", Items: []Item{{Seq: 0, Args: []byte{1}}}}
	data, err := Encode(&c)
	if err != nil {
		t.Fatal(err)
	}
	var fields []any
	if err := msgpack.Unmarshal(data, &fields); err != nil || len(fields) != 6 {
		t.Fatalf("an unnamed chunk has %d fields (%v), want 6", len(fields), err)
	}
	c.Job, c.Key = "o.j", make([]byte, JobKeyLen)
	if data, err = Encode(&c); err != nil {
		t.Fatal(err)
	}
	var named []any
	if err := msgpack.Unmarshal(data, &named); err != nil || len(named) != 11 {
		t.Fatalf("a named chunk has %d fields (%v), want 11", len(named), err)
	}
}

func TestNamedChunkValidation(t *testing.T) {
	ok := Chunk{Kind: "k", Items: []Item{{Seq: 0}}, Job: "owner.name", Key: make([]byte, JobKeyLen)}
	for name, c := range map[string]Chunk{
		"no owner":       func() Chunk { c := ok; c.Job = "name"; return c }(),
		"bad owner":      func() Chunk { c := ok; c.Job = "a b.name"; return c }(),
		"bad name":       func() Chunk { c := ok; c.Job = "owner.a.b"; return c }(),
		"short key":      func() Chunk { c := ok; c.Key = c.Key[:31]; return c }(),
		"negative TTL":   func() Chunk { c := ok; c.TTL = -1; return c }(),
		"no items":       func() Chunk { c := ok; c.Items = nil; return c }(),
		"unnamed, bare":  {Kind: "k", Items: []Item{{Seq: 0}}},
		"bad kind named": func() Chunk { c := ok; c.Kind = "a.b"; return c }(),
	} {
		data, err := Encode(&c)
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(data, new(Chunk)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	data, _ := Encode(&ok)
	if err := Decode(data, new(Chunk)); err != nil {
		t.Fatalf("a valid named chunk: %v", err)
	}
}

// chunkRecs builds a chunk's records for NewJobChunkState.
type chunkRecs struct {
	t    *testing.T
	key  []byte
	recs []JobRecord
	seq  uint64
	now  time.Time
}

const testJob = "anon.j"

func newChunkRecs(t *testing.T, n uint32) *chunkRecs {
	r := &chunkRecs{t: t, key: bytes.Repeat([]byte{9}, JobKeyLen), now: time.Unix(1000, 0)}
	r.add("c", &JobChunk{N: n, Kind: "k"})
	return r
}

func (r *chunkRecs) add(key string, v any) uint64 {
	data, err := Encode(v)
	if err != nil {
		r.t.Fatal(err)
	}
	r.seq++
	r.recs = append(r.recs, JobRecord{Key: key, Seq: r.seq, Time: r.now.Add(time.Duration(r.seq) * time.Millisecond), Data: data})
	return r.seq
}

func (r *chunkRecs) claim(kind, author string, c JobClaim) uint64 {
	c.Proof = JobProof(r.key, testJob, 0, author, c.Worker, c.Nonce)
	return r.add(kind+"."+author, &c)
}

func (r *chunkRecs) state() JobChunkState { return NewJobChunkState(testJob, 0, r.recs, r.key) }

func TestJobChunkState(t *testing.T) {
	t.Run("not started: every cancel counts", func(t *testing.T) {
		r := newChunkRecs(t, 3)
		r.add("x.1", &JobCancel{Items: []uint32{1}})
		st := r.state()
		if st.First != 0 || !reflect.DeepEqual(st.Cancelled, []bool{false, true, false}) || !slices.Equal(st.Owed(), []uint32{0, 2}) {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("a cancel after the first claim does not count", func(t *testing.T) {
		r := newChunkRecs(t, 3)
		r.add("x.1", &JobCancel{Items: []uint32{0}})
		first := r.claim("s", "w1", JobClaim{Worker: "a", Nonce: 1, LeaseMs: 1000})
		r.add("x.2", &JobCancel{Items: []uint32{1}})
		r.claim("s", "w2", JobClaim{Worker: "b", Nonce: 2, LeaseMs: 1000})
		st := r.state()
		if st.First != first || !reflect.DeepEqual(st.Cancelled, []bool{true, false, false}) || !slices.Equal(st.Owed(), []uint32{1, 2}) {
			t.Fatalf("%+v", st)
		}
		if len(st.Attempts) != 2 || st.Attempts[0].Author != "w1" || st.Attempts[1].Author != "w2" {
			t.Fatalf("attempts %+v, want w1 then w2", st.Attempts)
		}
	})
	t.Run("a claim without a proof is no claim", func(t *testing.T) {
		r := newChunkRecs(t, 2)
		r.add("s.rogue", &JobClaim{Worker: "r", Nonce: 1, Proof: make([]byte, 32), LeaseMs: 1000})
		r.add("x.1", &JobCancel{Items: []uint32{0}})
		// A copy of a valid claim under another author's key fails too:
		// the proof names its author.
		c := JobClaim{Worker: "a", Nonce: 5, LeaseMs: 1000}
		c.Proof = JobProof(r.key, testJob, 0, "w1", c.Worker, c.Nonce)
		r.add("s.rogue2", &c)
		st := r.state()
		if st.First != 0 || st.Forged != 2 || !st.Cancelled[0] || len(st.Attempts) != 0 {
			t.Fatalf("%+v", st)
		}
		if !st.Claimed["rogue"] {
			t.Error("a forged claim's key is not known to be taken")
		}
		// Without the key nothing is checked.
		if st := NewJobChunkState(testJob, 0, r.recs, nil); st.First == 0 || st.Forged != 0 {
			t.Fatalf("unchecked: %+v", st)
		}
	})
	t.Run("done items, renewals and re-attempts", func(t *testing.T) {
		r := newChunkRecs(t, 4)
		s := r.claim("s", "w1", JobClaim{Worker: "a", Nonce: 1, LeaseMs: 3000})
		r.claim("l", "w1", JobClaim{Worker: "a", Nonce: 1, LeaseMs: 3000, Done: []uint32{0, 1}})
		st := r.state()
		a, ok := st.Attempt("w1")
		if !ok || a.Nonce != 1 || a.Start != s || !slices.Equal(st.Owed(), []uint32{2, 3}) {
			t.Fatalf("%+v", st)
		}
		if st.Leases["w1"] != s+1 {
			t.Fatalf("lease record at %d, want %d", st.Leases["w1"], s+1)
		}
		if !a.Live(a.Last.Add(time.Second)) || a.Live(a.Last.Add(2*time.Second+time.Millisecond)) {
			t.Fatal("a lease of 3s is live for two thirds of it, no longer")
		}
		// Another worker of the author takes over with a new nonce.
		l := r.claim("l", "w1", JobClaim{Worker: "b", Nonce: 2, LeaseMs: 3000, Done: []uint32{0, 1, 2}})
		st = r.state()
		a, _ = st.Attempt("w1")
		if a.Nonce != 2 || a.Start != l || st.First != s || !slices.Equal(st.Owed(), []uint32{3}) {
			t.Fatalf("%+v", st)
		}
		r.claim("l", "w1", JobClaim{Worker: "b", Nonce: 2, LeaseMs: 3000, Since: l, Done: []uint32{0, 1, 2, 3}, Final: true})
		st = r.state()
		if a, _ := st.Attempt("w1"); a.Start != l || !a.Final || a.Live(a.Last) || len(st.Owed()) != 0 {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("no chunk record", func(t *testing.T) {
		st := NewJobChunkState(testJob, 0, nil, nil)
		if st.Chunk != nil || len(st.Owed()) != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

func TestInputDigestTellsInputsApart(t *testing.T) {
	base := InputDigest("k", 0, [][]byte{{1}, {2}})
	for name, d := range map[string][]byte{
		"another kind":     InputDigest("j", 0, [][]byte{{1}, {2}}),
		"another place":    InputDigest("k", 1, [][]byte{{1}, {2}}),
		"another argument": InputDigest("k", 0, [][]byte{{1}, {3}}),
		"split otherwise":  InputDigest("k", 0, [][]byte{{1, 2}}),
		"one item fewer":   InputDigest("k", 0, [][]byte{{1}}),
	} {
		if bytes.Equal(d, base) {
			t.Errorf("%s: same digest", name)
		}
	}
	if !bytes.Equal(base, InputDigest("k", 0, [][]byte{{1}, {2}})) {
		t.Error("the same input has another digest")
	}
}
