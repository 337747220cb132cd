package framework

import (
	"slices"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	k8stesting "k8s.io/client-go/testing"
)

// holdAccepts makes the fake master hold the ACCEPTs of the given offers until release is closed,
// and reports on entered each ACCEPT it holds.
func holdAccepts(f *fixture, offers ...string) (entered chan string, release chan struct{}) {
	entered, release = make(chan string, 8), make(chan struct{})
	f.caller.onCall = func(c *scheduler.Call) {
		if c.GetType() != scheduler.Call_ACCEPT {
			return
		}
		for _, id := range c.GetAccept().OfferIDs {
			if slices.Contains(offers, id.Value) {
				entered <- id.Value
				<-release
			}
		}
	}
	return entered, release
}

func bindings(f *fixture) map[string]int {
	out := map[string]int{}
	for _, a := range f.kube.Actions() {
		if c, ok := a.(k8stesting.CreateAction); ok && a.GetSubresource() == "binding" {
			out[c.GetObject().(*corev1.Binding).Name]++
		}
	}
	return out
}

// launchOfP1Held runs a cycle that launches pod p1 on agent a1 (offer o1) and returns once the fake
// master holds that ACCEPT; closing release lets it through.
func launchOfP1Held(t *testing.T) (*fixture, chan struct{}) {
	t.Helper()
	f := newFixture(t, State{}, pod("p1", "uid-p1"))
	f.subscribe("fw-1")
	f.drain()
	entered, release := holdAccepts(f, "o1")
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycle(f.ctx)
	if got := <-entered; got != "o1" {
		t.Fatalf("held ACCEPT of %s", got)
	}
	return f, release
}

// waitFor polls cond until it holds; the deadline only keeps a broken build from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A cycle does not wait for its launches: while one waits for its ACCEPT, the next cycle places the
// pod that came meanwhile on another agent's offer, never the pod in flight again, and counts that
// pod on its Node. Each pod is bound and launched once.
func TestCycleDoesNotWaitForItsLaunches(t *testing.T) {
	f, release := launchOfP1Held(t)
	f.s.mu.Lock()
	assumed := f.s.placement.assumed["uid-p1"]
	f.s.mu.Unlock()
	if assumed == nil || assumed.Spec.NodeName != "h1" {
		t.Errorf("pod in flight assumed as %v, want it on h1 (later cycles count it there)", assumed)
	}

	f.addPod(pod("p2", "uid-p2"))
	f.drain()
	f.offers(offer("o2", "a2", "h2", 4, 4096))
	f.s.cycle(f.ctx)
	waitFor(t, "p2 launched on o2 while p1's ACCEPT is held", func() bool {
		for _, c := range f.caller.ofType(scheduler.Call_ACCEPT) {
			if c.GetAccept().OfferIDs[0].Value == "o2" {
				return true
			}
		}
		return false
	})
	f.s.cycle(f.ctx) // nothing to place: p1 is in flight, p2 launched
	close(release)
	f.s.launches.Wait()
	f.s.cycleAndLaunch(f.ctx)

	if got := launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 2 || got[0] == got[1] {
		t.Errorf("launched tasks %v, want p1's and p2's once each", got)
	}
	if b := bindings(f); b["p1"] != 1 || b["p2"] != 1 || len(b) != 2 {
		t.Errorf("Bindings %v, want p1 and p2 once each", b)
	}
	if c := f.s.book.Counts(); c.Accepted != 2 || !c.Balanced() {
		t.Errorf("book counts %+v, want 2 accepted", c)
	}
}

// A launch on an agent whose previous launch has not ended waits for it: the executor's first launch
// there (its ExecutorInfo, stored before the ACCEPT) comes first.
func TestLaunchesOnOneAgentRunInTurn(t *testing.T) {
	f, release := launchOfP1Held(t)

	f.addPod(pod("p2", "uid-p2"))
	f.drain()
	f.offers(offer("o3", "a1", "h1", 2, 2048))
	f.s.cycle(f.ctx)
	time.Sleep(50 * time.Millisecond) // room for a wrong launch to overtake; a right one cannot
	if b := bindings(f); b["p2"] != 0 {
		t.Errorf("p2 bound to a1 while the launch before it there was under way")
	}
	close(release)
	f.s.launches.Wait()
	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(accepts) != 2 || accepts[0].GetAccept().OfferIDs[0].Value != "o1" || accepts[1].GetAccept().OfferIDs[0].Value != "o3" {
		t.Fatalf("ACCEPTs %v, want o1 then o3", accepts)
	}
}
