package framework

import (
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/offerbridge"
)

func preferHost(host string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 100,
				Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{host}}}}}},
		}}
	}
}

func failedScheduling(f *fixture) []string {
	var out []string
	for len(f.recorder.Events) > 0 {
		if e := <-f.recorder.Events; strings.Contains(e, EventFailedScheduling) {
			out = append(out, e)
		}
	}
	return out
}

// The e2e failure of the reverted kept offers (7470816), in the framework: two replicas preferring h1
// arrive one cycle apart. The first is launched on h1 with no refuse filter on the rest, h2's unused
// offer is held; the second waits for h1's room (no FailedScheduling, no DECLINE) instead of taking
// h2's held offer, and goes to h1 when Mesos offers that room again. Room that does not come back
// within ReturnWait is given up: the pod then takes what is held.
func TestPlacementWaitsForReturningRoom(t *testing.T) {
	f := newFixture(t, State{}, pod("web-1", "uid-1", preferHost("h1")))
	f.addNode(agentNode("h1", "a1"))
	f.addNode(agentNode("h2", "a2"))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096), offer("o2", "a2", "h2", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if got := acceptedAgents(accepts); len(got) != 1 || got[0] != "a1" {
		t.Fatalf("web-1 launched on %v, want a1", got)
	}
	if rs := accepts[0].GetAccept().GetFilters().GetRefuseSeconds(); rs != 0 {
		t.Errorf("ACCEPT refuse_seconds = %v, want 0: the room left is offered again at the next allocation", rs)
	}
	if n := len(f.caller.ofType(scheduler.Call_DECLINE)); n != 0 {
		t.Errorf("%d DECLINEs, want h2's unused offer held", n)
	}

	f.addPod(pod("web-2", "uid-2", preferHost("h1")))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 1 {
		t.Fatalf("web-2 launched on h2's held offer (%d ACCEPTs), want it waiting for h1's room", n)
	}
	if ev := failedScheduling(f); len(ev) != 0 {
		t.Errorf("FailedScheduling while waiting for returning room: %q", ev)
	}
	if c := f.s.book.Counts(); c.Held != 1 || c.Declined != 0 {
		t.Errorf("book %+v, want h2's offer still held", c)
	}

	// h1's room comes back (the executor runs there now): web-2 goes there.
	f.offers(offer("o3", "a1", "h1", 3.4, 3900, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	if got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 2 || got[1] != "a1" {
		t.Fatalf("launches on %v, want web-2 on a1", got)
	}

	// h1's room is not offered again this time: after ReturnWait web-3 takes h2.
	f.clock.Step(offerbridge.ReturnWait / 2)
	f.offers(offer("o4", "a2", "h2", 4, 4096)) // o2 expired meanwhile: a fresh one
	f.addPod(pod("web-3", "uid-3", preferHost("h1")))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 2 {
		t.Fatalf("web-3 launched at once (%d ACCEPTs), want it waiting for h1's room", n)
	}
	f.clock.Step(offerbridge.ReturnWait)
	f.offers(offer("o5", "a2", "h2", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 3 || got[2] != "a2" {
		t.Fatalf("launches on %v, want web-3 on a2 once h1's room was given up", got)
	}
	if ev := failedScheduling(f); len(ev) != 0 {
		t.Errorf("FailedScheduling: %q", ev)
	}
	f.clock.Step(DefaultConfig().OfferHold)
	f.s.cycleAndLaunch(f.ctx)
	if c := f.s.book.Counts(); !c.Balanced() {
		t.Errorf("book %+v, want every offer ended", c)
	}
}

// An agent scheduled for maintenance is used only when no other fits: while another agent's room
// returns, pods wait for it instead of going to the agent whose tasks the window will kill.
func TestPlacementWaitsRatherThanMaintenanceAgent(t *testing.T) {
	f := newFixture(t, State{}, pod("p1", "uid-1"))
	f.addNode(agentNode("h1", "a1"))
	f.addNode(agentNode("h2", "a2"))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 1 {
		t.Fatalf("p1 launched on %v, want a1", got)
	}
	inWindow := offer("o2", "a2", "h2", 4, 4096)
	inWindow.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: f.clock.Now().Add(time.Hour).UnixNano()}}
	f.offers(inWindow)
	f.addPod(pod("p2", "uid-2"))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	if got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 1 {
		t.Fatalf("launches on %v, want p2 waiting for a1's room rather than a2 in maintenance", got)
	}
	f.offers(offer("o3", "a1", "h1", 3.4, 3900, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	if got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 2 || got[1] != "a1" {
		t.Fatalf("launches on %v, want p2 on a1", got)
	}
}
