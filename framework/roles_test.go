package framework

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubemesos/kubemesos/offerbridge"
)

func namespace(name string, role ...string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(role) > 0 {
		ns.Annotations = map[string]string{RoleAnnotation: role[0]}
	}
	return ns
}

func TestNamespaceRole(t *testing.T) {
	for _, tc := range []struct {
		ns   *corev1.Namespace
		want string
		err  string
	}{
		{ns: namespace("plain"), want: "kubemesos"},
		{ns: namespace("a", "tenant-a"), want: "tenant-a"},
		{ns: namespace("h", "eng/web"), want: "eng/web"},
		{ns: namespace("star", "*"), want: "*"}, // Mesos accepts "*" as a role name
		{ns: namespace("dash", "-x"), err: `annotation kubemesos.io/mesos-role="-x" of namespace dash is not a valid Mesos role: Role component '-x' is invalid because it starts with a dash`},
		{ns: namespace("empty", ""), err: "Role names cannot be the empty string"},
		{ns: namespace("space", "a b"), err: "contains backspace or whitespace"},
		{ns: namespace("dots", "a/../b"), err: "cannot include '..' as a component"},
	} {
		got, err := namespaceRole(tc.ns, "kubemesos")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one containing %q", tc.ns.Name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.ns.Name, got, err, tc.want)
		}
	}
}

func TestRolesInUse(t *testing.T) {
	nss := []*corev1.Namespace{namespace("x", "b"), namespace("y"), namespace("z", "a"), namespace("w", "b"), namespace("bad", "-b")}
	got := rolesInUse([]string{"kubemesos", "static"}, "def", nss)
	if diff := cmp.Diff([]string{"a", "b", "def", "kubemesos", "static"}, got); diff != "" {
		t.Errorf("roles in use (-want +got):\n%s", diff)
	}
}

// The roles in use must stay the same for roleDebounce before UPDATE_FRAMEWORK; a change back to the
// current roles cancels it, a further change restarts the wait.
func TestRoleSubscriptionDebounce(t *testing.T) {
	r := roleSubscription{current: []string{"a"}}
	ab, abc := []string{"a", "b"}, []string{"a", "b", "c"}
	steps := []struct {
		at   time.Duration
		want []string
		send []string
	}{
		{at: 0, want: []string{"a"}},
		{at: 0, want: ab},
		{at: roleDebounce / 2, want: ab},
		{at: roleDebounce / 2, want: abc}, // changed again: the wait restarts
		{at: roleDebounce, want: abc},
		{at: roleDebounce + roleDebounce/2, want: abc, send: abc},
		{at: 2 * roleDebounce, want: []string{"a"}}, // back to the current roles: nothing to send
		{at: 4 * roleDebounce, want: []string{"a"}},
	}
	for i, s := range steps {
		got, ok := r.next(s.want, t0.Add(s.at))
		if ok != (s.send != nil) || !slices.Equal(got, s.send) {
			t.Errorf("step %d: next = %v, %v; want %v", i, got, ok, s.send)
		}
	}
}

func TestRoleFlowDecide(t *testing.T) {
	f := roleFlow{suppressed: map[string]bool{"idle": false, "back": true, "asleep": true}, filtered: map[string]bool{"busy": true, "filtered": true}}
	roles := []string{"asleep", "back", "busy", "filtered", "idle"}
	revive, suppress := f.decide(roles, map[string]int{"back": 1, "busy": 2, "filtered": 0}, true)
	// back: pending while suppressed; busy: new pods while filtered; idle and filtered: nothing pending.
	if diff := cmp.Diff([]string{"back", "busy"}, revive); diff != "" {
		t.Errorf("revive (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"filtered", "idle"}, suppress); diff != "" {
		t.Errorf("suppress (-want +got):\n%s", diff)
	}
}

// roleOffer is offer() allocated to another role.
func roleOffer(id, agent, host, role string, cpus, mem float64) mesos.Offer {
	o := offer(id, agent, host, cpus, mem)
	o.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	for i := range o.Resources {
		o.Resources[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	}
	return o
}

func inNamespace(ns string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Namespace = ns } }

// Each role's pods land on that role's offers only, with resources carrying its allocation_info; the
// executor is carved once per agent though two roles launch there; offers of a role without pods are
// declined; pods of a role without offers wait.
func TestPlaceByRole(t *testing.T) {
	pods := []*corev1.Pod{
		pod("a1", "uid-a1", inNamespace("team-a")), pod("a2", "uid-a2", inNamespace("team-a")),
		pod("b1", "uid-b1", inNamespace("team-b")),
		pod("c1", "uid-c1", inNamespace("team-c")),
	}
	roleOf := func(p *corev1.Pod) string {
		return map[string]string{"team-a": "a", "team-b": "b", "team-c": "c"}[p.Namespace]
	}
	plan := placeByRole(offerbridge.Input{
		Offers: []mesos.Offer{
			roleOffer("oa", "ag1", "h1", "a", 2, 1024), // room for two pods of a and the executor
			roleOffer("ob", "ag1", "h1", "b", 1, 512),  // b's share of the same agent
			roleOffer("oz", "ag2", "h2", "z", 4, 4096), // nobody's pods are in z
		},
		Pods:     pods,
		Executor: offerbridge.ExecutorCost{CPUs: 0.1, MemMB: 64, ID: ExecutorID, RunningOn: map[string]bool{}},
	}, roleOf)
	got := map[string][]string{}
	executors := 0
	for _, l := range plan.Launches {
		for _, id := range l.OfferIDs {
			for _, pp := range l.Pods {
				got[id.Value] = append(got[id.Value], pp.Pod.Name)
				for _, r := range pp.Resources {
					if r.GetAllocationInfo().GetRole() != l.Role {
						t.Errorf("pod %s: resource %s allocated to %q in a launch of role %q", pp.Pod.Name, r.Name, r.GetAllocationInfo().GetRole(), l.Role)
					}
				}
			}
		}
		if l.Executor != nil {
			executors++
		}
	}
	if diff := cmp.Diff(map[string][]string{"oa": {"a1", "a2"}, "ob": {"b1"}}, got); diff != "" {
		t.Errorf("pods by offer (-want +got):\n%s", diff)
	}
	if executors != 1 {
		t.Errorf("executor carved %d times on ag1, want once", executors)
	}
	if diff := cmp.Diff([]mesos.OfferID{{Value: "oz"}}, plan.Decline); diff != "" {
		t.Errorf("declined (-want +got):\n%s", diff)
	}
	if len(plan.Unschedulable) != 0 {
		t.Errorf("unschedulable %v: c1 has no offer of its role and must just wait", plan.Unschedulable)
	}
}

// withNamespaces gives the fixture's scheduler a namespace lister.
func (f *fixture) withNamespaces(nss ...*corev1.Namespace) cache.Indexer {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, ns := range nss {
		if err := idx.Add(ns); err != nil {
			f.t.Fatal(err)
		}
	}
	f.s.placement.namespaces = corelisters.NewNamespaceLister(idx)
	return idx
}

// A namespace's role is subscribed to (SUBSCRIBE's roles, then UPDATE_FRAMEWORK after roleDebounce
// when annotations change), its pods launch only on its role's offers, and offers are revived and
// suppressed per role.
func TestNamespacesAsRoles(t *testing.T) {
	f := newFixture(t, State{})
	nsIdx := f.withNamespaces(namespace("team-a", "a"), namespace("team-b"))
	if diff := cmp.Diff([]string{"a", "kubemesos"}, f.s.FrameworkInfo().Roles); diff != "" {
		t.Fatalf("SUBSCRIBE roles (-want +got):\n%s", diff)
	}
	f.subscribe("fw-1")
	f.addPod(pod("pa", "uid-pa", inNamespace("team-a")))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	// Only role a has pods: kubemesos is suppressed, a is left alone (never suppressed).
	sup := f.caller.ofType(scheduler.Call_SUPPRESS)
	if len(sup) != 1 || !slices.Equal(sup[0].GetSuppress().GetRoles(), []string{"kubemesos"}) {
		t.Fatalf("SUPPRESS calls %v, want one of role kubemesos", sup)
	}
	// An offer of kubemesos cannot take pa; one of a does.
	f.offers(offer("o-k", "ag1", "h1", 4, 4096), roleOffer("o-a", "ag2", "h2", "a", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	acc := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(acc) != 1 || acc[0].GetAccept().OfferIDs[0].Value != "o-a" {
		t.Fatalf("ACCEPTs %v, want one of offer o-a", acc)
	}
	for _, ti := range acc[0].GetAccept().Operations[0].GetLaunch().TaskInfos {
		for _, r := range ti.Resources {
			if r.GetAllocationInfo().GetRole() != "a" {
				t.Errorf("task resource %s allocated to %q, want a", r.Name, r.GetAllocationInfo().GetRole())
			}
		}
	}
	if d := f.caller.ofType(scheduler.Call_DECLINE); len(d) != 1 || d[0].GetDecline().OfferIDs[0].Value != "o-k" {
		t.Errorf("DECLINEs %v, want the kubemesos offer declined", d)
	}

	// team-b moves to role b: after roleDebounce, one UPDATE_FRAMEWORK, keeping kubemesos and a (nothing
	// pending since pa launched) suppressed: UPDATE_FRAMEWORK revives every role it does not list.
	if err := nsIdx.Update(namespace("team-b", "b")); err != nil {
		t.Fatal(err)
	}
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_UPDATE_FRAMEWORK)); n != 0 {
		t.Fatalf("UPDATE_FRAMEWORK sent before roleDebounce")
	}
	f.clock.Step(roleDebounce)
	f.s.cycleAndLaunch(f.ctx)
	upd := f.caller.ofType(scheduler.Call_UPDATE_FRAMEWORK)
	if len(upd) != 1 {
		t.Fatalf("%d UPDATE_FRAMEWORK calls, want 1", len(upd))
	}
	u := upd[0].GetUpdateFramework()
	if diff := cmp.Diff([]string{"a", "b", "kubemesos"}, u.FrameworkInfo.Roles); diff != "" {
		t.Errorf("UPDATE_FRAMEWORK roles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "kubemesos"}, u.SuppressedRoles); diff != "" {
		t.Errorf("UPDATE_FRAMEWORK suppressed roles (-want +got):\n%s", diff)
	}
	if u.FrameworkInfo.GetID().GetValue() != "fw-1" {
		t.Errorf("UPDATE_FRAMEWORK framework_info.id %q, want fw-1", u.FrameworkInfo.GetID().GetValue())
	}
	// b had nothing pending in that cycle: suppressed. A pod of team-b revives b alone, and launches on
	// b's offer, not on kubemesos'.
	if sup := f.caller.ofType(scheduler.Call_SUPPRESS); !slices.Equal(sup[len(sup)-1].GetSuppress().GetRoles(), []string{"b"}) {
		t.Errorf("last SUPPRESS %v, want of role b", sup[len(sup)-1])
	}
	f.addPod(pod("pb", "uid-pb", inNamespace("team-b")))
	f.drain()
	f.caller.reset()
	f.s.cycleAndLaunch(f.ctx)
	if rev := f.caller.ofType(scheduler.Call_REVIVE); len(rev) != 1 || !slices.Equal(rev[0].GetRevive().GetRoles(), []string{"b"}) {
		t.Errorf("REVIVE calls %v, want one of role b", rev)
	}
	f.offers(offer("o-k2", "ag1", "h1", 4, 4096), roleOffer("o-b", "ag3", "h3", "b", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	acc = f.caller.ofType(scheduler.Call_ACCEPT)
	if len(acc) != 1 || acc[0].GetAccept().OfferIDs[0].Value != "o-b" {
		t.Fatalf("ACCEPTs %v, want one of offer o-b", acc)
	}
	// Nothing pending any more: b is suppressed again, a and kubemesos still are.
	f.caller.reset()
	f.s.cycleAndLaunch(f.ctx)
	sup = f.caller.ofType(scheduler.Call_SUPPRESS)
	if len(sup) != 1 || !slices.Equal(sup[0].GetSuppress().GetRoles(), []string{"b"}) {
		t.Errorf("SUPPRESS calls %v, want one of role b", sup)
	}
}

// A namespace naming an invalid role: a Warning on the namespace (once), its pods stay Pending with
// PodScheduled=False saying why, and nothing is launched for them.
func TestInvalidNamespaceRole(t *testing.T) {
	f := newFixture(t, State{})
	f.withNamespaces(namespace("bad", "a b"))
	f.subscribe("fw-1")
	p := pod("p", "uid-p", inNamespace("bad"))
	f.addPod(p)
	f.drain()
	f.offers(offer("o1", "ag1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if acc := f.caller.ofType(scheduler.Call_ACCEPT); len(acc) != 0 {
		t.Fatalf("launched a pod of a namespace with an invalid role: %v", acc)
	}
	want := `annotation kubemesos.io/mesos-role="a b" of namespace bad is not a valid Mesos role: Role component 'a b' is invalid because it contains backspace or whitespace`
	got, err := f.kube.CoreV1().Pods("bad").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cond *corev1.PodCondition
	for i := range got.Status.Conditions {
		if got.Status.Conditions[i].Type == corev1.PodScheduled {
			cond = &got.Status.Conditions[i]
		}
	}
	if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || cond.Message != want {
		t.Errorf("PodScheduled condition %+v, want False/Unschedulable %q", cond, want)
	}
	f.clock.Step(maxPodBackoff)
	f.s.cycleAndLaunch(f.ctx)
	var events []string
	for len(f.recorder.Events) > 0 {
		events = append(events, <-f.recorder.Events)
	}
	warnings := 0
	for _, e := range events {
		if strings.HasPrefix(e, "Warning "+EventInvalidMesosRole+" ") {
			warnings++
			if !strings.Contains(e, want) {
				t.Errorf("event %q does not say why", e)
			}
		}
	}
	if warnings != 1 {
		t.Errorf("%d %s warnings in %q, want 1", warnings, EventInvalidMesosRole, events)
	}
}

// --default-role, else the first of --roles, is the role of namespaces without the annotation, and is
// subscribed to with --roles.
func TestDefaultRole(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Roles = []string{"first", "second"}
	if got := cfg.defaultRole(); got != "first" {
		t.Errorf("default role %q, want the first of --roles", got)
	}
	cfg.DefaultRole = "batch"
	r := newRoleState(cfg)
	if diff := cmp.Diff([]string{"batch", "first", "second"}, r.sub.current); diff != "" {
		t.Errorf("initial roles (-want +got):\n%s", diff)
	}
	if got, _ := namespaceRole(namespace("plain"), r.def); got != "batch" {
		t.Errorf("role of a namespace without annotation %q, want batch", got)
	}
}

// A role whose pods all back off keeps its offers coming: its demand is every pod waiting, so it is
// not suppressed (which would hand its fair share to other roles for good).
func TestRoleWithPodsBackingOffStaysRevived(t *testing.T) {
	f := newFixture(t, State{})
	f.subscribe("fw-1")
	f.addPod(pod("p", "uid-p"))
	f.drain()
	f.offers(offer("small", "ag1", "h1", 0.2, 4096))
	f.s.cycleAndLaunch(f.ctx) // p does not fit: FailedScheduling, back-off
	if acc := f.caller.ofType(scheduler.Call_ACCEPT); len(acc) != 0 {
		t.Fatalf("launched on a 0.2 cpu offer: %v", acc)
	}
	f.caller.reset()
	f.s.cycleAndLaunch(f.ctx) // p backs off
	if sup := f.caller.ofType(scheduler.Call_SUPPRESS); len(sup) != 0 {
		t.Errorf("SUPPRESS %v while a pod of the role backs off", sup)
	}
}

// An offer of a pod's role that could hold it ends its back-off after an "Insufficient" failure (as
// kube-scheduler requeues on a Node change NodeResourcesFit's hint accepts); a smaller one does not.
func TestOfferEndsBackOffOfPodsItFits(t *testing.T) {
	f := newFixture(t, State{})
	f.withNamespaces(namespace("team-a", "a"), namespace("default"))
	f.subscribe("fw-1")
	f.s.cycleAndLaunch(f.ctx)
	f.clock.Step(roleDebounce)
	f.s.cycleAndLaunch(f.ctx) // UPDATE_FRAMEWORK: roles a and kubemesos
	if n := len(f.caller.ofType(scheduler.Call_UPDATE_FRAMEWORK)); n != 1 {
		t.Fatalf("%d UPDATE_FRAMEWORK calls, want 1", n)
	}
	f.addPod(pod("p", "uid-p", inNamespace("team-a")))
	f.drain()
	f.offers(roleOffer("small", "ag1", "h1", "a", 0.2, 4096))
	f.s.cycleAndLaunch(f.ctx)
	msg := f.pendingPod("team-a/p").message
	if !strings.Contains(msg, "Insufficient cpu") {
		t.Fatalf("pending message %q, want an Insufficient cpu failure", msg)
	}
	// Still backing off: an offer of another role, or one too small, leaves it be.
	f.offers(offer("other-role", "ag2", "h2", 4, 4096), roleOffer("small2", "ag1", "h1", "a", 0.3, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if acc := f.caller.ofType(scheduler.Call_ACCEPT); len(acc) != 0 {
		t.Fatalf("launched during back-off: %v", acc)
	}
	// Room enough (the pod's 0.5 cpu and the executor's 0.1) before the back-off ends: launched now.
	f.offers(roleOffer("big", "ag3", "h3", "a", 1, 4096))
	f.s.cycleAndLaunch(f.ctx)
	acc := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(acc) != 1 || acc[0].GetAccept().OfferIDs[0].Value != "big" {
		t.Fatalf("ACCEPTs %v, want p launched on the offer that fits it", acc)
	}
}

// A pod that found only a full agent ("Too many pods") leaves its back-off on an offer from an agent
// with a free pod slot, not on another offer from the full one: offers of agents with slots that came
// while it backed off were declined, back-off after back-off, at 5,000 agents.
func TestOfferFromAgentWithFreeSlotEndsBackOff(t *testing.T) {
	full := agentNode("h1", "ag1")
	full.Status.Allocatable = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
	f := newFixture(t, State{}, pod("there", "uid-there", boundTo("h1", "500m")))
	f.addNode(full)
	f.subscribe("fw-1")
	f.addPod(pod("p", "uid-p"))
	f.drain()
	f.offers(offer("full-1", "ag1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	p := f.pendingPod("default/p")
	msg, backOff := p.message, p.notBefore.Sub(f.clock.Now())
	if !strings.Contains(msg, "Too many pods") || strings.Contains(msg, "Insufficient") || backOff <= 0 {
		t.Fatalf("pending message %q, back-off %v: want a Too many pods failure and a back-off", msg, backOff)
	}
	// Still backing off: the full agent's room does not end it. An agent with slots (no Node yet: the
	// kubelet's 110) before the back-off ends: launched now.
	backOffEndsOn(t, f, offer("full-2", "ag1", "h1", 4, 4096), offer("free", "ag2", "h2", 4, 4096))
}

// backOffEndsOn offers stays, which must leave the backing-off pod waiting, then ends, on which it
// must be launched, before its back-off ends.
func backOffEndsOn(t *testing.T, f *fixture, stays, ends mesos.Offer) {
	t.Helper()
	f.offers(stays)
	f.s.cycleAndLaunch(f.ctx)
	if acc := f.caller.ofType(scheduler.Call_ACCEPT); len(acc) != 0 {
		t.Fatalf("launched during back-off on %s: %v", stays.ID.Value, acc)
	}
	f.offers(ends)
	f.s.cycleAndLaunch(f.ctx)
	acc := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(acc) != 1 || acc[0].GetAccept().OfferIDs[0].Value != ends.ID.Value {
		t.Fatalf("ACCEPTs %v, want the pod launched on %s", acc, ends.ID.Value)
	}
}

// pinnedToH2BackingOff is a fixture whose pod p, pinned to h2 (agent ag2), was judged on ag1's offer.
func pinnedToH2BackingOff(t *testing.T) *fixture {
	t.Helper()
	pinned := pod("p", "uid-p", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "h2"} })
	f := newFixture(t, State{})
	f.addNode(agentNode("h1", "ag1"))
	f.addNode(agentNode("h2", "ag2"))
	f.subscribe("fw-1")
	f.addPod(pinned)
	f.drain()
	f.offers(offer("other-1", "ag1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	return f
}

// A pod whose agent had no offer in hand when it was judged (a pod pinned to one agent of many, whose
// offers are held 500 ms and declined for 5 s) is retried when that agent offers, not when its back-off
// ends: another agent's offer leaves it backing off; its own agent's offer launches it.
func TestOfferFromWaitedForAgentEndsBackOff(t *testing.T) {
	f := pinnedToH2BackingOff(t)
	p := f.pendingPod("default/p")
	if backOff := p.notBefore.Sub(f.clock.Now()); backOff <= 0 || !slices.Equal(p.waits.Idle, []string{"ag2"}) {
		t.Fatalf("pending message %q, back-off %v, waits for %+v: want a back-off waiting for ag2", p.message, backOff, p.waits)
	}
	backOffEndsOn(t, f, offer("other-2", "ag1", "h1", 4, 4096), offer("its-own", "ag2", "h2", 4, 4096))
}

// Placement pools one agent's offers in one role, so the room that ends a back-off is their sum, less a
// new executor's share once: two offers of 0.3 cpu from the pod's agent hold its 0.5 cpu and the
// executor's 0.1 (taken from each offer, 0.2 + 0.2 would not).
func TestOffersOfOneAgentEndBackOffTogether(t *testing.T) {
	f := pinnedToH2BackingOff(t)
	if backOff := f.pendingPod("default/p").notBefore.Sub(f.clock.Now()); backOff <= 0 {
		t.Fatalf("back-off %v, want one", backOff)
	}
	f.offers(offer("its-own-1", "ag2", "h2", 0.3, 200), offer("its-own-2", "ag2", "h2", 0.3, 200))
	f.s.cycleAndLaunch(f.ctx)
	acc := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(acc) != 1 || len(acc[0].GetAccept().OfferIDs) != 2 {
		t.Fatalf("ACCEPTs %v, want the pod launched on both of ag2's offers", acc)
	}
}
