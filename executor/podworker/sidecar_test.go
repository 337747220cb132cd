package podworker

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// sidecarPod has the init containers inits (those named in sidecars restartable) and the regular
// containers.
func sidecarPod(policy corev1.RestartPolicy, inits, sidecars []string, containers ...string) *corev1.Pod {
	p := testPod(policy, inits, containers...)
	always := corev1.ContainerRestartPolicyAlways
	for i := range p.Spec.InitContainers {
		for _, s := range sidecars {
			if p.Spec.InitContainers[i].Name == s {
				p.Spec.InitContainers[i].RestartPolicy = &always
			}
		}
	}
	return p
}

// drive performs next's actions at now as an instant runtime would and returns them as
// "start:name", "begin:name" (a sidecar's stop began) and "name:SIG".
func drive(c *core, now time.Time) ([]string, time.Time) {
	acts, wake := c.next(now)
	var out []string
	for _, a := range acts {
		ct := c.containers[a.index]
		switch a.kind {
		case actStart:
			out = append(out, "start:"+ct.spec.Name)
			c.started(a.index, Handle{ID: fmt.Sprintf("%s-%d", ct.spec.Name, ct.attempts-1)}, now)
		case actStopBegin:
			out = append(out, "begin:"+ct.spec.Name)
		case actSignal:
			out = append(out, ct.spec.Name+":"+a.signal.String())
		}
	}
	return out, wake
}

func initStatus(st corev1.PodStatus, name string) corev1.ContainerStatus {
	for _, cs := range st.InitContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	panic("no init container status " + name)
}

func podCond(st corev1.PodStatus, typ corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.PodCondition{}
}

// The next init container starts once a sidecar is started: running, its startup probe passed.
func TestSidecarStartsBeforeTheNextInitContainer(t *testing.T) {
	pod := sidecarPod(corev1.RestartPolicyAlways, []string{"proxy", "setup"}, []string{"proxy"}, "main")
	pod.Spec.InitContainers[0].StartupProbe = &corev1.Probe{}
	c := newCore(pod, "", "", t0)
	if got, _ := drive(c, t0); !cmp.Equal(got, []string{"start:proxy"}) {
		t.Fatalf("first actions %v, want the sidecar alone", got)
	}
	if got, _ := drive(c, t0); len(got) != 0 {
		t.Fatalf("actions before the sidecar's startup probe passed: %v", got)
	}
	st := c.status(t0)
	if cs := initStatus(st, "proxy"); stateOf(cs) != "running" || *cs.Started || cs.Ready {
		t.Errorf("sidecar before its startup probe: %s started %v ready %v", stateOf(cs), *cs.Started, cs.Ready)
	}
	if cond := podCond(st, corev1.PodInitialized); cond.Status != corev1.ConditionFalse || cond.Message != "containers with incomplete status: [proxy setup]" {
		t.Errorf("Initialized %+v", cond)
	}
	if st.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}

	now := t0.Add(5 * time.Second)
	c.probed(index(c, "proxy"), 1, probeStartup, true, now)
	if got, _ := drive(c, now); !cmp.Equal(got, []string{"start:setup"}) {
		t.Fatalf("after the startup probe: %v, want setup started", got)
	}
	c.exited(index(c, "setup"), ExitStatus{}, now)
	if got, _ := drive(c, now); !cmp.Equal(got, []string{"start:main"}) {
		t.Fatalf("after setup: %v, want main started", got)
	}
	st = c.status(now)
	if cs := initStatus(st, "proxy"); stateOf(cs) != "running" || !*cs.Started || !cs.Ready {
		t.Errorf("started sidecar: %s started %v ready %v", stateOf(cs), *cs.Started, cs.Ready)
	}
	if cs := initStatus(st, "setup"); stateOf(cs) != "terminated:Completed:0" || !cs.Ready {
		t.Errorf("regular init container: %s ready %v", stateOf(cs), cs.Ready)
	}
	if st.Phase != corev1.PodRunning || podCond(st, corev1.PodInitialized).Status != corev1.ConditionTrue ||
		podCond(st, corev1.PodReady).Status != corev1.ConditionTrue {
		t.Errorf("phase %s conditions %+v", st.Phase, st.Conditions)
	}
}

// A sidecar's postStart hook must return before the next init container starts (the kubelet's
// startContainer returns after it).
func TestSidecarPostStartHookGatesTheNext(t *testing.T) {
	pod := sidecarPod(corev1.RestartPolicyAlways, []string{"proxy"}, []string{"proxy"}, "main")
	pod.Spec.InitContainers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	c := newCore(pod, "", "", t0)
	drive(c, t0)
	if got, _ := drive(c, t0); len(got) != 0 {
		t.Fatalf("actions while the postStart hook runs: %v", got)
	}
	c.probed(0, 1, hookPostStart, true, t0)
	if got, _ := drive(c, t0); !cmp.Equal(got, []string{"start:main"}) {
		t.Fatalf("after the hook: %v", got)
	}
}

// Sidecars are restarted with the crash-loop back-off whatever the pod's restartPolicy, without
// taking the pod back to Pending, and their restarts are counted.
func TestSidecarRestartedWhateverThePolicy(t *testing.T) {
	for _, code := range []int32{0, 1} {
		t.Run(fmt.Sprint("exit ", code), func(t *testing.T) {
			c := newCore(sidecarPod(corev1.RestartPolicyNever, []string{"proxy"}, []string{"proxy"}, "main"), "", "", t0)
			drive(c, t0)
			drive(c, t0)
			now := t0.Add(time.Minute)
			c.exited(0, ExitStatus{ExitCode: code}, now)
			got, wake := drive(c, now)
			if len(got) != 0 || !wake.Equal(now.Add(InitialBackOff)) {
				t.Fatalf("actions %v wake %v, want a restart after %v", got, wake, InitialBackOff)
			}
			st := c.status(now)
			if cs := initStatus(st, "proxy"); stateOf(cs) != "waiting:CrashLoopBackOff" || cs.Ready {
				t.Errorf("sidecar in back-off: %s ready %v", stateOf(cs), cs.Ready)
			}
			if st.Phase != corev1.PodRunning || podCond(st, corev1.PodInitialized).Status != corev1.ConditionTrue {
				t.Errorf("phase %s Initialized %s, want Running/True", st.Phase, podCond(st, corev1.PodInitialized).Status)
			}
			if r := podCond(st, corev1.PodReady); r.Status != corev1.ConditionFalse || r.Message != "containers with unready status: [proxy]" {
				t.Errorf("Ready %+v", r)
			}
			if got, _ := drive(c, wake); !cmp.Equal(got, []string{"start:proxy"}) {
				t.Fatalf("after the back-off: %v", got)
			}
			if cs := initStatus(c.status(wake), "proxy"); cs.RestartCount != 1 || stateOf(cs) != "running" {
				t.Errorf("restarted sidecar: %s restarts %d", stateOf(cs), cs.RestartCount)
			}
		})
	}
}

// A sidecar's readinessProbe counts in the pod's readiness.
func TestSidecarReadiness(t *testing.T) {
	pod := sidecarPod(corev1.RestartPolicyAlways, []string{"proxy"}, []string{"proxy"}, "main")
	pod.Spec.InitContainers[0].ReadinessProbe = &corev1.Probe{}
	c := newCore(pod, "", "", t0)
	drive(c, t0)
	if got, _ := drive(c, t0); !cmp.Equal(got, []string{"start:main"}) {
		t.Fatalf("an unready sidecar holds back the regular containers: %v", got)
	}
	st := c.status(t0)
	if r := podCond(st, corev1.ContainersReady); r.Status != corev1.ConditionFalse || r.Message != "containers with unready status: [proxy]" {
		t.Errorf("ContainersReady %+v", r)
	}
	c.probed(0, 1, probeReadiness, true, t0)
	st = c.status(t0)
	if !initStatus(st, "proxy").Ready || podCond(st, corev1.PodReady).Status != corev1.ConditionTrue {
		t.Errorf("ready sidecar: %+v %+v", initStatus(st, "proxy"), st.Conditions)
	}
}

// A Job's pod completes when its regular containers are done: its sidecars are then stopped in
// reverse order, each after the later ones exited, and the pod Succeeds.
func TestSidecarsStoppedInReverseOrderWhenTheJobIsDone(t *testing.T) {
	c := newCore(sidecarPod(corev1.RestartPolicyNever, []string{"log", "proxy"}, []string{"log", "proxy"}, "main"), "", "", t0)
	drive(c, t0)
	drive(c, t0)
	if got, _ := drive(c, t0); !cmp.Equal(got, []string{"start:main"}) {
		t.Fatalf("starts %v", got)
	}
	now := t0.Add(time.Minute)
	c.exited(index(c, "main"), ExitStatus{ExitCode: 0}, now)
	got, wake := drive(c, now)
	if want := []string{"begin:log", "begin:proxy", "proxy:terminated"}; !cmp.Equal(got, want) {
		t.Fatalf("after main: %v, want %v", got, want)
	}
	if want := now.Add(DefaultGracePeriod); !wake.Equal(want) {
		t.Errorf("wake %v, want the grace deadline %v", wake, want)
	}
	if st := c.status(now); st.Phase != corev1.PodRunning {
		t.Errorf("phase while the sidecars stop: %s, want Running", st.Phase)
	}
	now = now.Add(time.Second)
	c.exited(index(c, "proxy"), ExitStatus{ExitCode: 143, Signal: int32(syscall.SIGTERM)}, now)
	if got, _ := drive(c, now); !cmp.Equal(got, []string{"log:terminated"}) {
		t.Fatalf("after proxy: %v, want log's SIGTERM", got)
	}
	c.exited(index(c, "log"), ExitStatus{ExitCode: 0}, now)
	if got, _ := drive(c, now.Add(time.Hour)); len(got) != 0 {
		t.Errorf("actions after the end: %v", got)
	}
	if !c.done() {
		t.Fatal("not done")
	}
	st := c.status(now)
	if st.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", st.Phase)
	}
	if got := stateOf(initStatus(st, "proxy")); got != "terminated:Error:143" {
		t.Errorf("proxy %s", got)
	}
	if got := stateOf(initStatus(st, "log")); got != "terminated:Completed:0" {
		t.Errorf("log %s", got)
	}
}

// A failed Job (restartPolicy Never) stops its sidecars too, and Fails.
func TestSidecarsStoppedWhenTheJobFails(t *testing.T) {
	c := newCore(sidecarPod(corev1.RestartPolicyNever, []string{"proxy"}, []string{"proxy"}, "main"), "", "", t0)
	drive(c, t0)
	drive(c, t0)
	c.exited(1, ExitStatus{ExitCode: 3}, t0)
	if got, _ := drive(c, t0); !cmp.Equal(got, []string{"begin:proxy", "proxy:terminated"}) {
		t.Fatalf("after main failed: %v", got)
	}
	c.exited(0, ExitStatus{ExitCode: 0}, t0)
	if st := c.status(t0); !c.done() || st.Phase != corev1.PodFailed {
		t.Errorf("done %v phase %s, want Failed", c.done(), st.Phase)
	}
}

// On deletion the sidecar gets its Killing event at once but SIGTERM only once the regular
// container exited, or at the grace deadline, and SIGKILL no sooner than MinGracePeriod after.
func TestSidecarStopsAfterTheMainOnKill(t *testing.T) {
	c := newCore(sidecarPod(corev1.RestartPolicyAlways, []string{"proxy"}, []string{"proxy"}, "main"), "", "", t0)
	drive(c, t0)
	drive(c, t0)
	c.kill(30*time.Second, t0)
	got, wake := drive(c, t0)
	if want := []string{"begin:proxy", "main:terminated"}; !cmp.Equal(got, want) {
		t.Fatalf("at the kill: %v, want %v", got, want)
	}
	deadline := t0.Add(30 * time.Second)
	if !wake.Equal(deadline) {
		t.Fatalf("wake %v, want %v", wake, deadline)
	}
	// main ignores SIGTERM: SIGKILLed at the deadline, when the sidecar's turn comes anyway.
	got, wake = drive(c, deadline)
	if want := []string{"proxy:terminated", "main:killed"}; !cmp.Equal(got, want) {
		t.Fatalf("at the deadline: %v, want %v", got, want)
	}
	if want := deadline.Add(MinGracePeriod); !wake.Equal(want) {
		t.Fatalf("wake %v, want the sidecar's minimum window %v", wake, want)
	}
	c.exited(1, ExitStatus{ExitCode: 137, Signal: 9}, deadline)
	if got, _ := drive(c, deadline.Add(MinGracePeriod)); !cmp.Equal(got, []string{"proxy:killed"}) {
		t.Fatalf("after the window: %v", got)
	}

	// A main that exits on SIGTERM lets the sidecar go at once.
	c = newCore(sidecarPod(corev1.RestartPolicyAlways, []string{"proxy"}, []string{"proxy"}, "main"), "", "", t0)
	drive(c, t0)
	drive(c, t0)
	c.kill(30*time.Second, t0)
	drive(c, t0)
	c.exited(1, ExitStatus{ExitCode: 0}, t0.Add(time.Second))
	if got, _ := drive(c, t0.Add(time.Second)); !cmp.Equal(got, []string{"proxy:terminated"}) {
		t.Fatalf("after main exited: %v", got)
	}
}

// A sidecar's preStop hook runs when the pod's termination begins; its SIGTERM waits for the hook.
func TestSidecarPreStopRunsAtTheStart(t *testing.T) {
	pod := sidecarPod(corev1.RestartPolicyAlways, []string{"proxy"}, []string{"proxy"}, "main")
	pod.Spec.InitContainers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"drain"}}}}
	c := newCore(pod, "", "", t0)
	drive(c, t0)
	drive(c, t0)
	c.kill(30*time.Second, t0)
	drive(c, t0)
	if !c.containers[0].preStopping {
		t.Fatal("the sidecar's preStop hook is not running")
	}
	c.exited(1, ExitStatus{ExitCode: 0}, t0)
	if got, _ := drive(c, t0); len(got) != 0 {
		t.Fatalf("SIGTERM while the preStop hook runs: %v", got)
	}
	c.preStopDone(0, 1)
	if got, _ := drive(c, t0); !cmp.Equal(got, []string{"proxy:terminated"}) {
		t.Fatalf("after the hook: %v", got)
	}
}

// A Job's pod with a sidecar through the worker: the sidecar starts (its startup probe passes)
// before the main container, gets SIGTERM once main is done, and the pod Succeeds on its own (not
// killed), with the kubelet's events.
func TestWorkerJobWithSidecar(t *testing.T) {
	rt := newFakeRuntime()
	rt.onTERM["proxy"] = 0
	prober := &scriptedProber{healthy: map[string]bool{"started": true, "ready": true}, calls: map[string]int{}}
	pod := sidecarPod(corev1.RestartPolicyNever, []string{"proxy"}, []string{"proxy"}, "main")
	exec := func(name string) corev1.ProbeHandler {
		return corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{name}}}
	}
	pod.Spec.InitContainers[0].StartupProbe = &corev1.Probe{ProbeHandler: exec("started"), PeriodSeconds: 1}
	pod.Spec.InitContainers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: exec("ready"), PeriodSeconds: 1}
	h := &harness{t: t, rt: rt, clk: clocktesting.NewFakeClock(t0), statuses: make(chan Status, 1000), result: make(chan error, 1)}
	w, err := New(pod, Config{Runtime: rt, Clock: h.clk, Prober: prober, OnStatus: func(s Status) { h.statuses <- s }, Event: h.record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); <-w.Done() }()
	go func() { h.result <- w.Run(ctx) }()

	s := h.await("main running", func(s Status) bool { return s.AllStarted })
	if cs := s.PodStatus.InitContainerStatuses[0]; cs.Started == nil || !*cs.Started {
		t.Errorf("main started before the sidecar: %+v", cs)
	}
	if podCondition(s, corev1.PodReady).Status != corev1.ConditionTrue {
		s = h.await("ready", func(s Status) bool { return podCondition(s, corev1.PodReady).Status == corev1.ConditionTrue })
	}
	if !s.PodStatus.InitContainerStatuses[0].Ready || s.PodStatus.Phase != corev1.PodRunning {
		t.Errorf("sidecar %+v phase %s", s.PodStatus.InitContainerStatuses[0], s.PodStatus.Phase)
	}
	rt.exit("main-0", ExitStatus{ExitCode: 0})
	s = h.await("done", func(s Status) bool { return s.Done })
	if s.PodStatus.Phase != corev1.PodSucceeded || s.Killed {
		t.Errorf("phase %s killed %v, want Succeeded on its own", s.PodStatus.Phase, s.Killed)
	}
	if got := stateOf(s.PodStatus.InitContainerStatuses[0]); got != "terminated:Completed:0" {
		t.Errorf("sidecar %s", got)
	}
	starts, signals, removed := rt.record()
	if diff := cmp.Diff([]string{"proxy-0", "main-0"}, starts); diff != "" {
		t.Errorf("starts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"proxy-0:terminated"}, signals); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	if len(removed) != 2 {
		t.Errorf("removed %v", removed)
	}
	want := []string{
		"Normal Started: Started container proxy",
		"Normal Started: Started container main",
		"Normal Killing: Stopping container proxy",
	}
	if diff := cmp.Diff(want, h.recorded()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// The conditions of a finished pod are the kubelet's terminal ones (status/generate.go): Initialized
// True with PodCompleted for a Succeeded pod, Ready and ContainersReady False with PodCompleted or
// PodFailed and no list of containers.
func TestTerminalConditions(t *testing.T) {
	for _, tc := range []struct {
		code      int32
		phase     corev1.PodPhase
		initCond  corev1.PodCondition
		readyCond corev1.PodCondition
	}{
		{0, corev1.PodSucceeded, corev1.PodCondition{Status: corev1.ConditionTrue, Reason: ReasonPodCompleted},
			corev1.PodCondition{Status: corev1.ConditionFalse, Reason: ReasonPodCompleted}},
		{1, corev1.PodFailed, corev1.PodCondition{Status: corev1.ConditionTrue},
			corev1.PodCondition{Status: corev1.ConditionFalse, Reason: ReasonPodFailed}},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			c := newCore(testPod(corev1.RestartPolicyNever, []string{"setup"}, "main"), "", "", t0)
			drive(c, t0)
			c.exited(0, ExitStatus{}, t0)
			drive(c, t0)
			c.exited(1, ExitStatus{ExitCode: tc.code}, t0)
			st := c.status(t0)
			if st.Phase != tc.phase {
				t.Fatalf("phase %s, want %s", st.Phase, tc.phase)
			}
			strip := func(c corev1.PodCondition) corev1.PodCondition {
				return corev1.PodCondition{Status: c.Status, Reason: c.Reason, Message: c.Message}
			}
			if got := strip(podCond(st, corev1.PodInitialized)); got != tc.initCond {
				t.Errorf("Initialized %+v, want %+v", got, tc.initCond)
			}
			for _, typ := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
				if got := strip(podCond(st, typ)); got != tc.readyCond {
					t.Errorf("%s %+v, want %+v", typ, got, tc.readyCond)
				}
			}
		})
	}
}
