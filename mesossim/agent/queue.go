package agent

import "sync"

// queue is an unbounded FIFO used to hand values from code that must not block (it often runs under
// the agent's lock) to a single consumer goroutine.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	closed bool
	notify chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{notify: make(chan struct{}, 1)} }

// push appends v; it reports false when the queue is closed.
func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.wake()
	return true
}

func (q *queue[T]) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// close makes later pushes fail; items already queued can still be drained.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// drain returns everything queued so far and whether the queue has been closed.
func (q *queue[T]) drain() ([]T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items, q.closed
}

// ready is signalled after a push or close.
func (q *queue[T]) ready() <-chan struct{} { return q.notify }
