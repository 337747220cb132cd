package podtranslate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	t0 = metav1.NewTime(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	t1 = metav1.NewTime(t0.Add(time.Minute))
)

func cs(name string, state corev1.ContainerState, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: state, Ready: ready}
}

func running(name string, ready bool) corev1.ContainerStatus {
	return cs(name, RunningState(t0), ready)
}

func exited(name string, code int32) corev1.ContainerStatus {
	return cs(name, TerminatedState(Termination{ExitCode: code}), false)
}

func waiting(name string) corev1.ContainerStatus {
	return cs(name, WaitingState(ReasonContainerCreating, ""), false)
}

func crashed(name string, code int32) corev1.ContainerStatus {
	s := cs(name, WaitingState(ReasonCrashLoopBackOff, ""), false)
	s.LastTerminationState = TerminatedState(Termination{ExitCode: code})
	return s
}

// podWith has app containers a and b and, optionally, init containers.
func podWith(restart corev1.RestartPolicy, inits ...string) *corev1.Pod {
	p := testPod(containers(ctr("a", nil, nil), ctr("b", nil, nil)))
	p.Generation = 7
	p.Spec.RestartPolicy = restart
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, ctr(n, nil, nil))
	}
	return p
}

func cond(t corev1.PodConditionType, s corev1.ConditionStatus, reason, msg string) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: 7}
}

func TestKubeletConditions(t *testing.T) {
	T, F := corev1.ConditionTrue, corev1.ConditionFalse
	initOK := cond(corev1.PodInitialized, T, "", "")
	tests := []struct {
		name         string
		pod          *corev1.Pod
		phase        corev1.PodPhase
		init, status []corev1.ContainerStatus
		want         []corev1.PodCondition
	}{
		{
			name: "no statuses yet", pod: podWith(corev1.RestartPolicyAlways), phase: corev1.PodPending,
			want: []corev1.PodCondition{initOK,
				cond(corev1.PodReady, F, CondReasonUnknownContainerStatuses, ""),
				cond(corev1.ContainersReady, F, CondReasonUnknownContainerStatuses, "")},
		},
		{
			name: "no statuses yet, with init containers", pod: podWith(corev1.RestartPolicyAlways, "i"), phase: corev1.PodPending,
			want: []corev1.PodCondition{cond(corev1.PodInitialized, F, CondReasonUnknownContainerStatuses, ""),
				cond(corev1.PodReady, F, CondReasonUnknownContainerStatuses, ""),
				cond(corev1.ContainersReady, F, CondReasonUnknownContainerStatuses, "")},
		},
		{
			name: "init containers running and unknown", pod: podWith(corev1.RestartPolicyAlways, "i1", "i2", "i3"), phase: corev1.PodPending,
			init:   []corev1.ContainerStatus{exited("i1", 0), running("i2", false)},
			status: []corev1.ContainerStatus{waiting("a"), waiting("b")},
			want: []corev1.PodCondition{
				cond(corev1.PodInitialized, F, CondReasonContainersNotInitialized, "containers with unknown status: [i3], containers with incomplete status: [i2]"),
				cond(corev1.PodReady, F, CondReasonContainersNotReady, "containers with unready status: [a b]"),
				cond(corev1.ContainersReady, F, CondReasonContainersNotReady, "containers with unready status: [a b]")},
		},
		{
			name: "failed init container is incomplete", pod: podWith(corev1.RestartPolicyOnFailure, "i1"), phase: corev1.PodPending,
			init: []corev1.ContainerStatus{crashed("i1", 1)},
			want: []corev1.PodCondition{
				cond(corev1.PodInitialized, F, CondReasonContainersNotInitialized, "containers with incomplete status: [i1]"),
				cond(corev1.PodReady, F, CondReasonContainersNotReady, "containers with unknown status: [a b]"),
				cond(corev1.ContainersReady, F, CondReasonContainersNotReady, "containers with unknown status: [a b]")},
		},
		{
			name: "all ready", pod: podWith(corev1.RestartPolicyAlways, "i1"), phase: corev1.PodRunning,
			init:   []corev1.ContainerStatus{exited("i1", 0)},
			status: []corev1.ContainerStatus{running("b", true), running("a", true)},
			want:   []corev1.PodCondition{initOK, cond(corev1.PodReady, T, "", ""), cond(corev1.ContainersReady, T, "", "")},
		},
		{
			name: "one unready, one unknown", pod: podWith(corev1.RestartPolicyAlways), phase: corev1.PodRunning,
			status: []corev1.ContainerStatus{running("a", false)},
			want: []corev1.PodCondition{initOK,
				cond(corev1.PodReady, F, CondReasonContainersNotReady, "containers with unknown status: [b], containers with unready status: [a]"),
				cond(corev1.ContainersReady, F, CondReasonContainersNotReady, "containers with unknown status: [b], containers with unready status: [a]")},
		},
		{
			name: "an app container started before counts as initialized", pod: podWith(corev1.RestartPolicyAlways, "i1"), phase: corev1.PodRunning,
			init:   []corev1.ContainerStatus{waiting("i1")},
			status: []corev1.ContainerStatus{running("a", true), running("b", true)},
			want:   []corev1.PodCondition{initOK, cond(corev1.PodReady, T, "", ""), cond(corev1.ContainersReady, T, "", "")},
		},
		{
			name: "succeeded", pod: podWith(corev1.RestartPolicyNever, "i1"), phase: corev1.PodSucceeded,
			init:   []corev1.ContainerStatus{exited("i1", 0)},
			status: []corev1.ContainerStatus{exited("a", 0), exited("b", 0)},
			want: []corev1.PodCondition{cond(corev1.PodInitialized, T, CondReasonPodCompleted, ""),
				cond(corev1.PodReady, F, CondReasonPodCompleted, ""), cond(corev1.ContainersReady, F, CondReasonPodCompleted, "")},
		},
		{
			name: "failed", pod: podWith(corev1.RestartPolicyNever), phase: corev1.PodFailed,
			status: []corev1.ContainerStatus{exited("a", 0), exited("b", 2)},
			want: []corev1.PodCondition{initOK,
				cond(corev1.PodReady, F, CondReasonPodFailed, ""), cond(corev1.ContainersReady, F, CondReasonPodFailed, "")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := KubeletConditions(tc.pod, tc.phase, tc.init, tc.status)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("KubeletConditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadinessGates(t *testing.T) {
	gate := corev1.PodConditionType("example.com/lb-ready")
	other := corev1.PodConditionType("example.com/other")
	tests := []struct {
		name        string
		conditions  []corev1.PodCondition
		wantStatus  corev1.ConditionStatus
		wantMessage string
	}{
		{"gate missing", nil, corev1.ConditionFalse,
			`corresponding condition of pod readiness gate "example.com/lb-ready" does not exist., corresponding condition of pod readiness gate "example.com/other" does not exist.`},
		{"gate false", []corev1.PodCondition{{Type: gate, Status: corev1.ConditionFalse}, {Type: other, Status: corev1.ConditionTrue}}, corev1.ConditionFalse,
			`the status of pod readiness gate "example.com/lb-ready" is not "True", but False`},
		{"gates true", []corev1.PodCondition{{Type: gate, Status: corev1.ConditionTrue}, {Type: other, Status: corev1.ConditionTrue}}, corev1.ConditionTrue, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := podWith(corev1.RestartPolicyAlways)
			pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: gate}, {ConditionType: other}}
			status := corev1.PodStatus{
				Phase:             corev1.PodRunning,
				Conditions:        tc.conditions,
				ContainerStatuses: []corev1.ContainerStatus{running("a", true), running("b", true)},
			}
			UpdateKubeletConditions(pod, &status, t1)
			ready := findCondition(status.Conditions, corev1.PodReady)
			if ready == nil || ready.Status != tc.wantStatus || ready.Message != tc.wantMessage {
				t.Errorf("Ready = %+v, want status %s message %q", ready, tc.wantStatus, tc.wantMessage)
			}
			if cr := findCondition(status.Conditions, corev1.ContainersReady); cr == nil || cr.Status != corev1.ConditionTrue {
				t.Errorf("ContainersReady = %+v, want True", cr)
			}
			if g := findCondition(status.Conditions, gate); len(tc.conditions) > 0 && (g == nil || g.Status != tc.conditions[0].Status) {
				t.Errorf("the gate condition was not kept: %+v", g)
			}
		})
	}
}

func TestSetCondition(t *testing.T) {
	probe := metav1.NewTime(t0.Add(-time.Hour))
	base := []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", LastTransitionTime: t0, LastProbeTime: probe},
	}
	tests := []struct {
		name string
		set  corev1.PodCondition
		want []corev1.PodCondition
	}{
		{
			name: "new condition is appended with now",
			set:  corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
			want: append(append([]corev1.PodCondition{}, base...), corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: t1}),
		},
		{
			name: "status change moves the transition time, keeps the probe time",
			set:  corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			want: []corev1.PodCondition{base[0], {Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t1, LastProbeTime: probe}},
		},
		{
			name: "same status keeps the transition time, updates reason and message",
			set:  corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "NodeLost", Message: "m"},
			want: []corev1.PodCondition{base[0], {Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "NodeLost", Message: "m", LastTransitionTime: t0, LastProbeTime: probe}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]corev1.PodCondition{}, base...)
			got := SetCondition(base, tc.set, t1)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SetCondition (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, base); diff != "" {
				t.Errorf("SetCondition modified its input:\n%s", diff)
			}
		})
	}
}

func TestSchedulingAndSandboxConditions(t *testing.T) {
	pod := podWith(corev1.RestartPolicyAlways)
	want := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/3 agents are available: 3 Insufficient cpu.", ObservedGeneration: 7}
	if diff := cmp.Diff(want, UnschedulableCondition(pod, "0/3 agents are available: 3 Insufficient cpu.")); diff != "" {
		t.Errorf("UnschedulableCondition (-want +got):\n%s", diff)
	}
	for ready, status := range map[bool]corev1.ConditionStatus{true: corev1.ConditionTrue, false: corev1.ConditionFalse} {
		want := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: status, ObservedGeneration: 7}
		if diff := cmp.Diff(want, PodReadyToStartContainersCondition(pod, ready)); diff != "" {
			t.Errorf("PodReadyToStartContainersCondition(%v) (-want +got):\n%s", ready, diff)
		}
	}
}

func TestPodPhase(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	withSidecar := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "side", RestartPolicy: &always})
		return p
	}
	started := func(s corev1.ContainerStatus, v bool) corev1.ContainerStatus { s.Started = &v; return s }
	tests := []struct {
		name                  string
		pod                   *corev1.Pod
		init, status          []corev1.ContainerStatus
		terminal, initialized bool
		want                  corev1.PodPhase
	}{
		{name: "nothing known", pod: podWith(corev1.RestartPolicyAlways), want: corev1.PodPending},
		{name: "creating", pod: podWith(corev1.RestartPolicyAlways), status: []corev1.ContainerStatus{waiting("a"), waiting("b")}, want: corev1.PodPending},
		{name: "init running", pod: podWith(corev1.RestartPolicyAlways, "i"), init: []corev1.ContainerStatus{running("i", false)}, want: corev1.PodPending},
		{name: "init failed, Never", pod: podWith(corev1.RestartPolicyNever, "i"), init: []corev1.ContainerStatus{exited("i", 1)}, want: corev1.PodFailed},
		{name: "init failed, OnFailure retries", pod: podWith(corev1.RestartPolicyOnFailure, "i"), init: []corev1.ContainerStatus{crashed("i", 1)}, want: corev1.PodPending},
		{name: "one running, one waiting", pod: podWith(corev1.RestartPolicyAlways), status: []corev1.ContainerStatus{running("a", true), waiting("b")}, want: corev1.PodPending},
		{name: "all running", pod: podWith(corev1.RestartPolicyAlways, "i"), init: []corev1.ContainerStatus{exited("i", 0)},
			status: []corev1.ContainerStatus{running("a", true), running("b", false)}, want: corev1.PodRunning},
		{name: "one running, one unknown", pod: podWith(corev1.RestartPolicyAlways), status: []corev1.ContainerStatus{running("a", true)}, want: corev1.PodPending},
		{name: "one running, one exited", pod: podWith(corev1.RestartPolicyNever), status: []corev1.ContainerStatus{running("a", true), exited("b", 1)}, want: corev1.PodRunning},
		{name: "Always, all exited: restarting", pod: podWith(corev1.RestartPolicyAlways), status: []corev1.ContainerStatus{exited("a", 0), exited("b", 1)}, want: corev1.PodRunning},
		{name: "Always, crash loop", pod: podWith(corev1.RestartPolicyAlways), status: []corev1.ContainerStatus{crashed("a", 1), crashed("b", 0)}, want: corev1.PodRunning},
		{name: "Never, all 0", pod: podWith(corev1.RestartPolicyNever), status: []corev1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodSucceeded},
		{name: "Never, one failure", pod: podWith(corev1.RestartPolicyNever), status: []corev1.ContainerStatus{exited("a", 0), exited("b", 3)}, want: corev1.PodFailed},
		{name: "OnFailure, all 0", pod: podWith(corev1.RestartPolicyOnFailure), status: []corev1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodSucceeded},
		{name: "OnFailure, one failure: restarting", pod: podWith(corev1.RestartPolicyOnFailure), status: []corev1.ContainerStatus{exited("a", 0), exited("b", 3)}, want: corev1.PodRunning},
		{name: "terminal Always pod, all 0 (deleted, exited on SIGTERM)", pod: podWith(corev1.RestartPolicyAlways), terminal: true,
			status: []corev1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodSucceeded},
		{name: "terminal Always pod, killed", pod: podWith(corev1.RestartPolicyAlways), terminal: true,
			status: []corev1.ContainerStatus{exited("a", 137), exited("b", 0)}, want: corev1.PodFailed},
		{name: "sidecar not started yet", pod: withSidecar(podWith(corev1.RestartPolicyAlways)),
			init:   []corev1.ContainerStatus{started(running("side", false), false)},
			status: []corev1.ContainerStatus{waiting("a"), waiting("b")}, want: corev1.PodPending},
		{name: "sidecar restarting after init", pod: withSidecar(podWith(corev1.RestartPolicyAlways)), initialized: true,
			init:   []corev1.ContainerStatus{waiting("side")},
			status: []corev1.ContainerStatus{running("a", true), running("b", true)}, want: corev1.PodPending},
		{name: "sidecar running, apps running", pod: withSidecar(podWith(corev1.RestartPolicyAlways)), initialized: true,
			init:   []corev1.ContainerStatus{started(running("side", true), true)},
			status: []corev1.ContainerStatus{running("a", true), running("b", true)}, want: corev1.PodRunning},
		{name: "sidecar still running, apps done, Never", pod: withSidecar(podWith(corev1.RestartPolicyNever)), initialized: true,
			init:   []corev1.ContainerStatus{started(running("side", true), true)},
			status: []corev1.ContainerStatus{exited("a", 0), exited("b", 0)}, want: corev1.PodRunning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodPhase(tc.pod, tc.init, tc.status, tc.terminal, tc.initialized); got != tc.want {
				t.Errorf("PodPhase = %s, want %s", got, tc.want)
			}
		})
	}
}
