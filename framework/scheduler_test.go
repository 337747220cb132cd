package framework

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/podtranslate"
)

func bound(node string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

func running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = ptr.To(metav1.NewTime(t0))
}

func TestLaunchPersistsThenBindsThenAccepts(t *testing.T) {
	f := newFixture(t, State{}, pod("a", "uid-a"), pod("b", "uid-b"))
	// At ACCEPT time the FrameworkID and the agent's ExecutorInfo must be stored and both pods bound.
	var atAccept []string
	f.caller.onCall = func(c *scheduler.Call) {
		if c.GetType() != scheduler.Call_ACCEPT {
			return
		}
		st, err := f.store.Load(f.ctx)
		if err != nil {
			t.Errorf("loading state at ACCEPT: %v", err)
		}
		_, hasExec := st.Executors["a1"]
		atAccept = append(f.actions(), "frameworkID="+st.FrameworkID, "executor persisted="+boolString(hasExec))
	}
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)

	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(accepts) != 1 {
		t.Fatalf("ACCEPT calls = %d, want 1 (calls: %v)", len(accepts), f.caller.types())
	}
	if diff := cmp.Diff([]string{"pod-uid-a", "pod-uid-b"}, launchedTasks(accepts)); diff != "" {
		t.Errorf("launched tasks (-want +got):\n%s", diff)
	}
	var bindings int
	for _, a := range atAccept {
		if a == "create pods/binding" {
			bindings++
		}
	}
	if bindings != 2 || !contains(atAccept, "frameworkID=fw-1") || !contains(atAccept, "executor persisted=true") {
		t.Errorf("state at ACCEPT = %v, want 2 bindings, the FrameworkID and the executor persisted", atAccept)
	}
	acc := accepts[0].GetAccept()
	if diff := cmp.Diff([]string{"o1"}, offerIDs(acc.OfferIDs)); diff != "" {
		t.Errorf("accepted offers (-want +got):\n%s", diff)
	}
	ti := acc.Operations[0].GetLaunch().TaskInfos[0]
	if ti.GetExecutor().ExecutorID.Value != ExecutorID || ti.AgentID.Value != "a1" {
		t.Errorf("task executor/agent = %s/%s", ti.GetExecutor().ExecutorID.Value, ti.AgentID.Value)
	}
	if len(ti.GetExecutor().Resources) == 0 {
		t.Error("new executor launched without resources")
	}
	if accepts[0].GetFrameworkID().GetValue() != "fw-1" {
		t.Errorf("ACCEPT framework_id = %q", accepts[0].GetFrameworkID().GetValue())
	}
	if c := f.s.book.Counts(); c.Accepted != 1 || !c.Balanced() {
		t.Errorf("book counts = %+v, want 1 accepted and balanced", c)
	}
	// A second cycle with more offers launches nothing twice.
	f.drain()
	f.offers(offer("o2", "a1", "h1", 2, 2048, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))); n != 2 {
		t.Errorf("tasks launched after second cycle = %d, want 2", n)
	}
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func offerIDs(ids []mesos.OfferID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Value
	}
	return out
}

func TestServedSchedulerNames(t *testing.T) {
	tests := []struct {
		name        string
		schedName   string
		serveDefult bool
		gated       bool
		wantLaunch  bool
	}{
		{name: "kubemesos", schedName: "kubemesos", wantLaunch: true},
		{name: "default not served", schedName: "default-scheduler", wantLaunch: false},
		{name: "default served", schedName: "default-scheduler", serveDefult: true, wantLaunch: true},
		{name: "other", schedName: "volcano", serveDefult: true, wantLaunch: false},
		{name: "gated", schedName: "kubemesos", gated: true, wantLaunch: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, State{})
			if tt.serveDefult {
				f.s.schedulerNames[DefaultSchedulerName] = true
			}
			f.addPod(pod("p", "uid-p", func(p *corev1.Pod) {
				p.Spec.SchedulerName = tt.schedName
				if tt.gated {
					p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
				}
			}))
			f.subscribe("fw-1")
			f.drain()
			f.offers(offer("o1", "a1", "h1", 4, 4096))
			f.s.cycleAndLaunch(f.ctx)
			got := len(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))) > 0
			if got != tt.wantLaunch {
				t.Errorf("launched = %v, want %v", got, tt.wantLaunch)
			}
		})
	}
}

// A restarted framework adopts running tasks (lesson #466: never kill them) and launches the pod it had
// bound but not launched before the crash, on the agent it was bound to, without binding it again.
func TestRestartAdoptsRunningAndLaunchesBoundButNotLaunched(t *testing.T) {
	// How a master answers explicit reconciliation of a task it never received: TASK_UNKNOWN (agent
	// unknown), TASK_GONE (partition-aware, agent registered: "Task is unknown to the agent"),
	// TASK_LOST (without partition awareness).
	for _, answer := range []mesos.TaskState{mesos.TASK_UNKNOWN, mesos.TASK_GONE, mesos.TASK_LOST} {
		t.Run(answer.String(), func(t *testing.T) { testRestartAdopts(t, answer) })
	}
}

func testRestartAdopts(t *testing.T, answer mesos.TaskState) {
	// The previous incarnation stored the ExecutorInfo it launched on a1.
	previous := NewExecutorInfo(ExecutorSettings{URI: "http://fw/executor/kubemesos", CPUs: 0.1, MemMB: 64})
	f := newFixture(t, State{FrameworkID: "fw-1", Executors: map[string]mesos.ExecutorInfo{"a1": previous}},
		pod("run", "uid-run", bound("h1"), running),
		pod("crashed", "uid-crashed", bound("h1")),
		pod("done", "uid-done", bound("h1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")

	recon := f.caller.ofType(scheduler.Call_RECONCILE)
	if len(recon) != 2 {
		t.Fatalf("RECONCILE calls = %d, want explicit + implicit", len(recon))
	}
	var asked []string
	for _, task := range recon[0].GetReconcile().Tasks {
		asked = append(asked, task.TaskID.Value+"@"+task.GetAgentID().GetValue())
	}
	if diff := cmp.Diff([]string{"pod-uid-crashed@a1", "pod-uid-run@a1"}, sorted(asked)); diff != "" {
		t.Errorf("explicit reconciliation (-want +got):\n%s", diff)
	}
	if len(recon[1].GetReconcile().Tasks) != 0 {
		t.Errorf("second RECONCILE is not implicit: %v", recon[1].GetReconcile().Tasks)
	}

	// Offers before the answers launch nothing: the tasks may exist.
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Fatalf("ACCEPT before reconciliation answered: %d", n)
	}

	f.update(status("pod-uid-run", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	f.update(status("pod-uid-crashed", "a1", answer, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	if n := len(f.caller.ofType(scheduler.Call_ACKNOWLEDGE)); n != 0 {
		t.Errorf("acknowledged %d reconciliation answers without uuid", n)
	}
	f.drain()
	f.offers(offer("o2", "a1", "h1", 4, 4096, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)

	if diff := cmp.Diff([]string{"pod-uid-crashed"}, launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))); diff != "" {
		t.Errorf("launched after restart (-want +got):\n%s", diff)
	}
	// The cache keeps bound pods without their containers' commands; the task carries the pod read
	// whole from the API server.
	cached, _ := f.s.pods.Pods("default").Get("crashed")
	if cached == nil || cached.Spec.Containers[0].Command != nil {
		t.Errorf("the cache keeps a bound pod's command: %v", cached)
	}
	for _, c := range f.caller.ofType(scheduler.Call_ACCEPT) {
		for _, op := range c.GetAccept().GetOperations() {
			for _, ti := range op.GetLaunch().GetTaskInfos() {
				launched, err := podtranslate.PodFromTaskData(ti.Data)
				if err != nil || !reflect.DeepEqual(launched.Spec.Containers[0].Command, []string{"sleep", "3600"}) {
					t.Errorf("task %s carries the pod %v (%v), want its whole spec", ti.TaskID.Value, launched, err)
				}
			}
		}
	}
	if contains(f.actions(), "create pods/binding") {
		t.Error("a bound pod was bound again")
	}
	if n := len(f.caller.ofType(scheduler.Call_KILL)); n != 0 {
		t.Errorf("restart killed %d tasks", n)
	}
	if !f.s.nodes.Active("a1") {
		t.Error("a reconciliation answer about one task marked its agent inactive")
	}
}

func sorted(xs []string) []string {
	out := append([]string(nil), xs...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// A pod whose task Mesos does not know after it started is not run twice: it fails (NodeLost).
func TestUnknownTaskOfStartedPodFails(t *testing.T) {
	f := newFixture(t, State{FrameworkID: "fw-1"}, pod("run", "uid-run", bound("h1"), running))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	f.update(status("pod-uid-run", "a1", mesos.TASK_UNKNOWN, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "run", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != podtranslate.ReasonNodeLost {
		t.Errorf("pod status = %s/%s, want Failed/NodeLost", got.Status.Phase, got.Status.Reason)
	}
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Errorf("relaunched a started pod: %d ACCEPTs", n)
	}
}

func TestDeletedPodKilledWithGraceThenRemoved(t *testing.T) {
	f := newFixture(t, State{FrameworkID: "fw-1"}, pod("p", "uid-p", bound("h1"), running))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	f.update(status("pod-uid-p", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("u1")))
	f.drain()

	p := f.refreshCache("default", "p").DeepCopy()
	p.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
	p.DeletionGracePeriodSeconds = ptr.To[int64](7)
	f.updateCache(p)
	f.drain()

	kills := f.caller.ofType(scheduler.Call_KILL)
	if len(kills) != 1 {
		t.Fatalf("KILL calls = %d, want 1", len(kills))
	}
	k := kills[0].GetKill()
	if k.TaskID.Value != "pod-uid-p" || k.GetAgentID().GetValue() != "a1" ||
		k.GetKillPolicy().GetGracePeriod().GetNanoseconds() != (7*time.Second).Nanoseconds() {
		t.Errorf("KILL = %+v, want pod-uid-p on a1 with 7s grace", k)
	}
	if _, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{}); err != nil {
		t.Fatalf("pod deleted before its task ended: %v", err)
	}
	// Status writes during termination do not repeat the KILL; a KILL unanswered for killRepeat is.
	f.updateCache(p)
	f.drain()
	if n := len(f.caller.ofType(scheduler.Call_KILL)); n != 1 {
		t.Errorf("KILL repeated on a pod update: %d", n)
	}
	f.clock.Step(killRepeat)
	f.updateCache(p)
	f.drain()
	if n := len(f.caller.ofType(scheduler.Call_KILL)); n != 2 {
		t.Errorf("KILL not repeated after %v: %d", killRepeat, n)
	}

	f.update(status("pod-uid-p", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("u2")))
	f.drain()
	if _, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod still there after its task was KILLED: %v", err)
	}
	acks := f.caller.ofType(scheduler.Call_ACKNOWLEDGE)
	var uuids []string
	for _, a := range acks {
		uuids = append(uuids, string(a.GetAcknowledge().UUID))
	}
	if diff := cmp.Diff([]string{"u1", "u2"}, uuids); diff != "" {
		t.Errorf("acknowledged (-want +got):\n%s", diff)
	}
}

func TestMesosOnlyTerminalStates(t *testing.T) {
	tests := []struct {
		name       string
		status     mesos.TaskStatus
		failWrite  bool
		wantPhase  corev1.PodPhase
		wantReason string
		wantAck    bool
		wantReady  corev1.ConditionStatus
	}{
		{name: "gone from master", status: status("pod-uid-p", "a1", mesos.TASK_GONE, mesos.SOURCE_MASTER, mesos.REASON_AGENT_REMOVED.Enum(), []byte("u")),
			wantPhase: corev1.PodFailed, wantReason: podtranslate.ReasonNodeLost, wantAck: true},
		{name: "executor died", status: status("pod-uid-p", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_EXECUTOR_TERMINATED.Enum(), []byte("u")),
			wantPhase: corev1.PodFailed, wantReason: podtranslate.ReasonExecutorTerminated, wantAck: true},
		{name: "error", status: status("pod-uid-p", "a1", mesos.TASK_ERROR, mesos.SOURCE_MASTER, mesos.REASON_TASK_INVALID.Enum(), []byte("u")),
			wantPhase: corev1.PodFailed, wantReason: podtranslate.ReasonTaskInvalid, wantAck: true},
		{name: "executor reports failure itself", status: status("pod-uid-p", "a1", mesos.TASK_FAILED, mesos.SOURCE_EXECUTOR, nil, []byte("u")),
			wantPhase: corev1.PodRunning, wantAck: true},
		{name: "unreachable: not ready, phase kept", status: status("pod-uid-p", "a1", mesos.TASK_UNREACHABLE, mesos.SOURCE_MASTER, nil, []byte("u")),
			wantPhase: corev1.PodRunning, wantAck: true, wantReady: corev1.ConditionFalse},
		{name: "API server down: no ack, Mesos resends", status: status("pod-uid-p", "a1", mesos.TASK_LOST, mesos.SOURCE_MASTER, mesos.REASON_AGENT_REMOVED.Enum(), []byte("u")),
			failWrite: true, wantPhase: corev1.PodRunning, wantAck: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, State{FrameworkID: "fw-1"}, pod("p", "uid-p", bound("h1"), running, func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Ready: true, Started: ptr.To(true),
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}}}
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			}))
			f.addNode(agentNode("h1", "a1"))
			if tt.failWrite {
				f.kube.PrependReactor("update", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewServiceUnavailable("down")
				})
			}
			f.subscribe("fw-1")
			f.update(tt.status)
			got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Phase != tt.wantPhase || got.Status.Reason != tt.wantReason {
				t.Errorf("pod status = %s/%q, want %s/%q", got.Status.Phase, got.Status.Reason, tt.wantPhase, tt.wantReason)
			}
			if tt.wantPhase == corev1.PodFailed {
				// As the kubelet ends a pod whose containers it lost: terminated, unknown, 137, unready.
				cs := got.Status.ContainerStatuses[0]
				if term := cs.State.Terminated; cs.Ready || term == nil || term.Reason != podtranslate.ReasonContainerStatusUnknown || term.ExitCode != 137 || !term.StartedAt.Equal(ptr.To(metav1.NewTime(t0))) {
					t.Errorf("container status of the ended pod = %+v, want terminated ContainerStatusUnknown/137 since t0, not ready", cs)
				}
				for _, c := range got.Status.Conditions {
					if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != "PodFailed") {
						t.Errorf("Ready of the ended pod = %s/%s, want False/PodFailed", c.Status, c.Reason)
					}
				}
			}
			if tt.wantReady != "" {
				var ready corev1.ConditionStatus
				for _, c := range got.Status.Conditions {
					if c.Type == corev1.PodReady {
						ready = c.Status
					}
				}
				if ready != tt.wantReady {
					t.Errorf("Ready = %q, want %q", ready, tt.wantReady)
				}
			}
			if acked := len(f.caller.ofType(scheduler.Call_ACKNOWLEDGE)) == 1; acked != tt.wantAck {
				t.Errorf("acknowledged = %v, want %v", acked, tt.wantAck)
			}
		})
	}
}

func TestUnschedulablePodGetsEventAndOffersDeclined(t *testing.T) {
	f := newFixture(t, State{}, pod("big", "uid-big", func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = *resourceQuantity("64")
	}))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096), offer("o2", "a2", "h2", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)

	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Fatalf("ACCEPT for an unplaceable pod")
	}
	declines := f.caller.ofType(scheduler.Call_DECLINE)
	if len(declines) != 1 {
		t.Fatalf("DECLINE calls = %d, want 1", len(declines))
	}
	d := declines[0].GetDecline()
	if diff := cmp.Diff([]string{"o1", "o2"}, sorted(offerIDs(d.OfferIDs))); diff != "" {
		t.Errorf("declined (-want +got):\n%s", diff)
	}
	if d.GetFilters().GetRefuseSeconds() != 5 {
		t.Errorf("refuse_seconds = %v, want 5", d.GetFilters().GetRefuseSeconds())
	}
	select {
	case e := <-f.recorder.Events:
		if !strings.Contains(e, EventFailedScheduling) || !strings.Contains(e, "0/2 agents are available") || !strings.Contains(e, "cpu") {
			t.Errorf("event = %q, want FailedScheduling naming cpu", e)
		}
	default:
		t.Error("no FailedScheduling event")
	}
	// Backed off: the next cycle right away does not retry it, one after the back-off does.
	f.offers(offer("o3", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_DECLINE)); n != 1 {
		t.Errorf("retried during back-off: %d DECLINEs", n)
	}
	f.clock.Step(minPodBackoff)
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_DECLINE)); n != 2 {
		t.Errorf("not retried after back-off: %d DECLINEs", n)
	}
}

// Every offer received ends accepted, declined (also when held past --offer-hold) or rescinded (#636).
func TestOfferAccountingAndSuppress(t *testing.T) {
	f := newFixture(t, State{})
	f.subscribe("fw-1")
	f.offers(offer("o1", "a1", "h1", 4, 4096), offer("o2", "a2", "h2", 4, 4096), offer("o3", "a3", "h3", 4, 4096))
	f.event(&scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: mesos.OfferID{Value: "o3"}}})
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_SUPPRESS)); n != 1 {
		t.Errorf("SUPPRESS calls with nothing pending = %d, want 1", n)
	}
	if n := len(f.caller.ofType(scheduler.Call_DECLINE)); n != 0 {
		t.Fatalf("declined before --offer-hold passed")
	}
	f.clock.Step(DefaultConfig().OfferHold)
	f.s.cycleAndLaunch(f.ctx)
	declines := f.caller.ofType(scheduler.Call_DECLINE)
	if len(declines) != 1 || len(declines[0].GetDecline().OfferIDs) != 2 {
		t.Fatalf("expired offers not declined once: %v", declines)
	}
	// A pod arriving while suppressed revives at once.
	f.addPod(pod("p", "uid-p"))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_REVIVE)); n != 1 {
		t.Errorf("REVIVE calls after a pod arrived = %d, want 1", n)
	}
	f.offers(offer("o4", "a1", "h1", 4, 4096), offer("o5", "a2", "h2", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	// Every pending pod placed: the offer left is held for the next pods, until --offer-hold.
	if c := f.s.book.Counts(); c.Held != 1 || c.Accepted != 1 {
		t.Errorf("after placing p: %d held and %d accepted, want the unused offer held", c.Held, c.Accepted)
	}
	f.clock.Step(DefaultConfig().OfferHold)
	f.s.cycleAndLaunch(f.ctx)
	c := f.s.book.Counts()
	want := c
	want.Received, want.Accepted, want.Declined, want.Rescinded, want.Held, want.InFlight = 5, 1, 3, 1, 0, 0
	if diff := cmp.Diff(want, c); diff != "" || !c.Balanced() {
		t.Errorf("book counts (-want +got):\n%s", diff)
	}
}

// The ExecutorInfo of an executor running on an agent is reused even when the settings changed since
// (lesson #572); agents without one get the current settings.
func TestExecutorInfoReusedAcrossSettingChanges(t *testing.T) {
	old := NewExecutorInfo(ExecutorSettings{URI: "http://old-fw/executor/kubemesos", LogLevel: "debug", CPUs: 0.5, MemMB: 32})
	f := newFixture(t, State{FrameworkID: "fw-1", Executors: map[string]mesos.ExecutorInfo{"a1": old}},
		pod("p1", "uid-1"), pod("p2", "uid-2", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "h2"} }))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096, ExecutorID), offer("o2", "a2", "h2", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	got := map[string]string{}
	for _, c := range f.caller.ofType(scheduler.Call_ACCEPT) {
		for _, ti := range c.GetAccept().Operations[0].GetLaunch().TaskInfos {
			got[ti.TaskID.Value] = ti.GetExecutor().GetCommand().URIs[0].Value
		}
	}
	want := map[string]string{"pod-uid-1": "http://old-fw/executor/kubemesos", "pod-uid-2": "http://fw:10260/executor/kubemesos"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("executor URIs per task (-want +got):\n%s", diff)
	}
	st, err := f.store.Load(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Executors) != 2 || st.Executors["a2"].Command.URIs[0].Value != "http://fw:10260/executor/kubemesos" {
		t.Errorf("stored executors = %v", st.Executors)
	}
	// The executor on a1 exits: the next pod there starts one with the current settings.
	f.event(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{
		AgentID: &mesos.AgentID{Value: "a1"}, ExecutorID: &mesos.ExecutorID{Value: ExecutorID}}})
	if st, _ := f.store.Load(f.ctx); len(st.Executors) != 1 {
		t.Errorf("executor of a1 still stored after it terminated: %v", st.Executors)
	}
}

// launchedOnA1 is a fixture whose pod p was launched on agent a1 (offer o1) and is bound to its Node h1
// in the cache, as the informer delivers it after the Binding.
func launchedOnA1(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, State{}, pod("p", "uid-p"))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	f.addNode(agentNode("h1", "a1"))
	f.refreshCache("default", "p")
	f.drain()
	return f
}

// Repeated news of one lost launch (explicit reconciliation is repeated until every task is answered,
// and answers again each round) count as one drop: the pod is relaunched, not failed. An ACCEPT that
// timed out under load was reconciled 5 times and its 2 pods failed with "dropped 3 times".
func TestRepeatedAnswersForOneLaunchAreOneDrop(t *testing.T) {
	f := launchedOnA1(t)
	for i := 0; i < maxDrops+1; i++ {
		f.update(status("pod-uid-p", "a1", mesos.TASK_DROPPED, mesos.SOURCE_MASTER, nil, []byte{byte(i)}))
		f.drain()
	}
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase == corev1.PodFailed {
		t.Fatalf("pod failed after %d answers about one launch: %s %s", maxDrops+1, got.Status.Reason, got.Status.Message)
	}
	f.offers(offer("o2", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))); n != 2 {
		t.Errorf("%d launches, want the first and one relaunch", n)
	}
}

func TestDroppedTaskRelaunchedThenFailed(t *testing.T) {
	f := newFixture(t, State{}, pod("p", "uid-p"))
	f.subscribe("fw-1")
	f.drain()
	for i := 1; i <= maxDrops; i++ {
		f.offers(offer("o"+string(rune('0'+i)), "a1", "h1", 4, 4096))
		f.s.cycleAndLaunch(f.ctx)
		if n := len(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))); n != i {
			t.Fatalf("after %d drops: %d launches, want %d", i-1, n, i)
		}
		// Binding happened in the API; the informer delivers the bound pod.
		f.addNode(agentNode("h1", "a1"))
		f.refreshCache("default", "p")
		f.drain()
		f.update(status("pod-uid-p", "a1", mesos.TASK_DROPPED, mesos.SOURCE_MASTER, nil, []byte{byte(i)}))
		f.drain()
	}
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != corev1.PodFailed || got.Status.Reason != PodReasonTaskDropped {
		t.Errorf("after %d drops pod is %s/%s, want Failed/%s", maxDrops, got.Status.Phase, got.Status.Reason, PodReasonTaskDropped)
	}
	if n := countOf(f.actions(), "create pods/binding"); n != 1 {
		t.Errorf("bindings = %d, want 1", n)
	}
}

func countOf(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func TestTaskOfDeletedPodKilled(t *testing.T) {
	f := newFixture(t, State{FrameworkID: "fw-1"})
	f.subscribe("fw-1")
	// Implicit reconciliation reports a running task whose pod no longer exists.
	f.update(status("pod-uid-gone", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	kills := f.caller.ofType(scheduler.Call_KILL)
	if len(kills) != 1 || kills[0].GetKill().TaskID.Value != "pod-uid-gone" {
		t.Errorf("KILL calls = %v, want pod-uid-gone", kills)
	}
	// Once it ended, nothing about it is kept.
	f.update(status("pod-uid-gone", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("u")))
	f.s.mu.Lock()
	n := len(f.s.tasks)
	f.s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d task records kept after the orphan task ended", n)
	}
}

func TestFrameworkIDPersistFailureEndsSubscription(t *testing.T) {
	f := newFixture(t, State{})
	down := true
	f.kube.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, apierrors.NewServiceUnavailable("down")
		}
		return false, nil, nil
	})
	hb := 15.0
	err := f.s.HandleEvent(f.ctx, &scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: "fw-1"}, HeartbeatIntervalSeconds: &hb}})
	if err == nil {
		t.Fatal("SUBSCRIBED handled although the FrameworkID could not be stored")
	}
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.addPod(pod("p", "uid-p"))
	f.drain()
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Errorf("launched without a stored FrameworkID")
	}
	// The re-subscription (with the same FrameworkID) stores it before going on.
	f.s.Disconnected(nil)
	down = false
	f.subscribe("fw-1")
	if st, err := f.store.Load(f.ctx); err != nil || st.FrameworkID != "fw-1" {
		t.Errorf("stored FrameworkID after re-subscription = %q (%v), want fw-1", st.FrameworkID, err)
	}
}

// A pod marked NotReady while its agent was unreachable gets its readiness back when the task runs again.
func TestUnreachableThenRunningRestoresReadiness(t *testing.T) {
	readyPod := pod("p", "uid-p", bound("h1"), running, func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
		}
	})
	f := newFixture(t, State{FrameworkID: "fw-1"}, readyPod)
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	conditions := func() map[corev1.PodConditionType]corev1.ConditionStatus {
		p := f.refreshCache("default", "p")
		out := map[corev1.PodConditionType]corev1.ConditionStatus{}
		for _, c := range p.Status.Conditions {
			out[c.Type] = c.Status
		}
		return out
	}
	f.offers(offer("o1", "a1", "h1", 1, 1024, ExecutorID))
	f.update(status("pod-uid-p", "a1", mesos.TASK_UNREACHABLE, mesos.SOURCE_MASTER, mesos.REASON_AGENT_DISCONNECTED.Enum(), []byte("u1")))
	if diff := cmp.Diff(map[corev1.PodConditionType]corev1.ConditionStatus{corev1.PodReady: "False", corev1.ContainersReady: "False"}, conditions()); diff != "" {
		t.Errorf("while unreachable (-want +got):\n%s", diff)
	}
	if f.s.nodes.Active("a1") {
		t.Error("agent of an unreachable task still active")
	}
	// The agent offers again: its unreachable task is reconciled, since Mesos sends no update for it.
	f.caller.reset()
	f.offers(offer("o2", "a1", "h1", 1, 1024, ExecutorID))
	recon := f.caller.ofType(scheduler.Call_RECONCILE)
	if len(recon) != 1 || len(recon[0].GetReconcile().Tasks) != 1 || recon[0].GetReconcile().Tasks[0].TaskID.Value != "pod-uid-p" {
		t.Fatalf("RECONCILE after the agent came back = %v, want pod-uid-p", recon)
	}
	f.update(status("pod-uid-p", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	if diff := cmp.Diff(map[corev1.PodConditionType]corev1.ConditionStatus{corev1.PodReady: "True", corev1.ContainersReady: "True"}, conditions()); diff != "" {
		t.Errorf("after the agent came back (-want +got):\n%s", diff)
	}
	if got, _ := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{}); got.Status.Phase != corev1.PodRunning {
		t.Errorf("phase = %s, want Running throughout", got.Status.Phase)
	}
}

type fakeExecutors map[string]*mesos.ExecutorInfo // by agent ID

func (f fakeExecutors) RunningExecutor(_ context.Context, frameworkID, agentID, executorID string) (*mesos.ExecutorInfo, error) {
	info := f[agentID]
	if info == nil || info.GetFrameworkID().GetValue() != frameworkID || info.ExecutorID.Value != executorID {
		return nil, nil
	}
	return info, nil
}

// With its state lost, the framework still launches onto a running executor with that executor's own
// ExecutorInfo, from the master's GET_EXECUTORS, and stores it; without it, it launches nothing there.
func TestRunningExecutorAdoptedFromMaster(t *testing.T) {
	running := NewExecutorInfo(ExecutorSettings{URI: "http://previous-fw/executor/kubemesos", LogLevel: "warn", CPUs: 0.3, MemMB: 16})
	running.FrameworkID = &mesos.FrameworkID{Value: "fw-1"}
	tests := []struct {
		name       string
		operator   executorLister
		wantLaunch bool
	}{
		{name: "master lists it", operator: fakeExecutors{"a1": &running}, wantLaunch: true},
		{name: "master does not list it", operator: fakeExecutors{}, wantLaunch: false},
		{name: "no operator API", wantLaunch: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, State{FrameworkID: "fw-1"}, pod("p", "uid-p"))
			f.s.operator = tt.operator
			f.subscribe("fw-1")
			f.drain()
			f.offers(offer("o1", "a1", "h1", 4, 4096, ExecutorID))
			f.s.cycleAndLaunch(f.ctx)
			accepts := f.caller.ofType(scheduler.Call_ACCEPT)
			if got := len(accepts) == 1; got != tt.wantLaunch {
				t.Fatalf("launched = %v, want %v (calls %v)", got, tt.wantLaunch, f.caller.types())
			}
			if !tt.wantLaunch {
				if d := f.caller.ofType(scheduler.Call_DECLINE); len(d) != 1 {
					t.Errorf("offer not declined: %v", f.caller.types())
				}
				return
			}
			used := accepts[0].GetAccept().Operations[0].GetLaunch().TaskInfos[0].GetExecutor()
			if !used.Equal(&running) {
				t.Errorf("launched with executor %v, want the running one", used)
			}
			st, _ := f.store.Load(f.ctx)
			if stored := st.Executors["a1"]; !stored.Equal(&running) {
				t.Errorf("stored executor %v, want the running one", stored)
			}
		})
	}
}

// A placement whose only pod cannot be bound declines its offer (and the book counts it declined).
func TestBindingFailureDeclinesOffer(t *testing.T) {
	f := newFixture(t, State{}, pod("p", "uid-p"))
	f.kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "binding" {
			return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
		}
		return false, nil, nil
	})
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Errorf("ACCEPT without a bound pod")
	}
	declines := f.caller.ofType(scheduler.Call_DECLINE)
	if len(declines) != 1 || declines[0].GetDecline().OfferIDs[0].Value != "o1" {
		t.Errorf("DECLINE calls = %v, want o1", declines)
	}
	if c := f.s.book.Counts(); c.Accepted != 0 || c.Declined != 1 || !c.Balanced() {
		t.Errorf("book counts = %+v, want 1 declined", c)
	}
	var events []string
	for len(f.recorder.Events) > 0 {
		events = append(events, <-f.recorder.Events)
	}
	if len(events) == 0 || !strings.Contains(events[0], EventFailedBinding) {
		t.Errorf("events = %v, want FailedBinding", events)
	}
	// The pod is placed again once the API server works: it is still pending, no longer in flight nor
	// assumed on h1, and the cycle's record of the room its launch would leave on a1 is gone.
	f.s.mu.Lock()
	_, pending := f.s.pending["default/p"]
	_, assumed := f.s.placement.assumed["uid-p"]
	inflight := f.s.inflight["uid-p"]
	f.s.mu.Unlock()
	if !pending || assumed || inflight {
		t.Errorf("after a failed binding: pending %v (want true), assumed %v, in flight %v (want false)", pending, assumed, inflight)
	}
	if r := f.s.book.Returning(f.clock.Now()); len(r) != 0 {
		t.Errorf("returning room %v after a failed launch, want none", r)
	}
}

// Explicit reconciliation is repeated with back-off until every task answered; implicit reconciliation
// runs every --reconcile-interval.
func TestReconciliationRepeats(t *testing.T) {
	f := newFixture(t, State{FrameworkID: "fw-1"}, pod("run", "uid-run", bound("h1"), running))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	explicit := func() int {
		n := 0
		for _, c := range f.caller.ofType(scheduler.Call_RECONCILE) {
			if len(c.GetReconcile().Tasks) > 0 {
				n++
			}
		}
		return n
	}
	implicit := func() int { return len(f.caller.ofType(scheduler.Call_RECONCILE)) - explicit() }
	var got []int
	for step := 0; step < 8; step++ { // 8 seconds, one cycle per second
		f.clock.Step(time.Second)
		f.s.cycleAndLaunch(f.ctx)
		got = append(got, explicit())
	}
	// Sent at subscription (t=0), then after 1 s, 2 s and 4 s more (t=1, 3, 7).
	if diff := cmp.Diff([]int{2, 2, 3, 3, 3, 3, 4, 4}, got); diff != "" {
		t.Errorf("explicit RECONCILE calls after each second (-want +got):\n%s", diff)
	}
	f.update(status("pod-uid-run", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	f.clock.Step(time.Minute)
	f.s.cycleAndLaunch(f.ctx)
	if n := explicit(); n != 4 {
		t.Errorf("explicit reconciliation repeated after every task answered: %d calls", n)
	}
	if n := implicit(); n != 1 {
		t.Errorf("implicit RECONCILE calls = %d before the interval, want 1", n)
	}
	f.clock.Step(DefaultConfig().ReconcileInterval)
	f.s.cycleAndLaunch(f.ctx)
	if n := implicit(); n != 2 {
		t.Errorf("implicit RECONCILE calls = %d after the interval, want 2", n)
	}
}

// listens gives the pod's container a containerPort without hostPort.
func listens(port int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: port}} }
}

func taskPorts(ti mesos.TaskInfo) []string {
	var out []string
	for _, r := range ti.Resources {
		if r.Name == "ports" {
			out = append(out, mesos.Resources{r}.Format())
		}
	}
	return out
}

func TestPodNetworkHostModeTakesContainerPorts(t *testing.T) {
	f := newFixture(t, State{}, pod("a", "uid-a", listens(31500)), pod("b", "uid-b", listens(31500)))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)

	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if diff := cmp.Diff([]string{"pod-uid-a"}, launchedTasks(accepts)); diff != "" {
		t.Fatalf("launched tasks (-want +got):\n%s", diff)
	}
	ti := accepts[0].GetAccept().Operations[0].GetLaunch().TaskInfos[0]
	if diff := cmp.Diff([]string{"ports:[31500]"}, taskPorts(ti)); diff != "" {
		t.Errorf("task ports (-want +got):\n%s", diff)
	}
	if got := podtranslate.PodNetworkOf(ti.Labels); got != "" {
		t.Errorf("host mode task labelled %s=%q", podtranslate.LabelPodNetwork, got)
	}
	want := "Warning FailedScheduling 0/1 agents are available: 1 node(s) didn't have free ports for the requested pod ports (port 31500)."
	var events []string
	for len(f.recorder.Events) > 0 {
		events = append(events, <-f.recorder.Events)
	}
	if !contains(events, want) {
		t.Errorf("events = %q, want %q", events, want)
	}
}

func TestPodNetworkLabelsTasks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PodNetwork = "kubemesos"
	hostNet := func(p *corev1.Pod) { p.Spec.HostNetwork = true }
	f := newFixtureConfig(t, cfg, fake.NewClientset(), State{},
		pod("a", "uid-a", listens(31500)), pod("b", "uid-b", listens(31500)), pod("h", "uid-h", listens(31600), hostNet))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)

	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	// a and b are two tasks each (their sandboxes: sandbox_test.go), h one.
	if diff := cmp.Diff([]string{"pod-uid-a", "pod-uid-b", "pod-uid-h", "sandbox-uid-a", "sandbox-uid-b"}, sorted(launchedTasks(accepts))); diff != "" {
		t.Fatalf("launched tasks (-want +got):\n%s", diff)
	}
	got := map[string]string{}
	for _, ti := range accepts[0].GetAccept().Operations[0].GetLaunch().TaskInfos {
		if strings.HasPrefix(ti.TaskID.Value, taskIDPrefix) {
			got[ti.TaskID.Value] = podtranslate.PodNetworkOf(ti.Labels) + " " + strings.Join(taskPorts(ti), ",")
		}
	}
	want := map[string]string{
		"pod-uid-a": "kubemesos ",
		"pod-uid-b": "kubemesos ",
		"pod-uid-h": " ports:[31600]", // hostNetwork: the agent's network and port
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("network and ports per task (-want +got):\n%s", diff)
	}
}

// The launches of one cycle run at once (each waits for its Bindings and its ACCEPT), and the
// ExecutorInfos they store concurrently all end up in the state.
func TestLaunchesOfACycleRunConcurrently(t *testing.T) {
	const agents = 4
	var pods []*corev1.Pod
	var offers []mesos.Offer
	for i := 0; i < agents; i++ {
		host := fmt.Sprintf("h%d", i)
		pods = append(pods, pod(fmt.Sprintf("p%d", i), fmt.Sprintf("uid-%d", i), func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": host}
		}))
		offers = append(offers, offer(fmt.Sprintf("o%d", i), fmt.Sprintf("a%d", i), host, 4, 4096))
	}
	f := newFixture(t, State{FrameworkID: "fw-1"}, pods...)
	f.subscribe("fw-1")
	f.drain()
	// Every ACCEPT waits until all have been sent, or a second passes (then they ran one at a time).
	var mu sync.Mutex
	arrived, most := 0, 0
	all := make(chan struct{})
	f.caller.onCall = func(c *scheduler.Call) {
		if c.GetType() != scheduler.Call_ACCEPT {
			return
		}
		mu.Lock()
		arrived++
		most = max(most, arrived)
		if arrived == agents {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(time.Second):
		}
		mu.Lock()
		arrived--
		mu.Unlock()
	}
	f.offers(offers...)
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != agents {
		t.Fatalf("%d ACCEPTs, want %d", n, agents)
	}
	if most != agents {
		t.Errorf("at most %d ACCEPTs in flight at once, want all %d", most, agents)
	}
	st, err := f.store.Load(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Executors) != agents {
		t.Errorf("stored ExecutorInfos for %d agents, want %d: %v", len(st.Executors), agents, st.Executors)
	}
}

// A task refused because it and its executor's resources exceed the offer, its executor having just
// terminated (the master then counts the executor's resources too), is launched again, not failed.
func TestTaskRefusedForAnExecutorThatJustTerminatedIsRelaunched(t *testing.T) {
	f := launchedOnA1(t)
	f.event(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{
		AgentID: &mesos.AgentID{Value: "a1"}, ExecutorID: &mesos.ExecutorID{Value: ExecutorID}}})
	refused := status("pod-uid-p", "a1", mesos.TASK_ERROR, mesos.SOURCE_MASTER, mesos.REASON_TASK_INVALID.Enum(), []byte("u1"))
	refused.Message = ptr.To("Total resources cpus(allocated: kubemesos):0.11; mem(allocated: kubemesos):72 required by task and its executor is more than available cpus(allocated: kubemesos):0.01; mem(allocated: kubemesos):8")
	f.update(refused)
	f.drain()
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase == corev1.PodFailed {
		t.Fatalf("pod failed (%s: %s), want it relaunched", got.Status.Reason, got.Status.Message)
	}
	f.offers(offer("o2", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if n := len(launchedTasks(accepts)); n != 2 {
		t.Fatalf("%d launches of the pod, want 2", n)
	}
	last := accepts[len(accepts)-1].GetAccept().GetOperations()[0].GetLaunch().GetTaskInfos()[0]
	if len(last.GetExecutor().Resources) == 0 {
		t.Error("the relaunch carries no executor resources, though the executor terminated")
	}
}
