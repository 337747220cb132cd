package framework

import (
	"errors"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
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
	conflicts := 0
	f.kube.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" || conflicts > 0 {
			return false, nil, nil
		}
		conflicts++
		if err := f.kube.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), executorWrite, "default"); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(corev1.Resource("pods"), "p", errors.New("the object has been modified"))
	})
	f.update(status("pod-uid-p", "a1", mesos.TASK_FAILED, mesos.SOURCE_AGENT, mesos.REASON_EXECUTOR_TERMINATED.Enum(), []byte("u")))
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if conflicts != 1 || got.Status.Phase != corev1.PodFailed || got.Status.Reason != "" || len(got.Status.ContainerStatuses) != 1 ||
		got.Status.ContainerStatuses[0].State.Terminated == nil || got.Status.ContainerStatuses[0].State.Terminated.ExitCode != 3 {
		t.Errorf("conflicts %d, pod status %s/%q %+v: want the executor's end (Failed, exit 3) to stand", conflicts, got.Status.Phase, got.Status.Reason, got.Status.ContainerStatuses)
	}
}
