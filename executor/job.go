package executor

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

// Named jobs. A Job is a view of a NATS executor onto a job that has a name
// the user gives, "nightly-2026-12-01", whose state lives in JetStream
// rather than in the producer: the pool's jobs bucket decides every start
// and cancel by compare-and-set, and the owner's results stream keeps every
// result. So the job runs on with no producer attached, and a producer
// started again with the same name and the same input resumes it: results
// already stored are yielded without running their tasks again, tasks
// queued or running are awaited, and only what was never published is
// published. The protocol is the job flow in broker/wire/job.go.
//
// A Job is an Executor, rather than Map and Submit taking a job option,
// because a job is a thing with a life of its own (it is attached, resumed,
// inspected, cancelled and deleted, and its records are kept for a
// retention), and because then every call that takes an Executor works on
// it unchanged: executor.Map(ctx, job, Square, inputs, MapChunksize(100)),
// Submit, Wait and AsCompleted on its futures.

// jobBeat is how often an attached producer says so in its job's record.
const jobBeat = 5 * time.Second

// jobTimeout bounds each read and write of a job's records.
const jobTimeout = 5 * time.Second

type jobConfig struct {
	retention time.Duration
}

// JobOption configures [NATS.Job].
type JobOption func(*jobConfig) error

// JobRetention keeps every record of a new job, its results among them, for
// d after the record is written, instead of until the job is deleted. The
// server removes each record once its time is up, so give a retention
// longer than the job runs. A job that exists keeps the retention it was
// made with: attaching it with another d fails with ErrInvalidOption. d
// must be at least a second.
func JobRetention(d time.Duration) JobOption {
	return func(c *jobConfig) error {
		if d < time.Second {
			return fmt.Errorf("%w: JobRetention(%v) must be at least 1s", ErrInvalidOption, d)
		}
		c.retention = d
		return nil
	}
}

// Job is a named job of a NATS executor, attached: an [Executor] whose
// futures behave as the executor's own (Result, Cancel, Running, Interrupt,
// done-callbacks, Wait, AsCompleted, Map in input order), but whose tasks
// are decided and kept in JetStream, so that they run, and their results
// stay, whether or not a producer is attached. Get one with [NATS.Job].
//
// A job's input is the sequence of the items of its Submits and Maps in the
// order they are made; a producer that resumes a job must make the same
// calls, with the same inputs, chunk sizes and kinds, in the same order (one
// Map, or Submits from one goroutine). A call whose tasks differ from what
// the job holds at their place fails with an error matching [ErrJobInput];
// the calls before it have been resumed.
//
// A Submit returns once its chunk's record and the chunk itself are
// stored, so a producer that dies after it leaves its task in the job. A
// Map writes the records of its chunks in flight together, and publishes
// each chunk once every chunk before it is known to be of the job's input.
//
// Costs, beyond an unnamed chunk's: a named chunk costs its producer two
// round trips to JetStream (the record, then the chunk), which a Submit
// waits for, and one asynchronous write; its worker three round trips
// before it runs and one per results message; a Cancel two round trips. A producer reads every record its job
// writes, and while it resumes holds the results of chunks its calls have
// not reached yet.
//
// An attached Job resolves its futures from the job's results stream alone,
// not from results sent to it as the executor's own are: one path, in one
// order, the same for every reader, so that the first result of a task is
// the same whether its producer stayed attached, was resumed or reads
// JobResults. It costs a result the latency of a stored message rather
// than of a direct one.
//
// Ending a Map's iteration early cancels its pending tasks, as on every
// executor, when the caller breaks out of the loop; when ctx ends, it
// cancels nothing, since the tasks are the job's: a producer stopped by a
// signal is resumed by starting it again. Shutdown with cancelFutures
// cancels the job's pending tasks that this Job holds; [NATS.CancelJob]
// cancels all of them.
type Job struct {
	n      *NATS
	name   string
	key    string // "<owner>.<name>", the first tokens of the job's keys
	secret []byte // the job's; chunk keys and dedup ids derive from it
	ttl    time.Duration
	store  *broker.JobStore
	js     jetstream.JetStream // its chunks' asynchronous publishes
	log    *slog.Logger

	mu     sync.Mutex
	chunks map[uint64]*jobChunk                 // by ord, while some future of the chunk is not done
	bySeq  map[uint64]*jobChunk                 // by task stream sequence
	early  map[uint64][]heldResult              // results of chunks not reached yet
	held   map[uint64]map[string]wire.JobRecord // records of chunks not reached yet
	seqs   []*jobChunk                          // chunks whose record is to learn its stream sequence
	// unacked holds, by ord, the chunks settled before the stream's PubAck
	// said their sequence: their records still learn it, so that
	// DeleteJob finds them queued.
	unacked map[uint64]*jobChunk
	nextOrd uint64
	nextPos uint64
	closed  bool
	// tail is the valid channel of the last chunk opened (see
	// jobChunk.validated); diverged the first chunk found to hold another
	// input, math.MaxUint64 while none is.
	tail     chan struct{}
	diverged uint64
	// holdNoRecords makes a test's Job read every chunk's records when it
	// reaches it, as one that attached before they were written does.
	holdNoRecords bool

	forged    atomic.Int64
	consumers []jetstream.ConsumeContext
	wake      chan struct{} // tells run that seqs has work
	detach    chan struct{} // closed by Shutdown: run says in the record that no producer is attached
	detached  chan struct{} // closed by run once it has
	stop      chan struct{} // closed once the Job is shut down and every chunk settled
	stopOnce  sync.Once
	finished  chan struct{} // closed once run has ended
}

// heldResult is a result read for a chunk this Job has not reached yet.
type heldResult struct {
	author string
	res    *wire.JobResult
}

// Job attaches the executor to the job named name (a name like a pool's:
// letters, digits, '-' and '_'), making it if the pool has none of that
// name: the pool's jobs bucket and the owner's results stream if needed,
// the job's secret and its record. A job belongs to the executor's owner,
// the name given with [NATSName] (or broker.DefaultOwner), and another owner's
// job of the same name is another job. It reads the job's results and
// records from then on, and says in the job's record that it is attached
// until it is shut down.
//
// It fails with ErrInvalidOption for a bad name or option, ErrShutdown
// after the executor's Shutdown, an error if this executor already has the
// job attached, and the broker's error if JetStream does not answer.
func (n *NATS) Job(ctx context.Context, name string, opts ...JobOption) (*Job, error) {
	var cfg jobConfig
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := task.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%w: job name: %w", ErrInvalidOption, err)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrShutdown
	}
	n.jobsMu.Lock()
	defer n.jobsMu.Unlock()
	if n.jobs[name] != nil {
		return nil, fmt.Errorf("executor: job %q is already attached to this executor", name)
	}
	store, err := n.jobStore(ctx)
	if err != nil {
		return nil, err
	}
	results, err := broker.EnsureResults(ctx, n.js, n.subj, n.owner, n.pc)
	if err != nil {
		return nil, err
	}
	j := &Job{
		n: n, name: name, key: n.subj.Job(n.owner, name), store: store, log: n.log.With("job", name),
		chunks: make(map[uint64]*jobChunk), bySeq: make(map[uint64]*jobChunk), early: make(map[uint64][]heldResult),
		held: make(map[uint64]map[string]wire.JobRecord), unacked: make(map[uint64]*jobChunk),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), finished: make(chan struct{}),
		detach: make(chan struct{}), detached: make(chan struct{}),
		tail: make(chan struct{}), diverged: math.MaxUint64,
	}
	close(j.tail)
	info, found, err := j.readInfo(ctx)
	if err != nil {
		return nil, err
	}
	if found {
		j.ttl = time.Duration(info.Retention)
		if cfg.retention != 0 && cfg.retention != j.ttl {
			kept := "until it is deleted"
			if j.ttl > 0 {
				kept = "for " + j.ttl.String()
			}
			return nil, fmt.Errorf("%w: JobRetention(%v): job %q exists and keeps its records %s, as it was made", ErrInvalidOption, cfg.retention, name, kept)
		}
	} else {
		j.ttl = cfg.retention
		info = wire.JobInfo{Created: time.Now().UnixNano(), Retention: int64(j.ttl)}
	}
	if j.secret, err = n.jobSecret(ctx, results, name, j.ttl, found); err != nil {
		return nil, err
	}
	info.Producer, info.Beat = n.id, time.Now().UnixNano()
	if err := j.writeInfo(ctx, info); err != nil {
		return nil, err
	}
	j.js, err = jetstream.New(n.nc, jetstream.WithPublishAsyncAckHandler(j.onPublishAck),
		jetstream.WithPublishAsyncErrHandler(j.onPublishError), jetstream.WithPublishAsyncTimeout(publishTimeout))
	if err != nil {
		return nil, fmt.Errorf("executor: jetstream: %w", err)
	}
	if err := j.consume(ctx); err != nil {
		j.stopConsumers()
		return nil, err
	}
	n.jobs[name] = j
	go j.run()
	return j, nil
}

// jobStore returns the pool's job store, provisioning the jobs bucket on
// first use; n.jobsMu is held.
func (n *NATS) jobStore(ctx context.Context) (*broker.JobStore, error) {
	if !n.provisioned {
		if _, err := broker.EnsureJobs(ctx, n.js, n.subj, n.pc); err != nil {
			return nil, err
		}
		n.provisioned = true
	}
	if n.store == nil {
		n.store = broker.NewJobStore(n.nc, n.js, n.subj)
	}
	return n.store, nil
}

// attached returns the executor's attached jobs.
func (n *NATS) attached() []*Job {
	n.jobsMu.Lock()
	defer n.jobsMu.Unlock()
	jobs := make([]*Job, 0, len(n.jobs))
	for _, j := range n.jobs {
		jobs = append(jobs, j)
	}
	return jobs
}

// jobSecret returns the secret of the job name, keeping it for ttl more if
// ttl is set, or makes one if the job has none and is new. A job with a
// record but without a secret outlived its retention in part: it is
// refused, as its chunks could no longer be proven.
func (n *NATS) jobSecret(ctx context.Context, results jetstream.Stream, name string, ttl time.Duration, exists bool) ([]byte, error) {
	subject := n.subj.JobSecret(n.owner, name)
	var opts []jetstream.PublishOpt
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	for range 3 {
		m, err := results.GetLastMsgForSubject(ctx, subject)
		switch {
		case err == nil && len(m.Data) == sha256.Size:
			if ttl > 0 {
				if _, err := n.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: m.Data}, opts...); err != nil {
					return nil, fmt.Errorf("executor: keep job %q's secret: %w", name, err)
				}
			}
			return m.Data, nil
		case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, fmt.Errorf("executor: read job %q's secret: %w", name, err)
		case exists:
			return nil, fmt.Errorf("executor: job %q has outlived its retention in part; delete it (DeleteJob) or use another name", name)
		}
		secret := make([]byte, sha256.Size)
		crand.Read(secret)
		_, err = n.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: secret},
			append(opts, jetstream.WithExpectLastSequencePerSubject(0))...)
		if err == nil {
			return secret, nil
		}
		var api *jetstream.APIError
		if !errors.As(err, &api) || api.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, fmt.Errorf("executor: write job %q's secret: %w", name, err)
		}
		// Another producer made the job at the same moment: take its secret.
	}
	return nil, fmt.Errorf("executor: job %q's secret changes as it is read", name)
}

// readInfo reads the job's record.
func (j *Job) readInfo(ctx context.Context) (wire.JobInfo, bool, error) {
	var info wire.JobInfo
	e, ok, err := j.store.Get(ctx, wire.JobInfoKey(j.key))
	if err != nil || !ok {
		return info, false, err
	}
	if err := wire.Decode(e.Data, &info); err != nil {
		return info, false, fmt.Errorf("executor: job %q's record: %w", j.name, err)
	}
	return info, true, nil
}

// writeInfo writes the job's record, whatever it held: only its owner
// writes it.
func (j *Job) writeInfo(ctx context.Context, info wire.JobInfo) error {
	if err := j.writeOwn(ctx, wire.JobInfoKey(j.key), &info); err != nil {
		return fmt.Errorf("executor: write job %q's record: %w", j.name, err)
	}
	return nil
}

// writeOwn writes v to key, one of the records only the job's owner
// writes, whatever it held, kept for the job's retention.
func (j *Job) writeOwn(ctx context.Context, key string, v any) error {
	data, err := wire.Encode(v)
	if err != nil {
		return err
	}
	var opts []jetstream.PublishOpt
	if j.ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(j.ttl))
	}
	_, err = j.n.js.PublishMsg(ctx, &nats.Msg{Subject: j.n.subj.JobKey(key), Data: data}, opts...)
	return err
}

// consume starts reading the job's results, every one stored, and its
// records, the last of each key and then every new one.
func (j *Job) consume(ctx context.Context) error {
	n := j.n
	for _, c := range []struct {
		stream, filter string
		policy         jetstream.DeliverPolicy
		fn             jetstream.MessageHandler
	}{
		{n.subj.ResultsStream(n.owner), n.subj.JobResults(n.owner, j.name), jetstream.DeliverAllPolicy, j.onResultMsg},
		{n.subj.JobsStream(), n.subj.JobKey(j.key + ".>"), jetstream.DeliverLastPerSubjectPolicy, j.onRecord},
	} {
		cons, err := n.js.OrderedConsumer(ctx, c.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{c.filter}, DeliverPolicy: c.policy})
		if err != nil {
			return fmt.Errorf("executor: read job %q from %s: %w", j.name, c.stream, err)
		}
		cc, err := cons.Consume(c.fn)
		if err != nil {
			return fmt.Errorf("executor: read job %q from %s: %w", j.name, c.stream, err)
		}
		j.consumers = append(j.consumers, cc)
	}
	return nil
}

func (j *Job) stopConsumers() {
	for _, cc := range j.consumers {
		cc.Stop()
	}
	for _, cc := range j.consumers {
		<-cc.Closed()
	}
	j.consumers = nil
}

// run owns the Job's background work: its beats in the job's record,
// recording the stream sequences of its chunks, and watching the
// connection: cut off for longer than the grace period, the Job fails its
// futures with ErrDisconnected, as the executor does its own (the job runs
// on). It ends once the Job is shut down and every chunk settled, having
// said in the record that no producer is attached.
func (j *Job) run() {
	defer close(j.finished)
	beat := time.NewTicker(jobBeat)
	defer beat.Stop()
	detach := j.detach
	// A Job shut down adds no more tasks: its record says so at once, so
	// that JobResults ends after the job's last task without waiting for
	// its futures, or its beats to lapse.
	sayDetached := func() {
		ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
		defer cancel()
		if info, ok, err := j.readInfo(ctx); err == nil && ok && info.Producer == j.n.id {
			info.Producer = ""
			j.writeInfo(ctx, info)
		}
		close(j.detached)
		detach = nil
	}
	grace := j.n.pc.Grace
	watch := time.NewTicker(min(grace/4, time.Second))
	defer watch.Stop()
	var cutOff time.Time
	for {
		select {
		case <-j.stop:
			if detach != nil {
				sayDetached()
			}
			j.flushSeqs()
			j.stopConsumers()
			j.n.jobsMu.Lock()
			if j.n.jobs[j.name] == j {
				delete(j.n.jobs, j.name)
			}
			j.n.jobsMu.Unlock()
			return
		case <-j.wake:
			j.recordSeqs()
		case <-detach:
			sayDetached()
		case now := <-watch.C:
			switch {
			case j.n.nc.Status() == nats.CONNECTED:
				cutOff = time.Time{}
			case cutOff.IsZero():
				cutOff = now
			case now.Sub(cutOff) > grace:
				// Not on this goroutine: a done-callback may shut the Job
				// down, which waits for this goroutine.
				go j.failAll(fmt.Errorf("%w (%v); job %q runs on", ErrDisconnected, grace, j.name))
			}
		case <-beat.C:
			if detach == nil {
				continue // shut down: no beats
			}
			ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
			if info, ok, err := j.readInfo(ctx); err == nil && ok {
				info.Producer, info.Beat = j.n.id, time.Now().UnixNano()
				j.writeInfo(ctx, info)
			}
			if j.ttl > 0 {
				// The secret outlives no beat while a producer is attached.
				j.n.js.PublishMsg(ctx, &nats.Msg{Subject: j.n.subj.JobSecret(j.n.owner, j.name), Data: j.secret},
					jetstream.WithMsgTTL(j.ttl))
			}
			cancel()
		}
	}
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// Forged returns how many results and records of the job the Job ignored
// because their proof did not hold: written by a party that was not
// delivered the chunk.
func (j *Job) Forged() int64 { return j.forged.Load() }

// Status returns the job's status; see [NATS.JobStatus].
func (j *Job) Status(ctx context.Context) (JobStatus, error) { return j.n.JobStatus(ctx, j.name) }

// EndInput says in the job's records that the tasks this Job has published
// are the job's whole input, as a producer does once its Map has read every
// input: [JobStatus.InputEnded] reports it from then on, and `submit
// results` tells a job that ended from one whose producer stopped before
// it had published everything. Call it once the Maps and Submits that add
// tasks have returned. A producer that publishes more tasks after it, a
// longer input resumed, leaves the job without an end until it says so
// again. It fails with ErrShutdown after Shutdown, and with the broker's
// error.
func (j *Job) EndInput(ctx context.Context) error {
	j.mu.Lock()
	closed, tasks := j.closed, j.nextPos
	j.mu.Unlock()
	if closed {
		return ErrShutdown
	}
	if err := j.writeOwn(ctx, wire.JobEndKey(j.key), &wire.JobEnd{Tasks: tasks, At: time.Now().UnixNano()}); err != nil {
		return fmt.Errorf("executor: end job %q's input: %w", j.name, err)
	}
	return nil
}

// Shutdown implements [Executor.Shutdown] for the Job alone: later submits
// to it fail with ErrShutdown; cancelFutures cancels its futures that have
// not started, in JetStream, so that no worker runs them; wait blocks until
// its futures are done. It says in the job's record that no producer is
// attached before it returns (waiting for that write at most 5s, or until
// ctx ends, even when wait is false), and once its futures are done it stops
// reading the job. The job itself, and its tasks that are not cancelled,
// stay: they run on with no producer attached. It is safe to call more
// than once.
func (j *Job) Shutdown(ctx context.Context, wait, cancelFutures bool) error {
	j.mu.Lock()
	if !j.closed {
		close(j.detach)
	}
	j.closed = true
	var all []*jobChunk
	if cancelFutures {
		for _, jc := range j.chunks {
			all = append(all, jc)
		}
	}
	done := len(j.chunks) == 0
	j.mu.Unlock()
	var pend []*state
	for _, jc := range all {
		for i := range jc.b.calls {
			pend = append(pend, jc.b.calls[i].s)
		}
	}
	cancelAll(pend)
	if done {
		j.stopOnce.Do(func() { close(j.stop) })
	}
	// Bounded: Shutdown may be called on a goroutine that run or a
	// consumer of the Job waits for (a done-callback), or cut off.
	t := time.NewTimer(jobTimeout)
	defer t.Stop()
	select {
	case <-j.detached:
	case <-j.finished:
	case <-t.C:
	case <-ctx.Done():
	}
	if !wait {
		return nil
	}
	select {
	case <-j.finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chunkKey is chunk ord's Key: only the owner, who holds the job's secret,
// and the workers delivered the chunk know it.
func (j *Job) chunkKey(ord uint64) []byte {
	return j.derive("chunk", ord)
}

// msgID is chunk ord's dedup id: unguessable, so that nobody can take it
// before the chunk is published, and the same for every producer of the
// job, so that a chunk published again is stored once.
func (j *Job) msgID(ord uint64) string {
	return "job." + hex.EncodeToString(j.derive("msgid", ord)[:12]) + "." + strconv.FormatUint(ord, 10)
}

// ordOfMsgID returns the chunk of a dedup id msgID made.
func ordOfMsgID(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, "job.")
	if !ok {
		return 0, false
	}
	_, o, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	ord, err := strconv.ParseUint(o, 10, 64)
	return ord, err == nil
}

func (j *Job) derive(what string, ord uint64) []byte {
	m := hmac.New(sha256.New, j.secret)
	m.Write([]byte(what))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ord)
	m.Write(b[:])
	return m.Sum(nil)
}

// enqueue implements [Executor] for the Job: b becomes the job's next
// chunk, at the next place of its input. A chunk the job holds with the
// same input is resumed rather than published; one with another input fails
// with ErrJobInput.
func (j *Job) enqueue(ctx context.Context, b *batch) error {
	if err := task.ValidateKind(b.codec.Kind); err != nil {
		return err
	}
	items, err := encodeArgs(b)
	if err != nil {
		return err
	}
	j.n.mu.Lock()
	closed := j.n.closed
	j.n.mu.Unlock()
	j.mu.Lock()
	if j.closed || closed {
		j.mu.Unlock()
		return ErrShutdown
	}
	jc := &jobChunk{j: j, ord: j.nextOrd, pos: j.nextPos, b: b, recs: make(map[string]wire.JobRecord),
		prev: j.tail, valid: make(chan struct{}), readyCh: make(chan struct{})}
	j.tail = jc.valid
	jc.left.Store(int64(len(b.calls)))
	j.nextOrd++
	j.nextPos += uint64(len(b.calls))
	j.chunks[jc.ord] = jc
	jc.early = j.early[jc.ord]
	delete(j.early, jc.ord)
	if held := j.held[jc.ord]; held != nil {
		jc.recs = held
		delete(j.held, jc.ord)
	}
	j.mu.Unlock()
	if err := jc.open(ctx, items, b.submit); err != nil {
		j.mu.Lock()
		delete(j.chunks, jc.ord)
		done := j.closed && len(j.chunks) == 0
		j.mu.Unlock()
		if done {
			j.stopOnce.Do(func() { close(j.stop) })
		}
		return err
	}
	return nil
}

// onResultMsg takes a message of the job's results stream: a result counts
// if its proof holds for the author its subject names, and sets the
// futures it answers that are not done yet. The stream's order is the same
// for every reader, so every producer of the job takes the same first
// result of each item.
func (j *Job) onResultMsg(m jetstream.Msg) {
	n := j.n
	ord, author, ok := n.subj.ResultsOf(n.owner, j.name, m.Subject())
	if !ok {
		return
	}
	res := new(wire.JobResult)
	if err := wire.Decode(m.Data(), res); err != nil ||
		!hmac.Equal(res.Proof, wire.JobProof(j.chunkKey(ord), j.key, ord, author, res.Worker, res.Nonce)) {
		j.forged.Add(1)
		j.log.Warn("executor: job result without a proof of its chunk ignored", "chunk", ord, "author", author)
		return
	}
	j.mu.Lock()
	jc := j.chunks[ord]
	if jc == nil {
		if ord >= j.nextOrd {
			j.early[ord] = append(j.early[ord], heldResult{author, res})
		}
		j.mu.Unlock()
		return
	}
	j.mu.Unlock()
	jc.onResult(heldResult{author, res})
}

// onRecord takes a record of the job from the jobs bucket: a change of a
// chunk it holds.
func (j *Job) onRecord(m jetstream.Msg) {
	key, ok := j.n.subj.JobKeyOf(m.Subject())
	if !ok {
		return
	}
	rest, ok := strings.CutPrefix(key, j.key+".")
	if !ok {
		return
	}
	o, suffix, ok := strings.Cut(rest, ".")
	if !ok {
		return
	}
	ord, err := strconv.ParseUint(o, 10, 64)
	if err != nil {
		return
	}
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	rec := wire.JobRecord{Key: suffix, Seq: meta.Sequence.Stream, Time: meta.Timestamp, Data: m.Data()}
	op := m.Headers().Get("KV-Operation")
	deleted := op == "DEL" || op == "PURGE"
	j.mu.Lock()
	jc := j.chunks[ord]
	if jc == nil {
		// A chunk this Job has not reached yet, as it resumes the job:
		// kept, so that reaching it costs no round trip.
		if ord >= j.nextOrd && !j.holdNoRecords {
			held := j.held[ord]
			if held == nil {
				held = make(map[string]wire.JobRecord)
				j.held[ord] = held
			}
			if deleted {
				delete(held, suffix)
			} else {
				held[suffix] = rec
			}
		}
		j.mu.Unlock()
		return
	}
	j.mu.Unlock()
	if kind, author, ok := strings.Cut(suffix, "."); ok && (kind == "s" || kind == "l") && !deleted {
		var c wire.JobClaim
		if wire.Decode(rec.Data, &c) != nil ||
			!hmac.Equal(c.Proof, wire.JobProof(j.chunkKey(ord), j.key, ord, author, c.Worker, c.Nonce)) {
			// Ignored by every reader that holds the chunk's key.
			j.forged.Add(1)
			j.log.Warn("executor: job claim without a proof of its chunk ignored", "chunk", ord, "author", author)
			return
		}
	}
	jc.addRecords([]wire.JobRecord{rec}, deleted)
}

// recordSeqs adds to the records of the chunks the stream took their
// stream sequence, so that a producer that resumes the job knows them to be
// queued. The writes are asynchronous: one lost leaves the chunk to be
// published again, under the same dedup id, by a producer that resumes.
func (j *Job) recordSeqs() {
	j.mu.Lock()
	seqs := j.seqs
	j.seqs = nil
	j.mu.Unlock()
	for _, jc := range seqs {
		jc.mu.Lock()
		rec, last := jc.rec, jc.recSeq
		rec.Seq = jc.seq
		jc.mu.Unlock()
		data, err := wire.Encode(&rec)
		if err != nil {
			continue
		}
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(last), jetstream.WithStallWait(publishStall)}
		if j.ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(j.ttl))
		}
		if _, err := j.js.PublishMsgAsync(&nats.Msg{Subject: j.n.subj.JobKey(wire.JobChunkKey(j.key, jc.ord)), Data: data}, opts...); err != nil {
			j.log.Debug("executor: record a job chunk's stream sequence", "chunk", jc.ord, "err", err)
		}
	}
}

// flushSeqs waits for the PubAcks of the chunks published and records
// their stream sequences, waiting for those writes too, each for at most
// jobTimeout: a Job shut down right after it published (or cancelled) its
// chunks leaves records that say where they are queued.
func (j *Job) flushSeqs() {
	wait := func() {
		t := time.NewTimer(jobTimeout)
		defer t.Stop()
		select {
		case <-j.js.PublishAsyncComplete():
		case <-t.C:
		}
	}
	wait()
	j.recordSeqs()
	wait()
}

// onPublishAck records the stream sequence of a chunk the stream took.
func (j *Job) onPublishAck(_ jetstream.JetStream, m *nats.Msg, pa *jetstream.PubAck) {
	ord, ok := ordOfMsgID(m.Header.Get(jetstream.MsgIDHeader))
	if !ok || pa == nil || pa.Sequence == 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	jc, live := j.chunks[ord], true
	if jc == nil {
		jc, live = j.unacked[ord], false
		delete(j.unacked, ord)
	}
	if jc == nil {
		return
	}
	jc.mu.Lock()
	if jc.seq == 0 {
		jc.seq = pa.Sequence
		if live {
			j.bySeq[pa.Sequence] = jc
		}
		j.seqs = append(j.seqs, jc)
	}
	jc.mu.Unlock()
	jc.onStored(nil)
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// onPublishError publishes a chunk again when the error leaves open whether
// the stream took it, and fails the chunk's futures when the stream refused
// it or the grace period has passed since its first such error. Errors of
// the records' writes are logged: a lost one costs a publish of the chunk
// again by a producer that resumes.
func (j *Job) onPublishError(_ jetstream.JetStream, m *nats.Msg, err error) {
	ord, ok := ordOfMsgID(m.Header.Get(jetstream.MsgIDHeader))
	if !ok {
		j.log.Debug("executor: write a job's record", "subject", m.Subject, "err", err)
		return
	}
	j.mu.Lock()
	jc := j.chunks[ord]
	if jc == nil {
		delete(j.unacked, ord) // settled: its PubAck is not coming
	}
	j.mu.Unlock()
	if jc == nil {
		return
	}
	if mayRetryPublish(err) && jc.republishLater(m) {
		return
	}
	err = fmt.Errorf("executor: publish %s chunk of job %q: %w", jc.b.codec.Kind, j.name, err)
	if !jc.onStored(err) {
		jc.fail(err)
	}
}

// failAll fails every future the Job holds that is not done with err.
func (j *Job) failAll(err error) {
	j.mu.Lock()
	all := make([]*jobChunk, 0, len(j.chunks))
	for _, jc := range j.chunks {
		all = append(all, jc)
	}
	j.mu.Unlock()
	for _, jc := range all {
		jc.fail(err)
	}
}

// onMaxDeliveries fails the futures of the chunk at stream sequence seq, if
// the Job holds it, as JetStream gave up on it. A worker given a chunk's
// last delivery stores its tasks' failure in the results stream, where
// every reader sees it (see the job flow in broker/wire); this is for the
// chunk whose last attempt died or could not store, which then stays owed
// for a producer that resumes the job.
func (j *Job) onMaxDeliveries(seq, deliveries uint64) {
	j.mu.Lock()
	jc := j.bySeq[seq]
	j.mu.Unlock()
	if jc != nil {
		jc.fail(&task.Error{Kind: jc.b.codec.Kind, Type: task.TypeMaxDeliveries,
			Message: fmt.Sprintf("chunk delivered %d times without completing", deliveries)})
	}
}

// settle is told when one future of jc is done; once every future is, the
// Job forgets the chunk.
func (j *Job) settle(jc *jobChunk) {
	if jc.left.Add(-1) > 0 {
		return
	}
	j.mu.Lock()
	if j.chunks[jc.ord] == jc {
		delete(j.chunks, jc.ord)
	}
	jc.mu.Lock()
	if jc.seq != 0 {
		delete(j.bySeq, jc.seq)
	} else if jc.publishing {
		j.unacked[jc.ord] = jc // its PubAck may yet come
	}
	jc.stopTimers()
	jc.mu.Unlock()
	done := j.closed && len(j.chunks) == 0
	j.mu.Unlock()
	if done {
		j.stopOnce.Do(func() { close(j.stop) })
	}
}
