package mesossim

import "sync"

// agentLink carries the master's messages to one agent (RunTaskMessage, KillTaskMessage, status
// update acknowledgements, ...) asynchronously and in order, as libprocess' link to the agent does:
// the master answers an ACCEPT without waiting for the agent to take the launch, and a busy agent
// delays only what is sent to it. One goroutine drains it while it has messages.
type agentLink struct {
	mu       sync.Mutex
	queue    []func()
	draining bool
}

func newAgentLink() *agentLink { return &agentLink{} }

// send queues f to run after everything sent before it.
func (l *agentLink) send(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, f)
	if !l.draining {
		l.draining = true
		go l.drain()
	}
}

func (l *agentLink) drain() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.draining = false
			l.mu.Unlock()
			return
		}
		f := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.mu.Unlock()
		f()
	}
}

// tell sends f to ag's agent over its link, after what was sent to it before. The caller holds m.mu,
// which orders what is sent; f runs without it, so the agent may call back into the master.
func (m *Master) tell(ag *agentEntry, f func(Agent)) {
	h := ag.handle
	ag.link.send(func() { f(h) })
}

// tellAndWait is tell for what the master's caller expects done when it returns (faults injected into
// an agent): the wait comes after the lock is released.
func (m *Master) tellAndWait(ag *agentEntry, f func(Agent)) {
	done := make(chan struct{})
	m.tell(ag, func(h Agent) {
		defer close(done)
		f(h)
	})
	m.later(func() { <-done })
}
