package framework

import (
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// maintenanceFixture: agent a1's Node h1 (in the API and the cache) with pod p1 bound to it; evictions
// are answered by refuse (a 429 when it says so), else the pod is marked terminating.
func maintenanceFixture(t *testing.T, refuse func() bool) *fixture {
	f := newFixture(t, State{}, pod("p1", "uid-p1", boundTo("h1", "500m")))
	n := sizedNode("h1", "a1")
	if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.addNode(n)
	f.kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		if refuse() {
			return true, nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusTooManyRequests,
				Reason: metav1.StatusReasonTooManyRequests, Message: "Cannot evict pod as it would violate the pod's disruption budget."}}
		}
		return true, nil, nil
	})
	f.subscribe("fw-1")
	f.drain()
	return f
}

func inverseOffer(id, agent string, start time.Time, d time.Duration) *scheduler.Event {
	ns := int64(d)
	return &scheduler.Event{Type: scheduler.Event_INVERSE_OFFERS, InverseOffers: &scheduler.Event_InverseOffers{
		InverseOffers: []mesos.InverseOffer{{
			OfferID: mesos.OfferID{Value: id}, FrameworkID: mesos.FrameworkID{Value: "fw-1"}, AgentID: &mesos.AgentID{Value: agent},
			Unavailability: mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: start.UnixNano()}, Duration: &mesos.DurationInfo{Nanoseconds: ns}},
		}},
	}}
}

// syncNodeCache copies the Node from the fake API into the cache, as the informer would.
func (f *fixture) syncNodeCache(name string) *corev1.Node {
	f.t.Helper()
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.nodeIndex.Update(n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func evictions(f *fixture) int {
	n := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" && a.GetSubresource() == "eviction" {
			n++
		}
	}
	return n
}

// An inverse offer cordons the agent's Node, evicts its pods, and is accepted once none is left; the
// Node is uncordoned when the window is over.
func TestMaintenanceCordonsDrainsAcceptsAndUncordons(t *testing.T) {
	f := maintenanceFixture(t, func() bool { return false })
	start := t0.Add(time.Minute)
	f.event(inverseOffer("io-1", "a1", start, time.Minute))
	f.s.maintain(f.ctx)

	n := f.syncNodeCache("h1")
	if !n.Spec.Unschedulable || n.Annotations[AnnotationMaintenance] != "2026-11-23T12:01:00Z/2026-11-23T12:02:00Z" {
		t.Errorf("Node after the inverse offer: unschedulable %v, annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
	tainted := false
	for _, tt := range n.Spec.Taints {
		tainted = tainted || tt.Key == corev1.TaintNodeUnschedulable && tt.Effect == corev1.TaintEffectNoSchedule
	}
	if !tainted {
		t.Errorf("Node taints %v, want %s:NoSchedule", n.Spec.Taints, corev1.TaintNodeUnschedulable)
	}
	if got := evictions(f); got != 1 {
		t.Fatalf("%d evictions, want 1 (p1)", got)
	}
	if got := f.caller.ofType(scheduler.Call_ACCEPT_INVERSE_OFFERS); len(got) != 0 {
		t.Fatalf("accepted the inverse offer while p1 is still on h1")
	}

	// p1 terminates, then is gone: then, and only then, the inverse offer is accepted.
	p := f.refreshCache("default", "p1")
	p.DeletionTimestamp = &metav1.Time{Time: t0}
	f.updateCache(p)
	f.s.maintain(f.ctx)
	if got := f.caller.ofType(scheduler.Call_ACCEPT_INVERSE_OFFERS); len(got) != 0 {
		t.Fatalf("accepted the inverse offer while p1 is terminating")
	}
	if err := f.podIndex.Delete(p); err != nil {
		t.Fatal(err)
	}
	f.s.maintain(f.ctx)
	acc := f.caller.ofType(scheduler.Call_ACCEPT_INVERSE_OFFERS)
	if len(acc) != 1 || len(acc[0].AcceptInverseOffers.InverseOfferIDs) != 1 || acc[0].AcceptInverseOffers.InverseOfferIDs[0].Value != "io-1" {
		t.Fatalf("ACCEPT_INVERSE_OFFERS %v, want io-1", acc)
	}
	// Mesos sends the next inverse offer once the filter expires: accepted too, reported once.
	f.event(inverseOffer("io-2", "a1", start, time.Minute))
	f.s.maintain(f.ctx)
	if acc := f.caller.ofType(scheduler.Call_ACCEPT_INVERSE_OFFERS); len(acc) != 2 || acc[1].AcceptInverseOffers.InverseOfferIDs[0].Value != "io-2" {
		t.Fatalf("ACCEPT_INVERSE_OFFERS %v, want io-2 accepted too", acc)
	}
	drained := 0
	for len(f.recorder.Events) > 0 {
		if e := <-f.recorder.Events; strings.Contains(e, EventMaintenanceDrained) {
			drained++
		}
	}
	if drained != 1 {
		t.Errorf("%d %s events, want 1", drained, EventMaintenanceDrained)
	}

	// During the window the Node stays cordoned; after it, it is uncordoned.
	f.clock.SetTime(start.Add(30 * time.Second))
	f.s.maintain(f.ctx)
	if n := f.syncNodeCache("h1"); !n.Spec.Unschedulable {
		t.Errorf("uncordoned during the window")
	}
	f.clock.SetTime(start.Add(time.Minute))
	f.s.maintain(f.ctx)
	n = f.syncNodeCache("h1")
	if n.Spec.Unschedulable || len(n.Spec.Taints) != 0 || n.Annotations[AnnotationMaintenance] != "" {
		t.Errorf("Node after the window: unschedulable %v, taints %v, annotations %v", n.Spec.Unschedulable, n.Spec.Taints, n.Annotations)
	}
}

// A PodDisruptionBudget's 429 is retried after evictRetry, as kubectl drain does, and the inverse
// offer waits.
func TestMaintenanceRetriesEvictionsRefusedByPDB(t *testing.T) {
	refusing := true
	f := maintenanceFixture(t, func() bool { return refusing })
	f.event(inverseOffer("io-1", "a1", t0.Add(time.Hour), time.Hour))
	f.s.maintain(f.ctx)
	f.syncNodeCache("h1")
	f.clock.Step(evictRetry - time.Millisecond)
	f.s.maintain(f.ctx)
	if got := evictions(f); got != 1 {
		t.Fatalf("%d evictions before evictRetry, want 1", got)
	}
	refusing = false
	f.clock.Step(time.Millisecond)
	f.s.maintain(f.ctx)
	if got := evictions(f); got != 2 {
		t.Fatalf("%d evictions after evictRetry, want 2", got)
	}
	if got := f.caller.ofType(scheduler.Call_ACCEPT_INVERSE_OFFERS); len(got) != 0 {
		t.Errorf("accepted while p1 is on the Node")
	}
}

// Offers with an unavailability schedule the agent like an inverse offer; an offer without one (the
// operator took the machine out of the schedule) uncordons the Node at once. Placement skips the
// cordoned Node meanwhile.
func TestMaintenanceFromOffers(t *testing.T) {
	f := maintenanceFixture(t, func() bool { return false })
	o := offer("o1", "a1", "h1", 2, 4096, ExecutorID)
	o.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: t0.Add(time.Hour).UnixNano()}}
	f.offers(o)
	f.s.maintain(f.ctx)
	n := f.syncNodeCache("h1")
	if !n.Spec.Unschedulable || n.Annotations[AnnotationMaintenance] != "2026-11-23T13:00:00Z/" {
		t.Fatalf("Node: unschedulable %v, annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
	f.addPod(pod("new", "uid-new"))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	if got := launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 0 {
		t.Errorf("launched %v on a Node in maintenance", got)
	}
	var unschedulable bool
	for len(f.recorder.Events) > 0 {
		e := <-f.recorder.Events
		unschedulable = unschedulable || strings.Contains(e, "node(s) were unschedulable")
	}
	if !unschedulable {
		t.Errorf("no FailedScheduling naming the cordon")
	}
	f.offers(offer("o2", "a1", "h1", 2, 4096, ExecutorID))
	f.s.maintain(f.ctx)
	if n := f.syncNodeCache("h1"); n.Spec.Unschedulable || n.Annotations[AnnotationMaintenance] != "" {
		t.Errorf("Node still cordoned after an offer without unavailability")
	}
}

// A restarted framework knows a Node's window from its annotation: it uncordons it once the window
// is over though Mesos told it nothing yet, and leaves it cordoned while the window lasts.
func TestMaintenanceWindowFromAnnotation(t *testing.T) {
	f := maintenanceFixture(t, func() bool { return false })
	if err := f.s.cordon(f.ctx, "h1", window{start: t0.Add(-time.Hour), end: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	f.syncNodeCache("h1")
	f.s.maintain(f.ctx)
	if n := f.syncNodeCache("h1"); !n.Spec.Unschedulable {
		t.Fatalf("uncordoned during the window")
	}
	f.clock.Step(time.Minute)
	f.s.maintain(f.ctx)
	if n := f.syncNodeCache("h1"); n.Spec.Unschedulable || n.Annotations[AnnotationMaintenance] != "" {
		t.Errorf("still cordoned after the window from the annotation")
	}
}

// An offer's unavailability whose window is over no longer counts for placement (Mesos keeps it on
// the offers until the operator changes the schedule); one still ahead or without duration does.
func TestEndedUnavailability(t *testing.T) {
	o := offer("o1", "a1", "h1", 1, 1024)
	for _, c := range []struct {
		start time.Time
		d     *time.Duration
		keep  bool
	}{
		{t0.Add(-2 * time.Minute), ptrDuration(time.Minute), false},
		{t0.Add(-time.Minute), ptrDuration(2 * time.Minute), true},
		{t0.Add(time.Minute), ptrDuration(time.Minute), true},
		{t0.Add(-time.Hour), nil, true},
	} {
		o.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: c.start.UnixNano()}}
		if c.d != nil {
			o.Unavailability.Duration = &mesos.DurationInfo{Nanoseconds: int64(*c.d)}
		}
		if got := endedUnavailability(o, t0).Unavailability != nil; got != c.keep {
			t.Errorf("start %v duration %v: kept %v, want %v", c.start, c.d, got, c.keep)
		}
	}
}

func ptrDuration(d time.Duration) *time.Duration { return &d }

// A window that begins before the Node is drained (a PDB holds a pod) gets its inverse offer declined,
// Mesos' way of saying the framework cannot comply; draining goes on.
func TestMaintenanceDeclinesWhenWindowBeginsUndrained(t *testing.T) {
	f := maintenanceFixture(t, func() bool { return true })
	start := t0.Add(time.Minute)
	f.event(inverseOffer("io-1", "a1", start, time.Hour))
	f.s.maintain(f.ctx)
	if got := f.caller.ofType(scheduler.Call_DECLINE_INVERSE_OFFERS); len(got) != 0 {
		t.Fatalf("declined before the window")
	}
	f.syncNodeCache("h1")
	f.clock.SetTime(start)
	f.s.maintain(f.ctx)
	dec := f.caller.ofType(scheduler.Call_DECLINE_INVERSE_OFFERS)
	if len(dec) != 1 || dec[0].DeclineInverseOffers.InverseOfferIDs[0].Value != "io-1" {
		t.Fatalf("DECLINE_INVERSE_OFFERS %v, want io-1", dec)
	}
	if got := evictions(f); got != 2 {
		t.Errorf("%d evictions, want 2: draining goes on", got)
	}
}

// Cycles start a maintenance pass at most once per maintenancePassEvery: they run on every event, and a
// pass walks every Node (issue 13: a quarter of the framework's CPU at 1,000 agents).
func TestCyclesStartMaintenancePassesAtMostOncePerInterval(t *testing.T) {
	f := maintenanceFixture(t, func() bool { return false })
	pass := func() {
		t.Helper()
		f.s.maintainAsync(f.ctx)
		for f.s.maintenance.running.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	pass() // nothing to do yet
	f.event(inverseOffer("io-1", "a1", t0.Add(time.Minute), time.Minute))
	f.clock.Step(maintenancePassEvery - time.Millisecond)
	pass()
	if n := f.syncNodeCache("h1"); n.Spec.Unschedulable {
		t.Fatalf("a pass ran %v after the last one", maintenancePassEvery-time.Millisecond)
	}
	f.clock.Step(time.Millisecond)
	pass()
	if n := f.syncNodeCache("h1"); !n.Spec.Unschedulable {
		t.Errorf("no pass %v after the last one: the Node in a maintenance window is not cordoned", maintenancePassEvery)
	}
}
