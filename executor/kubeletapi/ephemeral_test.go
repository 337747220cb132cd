package kubeletapi

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An ephemeral container is found by name like the others (logs, exec, attach), with its running
// attempt from ephemeralContainerStatuses and its stdin/tty from spec.ephemeralContainers.
func TestRegistryFindsEphemeralContainers(t *testing.T) {
	r := NewRegistry("/sandbox")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "main"}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debugger", Stdin: true, TTY: true}}},
		},
	}
	st := corev1.PodStatus{EphemeralContainerStatuses: []corev1.ContainerStatus{{
		Name: "debugger", ContainerID: "mesos://u1-debugger-0",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
	}}}
	r.Update(pod, st)
	ref, err := r.Container("ns", "p", "debugger")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Current == nil || ref.Current.ID != "u1-debugger-0" || !ref.Current.Running || !ref.Stdin || !ref.TTY {
		t.Errorf("debugger = %+v (current %+v), want its running attempt u1-debugger-0 with stdin and tty", ref, ref.Current)
	}
	if _, err := r.Container("ns", "p", "nosuch"); !errors.Is(err, ErrContainerNotFound) {
		t.Errorf("unknown container: %v", err)
	}
	// The stats summary lists it with the pod's other running containers.
	pods := r.RunningPods()
	if len(pods) != 1 || len(pods[0].Containers) != 1 || pods[0].Containers[0].Name != "debugger" || pods[0].Containers[0].ID != "u1-debugger-0" {
		t.Errorf("RunningPods = %+v, want the pod with its running ephemeral container u1-debugger-0", pods)
	}
}
