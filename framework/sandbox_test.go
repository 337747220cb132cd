package framework

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// newNetworkFixture is a subscribed framework with --pod-network kubemesos and the Node h1 of agent a1.
func newNetworkFixture(t *testing.T, pods ...*corev1.Pod) *fixture {
	t.Helper()
	cfg := DefaultConfig()
	cfg.PodNetwork = "kubemesos"
	f := newFixtureConfig(t, cfg, fake.NewClientset(), State{FrameworkID: "fw-1"}, pods...)
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	f.drain()
	return f
}

func hostPortOf(ctr, host int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: ctr, HostPort: host, Protocol: corev1.ProtocolTCP}}
	}
}

// kills lists the KILL calls as "task@agent".
func (f *fixture) kills() []string {
	var out []string
	for _, c := range f.caller.ofType(scheduler.Call_KILL) {
		out = append(out, c.GetKill().TaskID.Value+"@"+c.GetKill().GetAgentID().GetValue())
	}
	return out
}

func (f *fixture) events() []string {
	var out []string
	for len(f.recorder.Events) > 0 {
		out = append(out, <-f.recorder.Events)
	}
	return out
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// One ACCEPT, one LAUNCH: the pod task on the kubelet executor with only its token, and the sandbox task
// on the pod's own executor with the pod's resources, its network, port mappings and hostname.
func TestSandboxLaunchedWithPodTask(t *testing.T) {
	hostNet := func(p *corev1.Pod) { p.Spec.HostNetwork = true }
	f := newNetworkFixture(t, pod("a", "uid-a", hostPortOf(8080, 31080)), pod("h", "uid-h", hostNet))
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)

	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(accepts) != 1 || len(accepts[0].GetAccept().Operations) != 1 {
		t.Fatalf("want one ACCEPT with one operation, got %v", accepts)
	}
	tasks := map[string]mesos.TaskInfo{}
	for _, ti := range accepts[0].GetAccept().Operations[0].GetLaunch().TaskInfos {
		tasks[ti.TaskID.Value] = ti
	}
	if diff := cmp.Diff([]string{"pod-uid-a", "pod-uid-h", "sandbox-uid-a"}, sorted(keysOf(tasks))); diff != "" {
		t.Fatalf("launched (-want +got):\n%s", diff)
	}
	podTask, sb, host := tasks["pod-uid-a"], tasks["sandbox-uid-a"], tasks["pod-uid-h"]
	got := map[string]string{
		"pod task resources":         mesos.Resources(podTask.Resources).Format(),
		"pod task executor":          podTask.Executor.ExecutorID.Value,
		"pod task sandbox label":     podtranslate.SandboxExecutorOf(podTask.Labels),
		"sandbox task resources":     mesos.Resources(sb.Resources).Format(),
		"sandbox executor":           sb.Executor.ExecutorID.Value,
		"sandbox executor resources": mesos.Resources(sb.Executor.Resources).Format(),
		"sandbox command":            sb.Executor.Command.GetValue(),
		"sandbox URI":                sb.Executor.Command.URIs[0].Value,
		"sandbox network":            sb.Executor.Container.NetworkInfos[0].GetName(),
		"sandbox hostname":           sb.Executor.Container.GetHostname(),
		"hostNetwork pod resources":  mesos.Resources(host.Resources).Format(),
		"hostNetwork pod labels":     podtranslate.PodNetworkOf(host.Labels) + podtranslate.SandboxExecutorOf(host.Labels),
	}
	want := map[string]string{
		"pod task resources":         "cpus:0.01",
		"pod task executor":          ExecutorID,
		"pod task sandbox label":     "kubemesos-pod-uid-a",
		"sandbox task resources":     "cpus:0.5;mem:128;ports:[31080]",
		"sandbox executor":           "kubemesos-pod-uid-a",
		"sandbox executor resources": "cpus:0.01;mem:32",
		"sandbox command":            "./kubemesos pod-sandbox",
		"sandbox URI":                podTask.Executor.Command.URIs[0].Value,
		"sandbox network":            "kubemesos",
		"sandbox hostname":           "a",
		"hostNetwork pod resources":  "cpus:0.5;mem:128",
		"hostNetwork pod labels":     "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
	pm := sb.Executor.Container.NetworkInfos[0].PortMappings
	if len(pm) != 1 || pm[0].HostPort != 31080 || pm[0].ContainerPort != 8080 || pm[0].GetProtocol() != "tcp" {
		t.Errorf("port mappings = %v", pm)
	}
	if n := counterValue(t, f.s.metrics.podsLaunched); n != 2 {
		t.Errorf("pods_launched_total = %v, want 2 (pods, not tasks)", n)
	}
	// Both tasks are known: neither pod is placed again, and the kubelet executor counts as running.
	f.s.mu.Lock()
	live := f.s.tasks["sandbox-uid-a"].live() && f.s.tasks["pod-uid-a"].live()
	f.s.mu.Unlock()
	if !live {
		t.Error("launched tasks not recorded")
	}
	if !f.s.executorCost().RunningOn["a1"] {
		t.Error("kubelet executor not counted as running on a1")
	}
}

// The sandbox's own updates never touch a pod's status; a sandbox that fails before the pod runs fails
// the pod with the kubelet's reason and Mesos' text, and kills the pod task.
func TestSandboxFailureBeforePodRuns(t *testing.T) {
	f := newNetworkFixture(t, pod("a", "uid-a"))
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	f.refreshCache("default", "a") // bound
	f.drain()
	f.events()

	st := status("sandbox-uid-a", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(), []byte("s1"))
	st.Message = ptr.To("Failed to launch container: Unknown CNI network 'kubemesos'")
	f.update(st)
	f.drain()

	p, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := "Failed to create pod sandbox: Failed to launch container: Unknown CNI network 'kubemesos'"
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "FailedCreatePodSandBox" || p.Status.Message != wantMsg {
		t.Errorf("pod status = %s/%s/%q", p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	if ev := f.events(); !contains(ev, "Warning FailedCreatePodSandBox "+wantMsg) {
		t.Errorf("events = %q", ev)
	}
	if diff := cmp.Diff([]string{"pod-uid-a@a1"}, f.kills()); diff != "" {
		t.Errorf("KILLs (-want +got):\n%s", diff)
	}
	if acks := f.caller.ofType(scheduler.Call_ACKNOWLEDGE); len(acks) != 1 || acks[0].GetAcknowledge().TaskID.Value != "sandbox-uid-a" {
		t.Errorf("acknowledgements = %v", acks)
	}
	// The pod task ends: nothing more to kill, and the failure stays.
	f.refreshCache("default", "a")
	f.update(status("pod-uid-a", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("p1")))
	f.drain()
	if n := len(f.kills()); n != 1 {
		t.Errorf("KILLs = %v", f.kills())
	}
}

// A running pod: sandbox updates leave its status alone; its end (ours or not) follows the pod task's.
func TestSandboxOfRunningPod(t *testing.T) {
	t.Run("killed once the pod task ends", func(t *testing.T) {
		f := newNetworkFixture(t, pod("a", "uid-a", bound("h1"), running))
		f.update(status("pod-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("p1")))
		f.update(status("sandbox-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("s1")))
		f.drain()
		if len(f.kills()) != 0 {
			t.Fatalf("KILLs = %v", f.kills())
		}
		f.update(status("pod-uid-a", "a1", mesos.TASK_FINISHED, mesos.SOURCE_EXECUTOR, nil, []byte("p2")))
		f.drain()
		if diff := cmp.Diff([]string{"sandbox-uid-a@a1"}, f.kills()); diff != "" {
			t.Fatalf("KILLs (-want +got):\n%s", diff)
		}
		if k := f.caller.ofType(scheduler.Call_KILL)[0].GetKill(); k.KillPolicy != nil {
			t.Errorf("sandbox KILL with a kill policy: %v", k.KillPolicy)
		}
		// Its TASK_KILLED is ours: no event, nothing else killed, the pod's status untouched.
		f.events()
		f.update(status("sandbox-uid-a", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("s2")))
		f.drain()
		p, _ := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
		if p.Status.Phase != corev1.PodRunning || len(f.kills()) != 1 || len(f.events()) != 0 {
			t.Errorf("after the sandbox's TASK_KILLED: phase %s, KILLs %v", p.Status.Phase, f.kills())
		}
		if n := len(f.caller.ofType(scheduler.Call_ACKNOWLEDGE)); n != 4 {
			t.Errorf("acknowledgements = %d, want 4", n)
		}
	})
	t.Run("deleted: pod task killed with grace, sandbox after it", func(t *testing.T) {
		f := newNetworkFixture(t, pod("a", "uid-a", bound("h1"), running))
		f.update(status("pod-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("p1")))
		f.update(status("sandbox-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("s1")))
		f.drain()
		p := f.refreshCache("default", "a").DeepCopy()
		p.DeletionTimestamp = ptr.To(metav1.NewTime(t0))
		p.DeletionGracePeriodSeconds = ptr.To[int64](7)
		f.updateCache(p)
		f.drain()
		// Killing the sandbox now would end the containers without their grace period.
		if diff := cmp.Diff([]string{"pod-uid-a@a1"}, f.kills()); diff != "" {
			t.Fatalf("KILLs (-want +got):\n%s", diff)
		}
		f.update(status("pod-uid-a", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("p2")))
		f.drain()
		if diff := cmp.Diff([]string{"pod-uid-a@a1", "sandbox-uid-a@a1"}, f.kills()); diff != "" {
			t.Errorf("KILLs (-want +got):\n%s", diff)
		}
		// A KILL that Mesos does not answer is repeated.
		f.clock.Step(killRepeat + time.Second)
		f.drain() // the fake queue's AddAfter needs the clock's wait; sync by hand as it would
		f.s.queue.Add("default/a")
		f.drain()
		if n := len(f.kills()); n != 3 {
			t.Errorf("sandbox KILL not repeated: %v", f.kills())
		}
	})
	t.Run("sandbox ends on its own", func(t *testing.T) {
		f := newNetworkFixture(t, pod("a", "uid-a", bound("h1"), running))
		f.update(status("pod-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("p1")))
		f.update(status("sandbox-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("s1")))
		f.drain()
		f.events()
		st := status("sandbox-uid-a", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_EXECUTOR_TERMINATED.Enum(), []byte("s2"))
		st.Message = ptr.To("Executor terminated")
		f.update(st)
		f.drain()
		p, _ := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("a running pod's status overwritten by its sandbox: %s", p.Status.Phase)
		}
		if ev := f.events(); !contains(ev, "Warning SandboxEnded Pod sandbox ended: Executor terminated") {
			t.Errorf("events = %q", ev)
		}
		if diff := cmp.Diff([]string{"pod-uid-a@a1"}, f.kills()); diff != "" {
			t.Errorf("KILLs (-want +got):\n%s", diff)
		}
	})
	t.Run("dropped at its executor's SUBSCRIBE: the executor shut down once the pod task ends", func(t *testing.T) {
		f := newNetworkFixture(t, pod("a", "uid-a", bound("h1"), running))
		f.update(status("pod-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_EXECUTOR, nil, []byte("p1")))
		// The LAUNCH never reached the sandbox executor, which runs on (Slave::subscribe's words).
		st := status("sandbox-uid-a", "a1", mesos.TASK_DROPPED, mesos.SOURCE_AGENT, mesos.REASON_AGENT_RESTARTED.Enum(), []byte("s1"))
		st.Message = ptr.To("Task launched during agent restart")
		f.update(st)
		f.drain()
		p, _ := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
		shutdowns := func() []string {
			var out []string
			for _, c := range f.caller.ofType(scheduler.Call_SHUTDOWN) {
				out = append(out, c.GetShutdown().ExecutorID.Value+"@"+c.GetShutdown().AgentID.Value)
			}
			return out
		}
		if p.Status.Phase != corev1.PodRunning || len(f.kills()) != 0 || len(shutdowns()) != 0 {
			t.Fatalf("while the pod runs: phase %s, KILLs %v, SHUTDOWNs %v; want the pod left running", p.Status.Phase, f.kills(), shutdowns())
		}
		f.update(status("pod-uid-a", "a1", mesos.TASK_FINISHED, mesos.SOURCE_EXECUTOR, nil, []byte("p2")))
		f.drain()
		f.s.queue.Add("default/a")
		f.drain()
		want := []string{podtranslate.SandboxExecutorIDPrefix + "uid-a@a1"}
		if diff := cmp.Diff(want, shutdowns()); diff != "" {
			t.Errorf("SHUTDOWNs once the pod task is over (-want +got):\n%s", diff)
		}
		if len(f.kills()) != 0 {
			t.Errorf("KILLs of a task Mesos dropped: %v", f.kills())
		}
	})
	t.Run("agent gone: left to the pod task", func(t *testing.T) {
		f := newNetworkFixture(t, pod("a", "uid-a"))
		f.offers(offer("o1", "a1", "h1", 4, 4096))
		f.s.cycleAndLaunch(f.ctx)
		f.drain()
		f.update(status("sandbox-uid-a", "a1", mesos.TASK_GONE, mesos.SOURCE_MASTER, mesos.REASON_AGENT_REMOVED.Enum(), []byte("s1")))
		f.drain()
		p, _ := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
		if p.Status.Phase == corev1.PodFailed || len(f.kills()) != 0 {
			t.Errorf("sandbox TASK_GONE acted on: phase %s, KILLs %v", p.Status.Phase, f.kills())
		}
	})
}

// A sandbox task whose pod is gone (reported by reconciliation) is killed once its pod task is over.
func TestOrphanSandboxKilled(t *testing.T) {
	f := newNetworkFixture(t)
	f.update(status("pod-uid-x", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	f.update(status("sandbox-uid-x", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	f.update(status("sandbox-uid-y", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	f.drain()
	// x's pod task first (its grace period), y's sandbox at once: it has no pod task.
	if diff := cmp.Diff([]string{"pod-uid-x@a1", "sandbox-uid-y@a1"}, f.kills()); diff != "" {
		t.Fatalf("KILLs (-want +got):\n%s", diff)
	}
	f.update(status("pod-uid-x", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("p1")))
	f.drain()
	if diff := cmp.Diff([]string{"pod-uid-x@a1", "sandbox-uid-y@a1", "sandbox-uid-x@a1"}, f.kills()); diff != "" {
		t.Errorf("KILLs (-want +got):\n%s", diff)
	}
	// Answers without uuid are never acknowledged; the executor's update is.
	if n := len(f.caller.ofType(scheduler.Call_ACKNOWLEDGE)); n != 1 {
		t.Errorf("acknowledgements = %d, want 1", n)
	}
}

// After a restart, reconciliation asks about the sandboxes of bound pods too, and a pod whose pod task
// ended is not launched again while its sandbox lives.
func TestSandboxReconciledAndBlocksRelaunch(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PodNetwork = "kubemesos"
	f := newFixtureConfig(t, cfg, fake.NewClientset(), State{FrameworkID: "fw-1"}, pod("a", "uid-a", bound("h1")))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	var asked []string
	for _, c := range f.caller.ofType(scheduler.Call_RECONCILE) {
		for _, task := range c.GetReconcile().Tasks {
			asked = append(asked, task.TaskID.Value)
		}
	}
	if diff := cmp.Diff([]string{"pod-uid-a", "sandbox-uid-a"}, sorted(asked)); diff != "" {
		t.Errorf("reconciled (-want +got):\n%s", diff)
	}
	// The pod task was dropped (relaunch), the sandbox still runs: kill it, launch nothing yet.
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.update(status("sandbox-uid-a", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
	f.update(status("pod-uid-a", "a1", mesos.TASK_DROPPED, mesos.SOURCE_MASTER, mesos.REASON_INVALID_OFFERS.Enum(), []byte("p1")))
	f.drain()
	if diff := cmp.Diff([]string{"sandbox-uid-a@a1"}, f.kills()); diff != "" {
		t.Errorf("KILLs (-want +got):\n%s", diff)
	}
	f.s.cycleAndLaunch(f.ctx)
	if got := launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 0 {
		t.Fatalf("relaunched while the sandbox lives: %v", got)
	}
	f.update(status("sandbox-uid-a", "a1", mesos.TASK_KILLED, mesos.SOURCE_EXECUTOR, nil, []byte("s1")))
	f.drain()
	f.clock.Step(time.Minute) // the offer's ACCEPT filter and the pod's back-off
	f.offers(offer("o2", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if diff := cmp.Diff([]string{"pod-uid-a", "sandbox-uid-a"}, sorted(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT)))); diff != "" {
		t.Errorf("relaunched (-want +got):\n%s", diff)
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The executor writes the pod while it waits for its sandbox (a conflict on the framework's write) and
// may end it without a reason when told to stop waiting: Mesos' reason still reaches the pod.
func TestSandboxFailureReasonSurvivesTheExecutorsWrites(t *testing.T) {
	f := newNetworkFixture(t, pod("a", "uid-a"))
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	f.refreshCache("default", "a")
	f.drain()
	f.events()

	// What the executor wrote: Failed, no reason; the framework's cache has not seen it.
	p, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodFailed
	executorWrite := p.DeepCopy()
	conflicts := executorWritesFirst(t, f, executorWrite)

	st := status("sandbox-uid-a", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(), []byte("s1"))
	st.Message = ptr.To("Failed to launch container: no IP addresses available")
	f.update(st)
	f.drain()

	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *conflicts != 1 || got.Status.Phase != corev1.PodFailed || got.Status.Reason != "FailedCreatePodSandBox" ||
		got.Status.Message != "Failed to create pod sandbox: Failed to launch container: no IP addresses available" {
		t.Errorf("conflicts %d, pod status = %s/%s/%q", *conflicts, got.Status.Phase, got.Status.Reason, got.Status.Message)
	}

	// A pod already Failed without a reason in the cache gets it too.
	f2 := newNetworkFixture(t, pod("b", "uid-b"))
	f2.offers(offer("o1", "a1", "h1", 4, 4096))
	f2.s.cycleAndLaunch(f2.ctx)
	f2.refreshCache("default", "b")
	f2.drain()
	pb, _ := f2.kube.CoreV1().Pods("default").Get(f2.ctx, "b", metav1.GetOptions{})
	pb.Status.Phase = corev1.PodFailed
	if _, err := f2.kube.CoreV1().Pods("default").UpdateStatus(f2.ctx, pb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f2.refreshCache("default", "b")
	st2 := status("sandbox-uid-b", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_CONTAINER_LAUNCH_FAILED.Enum(), []byte("s2"))
	st2.Message = ptr.To("Failed to launch container: x")
	f2.update(st2)
	f2.drain()
	if gb, _ := f2.kube.CoreV1().Pods("default").Get(f2.ctx, "b", metav1.GetOptions{}); gb.Status.Reason != "FailedCreatePodSandBox" {
		t.Errorf("pod b status = %s/%s/%q", gb.Status.Phase, gb.Status.Reason, gb.Status.Message)
	}
}

// With a cacheable sandbox URI (the framework's own binary, pinned by digest), the sandbox executor
// fetches it with cache: true while the kubelet executor's ExecutorInfo stays as it was (a running
// executor's ExecutorInfo must not change).
func TestSandboxExecutorFetchesThroughTheCache(t *testing.T) {
	f := newNetworkFixture(t, pod("a", "uid-a"))
	cfg := DefaultConfig()
	cfg.AdvertiseURL = "http://fw:10260"
	f.s.executor.SandboxURI = cfg.sandboxExecutorURI("fw", executorArtifact{digest: "abc"})
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	accepts := f.caller.ofType(scheduler.Call_ACCEPT)
	if len(accepts) != 1 {
		t.Fatalf("want one ACCEPT, got %d", len(accepts))
	}
	var podTask, sb mesos.TaskInfo
	for _, ti := range accepts[0].GetAccept().Operations[0].GetLaunch().TaskInfos {
		if ti.TaskID.Value == "sandbox-uid-a" {
			sb = ti
		} else {
			podTask = ti
		}
	}
	got := sb.Executor.Command.URIs
	if len(got) != 1 || got[0].Value != "http://fw:10260/executor/kubemesos?sha256=abc" || !got[0].GetCache() || !got[0].GetExecutable() {
		t.Errorf("sandbox executor URIs %+v: want the pinned URI, cached and executable", got)
	}
	kubelet := podTask.Executor.Command.URIs
	if len(kubelet) != 1 || kubelet[0].Value != "http://fw:10260/executor/kubemesos" || kubelet[0].GetCache() {
		t.Errorf("kubelet executor URIs %+v: want the plain URI, uncached", kubelet)
	}
}

// executorWritesFirst makes the framework's first status write of a pod meet a conflict: the executor's
// write (its pod, as given) lands just before it. It returns the count of such conflicts.
func executorWritesFirst(t *testing.T, f *fixture, executorWrite *corev1.Pod) *int {
	conflicts := 0
	f.kube.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" || conflicts > 0 {
			return false, nil, nil
		}
		conflicts++
		if err := f.kube.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), executorWrite, executorWrite.Namespace); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(corev1.Resource("pods"), executorWrite.Name, errors.New("the object has been modified"))
	})
	return &conflicts
}
