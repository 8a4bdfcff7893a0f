package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker/wire"
)

// ErrConflict is matched by errors of a compare-and-set write to the jobs
// bucket that lost: the key was written meanwhile, or, for a create, exists.
var ErrConflict = errors.New("broker: the record changed meanwhile")

// ErrNoJobs is matched by errors for a pool whose jobs bucket, or an owner
// whose results stream, does not exist.
var ErrNoJobs = errors.New("broker: no jobs bucket or results stream")

// JobStore reads and writes named jobs' records in a pool's jobs bucket
// (see broker/wire's job flow). It reads with JetStream's direct get of the
// last message of each key that matches a filter, one request for every
// record of a chunk, and writes with plain JetStream publishes that carry
// a compare-and-set and a per-message TTL, so that it needs no permission
// but on the bucket's own subjects and its direct-get subject. It is safe
// for concurrent use.
type JobStore struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	subj Subjects
}

// NewJobStore returns the job store of the pool s over nc and js.
func NewJobStore(nc *nats.Conn, js jetstream.JetStream, s Subjects) *JobStore {
	return &JobStore{nc: nc, js: js, subj: s}
}

// Subjects returns the pool's names.
func (st *JobStore) Subjects() Subjects { return st.subj }

// JobEntry is one key's last record.
type JobEntry struct {
	Key  string
	Seq  uint64
	Time time.Time
	Data []byte
}

// maxMultiLast is how many keys one direct get returns at most: the
// server refuses more.
const maxMultiLast = 1024

// readFresh bounds how often a read that a replica answered from behind
// the write it must see is tried again.
const readFresh = 20

// Read returns the last record of every key matching filter (a key with
// wildcards) that has not been deleted, in one request. With fresh set,
// the answer reflects the stream at least up to that sequence: a replica
// answering from behind it is asked again. A filter matching more than
// 1024 keys fails.
func (st *JobStore) Read(ctx context.Context, filter string, fresh uint64) ([]JobEntry, error) {
	for range readFresh {
		entries, upTo, err := st.read(ctx, filter, false)
		if err != nil || fresh == 0 || upTo >= fresh {
			return entries, err
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("broker: read %s: no replica has sequence %d yet", filter, fresh)
}

// read makes one request; with markers it returns deletion markers too, as
// entries without data.
func (st *JobStore) read(ctx context.Context, filter string, markers bool) ([]JobEntry, uint64, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		Batch     int      `json:"batch"`
	}{[]string{st.subj.JobKey(filter)}, maxMultiLast})
	if err != nil {
		return nil, 0, err
	}
	// The answer is at most a batch of records and its end: a channel of
	// that size holds all of it. A subscription of the connection's own
	// kind would make a channel of 65,536 messages for each read, which
	// costs more than the read itself.
	inbox, ch := st.nc.NewInbox(), make(chan *nats.Msg, maxMultiLast+2)
	sub, err := st.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, 0, fmt.Errorf("broker: read %s: %w", filter, err)
	}
	defer sub.Unsubscribe()
	if err := st.nc.PublishRequest(jetstream.DefaultAPIPrefix+"DIRECT.GET."+st.subj.JobsStream(), inbox, req); err != nil {
		return nil, 0, fmt.Errorf("broker: read %s: %w", filter, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var entries []JobEntry
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("broker: read %s: %w", filter, ctx.Err())
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "404":
			// No key matches; the stream's own state is not told.
			return nil, 0, nil
		case "204":
			if dropped, _ := sub.Dropped(); dropped > 0 {
				// More came than a server sends: some of the answer is lost.
				return nil, 0, fmt.Errorf("broker: read %s: %d messages of the answer dropped", filter, dropped)
			}
			upTo, _ := strconv.ParseUint(m.Header.Get("Nats-UpTo-Sequence"), 10, 64)
			return entries, upTo, nil
		case "503":
			return nil, 0, fmt.Errorf("%w: read %s: %s does not answer", ErrNoJobs, filter, st.subj.JobsStream())
		default:
			return nil, 0, fmt.Errorf("broker: read %s: status %s %s", filter, status, m.Header.Get("Description"))
		}
		marker := m.Header.Get("KV-Operation") == "DEL" || m.Header.Get("KV-Operation") == "PURGE"
		if marker && !markers {
			continue
		}
		key, ok := st.subj.JobKeyOf(m.Header.Get(jetstream.SubjectHeader))
		if !ok {
			continue
		}
		seq, _ := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		e := JobEntry{Key: key, Seq: seq, Time: ts, Data: m.Data}
		if marker {
			e.Data = nil
		}
		entries = append(entries, e)
	}
}

// ChunkRecords returns the records of chunk ord of job, at least as new as
// fresh, with their keys relative to the chunk (see wire.JobRecord).
//
// Records without the chunk's own are confirmed with the stream's leader:
// any replica answers a direct get, and one that has just come back to a
// cluster answers while it still catches up, so that the chunk's record may
// be missing from its answer alone. If the leader holds the record, the
// records are read again at least as new as it; if the leader does not
// answer, the read fails rather than say the chunk has no record. So a
// chunk without a record is one that was deleted or never written, and
// the confirmation costs a round trip to the leader only then.
func (st *JobStore) ChunkRecords(ctx context.Context, job string, ord uint64, fresh uint64) ([]wire.JobRecord, error) {
	recs, err := st.chunkRecords(ctx, job, ord, fresh)
	if err != nil || slices.ContainsFunc(recs, func(r wire.JobRecord) bool { return r.Key == "c" }) {
		return recs, err
	}
	seq, err := st.leaderLast(ctx, wire.JobChunkKey(job, ord))
	if err != nil || seq == 0 {
		return recs, err
	}
	return st.chunkRecords(ctx, job, ord, max(fresh, seq))
}

// leaderLast returns the sequence of key's last record as the stream's
// leader holds it, and 0 if key has none or its last message is a
// deletion.
func (st *JobStore) leaderLast(ctx context.Context, key string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{st.subj.JobKey(key)})
	if err != nil {
		return 0, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	m, err := st.nc.RequestWithContext(ctx, jetstream.DefaultAPIPrefix+"STREAM.MSG.GET."+st.subj.JobsStream(), req)
	if err != nil {
		return 0, fmt.Errorf("broker: read %s from the leader: %w", key, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, fmt.Errorf("broker: read %s from the leader: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("broker: read %s from the leader: %s", key, resp.Error.Description)
	case resp.Message == nil:
		return 0, fmt.Errorf("broker: read %s from the leader: an answer without a message", key)
	}
	if len(resp.Message.Hdrs) > 0 {
		if h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs); err == nil {
			if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				return 0, nil
			}
		}
	}
	return resp.Message.Seq, nil
}

func (st *JobStore) chunkRecords(ctx context.Context, job string, ord uint64, fresh uint64) ([]wire.JobRecord, error) {
	filter := wire.ChunkRecordsKey(job, ord)
	entries, err := st.Read(ctx, filter, fresh)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(filter, ">")
	recs := make([]wire.JobRecord, 0, len(entries))
	for _, e := range entries {
		if k, ok := strings.CutPrefix(e.Key, prefix); ok {
			recs = append(recs, wire.JobRecord{Key: k, Seq: e.Seq, Time: e.Time, Data: e.Data})
		}
	}
	return recs, nil
}

// Get returns key's last record, or false if it has none.
func (st *JobStore) Get(ctx context.Context, key string) (JobEntry, bool, error) {
	entries, err := st.Read(ctx, key, 0)
	for _, e := range entries {
		if e.Key == key {
			return e, true, err
		}
	}
	return JobEntry{}, false, err
}

// Create writes key if it has no record, and returns the record's
// sequence; a key that has one fails with an error matching ErrConflict.
// A key whose last record is a deletion counts as having none. ttl, if
// positive, is how long the server keeps the record.
func (st *JobStore) Create(ctx context.Context, key string, data []byte, ttl time.Duration) (uint64, error) {
	seq, err := st.Update(ctx, key, data, 0, ttl)
	if !errors.Is(err, ErrConflict) {
		return seq, err
	}
	// The last record may be a deletion marker (a job deleted and made
	// again under its name), which a create may replace.
	last, err2 := st.lastSeq(ctx, key)
	if err2 != nil || last == 0 {
		return 0, err
	}
	return st.Update(ctx, key, data, last, ttl)
}

// lastSeq returns the sequence of key's last message if that is a deletion
// marker, and 0 if it is a record or there is none.
func (st *JobStore) lastSeq(ctx context.Context, key string) (uint64, error) {
	entries, _, err := st.read(ctx, key, true)
	for _, e := range entries {
		if e.Key == key && e.Data == nil {
			return e.Seq, err
		}
	}
	return 0, err
}

// Update writes key if its last record is the one at sequence last (0: it
// has none), and returns the new record's sequence. Another last record
// fails with an error matching ErrConflict.
func (st *JobStore) Update(ctx context.Context, key string, data []byte, last uint64, ttl time.Duration) (uint64, error) {
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(last)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	pa, err := st.js.PublishMsg(ctx, &nats.Msg{Subject: st.subj.JobKey(key), Data: data}, opts...)
	if err != nil {
		var api *jetstream.APIError
		if errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return 0, fmt.Errorf("%w: %s", ErrConflict, key)
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			return 0, fmt.Errorf("%w: write %s: %v", ErrNoJobs, key, err)
		}
		return 0, fmt.Errorf("broker: write %s: %w", key, err)
	}
	return pa.Sequence, nil
}

// PurgeMsg is the message that removes key and every record it had. It
// leaves a marker the server removes after a second.
func (st *JobStore) PurgeMsg(key string) *nats.Msg {
	m := &nats.Msg{Subject: st.subj.JobKey(key), Header: nats.Header{}}
	m.Header.Set("KV-Operation", "PURGE")
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(jetstream.MsgTTLHeader, "1s")
	return m
}
