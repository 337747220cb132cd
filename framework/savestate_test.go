package framework

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// gatedStore holds each Save until the test releases it and counts the Saves.
type gatedStore struct {
	StateStore
	started chan struct{}
	release chan struct{}
	mu      sync.Mutex
	saves   int
}

func (g *gatedStore) Save(ctx context.Context, st State) error {
	g.started <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.saves++
	g.mu.Unlock()
	return g.StateStore.Save(ctx, st)
}

// Executors recorded while a state write is under way share the next write instead of one write
// each (first launches on many agents at once), and every one of them is in the stored state when
// its saveState returns.
func TestSaveStateGroupsChangesMadeDuringAWrite(t *testing.T) {
	f := newFixture(t, State{Executors: map[string]mesos.ExecutorInfo{}})
	g := &gatedStore{StateStore: f.store, started: make(chan struct{}, 100), release: make(chan struct{})}
	f.s.store = g
	info := NewExecutorInfo(f.s.executor)
	record := func(agent string) func(*State) bool {
		return func(st *State) bool { st.Executors[agent] = info; return true }
	}

	first := make(chan error, 1)
	go func() { first <- f.s.saveState(f.ctx, record("agent-S0")) }()
	<-g.started // the first write is under way

	const queued = 20
	var wg sync.WaitGroup
	errs := make(chan error, queued)
	for i := 1; i <= queued; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.s.saveState(f.ctx, record(fmt.Sprintf("agent-S%d", i)))
		}()
	}
	// Wait until every change is applied (each then waits for a write), then let writes go.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.s.mu.Lock()
		n := len(f.s.state.Executors)
		f.s.mu.Unlock()
		if n == queued+1 {
			break
		}
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if g.saves != 2 {
		t.Errorf("%d state writes for %d changes, want 2 (the one under way, then one for the other %d)", g.saves, queued+1, queued)
	}
	stored, err := f.store.Load(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Executors) != queued+1 {
		t.Errorf("stored state has %d executors, want %d", len(stored.Executors), queued+1)
	}
}

// A change that did not change anything writes nothing; a write that failed leaves the change to the
// next saveState, which writes it.
func TestSaveStateRetriesAChangeWhoseWriteFailed(t *testing.T) {
	f := newFixture(t, State{Executors: map[string]mesos.ExecutorInfo{}})
	fail := &failingStore{StateStore: f.store, fail: true}
	f.s.store = fail
	info := NewExecutorInfo(f.s.executor)
	if err := f.s.saveState(f.ctx, func(st *State) bool { st.Executors["agent-S0"] = info; return true }); err == nil {
		t.Fatal("saveState with a failing store succeeded")
	}
	fail.fail = false
	if err := f.s.saveState(f.ctx, func(*State) bool { return false }); err != nil || fail.saves != 0 {
		t.Fatalf("unchanged state: err %v, %d writes; want none", err, fail.saves)
	}
	if err := f.s.saveState(f.ctx, func(st *State) bool { st.Executors["agent-S1"] = info; return true }); err != nil {
		t.Fatal(err)
	}
	stored, err := f.store.Load(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stored.Executors["agent-S0"]; !ok || len(stored.Executors) != 2 {
		t.Errorf("stored executors %v, want agent-S0 (whose write failed) and agent-S1", stored.Executors)
	}
}

type failingStore struct {
	StateStore
	fail  bool
	saves int
}

func (s *failingStore) Save(ctx context.Context, st State) error {
	if s.fail {
		return fmt.Errorf("API server unreachable")
	}
	s.saves++
	return s.StateStore.Save(ctx, st)
}
