package nested

import (
	"context"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/executor/podworker"
)

// hostRuntime is a Runtime whose executor's container is "executor" and sandbox a temporary
// directory: pods readied with ready are on the host's network, nested under it.
func hostRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	cfg.Sandbox = t.TempDir()
	if cfg.DNS.ClusterDNS == nil {
		cfg.DNS.ClusterDNS = []string{"10.0.0.10"}
	}
	r := New(cfg)
	r.SetParent(mesos.ContainerID{Value: "executor"})
	return r
}

// ready readies pod's sandbox on the host's network (no agent call).
func ready(t *testing.T, r *Runtime, pod *corev1.Pod) {
	t.Helper()
	if _, err := r.RunPodSandbox(context.Background(), pod, podworker.SandboxSpec{}); err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
}

// A pod naming a RuntimeClass gets no sandbox, as on a node whose container runtime lacks that
// handler (containerd's text): Mesos has none ("RuntimeClass should schedule a Pod requesting a
// RuntimeClass": placed, then FailedCreatePodSandBox).
func TestRunPodSandboxRefusesRuntimeClass(t *testing.T) {
	r := hostRuntime(t, Config{})
	c := corev1.Container{Name: "app", Command: []string{"app"}}
	pod := testPod(c)
	handler := "test-handler"
	pod.Spec.RuntimeClassName = &handler
	_, err := r.RunPodSandbox(context.Background(), pod, podworker.SandboxSpec{})
	if err == nil || !strings.HasPrefix(err.Error(), `failed to get sandbox runtime: no runtime for "test-handler" is configured`) {
		t.Errorf("RunPodSandbox = %v, want containerd's missing-handler error", err)
	}
	empty := ""
	pod.Spec.RuntimeClassName = &empty
	if _, err := r.RunPodSandbox(context.Background(), pod, podworker.SandboxSpec{}); err != nil {
		t.Errorf("an empty runtimeClassName: %v", err)
	}
}
