package worker

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/jetpool/jetpool/broker"
)

// DiscoverWait is how long [ServedKinds] collects workers' answers: long
// enough for every worker on a healthy NATS to answer.
const DiscoverWait = 500 * time.Millisecond

// Online is one worker of a pool as service discovery finds it: its
// service registration's metadata and its live [Status].
type Online struct {
	ID      string   `json:"id"`      // its worker id, or its service instance id if it names none
	Host    string   `json:"host"`    // host name
	PID     string   `json:"pid"`     // process id
	Version string   `json:"version"` // jetpool version
	Kinds   []string `json:"kinds"`   // the kinds it serves
	Status
}

// Discover asks every jetpool worker on nc for its service stats ($SRV.STATS,
// as `nats micro stats` does) and returns those of pool's workers ("" is
// broker.DefaultPool) that answer within wait, sorted by host, then id.
// There is no telling when every worker has answered, so it always blocks
// for wait, or until ctx ends, in which case it returns ctx's error. A
// worker that answers twice is listed once; answers that do not decode are
// skipped.
func Discover(ctx context.Context, nc *nats.Conn, pool string, wait time.Duration) ([]Online, error) {
	var mu sync.Mutex
	byID := map[string]Online{}
	err := gatherStats(ctx, nc, pool, wait, func(s *micro.Stats) {
		w := online(s)
		mu.Lock()
		byID[w.ID] = w
		mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	workers := make([]Online, 0, len(byID))
	for _, w := range byID {
		workers = append(workers, w)
	}
	sort.Slice(workers, func(i, j int) bool {
		if workers[i].Host != workers[j].Host {
			return workers[i].Host < workers[j].Host
		}
		return workers[i].ID < workers[j].ID
	})
	return workers, nil
}

// gatherStats asks every jetpool worker on nc for its service stats
// ($SRV.STATS) and calls keep, from the connection's goroutine, with each
// answer of one of pool's workers ("" is broker.DefaultPool) that arrives
// within wait; answers that do not decode are skipped. It blocks for wait,
// or until ctx ends, in which case it returns ctx's error.
func gatherStats(ctx context.Context, nc *nats.Conn, pool string, wait time.Duration, keep func(*micro.Stats)) error {
	subject, err := micro.ControlSubject(micro.StatsVerb, ServiceName, "")
	if err != nil {
		return err
	}
	if pool == "" {
		pool = broker.DefaultPool
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		var s micro.Stats
		if json.Unmarshal(m.Data, &s) == nil && s.Name == ServiceName && s.Metadata[MetaPool] == pool {
			keep(&s)
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		return err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// online is the worker a $SRV.STATS answer describes.
func online(s *micro.Stats) Online {
	w := Online{ID: s.Metadata[MetaWorkerID], Host: s.Metadata[MetaHost], PID: s.Metadata[MetaPID], Version: s.Version}
	if w.ID == "" {
		w.ID = s.ID
	}
	if k := s.Metadata[MetaKinds]; k != "" {
		w.Kinds = strings.Split(k, ",")
	}
	w.Concurrency, _ = strconv.Atoi(s.Metadata[MetaConcurrency])
	for _, ep := range s.Endpoints {
		if ep != nil && ep.Name == StatusEndpoint && len(ep.Data) > 0 {
			json.Unmarshal(ep.Data, &w.Status)
		}
	}
	return w
}

// ServedKinds returns, for each kind some worker of pool online serves, how
// many such workers answered service discovery: a kind missing from the map
// has no worker, and its tasks wait in the stream until one comes. It blocks
// for [DiscoverWait] (see [Discover]), or until ctx ends, in which case it
// returns ctx's error.
func ServedKinds(ctx context.Context, nc *nats.Conn, pool string) (map[string]int, error) {
	workers, err := Discover(ctx, nc, pool, DiscoverWait)
	if err != nil {
		return nil, err
	}
	served := map[string]int{}
	for _, w := range workers {
		for _, k := range w.Kinds {
			served[k]++
		}
	}
	return served, nil
}
