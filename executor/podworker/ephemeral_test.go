package podworker

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func withEphemeral(pod *corev1.Pod, names ...string) *corev1.Pod {
	p := pod.DeepCopy()
	for _, n := range names {
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: n, Image: "busybox", Stdin: true, TTY: true}})
	}
	return p
}

func ephemeralState(s Status, name string) string {
	for _, cs := range s.PodStatus.EphemeralContainerStatuses {
		if cs.Name == name {
			return stateOf(cs)
		}
	}
	return "absent"
}

// An ephemeral container added to a running pod (kubectl debug: the ephemeralcontainers
// subresource) is started, reported in ephemeralContainerStatuses, never restarted, and changes
// neither the pod's phase nor its readiness; the pod's spec in the status carries it for the
// kubelet API (logs, exec, attach).
func TestWorkerEphemeralContainers(t *testing.T) {
	rt := newFakeRuntime()
	pod := testPod(corev1.RestartPolicyAlways, nil, "main")
	h := startWorker(t, pod, rt)
	s := h.await("running", func(s Status) bool { return s.AllStarted })
	if len(s.PodStatus.EphemeralContainerStatuses) != 0 {
		t.Fatalf("ephemeral statuses before any: %v", s.PodStatus.EphemeralContainerStatuses)
	}

	h.worker.Update(withEphemeral(pod, "debugger"))
	s = h.await("debugger running", func(s Status) bool { return ephemeralState(s, "debugger") == "running" })
	cs := s.PodStatus.EphemeralContainerStatuses[0]
	if cs.ContainerID != "mesos://debugger-0" || cs.Ready || cs.Started != nil || cs.Image != "busybox" {
		t.Errorf("debugger status = %+v, want ID mesos://debugger-0, not ready, started unset (the prober manager skips ephemeral containers)", cs)
	}
	if s.PodStatus.Phase != corev1.PodRunning || len(s.PodStatus.ContainerStatuses) != 1 || !s.PodStatus.ContainerStatuses[0].Ready {
		t.Errorf("pod %s, containers %v: the ephemeral container must not change them", s.PodStatus.Phase, s.PodStatus.ContainerStatuses)
	}
	for _, c := range s.PodStatus.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			t.Errorf("Ready = %s (%s): an unready ephemeral container must not make the pod unready", c.Status, c.Message)
		}
	}
	if got := s.Pod.Spec.EphemeralContainers; len(got) != 1 || got[0].Name != "debugger" {
		t.Errorf("status pod's ephemeral containers = %v, want [debugger]", got)
	}

	// A second one is added; the first ends with 3 and stays terminated (no back-off, no restart).
	h.worker.Update(withEphemeral(pod, "debugger", "debugger2"))
	h.await("debugger2 running", func(s Status) bool { return ephemeralState(s, "debugger2") == "running" })
	rt.exit("debugger-0", ExitStatus{ExitCode: 3})
	s = h.await("debugger terminated", func(s Status) bool { return ephemeralState(s, "debugger") == "terminated:Error:3" })
	if s.PodStatus.EphemeralContainerStatuses[0].RestartCount != 0 {
		t.Errorf("restartCount = %d", s.PodStatus.EphemeralContainerStatuses[0].RestartCount)
	}
	h.clk.Step(MaxBackOff + time.Minute)
	h.worker.Update(withEphemeral(pod, "debugger", "debugger2")) // a later sync starts nothing
	// Its status (without conditions) disagrees with the last report, so one follows (needsReconcile).
	h.await("the update taken", func(s Status) bool { return ephemeralState(s, "debugger") == "terminated:Error:3" })

	// Killing the pod stops the ephemeral container still running with the regular one.
	rt.onTERM["main"], rt.onTERM["debugger2"] = 0, 0
	h.worker.Kill(30 * time.Second)
	s = h.await("done", func(s Status) bool { return s.Done })
	if got := ephemeralState(s, "debugger2"); got != "terminated:Completed:0" {
		t.Errorf("debugger2 after the kill: %s", got)
	}
	starts, signals, _ := rt.record()
	if diff := cmp.Diff([]string{"main-0", "debugger-0", "debugger2-0"}, starts); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
	want := map[string]bool{"main-0:terminated": true, "debugger2-0:terminated": true}
	for _, sig := range signals {
		if !want[sig] {
			t.Errorf("unexpected signal %s (all: %v)", sig, signals)
		}
	}
	for _, e := range h.recorded() {
		if e == "Warning BackOff: Back-off restarting failed container debugger" {
			t.Errorf("event %q: ephemeral containers are never restarted", e)
		}
	}
}

// A pod whose regular containers are done is finished even while an ephemeral container runs: the
// kubelet then kills the pod, the ephemeral container with it.
func TestWorkerEphemeralContainerDoesNotKeepFinishedPod(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["debugger"] = 0
	pod := testPod(corev1.RestartPolicyNever, nil, "main")
	h := startWorker(t, pod, rt)
	h.await("running", func(s Status) bool { return s.AllStarted })
	h.worker.Update(withEphemeral(pod, "debugger"))
	h.await("debugger running", func(s Status) bool { return ephemeralState(s, "debugger") == "running" })
	rt.exit("main-0", ExitStatus{ExitCode: 0})
	s := h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodSucceeded {
		t.Errorf("phase = %s, want Succeeded", s.PodStatus.Phase)
	}
	if _, signals, _ := rt.record(); !cmp.Equal(signals, []string{"debugger-0:terminated"}) {
		t.Errorf("signals = %v, want [debugger-0:terminated]", signals)
	}
}

// Ephemeral containers start while the pod initializes (the kubelet starts them "prior" to init
// containers), and wait as PodInitializing before, like the pod's other containers.
func TestCoreEphemeralStartsDuringInit(t *testing.T) {
	pod := withEphemeral(testPod(corev1.RestartPolicyAlways, []string{"init"}, "main"), "debugger")
	c := newCore(pod, "h", "p", t0)
	if got := stateOf(c.status(t0).EphemeralContainerStatuses[0]); got != "waiting:PodInitializing" {
		t.Errorf("before the start: %s", got)
	}
	started, _, _ := driveStarts(c, t0)
	if diff := cmp.Diff([]string{"debugger", "init"}, started); diff != "" {
		t.Errorf("started (-want +got):\n%s", diff)
	}
	st := c.status(t0)
	if st.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending while init runs", st.Phase)
	}
	for _, cond := range st.Conditions {
		if cond.Type == corev1.ContainersReady && cond.Message != "containers with unready status: [main]" {
			t.Errorf("ContainersReady message %q lists the ephemeral container", cond.Message)
		}
	}
}
