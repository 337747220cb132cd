package kubemesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Pods' limits as the kubelet's pod-level cgroups have them, through the tasks' TaskInfo.limits (the
// executor container Mesos nests the pod's containers under is sized from them), on the pod network
// (the sandbox task carries them) and in host mode (the pod task does):
//   - a container whose limits are above its requests runs (its CFS quota above the pod's request was
//     refused with "cpu.cfs_quota_us: invalid argument" when the parent's quota was the request);
//   - a container without requests or limits may use more memory than its executor container's own
//     (it was held to the sandbox executor's 32 MB);
//   - a container past its own memory limit still ends OOMKilled.
func TestPodLimitsAboveRequests(t *testing.T) {
	onBothNetworks(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		res := func(req, lim corev1.ResourceList) corev1.ResourceRequirements {
			return corev1.ResourceRequirements{Requests: req, Limits: lim}
		}
		q := func(cpu, mem string) corev1.ResourceList {
			return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
		}
		pods := map[string]corev1.Container{
			// Holds 48 MiB in a shell variable, then says so.
			"burstable": {Name: "main", Image: "busybox", Command: []string{"sh", "-c", "x=$(head -c 48m /dev/zero | tr '\\0' a); echo held ${#x}"},
				Resources: res(q("100m", "16Mi"), q("500m", "128Mi"))},
			"besteffort": {Name: "main", Image: "busybox", Command: []string{"sh", "-c", "x=$(head -c 48m /dev/zero | tr '\\0' a); echo held ${#x}"}},
			"hog": {Name: "main", Image: "busybox", Command: []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"},
				Resources: res(q("100m", "16Mi"), q("200m", "48Mi"))},
		}
		for name, c := range pods {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To[int64](2), Containers: []corev1.Container{c}}}
			if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]string{"burstable": "Completed", "besteffort": "Completed", "hog": "OOMKilled"}
		for name, reason := range want {
			e.eventually(fmt.Sprintf("pod %s to end %s", name, reason), 2*time.Minute, func(ctx context.Context) (bool, error) {
				p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				if p.Status.Phase == corev1.PodFailed && len(p.Status.ContainerStatuses) == 0 {
					return false, fatalf("pod %s failed: %s %s", name, p.Status.Reason, p.Status.Message)
				}
				for _, cs := range p.Status.ContainerStatuses {
					if tr := cs.State.Terminated; tr != nil {
						if tr.Reason != reason {
							return false, fatalf("pod %s ended %s (exit %d): %s", name, tr.Reason, tr.ExitCode, tr.Message)
						}
						return true, nil
					}
				}
				return false, fmt.Errorf("pod %s: %s", name, containerSummary(p))
			})
		}
	})
}

// onBothNetworks runs f in a one-agent env of each network mode: the CNI pod network (a pod's
// containers nested in its sandbox executor's container) and the host's (in the kubelet executor's).
func onBothNetworks(t *testing.T, f func(t *testing.T, e *env)) {
	for _, network := range []string{podNetworkName, "host"} {
		t.Run("network="+network, func(t *testing.T) {
			if network == "host" {
				f(t, newIsolatingEnv(t, envOptions{Agents: 1}))
			} else {
				f(t, newPodNetworkEnv(t, envOptions{Agents: 1}))
			}
		})
	}
}
