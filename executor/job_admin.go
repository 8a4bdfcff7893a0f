package executor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
)

// The lifecycle of named jobs, for a program or a command line: each call
// below reads or changes the jobs of the executor's owner, attached
// anywhere or not at all, and needs no Job.
//
// What a job keeps in JetStream, until it is deleted or its retention runs
// out: in the jobs bucket, its record, its end record and, per chunk, the
// chunk's record (about 100 bytes and the digests), one record per cancel,
// and per worker author that claimed it a claim and a lease record (about
// 100 bytes and the items it stored results for); in the owner's results
// stream, its
// secret and, per attempt of a chunk, its results messages (the items'
// values and errors, split to fit the server's maximum payload). A chunk
// runs in one attempt without faults, and in at most MaxDeliver; so a job
// keeps about its results' size plus a few hundred bytes per chunk.

// JobInfo describes one job of the executor's owner.
type JobInfo struct {
	Name      string
	Created   time.Time
	Retention time.Duration // how long each record is kept; 0: until the job is deleted
	// Attached reports whether a producer said it is attached within the
	// last three of its beats (5s each); Producer is its id.
	Attached bool
	Producer string
}

// JobStatus is what a job's records and results say, as [NATS.JobStatus]
// reads them.
type JobStatus struct {
	JobInfo
	Chunks int
	Tasks  int // tasks published: the job's input so far
	// Each task is counted once, in the first that applies: Done (it has a
	// result, a value or an error, or its deadline passed before it ran;
	// Failed counts the errors and the deadlines among them), Cancelled,
	// Running (a worker started its chunk), Queued.
	Done, Failed, Cancelled, Running, Queued int
	// InputEnded reports whether a producer said that the job's input
	// ended ([Job.EndInput]) with the tasks published now: false while
	// a producer may add more, and for a job whose producer stopped
	// before it had published all of its input.
	InputEnded bool
	// FirstResult and LastResult are when the first and the last results
	// were stored; Rate is the tasks done per second between the two.
	FirstResult, LastResult time.Time
	Rate                    float64
}

// JobResult is one task's outcome in a job's input, as [NATS.JobResults]
// yields it: Value is the task's output in msgpack, or Err its error (a
// *task.Error, or one matching ErrCancelled or context.DeadlineExceeded).
type JobResult struct {
	Position uint64
	Kind     string
	Value    []byte
	Err      error
}

// Jobs lists the jobs of the executor's owner, by name. It fails with the
// broker's error if JetStream does not answer; a pool without jobs has
// none.
func (n *NATS) Jobs(ctx context.Context) ([]JobInfo, error) {
	var jobs []JobInfo
	err := n.readAll(ctx, n.subj.JobsStream(), n.subj.JobKey(n.owner+".*.job"), jetstream.DeliverLastPerSubjectPolicy,
		func(m jetstream.Msg) {
			key, _ := n.subj.JobKeyOf(m.Subject())
			name := strings.TrimSuffix(strings.TrimPrefix(key, n.owner+"."), ".job")
			var info wire.JobInfo
			if wire.Decode(m.Data(), &info) == nil {
				jobs = append(jobs, jobInfo(name, info))
			}
		})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	slices.SortFunc(jobs, func(a, b JobInfo) int { return strings.Compare(a.Name, b.Name) })
	return jobs, err
}

func jobInfo(name string, info wire.JobInfo) JobInfo {
	return JobInfo{
		Name: name, Created: time.Unix(0, info.Created), Retention: time.Duration(info.Retention),
		Attached: info.Producer != "" && time.Since(time.Unix(0, info.Beat)) < 3*jobBeat, Producer: info.Producer,
	}
}

// readStore returns the job store without provisioning anything.
func (n *NATS) readStore() *broker.JobStore {
	n.jobsMu.Lock()
	defer n.jobsMu.Unlock()
	if n.store == nil {
		n.store = broker.NewJobStore(n.nc, n.js, n.subj)
	}
	return n.store
}

// jobRecords is every record of one job, as scanJob reads them.
type jobRecords struct {
	info   *wire.JobInfo
	end    *wire.JobEnd                // nil: no producer said where the input ends
	keys   []string                    // every key, the job's record's among them
	chunks map[uint64][]wire.JobRecord // by ord, keys relative to the chunk
}

// scanJob reads every record of the job name from the jobs bucket.
func (n *NATS) scanJob(ctx context.Context, name string) (*jobRecords, error) {
	job := n.subj.Job(n.owner, name)
	jr := &jobRecords{chunks: make(map[uint64][]wire.JobRecord)}
	err := n.readAll(ctx, n.subj.JobsStream(), n.subj.JobKey(job+".>"), jetstream.DeliverLastPerSubjectPolicy, func(m jetstream.Msg) {
		if op := m.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return
		}
		key, _ := n.subj.JobKeyOf(m.Subject())
		rest := strings.TrimPrefix(key, job+".")
		jr.keys = append(jr.keys, key)
		switch rest {
		case "job":
			var info wire.JobInfo
			if wire.Decode(m.Data(), &info) == nil {
				jr.info = &info
			}
			return
		case "end":
			var end wire.JobEnd
			if wire.Decode(m.Data(), &end) == nil {
				jr.end = &end
			}
			return
		}
		o, suffix, ok := strings.Cut(rest, ".")
		ord, err := strconv.ParseUint(o, 10, 64)
		if !ok || err != nil {
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		jr.chunks[ord] = append(jr.chunks[ord], wire.JobRecord{Key: suffix, Seq: meta.Sequence.Stream, Time: meta.Timestamp, Data: m.Data()})
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %q (the pool has no jobs)", ErrNoJob, name)
	}
	if err != nil {
		return nil, err
	}
	if jr.info == nil && len(jr.chunks) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoJob, name)
	}
	return jr, nil
}

// jobResults is a job's results as scanResults reads them: the secret and,
// per chunk, the first valid result of each item.
type jobResults struct {
	secret []byte
	items  map[uint64]map[uint32]wire.ItemResult
	first  time.Time
	last   time.Time
	forged int
}

// scanResults reads the job's results stream.
func (n *NATS) scanResults(ctx context.Context, name string) (*jobResults, error) {
	job := n.subj.Job(n.owner, name)
	var msgs []jetstream.Msg
	err := n.readAll(ctx, n.subj.ResultsStream(n.owner), n.subj.JobResults(n.owner, name), jetstream.DeliverAllPolicy,
		func(m jetstream.Msg) { msgs = append(msgs, m) })
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %q (the owner has no results stream)", ErrNoJob, name)
	}
	if err != nil {
		return nil, err
	}
	jr := &jobResults{items: make(map[uint64]map[uint32]wire.ItemResult)}
	for _, m := range msgs {
		if m.Subject() == n.subj.JobSecret(n.owner, name) {
			jr.secret = m.Data()
		}
	}
	if jr.secret == nil {
		return nil, fmt.Errorf("%w: %q (it has no secret)", ErrNoJob, name)
	}
	for _, m := range msgs {
		ord, author, ok := n.subj.ResultsOf(n.owner, name, m.Subject())
		if !ok {
			continue
		}
		var res wire.JobResult
		if wire.Decode(m.Data(), &res) != nil ||
			!hmac.Equal(res.Proof, wire.JobProof(deriveJobKey(jr.secret, "chunk", ord), job, ord, author, res.Worker, res.Nonce)) {
			jr.forged++
			continue
		}
		if meta, err := m.Metadata(); err == nil {
			if jr.first.IsZero() {
				jr.first = meta.Timestamp
			}
			jr.last = meta.Timestamp
		}
		got := jr.items[ord]
		if got == nil {
			got = make(map[uint32]wire.ItemResult)
			jr.items[ord] = got
		}
		for _, it := range res.Items {
			if _, done := got[it.Seq]; !done {
				got[it.Seq] = it
			}
		}
	}
	return jr, nil
}

// deriveJobKey is Job.derive for a secret read from the results stream.
func deriveJobKey(secret []byte, what string, ord uint64) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(what))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ord)
	m.Write(b[:])
	return m.Sum(nil)
}

// readIdle is how long the server keeps a read's consumer that nobody
// deleted.
const readIdle = 10 * time.Second

// readAll calls fn with every message of stream matching filter that the
// policy delivers (all of them, or the last of each subject), in order, and
// returns once the last one is read. A stream that does not exist fails
// with an error matching jetstream.ErrStreamNotFound.
//
// Each read is a consumer of its own, which it deletes once done: left to
// lapse, the consumers of a status polled every second would pile up in
// the server by the hundred, up to its limit, and then every read fails.
// The server removes one whose delete was lost after readIdle.
func (n *NATS) readAll(ctx context.Context, stream, filter string, policy jetstream.DeliverPolicy, fn func(jetstream.Msg)) error {
	cons, err := n.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter},
		DeliverPolicy: policy, InactiveThreshold: readIdle})
	if err != nil {
		return fmt.Errorf("executor: read %s: %w", stream, err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobTimeout)
			n.js.DeleteConsumer(dctx, stream, info.Name)
			cancel()
		}
	}()
	if info := cons.CachedInfo(); info == nil || info.NumPending == 0 {
		return nil
	}
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case <-done:
			return
		default:
		}
		fn(m)
		if meta, err := m.Metadata(); err == nil && meta.NumPending == 0 {
			close(done)
		}
	})
	if err != nil {
		return fmt.Errorf("executor: read %s: %w", stream, err)
	}
	defer func() {
		cc.Stop()
		<-cc.Closed()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// JobStatus reads every record and result of the job name of the
// executor's owner and counts its tasks: done (and failed among them),
// cancelled, running, queued; with the job's record, whether a producer is
// attached, and the rate of results. It costs a read of all the job's
// records and results, and fails with ErrNoJob for a job the pool does not
// hold.
func (n *NATS) JobStatus(ctx context.Context, name string) (JobStatus, error) {
	recs, err := n.scanJob(ctx, name)
	if err != nil {
		return JobStatus{}, err
	}
	res, err := n.scanResults(ctx, name)
	if err != nil {
		return JobStatus{}, err
	}
	var st JobStatus
	if recs.info != nil {
		st.JobInfo = jobInfo(name, *recs.info)
	}
	st.Name = name
	job := n.subj.Job(n.owner, name)
	for ord, rr := range recs.chunks {
		cs := wire.NewJobChunkState(job, ord, rr, deriveJobKey(res.secret, "chunk", ord))
		if cs.Chunk == nil {
			continue
		}
		st.Chunks++
		st.Tasks += int(cs.Chunk.N)
		done := res.items[ord]
		expired := cs.Chunk.Deadline != 0 && n.pastDeadline(cs)
		for i := range cs.Chunk.N {
			it, ok := done[i]
			switch {
			case ok:
				st.Done++
				if it.Err != nil {
					st.Failed++
				}
			case cs.Cancelled[i]:
				st.Cancelled++
			case expired:
				// Its deadline passed before it ran, as JobResults says:
				// it failed, and no result will come.
				st.Done++
				st.Failed++
			case cs.First != 0:
				st.Running++
			default:
				st.Queued++
			}
		}
	}
	st.InputEnded = recs.end != nil && recs.end.Tasks == uint64(st.Tasks)
	st.FirstResult, st.LastResult = res.first, res.last
	if d := res.last.Sub(res.first); d > 0 {
		st.Rate = float64(st.Done) / d.Seconds()
	}
	return st, nil
}

// JobResults yields the outcome of every task of the job name of the
// executor's owner in the order of the job's input, each once it is known,
// so that it can be ranged over while the job runs: a result, a
// cancellation (ErrCancelled), or a deadline that passed before the task
// ran. It ends after the job's last task once no producer is attached to
// the job (one that is may yet add tasks), or with one error: ErrNoJob, the
// end of ctx, or the broker's error. Each chunk costs a read of its records,
// and every result of the job is read once.
func (n *NATS) JobResults(ctx context.Context, name string) iter.Seq2[JobResult, error] {
	return func(yield func(JobResult, error) bool) {
		if err := n.jobResults(ctx, name, yield); err != nil {
			yield(JobResult{}, err)
		}
	}
}

func (n *NATS) jobResults(ctx context.Context, name string, yield func(JobResult, error) bool) error {
	store := n.readStore()
	results, err := n.js.Stream(ctx, n.subj.ResultsStream(n.owner))
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrNoJob, name, err)
	}
	m, err := results.GetLastMsgForSubject(ctx, n.subj.JobSecret(n.owner, name))
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrNoJob, name, err)
	}
	secret, job := m.Data, n.subj.Job(n.owner, name)

	var (
		mu     sync.Mutex
		got    = make(map[uint64]map[uint32]wire.ItemResult)
		signal = make(chan struct{}, 1)
	)
	cons, err := n.js.OrderedConsumer(ctx, n.subj.ResultsStream(n.owner), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{n.subj.JobResults(n.owner, name)}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("executor: read job %q's results: %w", name, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ord, author, ok := n.subj.ResultsOf(n.owner, name, m.Subject())
		var res wire.JobResult
		if !ok || wire.Decode(m.Data(), &res) != nil ||
			!hmac.Equal(res.Proof, wire.JobProof(deriveJobKey(secret, "chunk", ord), job, ord, author, res.Worker, res.Nonce)) {
			return
		}
		mu.Lock()
		if got[ord] == nil {
			got[ord] = make(map[uint32]wire.ItemResult)
		}
		for _, it := range res.Items {
			if _, done := got[ord][it.Seq]; !done {
				got[ord][it.Seq] = it
			}
		}
		mu.Unlock()
		select {
		case signal <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("executor: read job %q's results: %w", name, err)
	}
	defer func() {
		cc.Stop()
		<-cc.Closed()
	}()

	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	wait := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-signal:
		case <-poll.C:
		}
		return nil
	}
	read := func(ord uint64) (wire.JobChunkState, error) {
		recs, err := store.ChunkRecords(ctx, job, ord, 0)
		if err != nil {
			return wire.JobChunkState{}, err
		}
		return wire.NewJobChunkState(job, ord, recs, deriveJobKey(secret, "chunk", ord)), nil
	}
	for ord := uint64(0); ; ord++ {
		cs, err := read(ord)
		if err != nil {
			return err
		}
		for cs.Chunk == nil {
			// No chunk at ord: the end of the job, unless a producer is
			// attached, which may yet publish it.
			info, ok, err := store.Get(ctx, wire.JobInfoKey(job))
			if err != nil {
				return err
			}
			var ji wire.JobInfo
			if !ok || wire.Decode(info.Data, &ji) != nil || !jobInfo(name, ji).Attached {
				return nil
			}
			if err := wait(); err != nil {
				return err
			}
			if cs, err = read(ord); err != nil {
				return err
			}
		}
		for i := uint32(0); i < cs.Chunk.N; {
			mu.Lock()
			it, done := got[ord][i]
			mu.Unlock()
			r := JobResult{Position: cs.Chunk.Pos + uint64(i), Kind: cs.Chunk.Kind}
			switch {
			case done && it.Err != nil:
				r.Err = it.Err.TaskError(cs.Chunk.Kind)
			case done:
				r.Value = it.Value
			case cs.Cancelled[i]:
				r.Err = ErrCancelled
			case cs.Chunk.Deadline != 0 && n.pastDeadline(cs):
				r.Err = errExpired(cs.Chunk.Kind)
			default:
				if err := wait(); err != nil {
					return err
				}
				next, err := read(ord)
				if err != nil {
					return err
				}
				if next.Chunk == nil {
					return fmt.Errorf("%w: %q was deleted while its results were read", ErrNoJob, name)
				}
				cs = next
				continue
			}
			if !yield(r, nil) {
				return nil
			}
			i++
		}
	}
}

// pastDeadline reports whether a chunk's tasks without a result will never
// have one: its deadline passed before it started, or long enough ago that
// its attempt's lease and the grace period are over too.
func (n *NATS) pastDeadline(cs wire.JobChunkState) bool {
	d := time.Unix(0, cs.Chunk.Deadline)
	if cs.First == 0 {
		return time.Now().After(d)
	}
	return time.Now().After(d.Add(n.pc.AckWait + n.pc.Grace))
}

// CancelJob cancels every task of the job name of the executor's owner that
// no worker has started, as Future.Cancel would one by one, and returns how
// many it cancelled: for each chunk that has not started it writes a cancel
// record and reads the chunk's claims. A Job attached anywhere sees its
// futures cancelled. It fails with ErrNoJob for a job the pool does not
// hold.
func (n *NATS) CancelJob(ctx context.Context, name string) (int, error) {
	recs, err := n.scanJob(ctx, name)
	if err != nil {
		return 0, err
	}
	store := n.readStore()
	job := n.subj.Job(n.owner, name)
	cancelled := 0
	for ord, rr := range recs.chunks {
		cs := wire.NewJobChunkState(job, ord, rr, nil)
		if cs.Chunk == nil || cs.First != 0 {
			continue
		}
		owed := cs.Owed()
		if len(owed) == 0 {
			continue
		}
		data, err := wire.Encode(&wire.JobCancel{Items: owed})
		if err != nil {
			return cancelled, err
		}
		var ttl time.Duration
		if recs.info != nil {
			ttl = time.Duration(recs.info.Retention)
		}
		seq, err := store.Create(ctx, wire.JobCancelKey(job, ord, rand.Uint64()), data, ttl)
		if err != nil {
			return cancelled, err
		}
		after, err := store.ChunkRecords(ctx, job, ord, seq)
		if err != nil {
			return cancelled, err
		}
		// Claims are taken unchecked: a forged one only makes this count
		// low, while the workers, who check them, keep to the cancel.
		if cs := wire.NewJobChunkState(job, ord, after, nil); cs.First == 0 || cs.First > seq {
			cancelled += len(owed)
		}
	}
	return cancelled, nil
}

// DeleteJob removes the job name of the executor's owner: its queued
// chunks from the task stream, every record of it from the jobs bucket,
// and its results and secret from the results stream. A chunk that a
// worker runs as the job is deleted may still store its last results:
// delete a job once it is finished or cancelled. Where the server does not
// let the producer delete queued messages (docs/security.conf), the
// chunks stay queued until workers pull them and, finding no record, drop
// them. It fails with ErrJobAttached while this executor has a Job of it
// that is not shut down, and with ErrNoJob for a job the pool does not
// hold.
func (n *NATS) DeleteJob(ctx context.Context, name string) error {
	n.jobsMu.Lock()
	_, attached := n.jobs[name]
	n.jobsMu.Unlock()
	if attached {
		return fmt.Errorf("%w: %q", ErrJobAttached, name)
	}
	recs, err := n.scanJob(ctx, name)
	if err != nil && !errors.Is(err, ErrNoJob) {
		return err
	}
	store := n.readStore()
	if recs != nil {
		job := n.subj.Job(n.owner, name)
		for ord, rr := range recs.chunks {
			// Only chunks some item of which is still owed a result may be
			// queued: a finished one was acked.
			cs := wire.NewJobChunkState(job, ord, rr, nil)
			if cs.Chunk == nil || cs.Chunk.Seq == 0 || len(cs.Owed()) == 0 && cs.First != 0 {
				continue
			}
			err := n.stream.DeleteMsg(ctx, cs.Chunk.Seq)
			if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				// Refused, as a server may refuse it to producers: the
				// workers drop the rest once the records are gone.
				n.log.Info("executor: the deleted job's queued chunks stay queued until workers drop them", "job", name, "err", err)
				break
			}
		}
		var acks []jetstream.PubAckFuture
		for _, key := range recs.keys {
			f, err := n.js.PublishMsgAsync(store.PurgeMsg(key))
			if err != nil {
				return fmt.Errorf("executor: delete job %q: %w", name, err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("executor: delete job %q: %w", name, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	results, err := n.js.Stream(ctx, n.subj.ResultsStream(n.owner))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if recs == nil {
			return fmt.Errorf("%w: %q", ErrNoJob, name)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("executor: delete job %q: %w", name, err)
	}
	if err := results.Purge(ctx, jetstream.WithPurgeSubject(n.subj.JobResults(n.owner, name))); err != nil {
		return fmt.Errorf("executor: delete job %q's results: %w", name, err)
	}
	return nil
}
