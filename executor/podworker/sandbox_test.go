package podworker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// sandboxRuntime is a fakeRuntime with pod sandboxes: RunPodSandbox answers from result once
// released, and every call lands in the shared start/removal log.
type sandboxRuntime struct {
	*fakeRuntime
	release chan struct{}
	ip      string
	err     error
	spec    SandboxSpec
}

func (s *sandboxRuntime) RunPodSandbox(ctx context.Context, pod *corev1.Pod, spec SandboxSpec) (Sandbox, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return Sandbox{}, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spec = spec
	s.starts = append(s.starts, "sandbox")
	return Sandbox{PodIP: s.ip}, s.err
}

func (s *sandboxRuntime) StopPodSandbox(_ context.Context, pod *corev1.Pod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, "sandbox")
	return nil
}

func startSandboxWorker(t *testing.T, pod *corev1.Pod, rt *sandboxRuntime, podIP string) *harness {
	t.Helper()
	h := &harness{t: t, rt: rt.fakeRuntime, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	prober := &recordingProber{}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, HostIP: "10.0.0.1", PodIP: podIP, PodNetwork: "kubemesos", SandboxExecutor: "kubemesos-pod-" + string(pod.UID),
		OnStatus: func(s Status) { h.statuses <- s }, Event: h.record, Prober: prober})
	if err != nil {
		t.Fatal(err)
	}
	h.worker = w
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.result <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-w.Done()
	})
	return h
}

type recordingProber struct{}

func (recordingProber) Probe(context.Context, *corev1.Pod, *corev1.Container, Handle, *corev1.ProbeHandler) error {
	return nil
}

func podCondition(s Status, typ corev1.PodConditionType) corev1.PodCondition {
	for _, c := range s.PodStatus.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.PodCondition{}
}

// The sandbox runs before any container, its IP becomes the pod IP, and it is stopped after the
// containers are removed.
func TestWorkerStartsContainersInTheSandbox(t *testing.T) {
	rt := &sandboxRuntime{fakeRuntime: newFakeRuntime(), release: make(chan struct{}), ip: "10.244.1.5"}
	pod := testPod(corev1.RestartPolicyNever, []string{"init"}, "main")
	h := startSandboxWorker(t, pod, rt, "")
	s := h.await("first status", func(Status) bool { return true })
	if c := podCondition(s, corev1.PodReadyToStartContainers); c.Status != corev1.ConditionFalse || c.Reason != ReasonPodSandboxNotReady || c.Message != MsgNoPodSandbox {
		t.Errorf("PodReadyToStartContainers before the sandbox = %+v", c)
	}
	if s.PodStatus.PodIP != "" || len(s.PodStatus.PodIPs) != 0 {
		t.Errorf("pod IP before the sandbox: %q %v", s.PodStatus.PodIP, s.PodStatus.PodIPs)
	}
	if starts, _, _ := rt.record(); len(starts) != 0 {
		t.Fatalf("started before the sandbox: %v", starts)
	}
	close(rt.release)
	s = h.await("init running", func(s Status) bool { return s.PodStatus.InitContainerStatuses[0].State.Running != nil })
	if s.PodStatus.PodIP != "10.244.1.5" || cmp.Diff([]corev1.PodIP{{IP: "10.244.1.5"}}, s.PodStatus.PodIPs) != "" {
		t.Errorf("pod IP %q %v, want the sandbox's", s.PodStatus.PodIP, s.PodStatus.PodIPs)
	}
	if s.PodStatus.HostIP != "10.0.0.1" {
		t.Errorf("hostIP = %q", s.PodStatus.HostIP)
	}
	if c := podCondition(s, corev1.PodReadyToStartContainers); c.Status != corev1.ConditionTrue || c.Reason != "" {
		t.Errorf("PodReadyToStartContainers with the sandbox = %+v", c)
	}
	rt.exit("init-0", ExitStatus{})
	h.await("main running", func(s Status) bool { return s.AllStarted })
	rt.exit("main-0", ExitStatus{})
	s = h.await("done", func(s Status) bool { return s.Done })
	if c := podCondition(s, corev1.PodReadyToStartContainers); c.Status != corev1.ConditionFalse || c.Message != MsgSandboxNotReady {
		t.Errorf("PodReadyToStartContainers when done = %+v", c)
	}
	starts, _, removed := rt.record()
	if diff := cmp.Diff([]string{"sandbox", "init-0", "main-0"}, starts); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"init-0", "main-0", "sandbox"}, removed); diff != "" {
		t.Errorf("removals (-want +got):\n%s", diff)
	}
	if want := (SandboxSpec{Network: "kubemesos", Executor: "kubemesos-pod-" + string(pod.UID)}); rt.spec != want {
		t.Errorf("sandbox spec = %+v, want %+v", rt.spec, want)
	}
}

// A sandbox that cannot be created fails the pod with the kubelet's event and condition.
func TestWorkerSandboxFailureFailsThePod(t *testing.T) {
	rt := &sandboxRuntime{fakeRuntime: newFakeRuntime(), release: make(chan struct{}), err: errors.New("Unknown CNI network 'x'")}
	close(rt.release)
	h := startSandboxWorker(t, testPod(corev1.RestartPolicyAlways, nil, "main"), rt, "")
	s := h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodFailed || s.Killed {
		t.Errorf("phase %s killed %v, want Failed/false", s.PodStatus.Phase, s.Killed)
	}
	wantMsg := "Failed to create pod sandbox: Unknown CNI network 'x'"
	if s.PodStatus.Reason != EventFailedCreatePodSandBox || s.PodStatus.Message != wantMsg {
		t.Errorf("pod reason %q message %q", s.PodStatus.Reason, s.PodStatus.Message)
	}
	if c := podCondition(s, corev1.PodReadyToStartContainers); c.Status != corev1.ConditionFalse || c.Reason != ReasonPodSandboxNotReady || c.Message != MsgNoPodSandbox {
		t.Errorf("PodReadyToStartContainers = %+v", c)
	}
	if w := s.PodStatus.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
		t.Errorf("container state %+v, want waiting ContainerCreating", s.PodStatus.ContainerStatuses[0].State)
	}
	if diff := cmp.Diff([]string{"Warning FailedCreatePodSandBox: " + wantMsg}, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	starts, _, removed := rt.record()
	if diff := cmp.Diff([]string{"sandbox"}, starts); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
	// What a half-created sandbox left is cleaned up.
	if diff := cmp.Diff([]string{"sandbox"}, removed); diff != "" {
		t.Errorf("removals (-want +got):\n%s", diff)
	}
}

// A pod killed while its sandbox is being readied stops waiting for it (its sandbox executor may never
// come: the framework kills the pod task when the sandbox task failed) and ends killed, without
// starting a container or failing for the sandbox.
func TestWorkerKilledWhileTheSandboxStarts(t *testing.T) {
	rt := &sandboxRuntime{fakeRuntime: newFakeRuntime(), release: make(chan struct{}), ip: "10.244.1.6"}
	h := startSandboxWorker(t, testPod(corev1.RestartPolicyAlways, nil, "main"), rt, "")
	h.await("first status", func(Status) bool { return true })
	h.worker.Kill(time.Second)
	s := h.await("done", func(s Status) bool { return s.Done })
	if !s.Killed || s.PodStatus.Reason == EventFailedCreatePodSandBox {
		t.Errorf("killed %v reason %q, want killed without a sandbox failure", s.Killed, s.PodStatus.Reason)
	}
	if evs := h.recorded(); len(evs) != 0 {
		t.Errorf("events %v", evs)
	}
	starts, _, removed := rt.record()
	if len(starts) != 0 {
		t.Errorf("starts %v, want none", starts)
	}
	if diff := cmp.Diff([]string{"sandbox"}, removed); diff != "" {
		t.Errorf("removals (-want +got):\n%s", diff)
	}
}
