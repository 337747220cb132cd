package framework

import (
	"strings"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// sizedNode is an agent's Node with 2 cpus allocatable.
func sizedNode(host, agentID string) *corev1.Node {
	n := agentNode(host, agentID)
	n.Status.Allocatable = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods: resource.MustParse("110"),
	}
	return n
}

func withPriority(p int32) func(*corev1.Pod) {
	return func(pod *corev1.Pod) { pod.Spec.Priority = ptr.To(p) }
}

func boundTo(node string, cpu string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.NodeName = node
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		p.Status.Phase = corev1.PodRunning
	}
}

// preemptionFixture: two full agents, h1 with two 1-cpu pods, h2 with one 2-cpu pod, all of priority 1.
func preemptionFixture(t *testing.T, preemptor *corev1.Pod) *fixture {
	f := newFixture(t, State{},
		pod("h1-a", "uid-h1a", withPriority(1), boundTo("h1", "1")),
		pod("h1-b", "uid-h1b", withPriority(1), boundTo("h1", "1")),
		pod("h2-a", "uid-h2a", withPriority(1), boundTo("h2", "2")),
		preemptor)
	f.addNode(sizedNode("h1", "a1"))
	f.addNode(sizedNode("h2", "a2"))
	f.subscribe("fw-1")
	f.drain()
	return f
}

// A pod that fits nowhere while the cluster sends no offers preempts, after idlePreemptDelay, the
// fewest victims (kube-scheduler would pick h2's one pod over h1's two) the way kube-scheduler does:
// DisruptionTarget condition, graceful DELETE, a Preempted event, its own nominatedNodeName.
func TestPreemptionEvictsFewestVictimsAndNominates(t *testing.T) {
	hi := pod("hi", "uid-hi", withPriority(1000))
	hi.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	f := preemptionFixture(t, hi)
	f.s.cycleAndLaunch(f.ctx)
	f.clock.Step(idlePreemptDelay - time.Millisecond)
	f.s.cycleAndLaunch(f.ctx)
	if _, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "h2-a", metav1.GetOptions{}); err != nil {
		t.Fatalf("preempted before idlePreemptDelay: %v", err)
	}
	f.clock.Step(time.Millisecond)
	f.s.cycleAndLaunch(f.ctx)

	if _, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "h2-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("h2-a: %v, want deleted", err)
	}
	for _, name := range []string{"h1-a", "h1-b"} {
		if _, err := f.kube.CoreV1().Pods("default").Get(f.ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v, want kept", name, err)
		}
	}
	var patched, deleted bool
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" && strings.Contains(string(a.(interface{ GetPatch() []byte }).GetPatch()), `"reason":"PreemptionByScheduler"`) {
			patched = !deleted // the condition goes on before the DELETE
		}
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			deleted = true
		}
	}
	if !patched || !deleted {
		t.Errorf("actions %v: want the DisruptionTarget patch, then the DELETE", f.actions())
	}
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "hi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.NominatedNodeName != "h2" {
		t.Errorf("nominatedNodeName %q, want h2", got.Status.NominatedNodeName)
	}
	var preempted string
	for len(f.recorder.Events) > 0 {
		if e := <-f.recorder.Events; strings.Contains(e, EventPreempted) {
			preempted = e
		}
	}
	if want := "Normal Preempted Preempted by pod uid-hi on node h2"; preempted != want {
		t.Errorf("event %q, want %q", preempted, want)
	}
}

// The freed resources go to the nominated pod: a pending pod of lower priority does not get the
// agent's offer while the preemptor, though in back-off, is retried whenever its agent is offered.
func TestPreemptionNominatedPodGetsTheOffer(t *testing.T) {
	hi := pod("hi", "uid-hi", withPriority(1000), func(p *corev1.Pod) { p.Status.NominatedNodeName = "h2" })
	hi.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	lo := pod("lo", "uid-lo", withPriority(1))
	f := newFixture(t, State{}, hi, lo)
	f.addNode(sizedNode("h2", "a2"))
	f.subscribe("fw-1")
	f.drain()
	f.s.mu.Lock()
	f.s.pending["default/hi"].notBefore = t0.Add(time.Hour) // backed off
	f.s.mu.Unlock()
	f.offers(offer("o1", "a2", "h2", 2, 4096))
	f.s.cycleAndLaunch(f.ctx)
	tasks := launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))
	if len(tasks) != 1 || tasks[0] != taskIDPrefix+"uid-hi" {
		t.Fatalf("launched %v, want only hi's task", tasks)
	}
}

// preemptionPolicy Never: nothing is evicted, and the FailedScheduling message says why, as
// kube-scheduler's does.
func TestPreemptionNever(t *testing.T) {
	hi := pod("hi", "uid-hi", withPriority(1000), func(p *corev1.Pod) {
		p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptNever)
	})
	hi.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	f := preemptionFixture(t, hi)
	f.offers(offer("o1", "a1", "h1", 0.5, 1024, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "delete" {
			t.Errorf("deleted a pod: %v", f.actions())
		}
	}
	var msg string
	for len(f.recorder.Events) > 0 {
		if e := <-f.recorder.Events; strings.Contains(e, EventFailedScheduling) {
			msg = e
		}
	}
	if want := "0/1 agents are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."; !strings.HasSuffix(msg, want) {
		t.Errorf("FailedScheduling %q, want it to end %q", msg, want)
	}
}

// Pods of one priority preempt nobody and their message stays Place's: nothing runs lower.
func TestPreemptionSkippedWithoutLowerPriorities(t *testing.T) {
	p := pod("p", "uid-p", withPriority(1))
	p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	f := preemptionFixture(t, p)
	f.offers(offer("o1", "a1", "h1", 0.5, 1024, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	for len(f.recorder.Events) > 0 {
		if e := <-f.recorder.Events; strings.Contains(e, EventFailedScheduling) && !strings.HasSuffix(e, "0/1 agents are available: 1 Insufficient cpu.") {
			t.Errorf("FailedScheduling %q", e)
		}
	}
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "delete" || a.GetResource().Resource == "poddisruptionbudgets" {
			t.Errorf("action %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// A nominated pod that preemption can no longer help loses its nomination, freeing its agent's room.
func TestPreemptionClearsHopelessNomination(t *testing.T) {
	hi := pod("hi", "uid-hi", withPriority(1000), func(p *corev1.Pod) { p.Status.NominatedNodeName = "h2" })
	hi.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("8")
	f := preemptionFixture(t, hi)
	f.offers(offer("o1", "a1", "h1", 0.5, 1024, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "hi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.NominatedNodeName != "" {
		t.Errorf("nominatedNodeName %q, want cleared", got.Status.NominatedNodeName)
	}
}

// Without offers, a pod preemption cannot help is dry-run again only after another idlePreemptDelay,
// not on every tick.
func TestPreemptionIdleRetriesEveryDelay(t *testing.T) {
	hi := pod("hi", "uid-hi", withPriority(1000))
	hi.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("8")
	f := preemptionFixture(t, hi)
	f.s.cycleAndLaunch(f.ctx)
	f.clock.Step(idlePreemptDelay)
	f.s.cycleAndLaunch(f.ctx) // the first dry run: nothing helps
	f.s.preemption.mu.Lock()
	since := f.s.preemption.waiting["uid-hi"]
	f.s.preemption.mu.Unlock()
	if !since.Equal(f.clock.Now()) {
		t.Errorf("waiting since %v, want the dry run's time %v", since, f.clock.Now())
	}
}

// A preemptor whose victim still terminates on its nominated Node waits for it, as kube-scheduler's
// PodEligibleToPreemptOthers does, instead of preempting more pods elsewhere: the victim's
// DisruptionTarget condition must survive the pod cache, which keeps little of a running pod's status.
func TestPreemptionWaitsForItsVictimThroughTheCache(t *testing.T) {
	hi := pod("hi", "uid-hi", withPriority(1000), func(p *corev1.Pod) { p.Status.NominatedNodeName = "h2" })
	hi.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	f := preemptionFixture(t, hi)
	victim, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "h2-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim.DeletionTimestamp = ptr.To(metav1.NewTime(f.clock.Now()))
	victim.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: corev1.PodReasonPreemptionByScheduler},
	}
	f.updateCache(victim)
	f.s.cycleAndLaunch(f.ctx)
	f.clock.Step(idlePreemptDelay)
	f.s.cycleAndLaunch(f.ctx)
	for _, name := range []string{"h1-a", "h1-b"} {
		if _, err := f.kube.CoreV1().Pods("default").Get(f.ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: %v, want kept while h2's victim terminates", name, err)
		}
	}
}
