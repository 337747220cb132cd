package podworker

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

const archiveMsg = "Failed to find archive for image 'busybox' at '/images/busybox.tar'"

// TestImagePullBackOffSchedule follows the kubelet: a failed pull shows ErrImagePull, every pod sync
// (PodSyncBackOff apart) pulls again unless the image is in back-off (10 s doubling), when it shows
// ImagePullBackOff; restart policy Never does not stop it, and nothing counts as a restart.
func TestImagePullBackOffSchedule(t *testing.T) {
	c := newCore(testPod(corev1.RestartPolicyNever, nil, "main"), "", "", t0)
	type step struct {
		at        time.Duration
		wantActs  []actionKind
		fail      bool // the start fails with a pull error
		wantState string
		wantMsg   string
		wantWake  time.Duration
	}
	backOffMsg := `Back-off pulling image "busybox": ErrImagePull: ` + archiveMsg
	steps := []step{
		{at: 0, wantActs: []actionKind{actStart}, fail: true, wantState: "waiting:ErrImagePull", wantMsg: archiveMsg, wantWake: 10 * time.Second},
		{at: 5 * time.Second, wantState: "waiting:ErrImagePull", wantMsg: archiveMsg, wantWake: 10 * time.Second},
		// The first back-off (10 s) is over at the next sync: pulled again, fails, back-off 20 s.
		{at: 10 * time.Second, wantActs: []actionKind{actStart}, fail: true, wantState: "waiting:ErrImagePull", wantMsg: archiveMsg, wantWake: 20 * time.Second},
		{at: 20 * time.Second, wantActs: []actionKind{actPullBackOff}, wantState: "waiting:ImagePullBackOff", wantMsg: backOffMsg, wantWake: 30 * time.Second},
		{at: 30 * time.Second, wantActs: []actionKind{actStart}, fail: true, wantState: "waiting:ErrImagePull", wantMsg: archiveMsg, wantWake: 40 * time.Second},
		{at: 40 * time.Second, wantActs: []actionKind{actPullBackOff}, wantState: "waiting:ImagePullBackOff", wantMsg: backOffMsg, wantWake: 50 * time.Second},
		{at: 50 * time.Second, wantActs: []actionKind{actPullBackOff}, wantState: "waiting:ImagePullBackOff", wantMsg: backOffMsg, wantWake: 60 * time.Second},
		{at: 60 * time.Second, wantActs: []actionKind{actPullBackOff}, wantState: "waiting:ImagePullBackOff", wantMsg: backOffMsg, wantWake: 70 * time.Second},
		// 40 s after the third failure: pulled again, and this time it works.
		{at: 70 * time.Second, wantActs: []actionKind{actStart}, wantState: "running"},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		acts, wake := c.next(now)
		var kinds []actionKind
		for _, a := range acts {
			kinds = append(kinds, a.kind)
			if a.kind != actStart {
				continue
			}
			if s.fail {
				c.notCreated(a.index, ReasonErrImagePull, archiveMsg, true, now)
			} else {
				c.started(a.index, Handle{ID: "main"}, now)
			}
		}
		if diff := cmp.Diff(s.wantActs, kinds); diff != "" {
			t.Fatalf("at %v: actions (-want +got):\n%s", s.at, diff)
		}
		if s.fail {
			_, wake = c.next(now)
		}
		st := c.status(now)
		cs := st.ContainerStatuses[0]
		if got := stateOf(cs); got != s.wantState {
			t.Fatalf("at %v: state %s, want %s", s.at, got, s.wantState)
		}
		if cs.State.Waiting != nil && cs.State.Waiting.Message != s.wantMsg {
			t.Errorf("at %v: message %q, want %q", s.at, cs.State.Waiting.Message, s.wantMsg)
		}
		if s.wantWake != 0 && !wake.Equal(t0.Add(s.wantWake)) {
			t.Errorf("at %v: wake at %v, want %v", s.at, wake.Sub(t0), s.wantWake)
		}
		if cs.RestartCount != 0 || cs.LastTerminationState.Terminated != nil {
			t.Errorf("at %v: restartCount %d lastState %+v; a container that was never created did not restart", s.at, cs.RestartCount, cs.LastTerminationState)
		}
		if s.wantState != "running" && (st.Phase != corev1.PodPending || c.done() || c.allStarted()) {
			t.Errorf("at %v: phase %s done %v allStarted %v, want Pending, not done, not started", s.at, st.Phase, c.done(), c.allStarted())
		}
	}
}

// TestCreateErrorRetriedAtNextSync: a container whose config cannot be built waits with the
// kubelet's reason and is tried again PodSyncBackOff later; after a crash it keeps its restart count
// and last state.
func TestCreateErrorRetriedAtNextSync(t *testing.T) {
	c := newCore(testPod(corev1.RestartPolicyAlways, nil, "main"), "", "", t0)
	driveStarts(c, t0)
	c.exited(0, ExitStatus{ExitCode: 1}, t0.Add(time.Second))
	now := t0.Add(time.Second + InitialBackOff)
	acts, _ := c.next(now)
	if len(acts) != 1 || acts[0].kind != actStart {
		t.Fatalf("restart actions %+v", acts)
	}
	msg := `container has runAsNonRoot and image will run as root (pod: "p_ns(uid-1)", container: main)`
	c.notCreated(0, ReasonCreateContainerConfigError, msg, false, now)
	cs := c.status(now).ContainerStatuses[0]
	if got := stateOf(cs); got != "waiting:CreateContainerConfigError" || cs.State.Waiting.Message != msg {
		t.Errorf("state %s %q", got, cs.State.Waiting.Message)
	}
	if cs.RestartCount != 0 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Errorf("restartCount %d lastState %+v, want 0 and the crash", cs.RestartCount, cs.LastTerminationState)
	}
	if acts, wake := c.next(now.Add(PodSyncBackOff - time.Millisecond)); len(acts) != 0 || !wake.Equal(now.Add(PodSyncBackOff)) {
		t.Errorf("before the sync: actions %+v wake %v", acts, wake)
	}
	if started, _, _ := driveStarts(c, now.Add(PodSyncBackOff)); len(started) != 1 {
		t.Fatalf("not retried at the next sync")
	}
	cs = c.status(now.Add(PodSyncBackOff)).ContainerStatuses[0]
	if stateOf(cs) != "running" || cs.RestartCount != 1 {
		t.Errorf("after the retry: %s restartCount %d, want running 1", stateOf(cs), cs.RestartCount)
	}
}

// TestImageBackOffCapAndReset: the delay doubles to MaxImageBackOff and starts over after
// 2*MaxImageBackOff without failures, like flowcontrol.Backoff.
func TestImageBackOffCapAndReset(t *testing.T) {
	var b imageBackOff
	now := t0
	var got []time.Duration
	for range 7 {
		b.failed(now, "x")
		got = append(got, b.delay)
		now = now.Add(b.delay)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	b.failed(now.Add(2*MaxImageBackOff+time.Second), "x")
	if b.delay != ImageBackOff {
		t.Errorf("after a quiet period delay = %v, want %v", b.delay, ImageBackOff)
	}
}

// TestWorkerImagePullFailure: the states, the kubelet's events (Failed, BackOff) and the Node event
// of an agent without image provider; nothing is started while the image is in back-off, and the
// container runs once the pull works.
func TestWorkerImagePullFailure(t *testing.T) {
	rt := newFakeRuntime()
	unsupported := "Unsupported container image type: DOCKER"
	rt.startErr["main"] = fmt.Errorf("launching nested container x: %w",
		&ImagePullError{Image: "busybox", Message: unsupported, NodeMessage: "agent lacks a docker image provider"})
	h := startWorker(t, testPod(corev1.RestartPolicyAlways, nil, "main"), rt)
	s := h.await("ErrImagePull", func(s Status) bool { return containerState(s, 0) == "waiting:ErrImagePull" })
	if got := s.PodStatus.ContainerStatuses[0].State.Waiting.Message; got != unsupported {
		t.Errorf("message %q", got)
	}
	if s.AllStarted || s.Done {
		t.Errorf("allStarted %v done %v", s.AllStarted, s.Done)
	}
	h.awaitTimer()
	h.clk.Step(PodSyncBackOff) // back-off 10 s is over: pulled again, fails (back-off 20 s)
	h.awaitTimer()
	h.clk.Step(PodSyncBackOff) // in back-off
	s = h.await("ImagePullBackOff", func(s Status) bool { return containerState(s, 0) == "waiting:ImagePullBackOff" })
	if got, want := s.PodStatus.ContainerStatuses[0].State.Waiting.Message, `Back-off pulling image "busybox": ErrImagePull: `+unsupported; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	rt.mu.Lock()
	delete(rt.startErr, "main")
	rt.mu.Unlock()
	h.awaitTimer()
	h.clk.Step(PodSyncBackOff)
	s = h.await("running", func(s Status) bool { return s.AllStarted })
	if got := s.PodStatus.ContainerStatuses[0].RestartCount; got != 0 {
		t.Errorf("restartCount %d", got)
	}
	starts, _, _ := rt.record()
	if diff := cmp.Diff([]string{"main-0", "main-1", "main-2"}, starts); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
	pullFailed := []string{
		`Warning Failed: Failed to pull image "busybox": ` + unsupported,
		"Warning Failed: Error: ErrImagePull",
		"Warning ImageProviderMissing: node: agent lacks a docker image provider",
	}
	want := append(append(append([]string{}, pullFailed...), pullFailed...),
		`Normal BackOff: Back-off pulling image "busybox"`,
		"Warning Failed: Error: ImagePullBackOff",
		"Normal Started: Started container main")
	if diff := cmp.Diff(want, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestWorkerCreateConfigError: the container waits with CreateContainerConfigError and the message,
// the event is the kubelet's "Error: <message>", and it is not a StartError.
func TestWorkerCreateConfigError(t *testing.T) {
	rt := newFakeRuntime()
	msg := `container has runAsNonRoot and image will run as root (pod: "p_ns(uid-1)", container: main)`
	rt.startErr["main"] = &CreateError{Reason: ReasonCreateContainerConfigError, Message: msg}
	h := startWorker(t, testPod(corev1.RestartPolicyNever, nil, "main"), rt)
	s := h.await("config error", func(s Status) bool { return containerState(s, 0) == "waiting:CreateContainerConfigError" })
	if got := s.PodStatus.ContainerStatuses[0].State.Waiting.Message; got != msg || s.Done || s.PodStatus.Phase != corev1.PodPending {
		t.Errorf("message %q done %v phase %s", got, s.Done, s.PodStatus.Phase)
	}
	h.awaitTimer()
	h.clk.Step(PodSyncBackOff)
	h.awaitTimer()
	starts, _, _ := rt.record()
	if len(starts) != 2 {
		t.Errorf("starts %v, want a retry at the next sync", starts)
	}
	want := []string{"Warning Failed: Error: " + msg, "Warning Failed: Error: " + msg}
	if diff := cmp.Diff(want, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	h.worker.Kill(0)
	h.await("done", func(s Status) bool { return s.Done })
	if err := <-h.result; err != nil {
		t.Errorf("Run = %v", err)
	}
}
