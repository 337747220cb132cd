package framework

import (
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The executor wrote its pod's own end (Failed, no reason: as the kubelet does for a container that
// exited non-zero) just before the framework's end for Mesos' account (a conflict): the executor's end
// stands, with its container statuses.
func TestExecutorsEndStandsOverMesosEnd(t *testing.T) {
	f := newFixture(t, State{FrameworkID: "fw-1"}, pod("p", "uid-p", bound("h1"), running))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	current, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	executorWrite := current.DeepCopy()
	executorWrite.Status.Phase = corev1.PodFailed
	executorWrite.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}
	conflicts := executorWritesFirst(t, f, executorWrite)
	f.update(status("pod-uid-p", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_EXECUTOR_TERMINATED.Enum(), []byte("u")))
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *conflicts != 1 || got.Status.Phase != corev1.PodFailed || got.Status.Reason != "" || len(got.Status.ContainerStatuses) != 1 ||
		got.Status.ContainerStatuses[0].State.Terminated == nil || got.Status.ContainerStatuses[0].State.Terminated.ExitCode != 3 {
		t.Errorf("conflicts %d, pod status %s/%q %+v: want the executor's end (Failed, exit 3) to stand", *conflicts, got.Status.Phase, got.Status.Reason, got.Status.ContainerStatuses)
	}
}
