package podworker

import (
	"context"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Runtime runs the containers of pods. The pod worker is its only consumer; the executor's real
// implementation launches Mesos nested containers (package executor/nested), tests use a fake.
// Every method may be called from any goroutine.
type Runtime interface {
	// Start creates and starts one container of pod and returns once it runs. attempt counts the
	// container's restarts (0 for the first start); a runtime uses it to give every attempt its own ID.
	Start(ctx context.Context, pod *corev1.Pod, container *corev1.Container, attempt int32) (Handle, error)
	// Wait blocks until the container exits and returns how it ended.
	Wait(ctx context.Context, h Handle) (ExitStatus, error)
	// Signal delivers sig to the container's processes.
	Signal(ctx context.Context, h Handle, sig syscall.Signal) error
	// Remove deletes what is left of an exited container (sandbox, logs).
	Remove(ctx context.Context, h Handle) error
}

// Handle names one started container attempt.
type Handle struct {
	// ID is the runtime's container ID; the pod status shows it as "<runtime>://<ID>".
	ID string
	// LogPath is the file the container's stdout goes to ("" if unknown).
	LogPath string
	// StderrPath is the file its stderr goes to ("" if unknown).
	StderrPath string
	// TerminationMessagePath is, on the executor's host, the file mounted at the container's
	// terminationMessagePath ("" if none was mounted): the worker reads the attempt's termination
	// message from it once the attempt ended.
	TerminationMessagePath string
	// PodUID is the pod the container belongs to (a runtime that nests containers in a pod
	// sandbox finds the sandbox with it).
	PodUID types.UID
}

// ExitStatus describes how a container ended.
type ExitStatus struct {
	// ExitCode is the process' exit code, or 128+signal when a signal ended it (as kubelets report).
	ExitCode int32
	// Signal is the signal that ended the process, 0 if it exited.
	Signal int32
	// Reason overrides the kubelet's Completed/Error reason when the runtime knows better (OOMKilled).
	Reason string
	// Message is free text from the runtime.
	Message string
}

// PodCleaner is implemented by runtimes that keep per-pod state (volumes): the worker calls CleanupPod
// once the pod is done and its containers are removed.
type PodCleaner interface {
	CleanupPod(ctx context.Context, pod *corev1.Pod) error
}
