package podworker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeRuntime runs no processes: tests end containers with exit, and signals end them as configured.
type fakeRuntime struct {
	mu       sync.Mutex
	starts   []string
	signals  []string
	removed  []string
	procs    map[string]chan ExitStatus
	onTERM   map[string]int32 // container name → exit code when it gets SIGTERM; absent: ignores it
	startErr map[string]error
	// dir, when set, holds each attempt's output and termination message files (<id>.out, .err, .msg).
	dir string
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{procs: map[string]chan ExitStatus{}, onTERM: map[string]int32{}, startErr: map[string]error{}}
}

func (f *fakeRuntime) Start(_ context.Context, pod *corev1.Pod, c *corev1.Container, attempt int32) (Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("%s-%d", c.Name, attempt)
	f.starts = append(f.starts, id)
	if err := f.startErr[c.Name]; err != nil {
		return Handle{}, err
	}
	f.procs[id] = make(chan ExitStatus, 1)
	if f.dir != "" {
		p := filepath.Join(f.dir, id)
		return Handle{ID: id, LogPath: p + ".out", StderrPath: p + ".err", TerminationMessagePath: p + ".msg"}, nil
	}
	return Handle{ID: id, LogPath: "/logs/" + id}, nil
}

func (f *fakeRuntime) proc(id string) chan ExitStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[id]
}

func (f *fakeRuntime) Wait(ctx context.Context, h Handle) (ExitStatus, error) {
	select {
	case st := <-f.proc(h.ID):
		return st, nil
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

func (f *fakeRuntime) Signal(_ context.Context, h Handle, sig syscall.Signal) error {
	f.mu.Lock()
	f.signals = append(f.signals, h.ID+":"+sig.String())
	name := h.ID[:len(h.ID)-2]
	code, traps := f.onTERM[name]
	f.mu.Unlock()
	switch {
	case sig == syscall.SIGKILL:
		f.exit(h.ID, ExitStatus{ExitCode: 137, Signal: int32(syscall.SIGKILL)})
	case sig == syscall.SIGTERM && traps:
		f.exit(h.ID, ExitStatus{ExitCode: code})
	}
	return nil
}

func (f *fakeRuntime) Remove(_ context.Context, h Handle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, h.ID)
	return nil
}

// exit ends a running container (no-op if it already ended).
func (f *fakeRuntime) exit(id string, st ExitStatus) {
	select {
	case f.proc(id) <- st:
	default:
	}
}

func (f *fakeRuntime) record() (starts, signals, removed []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.starts...), append([]string(nil), f.signals...), append([]string(nil), f.removed...)
}

type harness struct {
	mu       sync.Mutex
	events   []string // "Type Reason: message"
	t        *testing.T
	rt       *fakeRuntime
	clk      *clocktesting.FakeClock
	statuses chan Status
	worker   *Worker
	result   chan error
	lastSeq  uint64
	cancel   context.CancelFunc
}

func startWorker(t *testing.T, pod *corev1.Pod, rt *fakeRuntime) *harness {
	t.Helper()
	h := &harness{t: t, rt: rt, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, HostIP: "10.0.0.1", PodIP: "10.0.0.1",
		OnStatus: func(s Status) { h.statuses <- s }, Event: h.record,
		NodeEvent: func(typ, reason, msg string) { h.record(nil, typ, reason, "node: "+msg) }})
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

func (h *harness) record(_ *corev1.Pod, typ, reason, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, typ+" "+reason+": "+msg)
}

func (h *harness) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

// await reads statuses until one satisfies pred; the deadline only guards against a hung test.
func (h *harness) await(what string, pred func(Status) bool) Status {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-h.statuses:
			if s.Seq <= h.lastSeq {
				h.t.Fatalf("status seq %d after %d", s.Seq, h.lastSeq)
			}
			h.lastSeq = s.Seq
			if pred(s) {
				return s
			}
		case <-deadline:
			h.t.Fatalf("no status with %s", what)
		}
	}
}

// awaitTimer waits until the worker has armed its timer, so a clock step reaches it.
func (h *harness) awaitTimer() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !h.clk.HasWaiters() {
		if time.Now().After(deadline) {
			h.t.Fatal("worker armed no timer")
		}
		time.Sleep(time.Millisecond)
	}
}

func containerState(s Status, i int) string { return stateOf(s.PodStatus.ContainerStatuses[i]) }

func TestWorkerRestartsAfterBackOffUntilSuccess(t *testing.T) {
	rt := newFakeRuntime()
	h := startWorker(t, testPod(corev1.RestartPolicyOnFailure, nil, "main"), rt)
	s := h.await("running", func(s Status) bool { return s.AllStarted })
	if s.PodStatus.Phase != corev1.PodRunning {
		t.Fatalf("phase = %s", s.PodStatus.Phase)
	}
	rt.exit("main-0", ExitStatus{ExitCode: 1})
	s = h.await("crash loop", func(s Status) bool { return containerState(s, 0) == "waiting:CrashLoopBackOff" })
	h.awaitTimer()
	h.clk.Step(InitialBackOff - time.Second)
	if !h.clk.HasWaiters() {
		t.Fatal("back-off timer fired early")
	}
	h.clk.Step(time.Second)
	s = h.await("restarted", func(s Status) bool { return containerState(s, 0) == "running" })
	if got := s.PodStatus.ContainerStatuses[0].RestartCount; got != 1 {
		t.Errorf("restartCount = %d, want 1", got)
	}
	rt.exit("main-1", ExitStatus{ExitCode: 0})
	s = h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodSucceeded || s.Killed {
		t.Errorf("final phase %s killed %v, want Succeeded/false", s.PodStatus.Phase, s.Killed)
	}
	if err := <-h.result; err != nil {
		t.Errorf("Run = %v", err)
	}
	starts, signals, removed := rt.record()
	if diff := cmp.Diff([]string{"main-0", "main-1"}, starts); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
	if len(signals) != 0 {
		t.Errorf("signals: %v", signals)
	}
	if diff := cmp.Diff([]string{"main-0", "main-1"}, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	wantEvents := []string{
		"Normal Started: Started container main",
		"Warning BackOff: Back-off restarting failed container main",
		"Normal Started: Started container main",
	}
	if diff := cmp.Diff(wantEvents, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestWorkerGracefulKill(t *testing.T) {
	tests := []struct {
		name        string
		trapsTERM   bool
		grace       time.Duration
		wantSignals []string
		wantPhase   corev1.PodPhase
		wantExit    int32
	}{
		{"SIGTERM ends it", true, 30 * time.Second, []string{"main-0:terminated"}, corev1.PodSucceeded, 0},
		{"SIGKILL after the grace period", false, 30 * time.Second, []string{"main-0:terminated", "main-0:killed"}, corev1.PodFailed, 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFakeRuntime()
			if tt.trapsTERM {
				rt.onTERM["main"] = 0
			}
			h := startWorker(t, testPod(corev1.RestartPolicyAlways, nil, "main"), rt)
			h.await("running", func(s Status) bool { return s.AllStarted })
			h.worker.Kill(tt.grace)
			if !tt.trapsTERM {
				h.awaitTimer()
				h.clk.Step(tt.grace - time.Second)
				if _, signals, _ := rt.record(); len(signals) != 1 {
					t.Fatalf("signals before the deadline: %v", signals)
				}
				h.clk.Step(time.Second)
			}
			s := h.await("done", func(s Status) bool { return s.Done })
			if !s.Killed || s.PodStatus.Phase != tt.wantPhase {
				t.Errorf("killed %v phase %s, want true/%s", s.Killed, s.PodStatus.Phase, tt.wantPhase)
			}
			if term := s.PodStatus.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != tt.wantExit {
				t.Errorf("container state %+v, want terminated with %d", s.PodStatus.ContainerStatuses[0].State, tt.wantExit)
			}
			_, signals, _ := rt.record()
			if diff := cmp.Diff(tt.wantSignals, signals); diff != "" {
				t.Errorf("signals (-want +got):\n%s", diff)
			}
			if err := <-h.result; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
}

func TestWorkerKillDuringBackOffStopsRestarts(t *testing.T) {
	rt := newFakeRuntime()
	h := startWorker(t, testPod(corev1.RestartPolicyAlways, nil, "main"), rt)
	h.await("running", func(s Status) bool { return s.AllStarted })
	rt.exit("main-0", ExitStatus{ExitCode: 3})
	h.await("crash loop", func(s Status) bool { return containerState(s, 0) == "waiting:CrashLoopBackOff" })
	h.worker.Kill(time.Minute)
	s := h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodFailed || containerState(s, 0) != "terminated:Error:3" {
		t.Errorf("phase %s state %s", s.PodStatus.Phase, containerState(s, 0))
	}
	if starts, _, _ := rt.record(); len(starts) != 1 {
		t.Errorf("starts %v", starts)
	}
}

func TestWorkerStartErrorWithNever(t *testing.T) {
	rt := newFakeRuntime()
	rt.startErr["main"] = errors.New("image not found")
	h := startWorker(t, testPod(corev1.RestartPolicyNever, nil, "main"), rt)
	s := h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodFailed || s.AllStarted {
		t.Errorf("phase %s allStarted %v", s.PodStatus.Phase, s.AllStarted)
	}
	term := s.PodStatus.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != ReasonStartError {
		t.Errorf("state %+v", s.PodStatus.ContainerStatuses[0].State)
	}
}

func TestWorkerCancelJoins(t *testing.T) {
	rt := newFakeRuntime()
	h := startWorker(t, testPod(corev1.RestartPolicyAlways, nil, "a", "b"), rt)
	h.await("running", func(s Status) bool { return s.AllStarted })
	h.cancel()
	if err := <-h.result; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

func TestNewValidates(t *testing.T) {
	rt := newFakeRuntime()
	ok := func(Status) {}
	tests := []struct {
		name string
		pod  *corev1.Pod
		cfg  Config
	}{
		{"nil pod", nil, Config{Runtime: rt, OnStatus: ok}},
		{"no runtime", testPod("", nil, "a"), Config{OnStatus: ok}},
		{"no callback", testPod("", nil, "a"), Config{Runtime: rt}},
		{"no containers", testPod("", nil), Config{Runtime: rt, OnStatus: ok}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.pod, tt.cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

// scriptedProber answers exec probes by their first argument from a settable table.
type scriptedProber struct {
	mu      sync.Mutex
	healthy map[string]bool
	calls   map[string]int
	gate    chan struct{} // if set, a "prestop" check waits for it to close
}

func (p *scriptedProber) set(name string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy[name] = ok
}

func (p *scriptedProber) Probe(_ context.Context, _ *corev1.Pod, _ *corev1.Container, _ Handle, h *corev1.ProbeHandler) error {
	name := h.Exec.Command[0]
	if name == "prestop" && p.gate != nil {
		<-p.gate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[name]++
	if p.healthy[name] {
		return nil
	}
	return errors.New(name + " unhealthy")
}

func TestWorkerProbes(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["web"] = 0
	prober := &scriptedProber{healthy: map[string]bool{"live": true}, calls: map[string]int{}}
	pod := testPod(corev1.RestartPolicyAlways, nil, "web")
	exec := func(name string) corev1.ProbeHandler {
		return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{name}}}
	}
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: exec("ready"), PeriodSeconds: 10, FailureThreshold: 1}
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: exec("live"), PeriodSeconds: 10, FailureThreshold: 2}

	h := &harness{t: t, rt: rt, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, Prober: prober, OnStatus: func(s Status) { h.statuses <- s }, Event: h.record})
	if err != nil {
		t.Fatal(err)
	}
	h.worker = w
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go func() { h.result <- w.Run(ctx) }()
	defer func() {
		want := []string{
			"Normal Started: Started container web",
			"Warning Unhealthy: Readiness probe failed: ready unhealthy",
			"Warning Unhealthy: Liveness probe failed: live unhealthy",
			"Normal Killing: Stopping container web",
			"Normal Started: Started container web",
		}
		if diff := cmp.Diff(want, h.recorded()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	}()

	ready := func(s Status) bool { return s.PodStatus.ContainerStatuses[0].Ready }
	s := h.await("running", func(s Status) bool { return s.AllStarted })
	if ready(s) {
		t.Fatal("ready before the readiness probe succeeded")
	}
	// Both probe loops sleep a period after their first check; then readiness succeeds.
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for h.clk.Waiters() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d timers armed, want %d", h.clk.Waiters(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(2)
	prober.set("ready", true)
	h.clk.Step(10 * time.Second)
	h.await("ready", ready)
	// Liveness fails twice in a row: the container gets SIGTERM and is restarted after the back-off.
	waitFor(2)
	prober.set("live", false)
	h.clk.Step(10 * time.Second)
	waitFor(2) // liveness has one failure of two and probes again
	if _, signals, _ := rt.record(); len(signals) != 0 {
		t.Fatalf("signalled after one liveness failure: %v", signals)
	}
	h.clk.Step(10 * time.Second)
	h.await("restart back-off", func(s Status) bool { return containerState(s, 0) == "waiting:CrashLoopBackOff" })
	_, signals, _ := rt.record()
	if diff := cmp.Diff([]string{"web-0:terminated"}, signals); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	prober.set("live", true)
	// The cancelled probe loops and the back-off timer race to (dis)arm their timers: step the clock
	// a second at a time until the restart shows.
	deadline := time.Now().Add(10 * time.Second)
	for steps := 0; ; {
		if steps > 60 || time.Now().After(deadline) {
			t.Fatal("no restart within 60 s of fake time")
		}
		select {
		case s = <-h.statuses:
			if containerState(s, 0) != "running" {
				continue
			}
		default:
			if h.clk.HasWaiters() {
				h.clk.Step(time.Second)
				steps++
			} else {
				time.Sleep(time.Millisecond)
			}
			continue
		}
		break
	}
	if s.PodStatus.ContainerStatuses[0].RestartCount != 1 || ready(s) {
		t.Errorf("after restart: restarts %d ready %v", s.PodStatus.ContainerStatuses[0].RestartCount, ready(s))
	}
}

func TestWorkerPreStopHookRunsBeforeSIGTERM(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["web"] = 0
	prober := &scriptedProber{healthy: map[string]bool{"prestop": true}, calls: map[string]int{}, gate: make(chan struct{})}
	pod := testPod(corev1.RestartPolicyAlways, nil, "web")
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"prestop"}}}}
	h := &harness{t: t, rt: rt, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, Prober: prober, OnStatus: func(s Status) { h.statuses <- s }})
	if err != nil {
		t.Fatal(err)
	}
	h.worker = w
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go func() { h.result <- w.Run(ctx) }()
	h.await("running", func(s Status) bool { return s.AllStarted })
	w.Kill(30 * time.Second)
	h.awaitTimer() // the grace deadline is armed while the hook runs
	if _, signals, _ := rt.record(); len(signals) != 0 {
		t.Fatalf("signals while preStop runs: %v", signals)
	}
	close(prober.gate)
	s := h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s", s.PodStatus.Phase)
	}
	_, signals, _ := rt.record()
	if diff := cmp.Diff([]string{"web-0:terminated"}, signals); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	prober.mu.Lock()
	defer prober.mu.Unlock()
	if prober.calls["prestop"] != 1 {
		t.Errorf("preStop ran %d times", prober.calls["prestop"])
	}
}

func TestWorkerFailedPostStartHookStopsContainer(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["web"] = 143
	prober := &scriptedProber{healthy: map[string]bool{}, calls: map[string]int{}}
	pod := testPod(corev1.RestartPolicyNever, nil, "web")
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"poststart"}}}}
	h := &harness{t: t, rt: rt, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, Prober: prober, OnStatus: func(s Status) { h.statuses <- s }, Event: h.record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go func() { h.result <- w.Run(ctx) }()
	s := h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodFailed || containerState(s, 0) != "terminated:Error:143" {
		t.Errorf("phase %s state %s", s.PodStatus.Phase, containerState(s, 0))
	}
	want := []string{
		"Normal Started: Started container web",
		"Warning FailedPostStartHook: PostStartHook failed",
		"Normal Killing: Stopping container web",
	}
	if diff := cmp.Diff(want, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// An activeDeadlineSeconds set on the running pod (the API allows only that spec change) ends it
// with DeadlineExceeded once the deadline, counted from the pod's start, has passed ("Pods should
// allow activeDeadlineSeconds to be updated").
func TestWorkerUpdateActiveDeadline(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["main"] = 0
	pod := testPod(corev1.RestartPolicyAlways, nil, "main")
	h := startWorker(t, pod, rt)
	h.await("running", func(s Status) bool { return s.AllStarted })
	h.clk.Step(10 * time.Second)

	updated := pod.DeepCopy()
	five := int64(5)
	updated.Spec.ActiveDeadlineSeconds = &five
	h.worker.Update(updated)
	s := h.await("deadline exceeded", func(s Status) bool { return s.PodStatus.Reason == ReasonDeadlineExceeded })
	if s.PodStatus.Phase != corev1.PodFailed {
		t.Errorf("phase %s, want Failed", s.PodStatus.Phase)
	}
	if pod.Spec.ActiveDeadlineSeconds != nil {
		t.Error("the worker changed the pod it was given")
	}
	_, sigs, _ := rt.record()
	if diff := cmp.Diff([]string{"main-0:terminated"}, sigs); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
}

// Ready waits for the readiness gates' conditions, which others set in the pod's status and the
// worker learns from Update ("Pods should support pod readiness gates").
func TestWorkerReadinessGates(t *testing.T) {
	rt := newFakeRuntime()
	pod := testPod(corev1.RestartPolicyAlways, nil, "main")
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "k8s.io/c1"}, {ConditionType: "k8s.io/c2"}}
	h := startWorker(t, pod, rt)
	ready := func(s Status) *corev1.PodCondition {
		for i := range s.PodStatus.Conditions {
			if s.PodStatus.Conditions[i].Type == corev1.PodReady {
				return &s.PodStatus.Conditions[i]
			}
		}
		return nil
	}
	containersReady := func(s Status) bool {
		for _, c := range s.PodStatus.Conditions {
			if c.Type == corev1.ContainersReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}
	s := h.await("containers ready", containersReady)
	if r := ready(s); r.Status != corev1.ConditionFalse || r.Reason != ReasonReadinessGatesNotReady ||
		r.Message != `corresponding condition of pod readiness gate "k8s.io/c1" does not exist., corresponding condition of pod readiness gate "k8s.io/c2" does not exist.` {
		t.Errorf("Ready %+v, want False until the gates' conditions are True", r)
	}
	p := pod.DeepCopy()
	p.Status.Conditions = []corev1.PodCondition{{Type: "k8s.io/c1", Status: corev1.ConditionTrue}, {Type: "k8s.io/c2", Status: corev1.ConditionFalse}}
	h.worker.Update(p)
	s = h.await("one gate False", func(s Status) bool {
		r := ready(s)
		return r != nil && r.Message != "" && !strings.Contains(r.Message, "c1")
	})
	if r := ready(s); r.Status != corev1.ConditionFalse || r.Message != `the status of pod readiness gate "k8s.io/c2" is not "True", but False` {
		t.Errorf("Ready %+v", r)
	}
	p = p.DeepCopy()
	p.Status.Conditions[1].Status = corev1.ConditionTrue
	h.worker.Update(p)
	h.await("Ready", func(s Status) bool { r := ready(s); return r != nil && r.Status == corev1.ConditionTrue })
}
