//lint:file-ignore U1000 the _msgpack fields are read by reflection: they carry msgpack's as_array tag.

package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetpool/jetpool/task"
)

// A named job keeps in JetStream what the producer of unnamed work keeps in
// memory, so that workers run it with no producer attached and a producer
// started again resumes it. Its state is in two places:
//
//   - The pool's jobs bucket (broker.Subjects.JobsBucket), a key-value
//     bucket that every party of the pool may read. Its keys all begin with
//     the job, "<owner>.<name>", and name their writer in a token of their
//     own, so that a server can let each party write only its own:
//     "<job>.job" (JobInfo), "<job>.end" (JobEnd), "<job>.<ord>.c"
//     (JobChunk), "<job>.<ord>.x.<id>" (JobCancel) and "<job>.<ord>.i"
//     (JobCancel, the interrupted items) are the owner's; "<job>.<ord>.s.<author>" and "<job>.<ord>.l.<author>"
//     (JobClaim) are the workers' of that author.
//   - The owner's results stream (broker.Subjects.ResultsStream), which
//     only the owner reads: JobResults on
//     "<prefix>.<pool>.results.<owner>.<name>.<ord>.<author>", written by
//     workers of that author, and the job's secret, written by the owner.
//
// The flow of one chunk of a named job:
//
//  1. The owner writes the chunk's record, "<job>.<ord>.c" (create only),
//     with the digest of the message it is about to publish and the digest of
//     its input (InputDigest), then publishes the chunk: a Chunk with Job,
//     Ord, Pos and Key set, Key being derived from the job's secret so that
//     only the owner and those delivered the chunk know it. A Submit returns
//     once the stream took the chunk, so that a task a producer was told is
//     the job's is in the stream; the owner then adds the chunk's stream
//     sequence to its record. A Map's chunks have
//     their records written several at once; each is published only once
//     every chunk before it is known to be of the job's input (its record
//     written, or found with the same input), and the records written after
//     a chunk of another input are purged, unpublished. A chunk
//     record that exists with the same input is never published again,
//     except when it has no sequence yet (its producer died before the
//     stream confirmed it): then the same message goes out again under the
//     same dedup id.
//  2. A worker pulls it and reads the chunk's records (one multi-last read
//     of "<job>.<ord>.>"). No record: the job was deleted or expired, the
//     chunk is acked. A record whose digest is not the message's: not the
//     chunk the owner published, the chunk is terminated. Every item done
//     or cancelled: acked. Another attempt live: nakked with a delay, or
//     acked if that attempt holds another copy of the message.
//  3. The worker claims the chunk: the first time its author does, by
//     creating "<job>.<ord>.s.<author>"; after that by a compare-and-set of
//     "<job>.<ord>.l.<author>". A claim (JobClaim) carries a fresh nonce, the
//     attempt's id, and a Proof, an HMAC under the chunk's Key of the job,
//     the chunk, the author, the worker and the nonce: it proves that its
//     writer was delivered the chunk, and, with the author in the key's
//     subject, which only that author may write, binds the claim to its
//     author.
//  4. The worker reads the records again, at least as new as its claim
//     (NewJobChunkState). The first valid claim by stream sequence of any
//     author (First) starts the chunk: the items it runs are the chunk's
//     items but those of cancels written before it. A cancel, written by
//     the owner as a record of its own before it reads the claims, cancels
//     its items only if no valid claim came before it; so the owner's
//     Cancel and every worker decide alike, by the sequences of one stream,
//     and a task whose Cancel returned true never runs. The worker runs the
//     items still owed a result unless another attempt that began before
//     its own is live; then it steps back (it marks its attempt final).
//  5. While it runs, the worker renews its attempt every third of its lease
//     (an update of "<job>.<ord>.l.<author>", carrying the items it has
//     stored results for), and stores results in the owner's results
//     stream, each JobResult with the attempt's nonce and proof. Once the
//     final results are stored it marks its attempt final and acks the
//     message. An attempt whose last renewal is two thirds of its lease old
//     has lapsed: a worker delivered the chunk again claims it anew and
//     runs the items no attempt has stored results for. At the message's
//     last delivery (the consumer's MaxDeliver, when that is above one) the
//     attempt runs nothing: it stores for each item still owed an error of
//     type max_deliveries, as results of its own, so that every reader sees
//     those tasks fail whether or not a producer is attached, rather than
//     the items staying owed after JetStream gave up on the chunk. That
//     costs a chunk one of its runs; a worker that dies in that last
//     attempt, or one that cannot store, still leaves the items owed, and
//     only an attached producer, told by JetStream's advisory, fails them.
//  6. The owner, attached or resumed, reads its job's results stream in
//     order: a result counts if its proof holds for its subject's author,
//     and the first result of an item, in the stream's order, is the
//     item's, for every reader alike. It reads the job's records from the
//     bucket for Running (a valid claim) and interrupts: an interrupt is a
//     record "<job>.<ord>.i" listing the items, and a notice to the inbox
//     the attempt's claim named, which makes the worker read that record.

// JobKeyLen is the length of a named chunk's Key.
const JobKeyLen = 32

// validateJob checks a Chunk's Job, "<owner>.<name>".
func validateJob(job string) error {
	owner, name, ok := strings.Cut(job, ".")
	if !ok {
		return fmt.Errorf("job %q is not <owner>.<name>", job)
	}
	if err := task.ValidateName(owner); err != nil {
		return fmt.Errorf("job owner: %w", err)
	}
	if err := task.ValidateName(name); err != nil {
		return fmt.Errorf("job name: %w", err)
	}
	return nil
}

// Keys of a job's records in the jobs bucket.

// JobInfoKey is the key of the job's own record.
func JobInfoKey(job string) string { return job + ".job" }

// ChunkRecordsKey is the filter of every record of chunk ord.
func ChunkRecordsKey(job string, ord uint64) string { return chunkPrefix(job, ord) + ">" }

// JobChunkKey is the key of chunk ord's record.
func JobChunkKey(job string, ord uint64) string { return chunkPrefix(job, ord) + "c" }

// JobCancelKey is the key of one cancel of chunk ord's items.
func JobCancelKey(job string, ord, id uint64) string {
	return chunkPrefix(job, ord) + "x." + strconv.FormatUint(id, 16)
}

// JobInterruptKey is the key of chunk ord's interrupted items.
func JobInterruptKey(job string, ord uint64) string { return chunkPrefix(job, ord) + "i" }

// JobClaimKey is the key of author's first claim of chunk ord.
func JobClaimKey(job string, ord uint64, author string) string {
	return chunkPrefix(job, ord) + "s." + author
}

// JobLeaseKey is the key of author's current attempt of chunk ord.
func JobLeaseKey(job string, ord uint64, author string) string {
	return chunkPrefix(job, ord) + "l." + author
}

func chunkPrefix(job string, ord uint64) string { return job + "." + strconv.FormatUint(ord, 10) + "." }

// JobInfo is a job's own record, by its owner.
type JobInfo struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Created   int64    // Unix nanoseconds
	Retention int64    // nanoseconds each record is kept; 0: until deleted
	Producer  string   // the executor attached, "" once it detached
	Beat      int64    // Unix nanoseconds of the attached producer's last beat
}

// JobEndKey is the key of the record that says where the job's input ends.
func JobEndKey(job string) string { return job + ".end" }

// JobEnd is the record its owner writes once the job's input has ended
// (executor's Job.EndInput): the input is the job's first Tasks tasks. A
// job whose chunks hold more tasks than that grew since, and one whose
// chunks hold fewer has not published all of it: neither has ended.
type JobEnd struct {
	_msgpack struct{} `msgpack:",as_array"`
	Tasks    uint64
	At       int64 // Unix nanoseconds
}

// JobChunk is a chunk's record, written by the owner before it publishes
// the chunk.
type JobChunk struct {
	_msgpack struct{} `msgpack:",as_array"`
	Pos      uint64   // the place of the chunk's first item in the job's input
	N        uint32   // items
	Kind     string
	Input    []byte // InputDigest of the chunk's kind, place and items
	Commit   []byte // Digest of the chunk's message as published
	Deadline int64  // as the Chunk's
	Seq      uint64 // the task stream's sequence of the message, once the stream took it
}

// JobCancel lists items of a chunk: cancelled ones in a cancel record,
// interrupted ones in the interrupt record.
type JobCancel struct {
	_msgpack struct{} `msgpack:",as_array"`
	Items    []uint32
}

// JobClaim is an author's claim of a chunk and, under the lease key, its
// current attempt.
type JobClaim struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Worker    string
	Nonce     uint64 // the attempt's id
	Inbox     string // where interrupt notices for the attempt go
	StreamSeq uint64 // the task stream's sequence of the message the attempt holds
	LeaseMs   int64
	Since     uint64 // the sequence at which the attempt began, if before this record; 0: this record
	Proof     []byte // JobProof of the claim
	Done      []uint32
	Final     bool // the attempt ended: its final results are stored, or it stepped back
}

// JobResult carries the results of some items of a chunk, stored by a
// worker of the author its subject names.
type JobResult struct {
	_msgpack struct{} `msgpack:",as_array"`
	Worker   string
	Nonce    uint64
	Proof    []byte
	Final    bool
	Items    []ItemResult
}

func (c *JobChunk) validate() error {
	if c.N == 0 || c.N > MaxItems {
		return fmt.Errorf("job chunk of %d items", c.N)
	}
	return task.ValidateKind(c.Kind)
}

func (c *JobCancel) validate() error {
	if len(c.Items) > MaxItems {
		return fmt.Errorf("cancel of %d items", len(c.Items))
	}
	return nil
}

func (c *JobClaim) validate() error {
	if len(c.Done) > MaxItems {
		return fmt.Errorf("claim with %d items done", len(c.Done))
	}
	return nil
}

func (r *JobResult) validate() error {
	return (&Result{Items: r.Items}).validate()
}

// InputDigest is what tells a job's input apart: the SHA-256 of a chunk's
// kind, the place of its first item and its items' arguments.
func InputDigest(kind string, pos uint64, args [][]byte) []byte {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte(kind))
	h.Write([]byte{0})
	binary.BigEndian.PutUint64(n[:], pos)
	h.Write(n[:])
	for _, a := range args {
		binary.BigEndian.PutUint64(n[:], uint64(len(a)))
		h.Write(n[:])
		h.Write(a)
	}
	return h.Sum(nil)
}

// JobProof is the proof a claim and its results carry: an HMAC-SHA256,
// keyed with the chunk's Key, of the job, the chunk, the author, the worker
// and the attempt's nonce.
func JobProof(key []byte, job string, ord uint64, author, worker string, nonce uint64) []byte {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	for _, s := range []string{job, author, worker} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	binary.BigEndian.PutUint64(n[:], ord)
	m.Write(n[:])
	binary.BigEndian.PutUint64(n[:], nonce)
	m.Write(n[:])
	return m.Sum(nil)
}

// JobRecord is one record of a chunk as the jobs bucket holds it.
type JobRecord struct {
	Key  string    // the key's tokens after "<job>.<ord>.": "c", "x.<id>", "i", "s.<author>", "l.<author>"
	Seq  uint64    // the stream sequence of the record
	Time time.Time // when the server stored it
	Data []byte
}

// JobAttempt is one author's current attempt at a chunk.
type JobAttempt struct {
	Author string
	JobClaim
	Start uint64    // the stream sequence at which it began
	Last  time.Time // its last renewal, by the server's clock
	Seq   uint64    // the sequence of its latest record
}

// Live reports whether the attempt holds its lease at now, by the server's
// clock: it has not ended and its last renewal is less than two thirds of
// its lease old. A worker renews every third of its lease, so a live
// worker's renewal is never older than that but for a pause.
func (a *JobAttempt) Live(now time.Time) bool {
	return !a.Final && now.Sub(a.Last) < time.Duration(a.LeaseMs)*time.Millisecond*2/3
}

// JobChunkState is what a chunk's records say, as every party computes it.
type JobChunkState struct {
	Chunk    *JobChunk // nil if the chunk has no record: the job was deleted or expired
	ChunkSeq uint64    // the sequence of the chunk's record
	// First is the sequence of the first valid claim, by which the chunk
	// started; 0 if it has not.
	First uint64
	// Cancelled is set for each item a cancel took: one written before
	// First, or any if the chunk has not started.
	Cancelled []bool
	// Done is set for each item some attempt says it stored a result for.
	Done     []bool
	Attempts []JobAttempt // each author's current valid attempt, by Start
	// Claimed holds the authors with a first claim ("s") record, valid or
	// not: a create of it would fail. Leases holds the sequence of each
	// author's lease ("l") record, valid or not: what a compare-and-set of
	// it expects.
	Claimed     map[string]bool
	Leases      map[string]uint64
	Interrupted []uint32
	// Forged counts claims whose proof does not hold, and records that do
	// not decode.
	Forged int
	// Latest is the highest sequence among the records.
	Latest uint64
}

// NewJobChunkState reads the records of chunk ord of job. With key nil,
// claims are taken without checking their proofs (a reader who does not
// hold the chunk cannot); with the chunk's Key, a claim whose proof does not
// hold counts as forged and changes nothing.
func NewJobChunkState(job string, ord uint64, recs []JobRecord, key []byte) JobChunkState {
	var st JobChunkState
	type cancelRec struct {
		seq   uint64
		items []uint32
	}
	var cancels []cancelRec
	type authorRecs struct {
		s, l   *JobClaim
		sr, lr JobRecord
	}
	authors := make(map[string]*authorRecs)
	byAuthor := func(a string) *authorRecs {
		if authors[a] == nil {
			authors[a] = &authorRecs{}
		}
		return authors[a]
	}
	for _, r := range recs {
		st.Latest = max(st.Latest, r.Seq)
		kind, rest, _ := strings.Cut(r.Key, ".")
		switch kind {
		case "c":
			var c JobChunk
			if Decode(r.Data, &c) != nil {
				st.Forged++
				continue
			}
			st.Chunk, st.ChunkSeq = &c, r.Seq
		case "x":
			var c JobCancel
			if Decode(r.Data, &c) != nil {
				st.Forged++
				continue
			}
			cancels = append(cancels, cancelRec{r.Seq, c.Items})
		case "i":
			var c JobCancel
			if Decode(r.Data, &c) == nil {
				st.Interrupted = c.Items
			}
		case "s", "l":
			switch {
			case rest == "":
			case kind == "s":
				if st.Claimed == nil {
					st.Claimed = make(map[string]bool)
				}
				st.Claimed[rest] = true
			default:
				if st.Leases == nil {
					st.Leases = make(map[string]uint64)
				}
				st.Leases[rest] = r.Seq
			}
			var c JobClaim
			if rest == "" || Decode(r.Data, &c) != nil ||
				key != nil && !hmac.Equal(c.Proof, JobProof(key, job, ord, rest, c.Worker, c.Nonce)) {
				st.Forged++
				continue
			}
			a := byAuthor(rest)
			if kind == "s" {
				a.s, a.sr = &c, r
			} else {
				a.l, a.lr = &c, r
			}
		}
	}
	if st.Chunk == nil {
		return st
	}
	n := int(st.Chunk.N)
	st.Done = make([]bool, n)
	for author, a := range authors {
		if a.s != nil && (st.First == 0 || a.sr.Seq < st.First) {
			st.First = a.sr.Seq
		}
		var att JobAttempt
		switch {
		case a.l != nil && (a.s == nil || a.l.Nonce != a.s.Nonce):
			att = JobAttempt{Author: author, JobClaim: *a.l, Start: a.l.Since, Last: a.lr.Time, Seq: a.lr.Seq}
			if att.Start == 0 {
				att.Start = a.lr.Seq
			}
		case a.l != nil:
			att = JobAttempt{Author: author, JobClaim: *a.l, Start: a.sr.Seq, Last: a.lr.Time, Seq: a.lr.Seq}
		case a.s != nil:
			att = JobAttempt{Author: author, JobClaim: *a.s, Start: a.sr.Seq, Last: a.sr.Time, Seq: a.sr.Seq}
		default:
			continue
		}
		for _, c := range []*JobClaim{a.s, a.l} {
			if c == nil {
				continue
			}
			for _, i := range c.Done {
				if int(i) < n {
					st.Done[i] = true
				}
			}
		}
		st.Attempts = append(st.Attempts, att)
	}
	slices.SortFunc(st.Attempts, func(a, b JobAttempt) int { return cmpUint(a.Start, b.Start) })
	st.Cancelled = make([]bool, n)
	for _, c := range cancels {
		if st.First != 0 && c.seq > st.First {
			continue
		}
		for _, i := range c.items {
			if int(i) < n {
				st.Cancelled[i] = true
			}
		}
	}
	return st
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Owed lists the items of a started chunk still owed a result: neither
// cancelled nor done. Before the chunk started it lists every item not
// cancelled.
func (st *JobChunkState) Owed() []uint32 {
	var owed []uint32
	for i := range st.Done {
		if !st.Done[i] && !st.Cancelled[i] {
			owed = append(owed, uint32(i))
		}
	}
	return owed
}

// Live returns the attempts live at now, by their start.
func (st *JobChunkState) Live(now time.Time) []JobAttempt {
	var live []JobAttempt
	for _, a := range st.Attempts {
		if a.Live(now) {
			live = append(live, a)
		}
	}
	return live
}

// Attempt returns author's current attempt, if it has one.
func (st *JobChunkState) Attempt(author string) (JobAttempt, bool) {
	for _, a := range st.Attempts {
		if a.Author == author {
			return a, true
		}
	}
	return JobAttempt{}, false
}
