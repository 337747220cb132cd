package podworker

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testPod(policy corev1.RestartPolicy, inits []string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "uid-1"},
		Spec:       corev1.PodSpec{RestartPolicy: policy},
	}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: n, Image: "busybox"})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "busybox"})
	}
	return p
}

// driveStarts performs the start actions at now as a runtime that starts instantly would, and returns
// the names started plus the signals asked for ("name:SIG").
func driveStarts(c *core, now time.Time) (started, signals []string, wake time.Time) {
	acts, wake := c.next(now)
	for _, a := range acts {
		ct := c.containers[a.index]
		switch a.kind {
		case actStart:
			started = append(started, ct.spec.Name)
			c.started(a.index, Handle{ID: fmt.Sprintf("%s-%d", ct.spec.Name, ct.attempts-1)}, now)
		case actSignal:
			signals = append(signals, ct.spec.Name+":"+a.signal.String())
		}
	}
	return started, signals, wake
}

func index(c *core, name string) int {
	for i, ct := range c.containers {
		if ct.spec.Name == name {
			return i
		}
	}
	panic("no container " + name)
}

func stateOf(cs corev1.ContainerStatus) string {
	switch {
	case cs.State.Running != nil:
		return "running"
	case cs.State.Terminated != nil:
		return fmt.Sprintf("terminated:%s:%d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
	case cs.State.Waiting != nil:
		return "waiting:" + cs.State.Waiting.Reason
	}
	return "none"
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name        string
		policy      corev1.RestartPolicy
		exitCode    int32
		wantPhase   corev1.PodPhase
		wantState   string
		wantRestart bool
		wantDone    bool
	}{
		{"always restarts success", corev1.RestartPolicyAlways, 0, corev1.PodRunning, "waiting:CrashLoopBackOff", true, false},
		{"always restarts failure", corev1.RestartPolicyAlways, 1, corev1.PodRunning, "waiting:CrashLoopBackOff", true, false},
		{"default policy is always", "", 3, corev1.PodRunning, "waiting:CrashLoopBackOff", true, false},
		{"onfailure completes", corev1.RestartPolicyOnFailure, 0, corev1.PodSucceeded, "terminated:Completed:0", false, true},
		{"onfailure restarts failure", corev1.RestartPolicyOnFailure, 1, corev1.PodRunning, "waiting:CrashLoopBackOff", true, false},
		{"never completes", corev1.RestartPolicyNever, 0, corev1.PodSucceeded, "terminated:Completed:0", false, true},
		{"never fails", corev1.RestartPolicyNever, 1, corev1.PodFailed, "terminated:Error:1", false, true},
		{"never fails on signal", corev1.RestartPolicyNever, 137, corev1.PodFailed, "terminated:Error:137", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(testPod(tt.policy, nil, "main"), "10.0.0.1", "10.0.0.1", t0)
			if got := c.status(t0).Phase; got != corev1.PodPending {
				t.Fatalf("phase before start = %s, want Pending", got)
			}
			started, _, _ := driveStarts(c, t0)
			if diff := cmp.Diff([]string{"main"}, started); diff != "" {
				t.Fatalf("first start (-want +got):\n%s", diff)
			}
			if got := c.status(t0).Phase; got != corev1.PodRunning {
				t.Fatalf("phase while running = %s, want Running", got)
			}
			now := t0.Add(time.Minute)
			c.exited(index(c, "main"), ExitStatus{ExitCode: tt.exitCode}, now)
			st := c.status(now)
			if st.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", st.Phase, tt.wantPhase)
			}
			if got := stateOf(st.ContainerStatuses[0]); got != tt.wantState {
				t.Errorf("container state = %s, want %s", got, tt.wantState)
			}
			if got := c.done(); got != tt.wantDone {
				t.Errorf("done = %v, want %v", got, tt.wantDone)
			}
			started, _, wake := driveStarts(c, now)
			if len(started) != 0 {
				t.Fatalf("restarted without back-off: %v", started)
			}
			if tt.wantRestart && !wake.Equal(now.Add(InitialBackOff)) {
				t.Errorf("wake = %v, want %v", wake, now.Add(InitialBackOff))
			}
			started, _, _ = driveStarts(c, now.Add(InitialBackOff))
			if got := len(started) == 1; got != tt.wantRestart {
				t.Errorf("restarted after back-off = %v, want %v", got, tt.wantRestart)
			}
			if tt.wantRestart {
				cs := c.status(now.Add(InitialBackOff)).ContainerStatuses[0]
				if cs.RestartCount != 1 || cs.LastTerminationState.Terminated == nil ||
					cs.LastTerminationState.Terminated.ExitCode != tt.exitCode {
					t.Errorf("after restart: restartCount %d, lastState %+v", cs.RestartCount, cs.LastTerminationState)
				}
			}
		})
	}
}

func TestCrashLoopBackOffSchedule(t *testing.T) {
	tests := []struct {
		name    string
		ranFor  []time.Duration // how long each attempt ran before crashing
		wantGap []time.Duration // delay before each restart
	}{
		{
			name:    "doubles to the cap",
			ranFor:  []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second},
			wantGap: []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second, 300 * time.Second},
		},
		{
			name:    "resets after ten minutes of running",
			ranFor:  []time.Duration{time.Second, time.Second, time.Second, 10 * time.Minute, time.Second, 9 * time.Minute},
			wantGap: []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(testPod(corev1.RestartPolicyAlways, nil, "main"), "", "", t0)
			now := t0
			driveStarts(c, now)
			var gaps []time.Duration
			for _, ran := range tt.ranFor {
				now = now.Add(ran)
				c.exited(0, ExitStatus{ExitCode: 2}, now)
				crashed := now
				started, _, wake := driveStarts(c, now)
				if len(started) != 0 {
					t.Fatalf("restart without delay at %v", now.Sub(t0))
				}
				// one second early: still backing off
				if started, _, _ := driveStarts(c, wake.Add(-time.Second)); len(started) != 0 {
					t.Fatalf("restart one second early")
				}
				now = wake
				if started, _, _ := driveStarts(c, now); len(started) != 1 {
					t.Fatalf("no restart at wake time %v", wake.Sub(t0))
				}
				gaps = append(gaps, now.Sub(crashed))
			}
			if diff := cmp.Diff(tt.wantGap, gaps); diff != "" {
				t.Errorf("restart delays (-want +got):\n%s", diff)
			}
			if got := c.status(now).ContainerStatuses[0].RestartCount; got != int32(len(tt.ranFor)) {
				t.Errorf("restartCount = %d, want %d", got, len(tt.ranFor))
			}
		})
	}
}

func TestInitContainers(t *testing.T) {
	type step struct {
		exit        string // container that exits
		code        int32
		after       time.Duration
		wantStarted []string
		wantPhase   corev1.PodPhase
		wantInit    corev1.ConditionStatus
		wantDone    bool
	}
	tests := []struct {
		name   string
		policy corev1.RestartPolicy
		first  []string
		steps  []step
	}{
		{
			name:   "in order then regular containers",
			policy: corev1.RestartPolicyAlways,
			first:  []string{"init1"},
			steps: []step{
				{exit: "init1", code: 0, wantStarted: []string{"init2"}, wantPhase: corev1.PodPending, wantInit: corev1.ConditionFalse},
				{exit: "init2", code: 0, wantStarted: []string{"a", "b"}, wantPhase: corev1.PodRunning, wantInit: corev1.ConditionTrue},
			},
		},
		{
			name:   "failed init container restarts with back-off",
			policy: corev1.RestartPolicyOnFailure,
			first:  []string{"init1"},
			steps: []step{
				{exit: "init1", code: 1, wantPhase: corev1.PodPending, wantInit: corev1.ConditionFalse},
				{after: InitialBackOff, wantStarted: []string{"init1"}, wantPhase: corev1.PodPending, wantInit: corev1.ConditionFalse},
				{exit: "init1", code: 0, wantStarted: []string{"init2"}, wantPhase: corev1.PodPending, wantInit: corev1.ConditionFalse},
				{exit: "init2", code: 0, wantStarted: []string{"a", "b"}, wantPhase: corev1.PodRunning, wantInit: corev1.ConditionTrue},
			},
		},
		{
			name:   "failed init container fails the pod with Never",
			policy: corev1.RestartPolicyNever,
			first:  []string{"init1"},
			steps: []step{
				{exit: "init1", code: 0, wantStarted: []string{"init2"}, wantPhase: corev1.PodPending, wantInit: corev1.ConditionFalse},
				{exit: "init2", code: 7, wantPhase: corev1.PodFailed, wantInit: corev1.ConditionFalse, wantDone: true},
				{after: time.Hour, wantPhase: corev1.PodFailed, wantInit: corev1.ConditionFalse, wantDone: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(testPod(tt.policy, []string{"init1", "init2"}, "a", "b"), "", "", t0)
			now := t0
			started, _, _ := driveStarts(c, now)
			if diff := cmp.Diff(tt.first, started); diff != "" {
				t.Fatalf("first starts (-want +got):\n%s", diff)
			}
			st := c.status(now)
			if got := stateOf(st.ContainerStatuses[0]); got != "waiting:PodInitializing" {
				t.Errorf("regular container while initializing: %s", got)
			}
			for i, s := range tt.steps {
				now = now.Add(s.after)
				if s.exit != "" {
					c.exited(index(c, s.exit), ExitStatus{ExitCode: s.code}, now)
				}
				started, _, _ := driveStarts(c, now)
				if diff := cmp.Diff(s.wantStarted, started); diff != "" {
					t.Errorf("step %d starts (-want +got):\n%s", i, diff)
				}
				st := c.status(now)
				if st.Phase != s.wantPhase {
					t.Errorf("step %d phase = %s, want %s", i, st.Phase, s.wantPhase)
				}
				if got := condition(st, corev1.PodInitialized); got != s.wantInit {
					t.Errorf("step %d Initialized = %s, want %s", i, got, s.wantInit)
				}
				if c.done() != s.wantDone {
					t.Errorf("step %d done = %v, want %v", i, c.done(), s.wantDone)
				}
			}
		})
	}
}

func condition(st corev1.PodStatus, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func TestGracefulKill(t *testing.T) {
	tests := []struct {
		name        string
		grace       time.Duration
		exitAt      time.Duration // when the container exits after SIGTERM; <0: never on its own
		exitCode    int32
		wantSignals []string
		wantPhase   corev1.PodPhase
	}{
		{"exits on SIGTERM", 30 * time.Second, 2 * time.Second, 0, []string{"main:terminated"}, corev1.PodSucceeded},
		{"ignores SIGTERM", 30 * time.Second, -1, 137, []string{"main:terminated", "main:killed"}, corev1.PodFailed},
		{"zero grace still allows the minimum", 0, -1, 137, []string{"main:terminated", "main:killed"}, corev1.PodFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(testPod(corev1.RestartPolicyAlways, nil, "main"), "", "", t0)
			driveStarts(c, t0)
			killAt := t0.Add(time.Minute)
			c.kill(tt.grace, killAt)
			var signals []string
			_, sigs, wake := driveStarts(c, killAt)
			signals = append(signals, sigs...)
			now := killAt
			if tt.exitAt >= 0 {
				now = killAt.Add(tt.exitAt)
			} else {
				grace := max(tt.grace, MinGracePeriod)
				if !wake.Equal(killAt.Add(grace)) {
					t.Fatalf("wake = %v, want the grace deadline", wake)
				}
				if _, sigs, _ := driveStarts(c, wake.Add(-time.Second)); len(sigs) != 0 {
					t.Fatalf("signals before the deadline: %v", sigs)
				}
				now = killAt.Add(grace)
				_, sigs, _ := driveStarts(c, now)
				signals = append(signals, sigs...)
			}
			if c.done() {
				t.Fatalf("done before the container exited")
			}
			c.exited(0, ExitStatus{ExitCode: tt.exitCode}, now)
			started, sigs, _ := driveStarts(c, now.Add(time.Hour))
			if len(started)+len(sigs) != 0 {
				t.Errorf("actions after termination: %v %v", started, sigs)
			}
			if diff := cmp.Diff(tt.wantSignals, signals); diff != "" {
				t.Errorf("signals (-want +got):\n%s", diff)
			}
			if !c.done() {
				t.Errorf("not done after the container exited")
			}
			if got := c.status(now).Phase; got != tt.wantPhase {
				t.Errorf("phase = %s, want %s", got, tt.wantPhase)
			}
		})
	}
}

func TestKillShortensNeverExtends(t *testing.T) {
	c := newCore(testPod(corev1.RestartPolicyAlways, nil, "main"), "", "", t0)
	driveStarts(c, t0)
	c.kill(30*time.Second, t0)
	c.kill(time.Hour, t0.Add(time.Second))
	if want := t0.Add(30 * time.Second); !c.deadline.Equal(want) {
		t.Errorf("deadline = %v, want %v", c.deadline, want)
	}
	c.kill(5*time.Second, t0.Add(time.Second))
	if want := t0.Add(6 * time.Second); !c.deadline.Equal(want) {
		t.Errorf("deadline = %v, want %v", c.deadline, want)
	}
}

func TestStatusFields(t *testing.T) {
	c := newCore(testPod(corev1.RestartPolicyOnFailure, nil, "a", "b"), "10.1.2.3", "10.1.2.3", t0)
	acts, _ := c.next(t0)
	if len(acts) != 2 {
		t.Fatalf("want 2 starts, got %d", len(acts))
	}
	// a starts, b is still being created
	c.started(index(c, "a"), Handle{ID: "a-0"}, t0.Add(time.Second))
	st := c.status(t0.Add(time.Second))
	if st.Phase != corev1.PodPending {
		t.Errorf("phase with one container creating = %s, want Pending", st.Phase)
	}
	if condition(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("Ready with a container creating")
	}
	c.started(index(c, "b"), Handle{ID: "b-0"}, t0.Add(2*time.Second))
	now := t0.Add(2 * time.Second)
	st = c.status(now)
	want := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "10.1.2.3",
		HostIPs:   []corev1.HostIP{{IP: "10.1.2.3"}},
		PodIP:     "10.1.2.3",
		PodIPs:    []corev1.PodIP{{IP: "10.1.2.3"}},
		StartTime: ptrTime(t0),
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: metaTime(t0.Add(time.Second))},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: metaTime(t0.Add(time.Second))},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metaTime(now)},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: metaTime(now)},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metaTime(t0.Add(time.Second))},
		},
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", Image: "busybox", ContainerID: "mesos://a-0", Ready: true, Started: ptrBool(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metaTime(t0.Add(time.Second))}}},
			{Name: "b", Image: "busybox", ContainerID: "mesos://b-0", Ready: true, Started: ptrBool(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metaTime(now)}}},
		},
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	// a completes, b fails: OnFailure restarts b only; pod stays Running, not Ready.
	c.exited(index(c, "a"), ExitStatus{ExitCode: 0}, now.Add(time.Second))
	c.exited(index(c, "b"), ExitStatus{ExitCode: 1, Signal: 0}, now.Add(time.Second))
	st = c.status(now.Add(time.Second))
	if st.Phase != corev1.PodRunning || condition(st, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("phase %s ready %s, want Running/False", st.Phase, condition(st, corev1.PodReady))
	}
	got := []string{stateOf(st.ContainerStatuses[0]), stateOf(st.ContainerStatuses[1])}
	if diff := cmp.Diff([]string{"terminated:Completed:0", "waiting:CrashLoopBackOff"}, got); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	started, _, _ := driveStarts(c, now.Add(time.Second+InitialBackOff))
	if diff := cmp.Diff([]string{"b"}, started); diff != "" {
		t.Errorf("restarts (-want +got):\n%s", diff)
	}
}

func TestStartFailureCountsAsAttempt(t *testing.T) {
	c := newCore(testPod(corev1.RestartPolicyNever, nil, "main"), "", "", t0)
	acts, _ := c.next(t0)
	c.startFailed(acts[0].index, fmt.Errorf("no such image"), t0)
	st := c.status(t0)
	if st.Phase != corev1.PodFailed {
		t.Errorf("phase = %s, want Failed", st.Phase)
	}
	if got := stateOf(st.ContainerStatuses[0]); got != "terminated:StartError:128" {
		t.Errorf("state = %s", got)
	}
	if !c.done() {
		t.Errorf("not done")
	}
}

func TestProbes(t *testing.T) {
	grace := int64(20)
	pod := testPod(corev1.RestartPolicyAlways, nil, "web")
	pod.Spec.TerminationGracePeriodSeconds = &grace
	pod.Spec.Containers[0].StartupProbe = &corev1.Probe{}
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{}
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{}
	c := newCore(pod, "", "", t0)
	driveStarts(c, t0)
	ready := func() (bool, bool) {
		cs := c.status(t0).ContainerStatuses[0]
		return *cs.Started, cs.Ready
	}
	if s, r := ready(); s || r {
		t.Fatalf("before the startup probe: started %v ready %v", s, r)
	}
	c.probed(0, 1, probeStartup, true, t0)
	if s, r := ready(); !s || r {
		t.Fatalf("after startup, before readiness: started %v ready %v", s, r)
	}
	c.probed(0, 1, probeReadiness, true, t0)
	if s, r := ready(); !s || !r {
		t.Fatalf("after readiness: started %v ready %v", s, r)
	}
	if condition(c.status(t0), corev1.PodReady) != corev1.ConditionTrue {
		t.Errorf("pod not Ready")
	}
	c.probed(0, 7, probeReadiness, false, t0) // another attempt's result: ignored
	if _, r := ready(); !r {
		t.Fatalf("stale probe result applied")
	}
	c.probed(0, 1, probeReadiness, false, t0)
	if _, r := ready(); r {
		t.Fatalf("readiness failure not applied")
	}
	// Liveness failure: SIGTERM now, SIGKILL after the grace period, then a restart.
	now := t0.Add(time.Minute)
	c.probed(0, 1, probeLiveness, false, now)
	_, sigs, wake := driveStarts(c, now)
	if diff := cmp.Diff([]string{"web:terminated"}, sigs); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	if !wake.Equal(now.Add(20 * time.Second)) {
		t.Errorf("wake %v, want the grace deadline", wake)
	}
	_, sigs, _ = driveStarts(c, now.Add(20*time.Second))
	if diff := cmp.Diff([]string{"web:killed"}, sigs); diff != "" {
		t.Errorf("signals at the deadline (-want +got):\n%s", diff)
	}
	c.exited(0, ExitStatus{ExitCode: 137, Signal: 9}, now.Add(20*time.Second))
	started, _, _ := driveStarts(c, now.Add(20*time.Second+InitialBackOff))
	if diff := cmp.Diff([]string{"web"}, started); diff != "" {
		t.Errorf("restart (-want +got):\n%s", diff)
	}
	if s, r := ready(); s || r {
		t.Errorf("restarted container: started %v ready %v, want false/false until probed", s, r)
	}
}

func TestActiveDeadline(t *testing.T) {
	secs := int64(60)
	grace := int64(5)
	pod := testPod(corev1.RestartPolicyAlways, nil, "main")
	pod.Spec.ActiveDeadlineSeconds = &secs
	pod.Spec.TerminationGracePeriodSeconds = &grace
	c := newCore(pod, "", "", t0)
	_, _, wake := driveStarts(c, t0)
	if !wake.Equal(t0.Add(time.Minute)) {
		t.Fatalf("wake %v, want the active deadline", wake)
	}
	_, sigs, wake := driveStarts(c, t0.Add(time.Minute))
	if diff := cmp.Diff([]string{"main:terminated"}, sigs); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
	if !wake.Equal(t0.Add(time.Minute + 5*time.Second)) {
		t.Errorf("wake %v, want the grace deadline", wake)
	}
	st := c.status(t0.Add(time.Minute))
	if st.Phase != corev1.PodFailed || st.Reason != ReasonDeadlineExceeded {
		t.Errorf("phase %s reason %q, want Failed/DeadlineExceeded", st.Phase, st.Reason)
	}
	c.exited(0, ExitStatus{ExitCode: 0}, t0.Add(time.Minute+time.Second))
	if !c.done() {
		t.Errorf("not done")
	}
	if got := c.status(t0.Add(time.Hour)).Phase; got != corev1.PodFailed {
		t.Errorf("final phase %s", got)
	}
}

// The kubelet's default waiting state of a container never started: PodInitializing for every
// container of a pod with init containers (the next init container too, while the first crash-loops:
// "InitContainer should not start app containers if init containers fail on a RestartAlways pod"),
// ContainerCreating without init containers.
func TestDefaultWaitingReason(t *testing.T) {
	c := newCore(testPod(corev1.RestartPolicyAlways, []string{"init1", "init2"}, "run1"), "", "", t0)
	driveStarts(c, t0)
	c.exited(0, ExitStatus{ExitCode: 1}, t0.Add(time.Second))
	st := c.status(t0.Add(2 * time.Second))
	if got := st.InitContainerStatuses[1].State.Waiting; got == nil || got.Reason != ReasonPodInitializing {
		t.Errorf("init2 %+v, want waiting PodInitializing", st.InitContainerStatuses[1].State)
	}
	if got := st.ContainerStatuses[0].State.Waiting; got == nil || got.Reason != ReasonPodInitializing {
		t.Errorf("run1 %+v, want waiting PodInitializing", st.ContainerStatuses[0].State)
	}
	plain := newCore(testPod(corev1.RestartPolicyAlways, nil, "run1"), "", "", t0)
	if got := plain.status(t0).ContainerStatuses[0].State.Waiting; got == nil || got.Reason != ReasonContainerCreating {
		t.Errorf("without init containers: %+v, want waiting ContainerCreating", got)
	}
}
