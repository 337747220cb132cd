package podtranslate

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Container state reasons, as the kubelet writes them.
const (
	// Waiting reasons.
	ReasonContainerCreating = "ContainerCreating"
	ReasonPodInitializing   = "PodInitializing"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonCreateError       = "CreateContainerError"
	ReasonRunError          = "RunContainerError"
	// Terminated reasons.
	ReasonCompleted              = "Completed"
	ReasonError                  = "Error"
	ReasonStartError             = "StartError"
	ReasonContainerStatusUnknown = "ContainerStatusUnknown"
	// ReasonOOMKilled (status.go) is also the terminated reason of a container killed for memory.

	// MessageContainerStatusUnknown is the kubelet's message for a container it cannot find when the pod
	// is terminated.
	MessageContainerStatusUnknown = "The container could not be located when the pod was terminated"
)

// TerminationReason is the kubelet's reason for a container that exited: OOMKilled when the runtime
// knows it was killed for memory (Mesos reports REASON_CONTAINER_LIMITATION_MEMORY; exit code 137
// alone only means SIGKILL), Completed for exit code 0, Error otherwise.
func TerminationReason(exitCode int32, oomKilled bool) string {
	switch {
	case oomKilled:
		return ReasonOOMKilled
	case exitCode == 0:
		return ReasonCompleted
	default:
		return ReasonError
	}
}

// ExitFromWaitStatus decodes a wait(2) status, what Mesos' WAIT_CONTAINER returns as exit_status: a
// normal exit gives its code and signal 0; death by a signal gives exit code 128+signal (the shell and
// container runtime convention, 137 for SIGKILL) and the signal.
func ExitFromWaitStatus(ws int32) (exitCode, signal int32) {
	if sig := ws & 0x7f; sig != 0 && sig != 0x7f { // WIFSIGNALED
		return 128 + sig, sig
	}
	return (ws >> 8) & 0xff, 0 // WEXITSTATUS (stopped statuses decode the same way; they do not end a wait)
}

// Termination describes how a container ended.
type Termination struct {
	ExitCode  int32
	Signal    int32
	OOMKilled bool
	// Reason overrides TerminationReason(ExitCode, OOMKilled) when set.
	Reason      string
	Message     string
	StartedAt   metav1.Time
	FinishedAt  metav1.Time
	ContainerID string
}

// TerminatedState is the container state for t.
func TerminatedState(t Termination) corev1.ContainerState {
	reason := t.Reason
	if reason == "" {
		reason = TerminationReason(t.ExitCode, t.OOMKilled)
	}
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    t.ExitCode,
		Signal:      t.Signal,
		Reason:      reason,
		Message:     t.Message,
		StartedAt:   t.StartedAt,
		FinishedAt:  t.FinishedAt,
		ContainerID: t.ContainerID,
	}}
}

// RunningState is the state of a container running since startedAt.
func RunningState(startedAt metav1.Time) corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
}

// WaitingState is the state of a container not running yet (or again), with one of the kubelet's
// waiting reasons.
func WaitingState(reason, message string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
}

// NewContainerStatus is the status of container c in state: Started is true exactly when it runs, and
// Ready only when it runs and ready says so (a regular init container is Ready once it exited 0, as
// the kubelet reports it).
func NewContainerStatus(c *corev1.Container, state, last corev1.ContainerState, ready bool, restartCount int32) corev1.ContainerStatus {
	started := state.Running != nil
	return corev1.ContainerStatus{
		Name:                 c.Name,
		Image:                c.Image,
		State:                state,
		LastTerminationState: last,
		Ready:                ready && (started || (state.Terminated != nil && state.Terminated.ExitCode == 0)),
		RestartCount:         restartCount,
		Started:              &started,
	}
}
