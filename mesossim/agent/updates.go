package agent

import (
	"sort"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// streamKey names one task's status update stream.
type streamKey struct {
	framework string
	task      string
}

// pendingUpdate is a status update waiting for the framework's acknowledgement.
type pendingUpdate struct {
	status mesos.TaskStatus
	// fromExecutor: the executor sent it (it gets an ACKNOWLEDGED event); otherwise the agent made it.
	fromExecutor bool
}

// updateStream is the agent-side queue of one task's updates. As in Mesos' status update manager only
// the head is outstanding: the next update is forwarded once the head is acknowledged.
type updateStream struct {
	pending []pendingUpdate
	seen    map[string]struct{} // every UUID received on this stream, for duplicate detection
	// backoff is the current retry interval of the head.
	backoff time.Duration
	// generation changes whenever the head changes, so stale retry timers do nothing.
	generation uint64
}

// updateManager holds the streams. It is a pure data structure: timers, forwarding and locking belong
// to the agent.
type updateManager struct {
	streams map[streamKey]*updateStream
}

func newUpdateManager() *updateManager {
	return &updateManager{streams: map[streamKey]*updateStream{}}
}

// add queues u. It reports whether u became the head (the caller forwards it) and whether it was a
// duplicate of an update already received (which is ignored, as Mesos ignores duplicate UUIDs).
func (m *updateManager) add(k streamKey, u pendingUpdate) (head, duplicate bool) {
	s := m.streams[k]
	if s == nil {
		s = &updateStream{seen: map[string]struct{}{}}
		m.streams[k] = s
	}
	id := string(u.status.UUID)
	if _, ok := s.seen[id]; ok {
		return false, true
	}
	s.seen[id] = struct{}{}
	s.pending = append(s.pending, u)
	if len(s.pending) == 1 {
		s.generation++
		return true, false
	}
	return false, false
}

// ack removes the head if uuid matches it. next is the new head, if any. Acknowledgements for anything
// but the head are ignored (duplicates or out of order), like Mesos does.
func (m *updateManager) ack(k streamKey, uuid []byte) (acked pendingUpdate, next *pendingUpdate, ok bool) {
	s := m.streams[k]
	if s == nil || len(s.pending) == 0 || string(s.pending[0].status.UUID) != string(uuid) {
		return pendingUpdate{}, nil, false
	}
	acked = s.pending[0]
	s.pending = s.pending[1:]
	s.generation++
	s.backoff = 0
	if len(s.pending) == 0 {
		if isTerminal(acked.status.GetState()) {
			delete(m.streams, k) // the stream is complete
		}
		return acked, nil, true
	}
	n := s.pending[0]
	return acked, &n, true
}

// head returns the outstanding update of a stream and its generation.
func (m *updateManager) head(k streamKey) (pendingUpdate, uint64, bool) {
	s := m.streams[k]
	if s == nil || len(s.pending) == 0 {
		return pendingUpdate{}, 0, false
	}
	return s.pending[0], s.generation, true
}

// nextBackoff returns the interval to wait before resending the head and doubles it for the next time,
// within [min, max].
func (m *updateManager) nextBackoff(k streamKey, min, max time.Duration) time.Duration {
	s := m.streams[k]
	if s == nil {
		return min
	}
	if s.backoff < min {
		s.backoff = min
	}
	d := s.backoff
	s.backoff *= 2
	if s.backoff > max {
		s.backoff = max
	}
	return d
}

// resetBackoff makes the next retry interval the minimum again (used when a partition heals).
func (m *updateManager) resetBackoff(k streamKey) {
	if s := m.streams[k]; s != nil {
		s.backoff = 0
		s.generation++
	}
}

// pendingFor returns the unacknowledged updates of a task in order.
func (m *updateManager) pendingFor(k streamKey) []pendingUpdate {
	if s := m.streams[k]; s != nil {
		return append([]pendingUpdate(nil), s.pending...)
	}
	return nil
}

// keys returns every stream with an outstanding head, sorted for determinism.
func (m *updateManager) keys() []streamKey {
	keys := make([]streamKey, 0, len(m.streams))
	for k, s := range m.streams {
		if len(s.pending) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].framework != keys[j].framework {
			return keys[i].framework < keys[j].framework
		}
		return keys[i].task < keys[j].task
	})
	return keys
}

// dropFramework forgets every stream of a framework (framework shut down).
func (m *updateManager) dropFramework(framework string) {
	for k := range m.streams {
		if k.framework == framework {
			delete(m.streams, k)
		}
	}
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR, mesos.TASK_LOST,
		mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}
