package podworker

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// Sandbox is a started pod sandbox: what its containers share (the CRI's PodSandbox).
type Sandbox struct {
	// PodIP is the sandbox's own address on the pod network; empty when it uses the host's network
	// (the pod IP is then Config.PodIP, the host's).
	PodIP string
}

// SandboxSpec is where a pod's sandbox is: on the host's network, or on a CNI pod network held by
// the container of the pod's sandbox executor (design P: the framework launches it beside the pod
// task).
type SandboxSpec struct {
	// Network is the CNI network ("" for the host's).
	Network string
	// Executor is the ExecutorID of the pod's sandbox executor ("" on the host's network).
	Executor string
}

// SandboxRuntime is implemented by runtimes that run a pod's containers inside a pod sandbox that
// holds its network (the kubelet's RunPodSandbox / StopPodSandbox). The worker starts the sandbox
// before any container and stops it once every container is removed.
type SandboxRuntime interface {
	// RunPodSandbox readies the pod's sandbox and returns once it runs with its address. An error
	// means no sandbox exists: the pod fails (FailedCreatePodSandBox).
	RunPodSandbox(ctx context.Context, pod *corev1.Pod, spec SandboxSpec) (Sandbox, error)
	// StopPodSandbox stops and removes the pod's sandbox (and what a failed RunPodSandbox left); it
	// is a no-op for a pod without one.
	StopPodSandbox(ctx context.Context, pod *corev1.Pod) error
}

// Kubelet texts of the pod sandbox.
const (
	// EventFailedCreatePodSandBox is the kubelet's event reason (sic: "SandBox") when the sandbox
	// could not be created; its message is "Failed to create pod sandbox: <error>".
	EventFailedCreatePodSandBox = "FailedCreatePodSandBox"
	// ReasonPodSandboxNotReady is the reason of a False PodReadyToStartContainers condition.
	ReasonPodSandboxNotReady = "PodSandboxNotReady"
	// MsgNoPodSandbox and MsgSandboxNotReady are its messages: before the sandbox exists (or when it
	// could not be created), and once it was stopped.
	MsgNoPodSandbox    = "no pod sandbox exists"
	MsgSandboxNotReady = "pod sandbox is not ready"
	// MsgNoIPAddress: a sandbox on a pod network that got no address.
	MsgNoIPAddress = "pod sandbox has no IP address"
)

// sandboxState is where a pod's sandbox is.
type sandboxState int

const (
	// sbNone: the runtime has no sandboxes; containers start at once.
	sbNone sandboxState = iota
	sbPending
	sbReady
	sbFailed
)
