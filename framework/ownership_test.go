package framework

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/offerbridge"
)

func scheduledBy(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.SchedulerName = name }
}

// writesTo lists the fake API's writes (create, update, patch, delete) of objects with the given names.
func writesTo(kube *fake.Clientset, names ...string) []string {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []string
	for _, a := range kube.Actions() {
		var name string
		switch a := a.(type) {
		case k8stesting.CreateAction:
			if m, ok := a.GetObject().(metav1.Object); ok {
				name = m.GetName()
			}
		case k8stesting.UpdateAction:
			if m, ok := a.GetObject().(metav1.Object); ok {
				name = m.GetName()
			}
		case k8stesting.PatchAction:
			name = a.GetName()
		case k8stesting.DeleteAction:
			name = a.GetName()
		default:
			continue
		}
		if want[name] {
			s := a.GetVerb() + " " + a.GetResource().Resource
			if sub := a.GetSubresource(); sub != "" {
				s += "/" + sub
			}
			out = append(out, s+" "+name)
		}
	}
	return out
}

func drainEvents(r *record.FakeRecorder) []string {
	var out []string
	for len(r.Events) > 0 {
		out = append(out, <-r.Events)
	}
	return out
}

// The framework acts only on pods it schedules that are bound to none or to its own Nodes. Pods of
// another scheduler on its Nodes, its own pods on another framework's Node, and the other framework's
// pods on that framework's Nodes (issue 9: they were asked about, answered TASK_UNKNOWN by this master
// and failed) are never asked about, written, deleted, killed, queued for placement or evented, through
// subscription, reconciliation answers, status updates, placement cycles and deletion.
func TestPodsOfOthersLeftAlone(t *testing.T) {
	foreign := []string{"theirs-on-ours", "ours-on-theirs", "theirs-on-theirs", "theirs-pending"}
	f := newFixture(t, State{FrameworkID: "fw-1"},
		pod("ours", "uid-ours", bound("h1"), running),
		pod("theirs-on-ours", "uid-too", scheduledBy("kubemesos-b"), bound("h1"), running),
		pod("ours-on-theirs", "uid-oot", bound("hb"), running),
		pod("theirs-on-theirs", "uid-tot", scheduledBy("kubemesos-b"), bound("hb"), running),
		pod("theirs-pending", "uid-tp", scheduledBy("kubemesos-b")))
	f.addNode(agentNode("h1", "a1"))
	f.addNode(frameworkNode("hb", "b1", "fw-b"))
	f.kube.ClearActions()

	f.subscribe("fw-1")
	recon := f.caller.ofType(scheduler.Call_RECONCILE)
	if len(recon) != 2 {
		t.Fatalf("RECONCILE calls = %d, want explicit + implicit", len(recon))
	}
	var asked []string
	for _, task := range recon[0].GetReconcile().Tasks {
		asked = append(asked, task.TaskID.Value+"@"+task.GetAgentID().GetValue())
	}
	if diff := cmp.Diff([]string{"pod-uid-ours@a1"}, asked); diff != "" {
		t.Errorf("explicit reconciliation (-want +got):\n%s", diff)
	}

	// What this master would answer about tasks it never had, and what an update would say.
	f.update(status("pod-uid-ours", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	for _, uid := range []string{"uid-too", "uid-oot", "uid-tot"} {
		f.update(status("pod-"+uid, "a1", mesos.TASK_UNKNOWN, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
		f.update(status("pod-"+uid, "a1", mesos.TASK_LOST, mesos.SOURCE_MASTER, mesos.REASON_AGENT_REMOVED.Enum(), []byte("u-"+uid)))
	}
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	for i := 0; i < 3; i++ {
		f.clock.Step(DefaultConfig().ReconcileInterval)
		f.s.cycleAndLaunch(f.ctx)
	}
	// Deleted: not this framework's to kill or to remove.
	for _, name := range foreign {
		p := f.refreshCache("default", name).DeepCopy()
		p.DeletionTimestamp = ptr.To(metav1.NewTime(f.clock.Now()))
		f.updateCache(p)
	}
	f.drain()
	f.s.cycleAndLaunch(f.ctx)

	if w := writesTo(f.kube, foreign...); len(w) != 0 {
		t.Errorf("API writes about pods of others: %v", w)
	}
	for _, name := range foreign {
		p, err := f.kube.CoreV1().Pods("default").Get(f.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("pod %s: %v", name, err)
		} else if p.Status.Phase != corev1.PodRunning && name != "theirs-pending" {
			t.Errorf("pod %s is %s, want Running", name, p.Status.Phase)
		}
	}
	if ev := drainEvents(f.recorder); len(ev) != 0 {
		t.Errorf("events recorded: %v", ev)
	}
	if n := len(f.caller.ofType(scheduler.Call_KILL)); n != 0 {
		t.Errorf("KILL calls = %d, want 0", n)
	}
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Errorf("ACCEPT calls = %d, want 0", n)
	}
	f.s.mu.Lock()
	pending := len(f.s.pending)
	f.s.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d pods pending placement, want 0", pending)
	}
	if v := gaugeValue(t, f.s.metrics, "kubemesos_pending_pods", nil); v != 0 {
		t.Errorf("pending_pods = %v, want 0", v)
	}
	// Acknowledged all the same: they are this framework's status updates.
	if n := len(f.caller.ofType(scheduler.Call_ACKNOWLEDGE)); n != 3 {
		t.Errorf("ACKNOWLEDGE calls = %d, want 3", n)
	}
}

// The same pod of this framework's scheduler is acted on when bound to its own Node: the filter is
// the Node's owner, not the pod.
func TestOwnPodOnOwnNodeStillHandled(t *testing.T) {
	for _, node := range []*corev1.Node{agentNode("h1", "a1"), frameworkNode("h1", "a1", "")} {
		f := newFixture(t, State{FrameworkID: "fw-1"}, pod("run", "uid-run", bound("h1"), running))
		f.addNode(node)
		f.subscribe("fw-1")
		f.update(status("pod-uid-run", "a1", mesos.TASK_UNKNOWN, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
		got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "run", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != corev1.PodFailed {
			t.Errorf("Node annotations %v: pod is %s, want Failed", node.Annotations, got.Status.Phase)
		}
	}
}

func gaugeValue(t *testing.T, m *metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	metric:
		for _, mm := range fam.GetMetric() {
			for _, l := range mm.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metric
				}
			}
			return mm.GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s%v", name, labels)
	return 0
}

// A Node named like one of this framework's agents but owned by someone else (another framework
// whose agent has the same hostname, or no kubemesos framework) is never updated or deleted, its
// Lease is not renewed, and it is not counted; a Warning Event on it says why, once; the agent gets no
// Node and no pods. Once that Node is gone, the framework creates its own.
func TestNodeOfAnotherOwnerNeverWritten(t *testing.T) {
	tests := []struct {
		name string
		node *corev1.Node
	}{
		{name: "another framework", node: frameworkNode("h1", "b1", "fw-b")},
		{name: "another framework, same agent ID", node: frameworkNode("h1", "a1", "fw-b")},
		{name: "unmarked Node of another agent", node: frameworkNode("h1", "b1", "")},
		{name: "not a kubemesos Node", node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "h1", Labels: map[string]string{"kubernetes.io/hostname": "h1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, kube, clk := newTestNodeController(t)
			rec := record.NewFakeRecorder(100)
			m := newMetrics()
			c.recorder, c.metrics = rec, m
			if _, err := kube.CoreV1().Nodes().Create(ctx, tt.node, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			kube.ClearActions()
			o := offer("o1", "a1", "h1", 2, 1024)
			c.ObserveOffer(&o)
			o2 := offer("o2", "a2", "h2", 2, 1024)
			c.ObserveOffer(&o2)
			for i := 0; i < 3; i++ {
				c.SyncAll(ctx, true)
				clk.Step(10 * time.Second)
			}
			c.MarkInactive("a1", ReasonAgentUnreachable, "m")
			c.SyncAll(ctx, true)
			c.SetAgents(nil, nil) // both removed from the master
			c.SyncAll(ctx, true)

			if w := writesTo(kube, "h1"); len(w) != 0 {
				t.Errorf("writes to the other owner's Node or its Lease: %v", w)
			}
			if _, err := kube.CoordinationV1().Leases(NodeLeaseNamespace).Get(ctx, "h1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("Lease h1: %v, want none", err)
			}
			ev := drainEvents(rec)
			if len(ev) != 1 || !strings.Contains(ev[0], "Warning "+EventNodeNameConflict) || !strings.Contains(ev[0], "Mesos agent a1") {
				t.Errorf("events = %q, want one %s naming agent a1", ev, EventNodeNameConflict)
			}
			if !c.Conflicted("a1") || c.Conflicted("a2") {
				t.Errorf("Conflicted(a1, a2) = %v, %v; want true, false", c.Conflicted("a1"), c.Conflicted("a2"))
			}
			if id := c.AgentOfHostname("h1"); id != "" {
				t.Errorf("AgentOfHostname(h1) = %q, want none", id)
			}
			if _, ours := c.NodeAgent(tt.node); ours {
				t.Error("the other owner's Node counts as ours")
			}
			if v := gaugeValue(t, m, "kubemesos_nodes", map[string]string{"state": nodeStateConflict}); v != 1 {
				t.Errorf("nodes{hostname_conflict} = %v, want 1", v)
			}
			if v := gaugeValue(t, m, "kubemesos_nodes", map[string]string{"state": nodeStateNotReady}); v != 1 {
				t.Errorf("nodes{not_ready} = %v, want 1 (a2 only)", v)
			}

			// The other owner's Node goes away: the agent (back) gets its own.
			if err := kube.CoreV1().Nodes().Delete(ctx, "h1", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.ObserveOffer(&o)
			c.SyncAll(ctx, true)
			n, err := kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Annotations[AnnotationFrameworkID] != "fw-1" || n.Labels[offerbridge.LabelAgentID] != "a1" {
				t.Errorf("Node h1 annotations %v labels %v, want ours for a1", n.Annotations, n.Labels)
			}
			if c.Conflicted("a1") {
				t.Error("conflict kept after the Node became ours")
			}
		})
	}
}

// The mark is the FrameworkID: a Node keeps being ours across a framework restart (under another
// --framework-name, which only updates the informational annotation), a master failover (new master
// ID, same FrameworkID) and a new FrameworkID after Mesos removed the framework (the old one is kept as
// former). An unmarked kubemesos Node of the same agent is claimed.
func TestNodeMarkSurvivesRestartFailoverAndRemoval(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, State{FrameworkID: "fw-1"}, pod("run", "uid-run", bound("h1"), running))
	f.s.nodes.owner.name = "renamed"
	node := agentNode("h1", "a1")
	if _, err := f.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.addNode(node)
	mark := func() (string, string) {
		t.Helper()
		n, err := f.kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Annotations[AnnotationFrameworkID], n.Annotations[AnnotationFrameworkName]
	}
	// Restarted: the stored FrameworkID is the mark before Mesos even answers.
	if id, ours := f.s.nodes.NodeAgent(node); !ours || id != "a1" {
		t.Errorf("NodeAgent before subscription = %q, %v; want a1, ours", id, ours)
	}
	f.offers(offer("o1", "a1", "h1", 4, 4096, ExecutorID))
	f.s.nodes.SyncAll(ctx, false)
	if id, name := mark(); id != "fw-1" || name != "renamed" {
		t.Errorf("mark after restart = %s (%s), want fw-1 (renamed)", id, name)
	}

	// Master failover: same FrameworkID, another master ID.
	hb := 15.0
	for _, master := range []string{"master-1", "master-2"} {
		f.s.Disconnected(nil)
		f.event(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
			FrameworkID: &mesos.FrameworkID{Value: "fw-1"}, HeartbeatIntervalSeconds: &hb,
			MasterInfo: &mesos.MasterInfo{ID: master, IP: 1, Port: ptr.To[uint32](5050)}}})
		if got := f.s.agentOfNode("h1"); got != "a1" {
			t.Errorf("after subscribing to %s: agentOfNode(h1) = %q, want a1", master, got)
		}
	}

	// Mesos removed the framework: it subscribes anew and gets fw-2; the Node is still its own.
	if err := f.s.HandleEvent(ctx, &scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework has been removed"}}); err == nil {
		t.Fatal("ERROR did not end the subscription")
	}
	st, err := f.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"fw-1"}, st.FormerFrameworkIDs); diff != "" || st.FrameworkID != "" {
		t.Errorf("stored after removal: %q, former (-want +got):\n%s", st.FrameworkID, diff)
	}
	f.s.Disconnected(nil)
	f.subscribe("fw-2")
	if got := f.s.agentOfNode("h1"); got != "a1" {
		t.Errorf("with the new FrameworkID: agentOfNode(h1) = %q, want a1", got)
	}
	f.s.nodes.SyncAll(ctx, false)
	if id, _ := mark(); id != "fw-2" {
		t.Errorf("mark after the new FrameworkID = %s, want fw-2", id)
	}
	recon := f.caller.ofType(scheduler.Call_RECONCILE)
	var asked []string
	for _, task := range recon[len(recon)-2].GetReconcile().Tasks {
		asked = append(asked, task.TaskID.Value)
	}
	if diff := cmp.Diff([]string{"pod-uid-run"}, asked); diff != "" {
		t.Errorf("explicit reconciliation under fw-2 (-want +got):\n%s", diff)
	}

	// Restarted once more from the stored state: fw-2 with fw-1 as former.
	f2 := newFixture(t, State{FrameworkID: "fw-2", FormerFrameworkIDs: []string{"fw-1"}})
	for _, tc := range []struct {
		mark string
		ours bool
	}{{"fw-1", true}, {"fw-2", true}, {"fw-3", false}} {
		if _, ours := f2.s.nodes.NodeAgent(frameworkNode("h1", "a1", tc.mark)); ours != tc.ours {
			t.Errorf("Node marked %s: ours = %v, want %v", tc.mark, ours, tc.ours)
		}
	}
}

// A kubemesos Node written before Nodes were marked is claimed by the agent it names.
func TestUnmarkedNodeOfTheAgentClaimed(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	rec := record.NewFakeRecorder(10)
	c.recorder = rec
	if _, err := kube.CoreV1().Nodes().Create(ctx, frameworkNode("h1", "a1", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	c.SyncAll(ctx, true)
	n, err := kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Annotations[AnnotationFrameworkID] != "fw-1" {
		t.Errorf("annotations %v, want the mark fw-1", n.Annotations)
	}
	if st, _ := readyOf(t, kube, "h1"); st != corev1.ConditionTrue {
		t.Errorf("Ready = %s, want True", st)
	}
	if ev := drainEvents(rec); len(ev) != 0 {
		t.Errorf("events: %v", ev)
	}
}

// Without a FrameworkID nothing is written: a Node must carry its owner from the start.
func TestNoNodesBeforeFrameworkID(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	c.SetOwner("", nil)
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	c.SyncAll(ctx, true)
	if len(kube.Actions()) != 0 {
		t.Errorf("API calls without a FrameworkID: %v", kube.Actions())
	}
	c.SetOwner("fw-1", nil)
	c.SyncAll(ctx, false)
	if _, err := kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{}); err != nil {
		t.Errorf("Node once the FrameworkID is known: %v", err)
	}
}

// Placement never binds to a Node of another owner: an agent of ours whose hostname names such a
// Node (seen in the cache before the node controller met it, or met by the node controller before
// the cache has it) gets no pods and its offers are declined; the other framework's Nodes are not
// offered to placement.
func TestPlacementSkipsNodesOfOthers(t *testing.T) {
	for _, noticed := range []bool{false, true} {
		f := newFixture(t, State{FrameworkID: "fw-1"}, pod("p1", "uid-1"), pod("p2", "uid-2"))
		other := frameworkNode("h1", "b1", "fw-b")
		if !noticed {
			f.addNode(other) // in the cache; the node controller has not met it
		} else {
			// met by the node controller; not in the cache yet
			if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, other, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.kube.ClearActions()
		}
		f.subscribe("fw-1")
		f.drain()
		f.offers(offer("o1", "a1", "h1", 4, 4096), offer("o2", "a2", "h2", 4, 4096))
		if noticed {
			f.s.nodes.SyncAll(f.ctx, false)
			if !f.s.nodes.Conflicted("a1") {
				t.Fatal("conflict not noticed")
			}
		}
		f.s.cycleAndLaunch(f.ctx)
		var nodes []string
		for _, c := range f.caller.ofType(scheduler.Call_ACCEPT) {
			for _, ti := range c.GetAccept().Operations[0].GetLaunch().TaskInfos {
				nodes = append(nodes, ti.TaskID.Value+"@"+ti.AgentID.Value)
			}
		}
		if diff := cmp.Diff([]string{"pod-uid-1@a2", "pod-uid-2@a2"}, sorted(nodes)); diff != "" {
			t.Errorf("noticed=%v: launched (-want +got):\n%s", noticed, diff)
		}
		var declined []string
		for _, d := range f.caller.ofType(scheduler.Call_DECLINE) {
			declined = append(declined, offerIDs(d.GetDecline().OfferIDs)...)
		}
		if diff := cmp.Diff([]string{"o1"}, declined); diff != "" {
			t.Errorf("noticed=%v: declined (-want +got):\n%s", noticed, diff)
		}
		if c := f.s.book.Counts(); !c.Balanced() || c.Declined != 1 {
			t.Errorf("noticed=%v: book counts %+v", noticed, c)
		}
		if w := writesTo(f.kube, "h1"); len(w) != 0 {
			t.Errorf("noticed=%v: writes to the other framework's Node: %v", noticed, w)
		}
		f.addNode(other)
		ours, foreign := f.s.placementNodes()
		if _, ok := ours["b1"]; ok || !foreign["h1"] {
			t.Errorf("noticed=%v: placement's Nodes: ours %v, foreign %v", noticed, ours, foreign)
		}
	}
}
