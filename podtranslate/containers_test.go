package podtranslate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestTerminationReason(t *testing.T) {
	tests := []struct {
		code int32
		oom  bool
		want string
	}{
		{0, false, ReasonCompleted},
		{1, false, ReasonError},
		{137, false, ReasonError}, // SIGKILL alone is not an OOM kill
		{137, true, ReasonOOMKilled},
		{0, true, ReasonOOMKilled},
		{-1, false, ReasonError},
	}
	for _, tc := range tests {
		if got := TerminationReason(tc.code, tc.oom); got != tc.want {
			t.Errorf("TerminationReason(%d, %v) = %q, want %q", tc.code, tc.oom, got, tc.want)
		}
	}
}

func TestExitFromWaitStatus(t *testing.T) {
	tests := []struct {
		name                 string
		ws                   int32
		wantCode, wantSignal int32
	}{
		{"exit 0", 0, 0, 0},
		{"exit 1", 1 << 8, 1, 0},
		{"exit 255", 255 << 8, 255, 0},
		{"SIGKILL", 9, 137, 9},
		{"SIGTERM", 15, 143, 15},
		{"SIGSEGV with core dump", 0x80 | 11, 139, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, sig := ExitFromWaitStatus(tc.ws)
			if code != tc.wantCode || sig != tc.wantSignal {
				t.Errorf("ExitFromWaitStatus(%#x) = %d, %d; want %d, %d", tc.ws, code, sig, tc.wantCode, tc.wantSignal)
			}
		})
	}
}

func TestContainerStates(t *testing.T) {
	got := TerminatedState(Termination{ExitCode: 137, Signal: 9, OOMKilled: true, Message: "m", StartedAt: t0, FinishedAt: t1, ContainerID: "mesos://c1"})
	want := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 137, Signal: 9, Reason: ReasonOOMKilled, Message: "m", StartedAt: t0, FinishedAt: t1, ContainerID: "mesos://c1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TerminatedState (-want +got):\n%s", diff)
	}
	if got := TerminatedState(Termination{ExitCode: 1, Reason: ReasonStartError}); got.Terminated.Reason != ReasonStartError {
		t.Errorf("TerminatedState with a reason override: %q", got.Terminated.Reason)
	}
	if diff := cmp.Diff(corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t0}}, RunningState(t0)); diff != "" {
		t.Errorf("RunningState (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: ReasonPodInitializing, Message: "x"}}, WaitingState(ReasonPodInitializing, "x")); diff != "" {
		t.Errorf("WaitingState (-want +got):\n%s", diff)
	}
}

func TestNewContainerStatus(t *testing.T) {
	c := &corev1.Container{Name: "app", Image: "nginx:1"}
	last := TerminatedState(Termination{ExitCode: 1})
	tests := []struct {
		name        string
		state       corev1.ContainerState
		ready       bool
		wantReady   bool
		wantStarted bool
	}{
		{"running and ready", RunningState(t0), true, true, true},
		{"running, probe failing", RunningState(t0), false, false, true},
		{"waiting is never ready", WaitingState(ReasonCrashLoopBackOff, ""), true, false, false},
		{"init container done", TerminatedState(Termination{ExitCode: 0}), true, true, false},
		{"failed is never ready", TerminatedState(Termination{ExitCode: 2}), true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NewContainerStatus(c, tc.state, last, tc.ready, 3)
			want := corev1.ContainerStatus{Name: "app", Image: "nginx:1", State: tc.state, LastTerminationState: last,
				Ready: tc.wantReady, RestartCount: 3, Started: boolp(tc.wantStarted)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("NewContainerStatus (-want +got):\n%s", diff)
			}
		})
	}
}
