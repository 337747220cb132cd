package kubemesos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Short pods whose container has a CPU limit above its request (as the Downward API "container's cpu
// limit" specs) end with their own status, and no executor container update fails on the way: the
// end of each pod shrinks the CFS quota of the executor container its containers were nested in (the
// kubelet executor's in host mode, the pod's sandbox executor's on the pod network), which cgroup v1
// refused (EINVAL) while the kernel still counted the just-removed container's larger quota; Mesos
// then destroys that executor's container and loses its tasks (the simulator does the same).
func TestShortPodsWithCPULimitsEndCleanly(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const pods = 6
		for i := range pods {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("limited-%d", i)}, Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](2),
				Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sh", "-c", "echo done"},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					}}}}}
			if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range pods {
			name := fmt.Sprintf("limited-%d", i)
			e.eventually("pod "+name+" to succeed", 2*time.Minute, func(ctx context.Context) (bool, error) {
				p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				if p.Status.Phase == corev1.PodFailed {
					return false, fatalf("pod %s failed: %s %s (%s)", name, p.Status.Reason, p.Status.Message, containerSummary(p))
				}
				return p.Status.Phase == corev1.PodSucceeded, fmt.Errorf("pod %s: %s %s", name, p.Status.Phase, containerSummary(p))
			})
		}
		// Every pod's tasks over (their sandboxes too): the last shrink has happened.
		e.eventually("no live task", time.Minute, func(ctx context.Context) (bool, error) {
			st, err := e.mesosState(ctx)
			if err != nil {
				return false, err
			}
			live := len(st.GetGetTasks().GetTasks()) + len(st.GetGetTasks().GetPendingTasks())
			return live == 0, fmt.Errorf("%d tasks still live", live)
		})
		// Each pod task ended with its pod (TASK_FINISHED), each sandbox when killed after it: none
		// lost with a destroyed executor.
		st, err := e.mesosState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range st.GetGetTasks().GetCompletedTasks() {
			want := mesos.TASK_FINISHED
			if strings.HasPrefix(task.TaskID.Value, "sandbox-") {
				want = mesos.TASK_KILLED
			}
			if task.GetState() != want {
				t.Errorf("task %s (%s) ended %s, want %s", task.TaskID.Value, task.Name, task.GetState(), want)
			}
		}
		log, err := os.ReadFile(e.simLog)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "Failed to update resources for container") || strings.Contains(line, "REASON_CONTAINER_UPDATE_FAILED") {
				t.Errorf("an executor container update failed: %s", line)
			}
		}
	})
}
