package executor

import (
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// The terminal update of a pod whose container had a CPU limit (a CFS quota of its own under the
// executor's container) goes to Mesos CFSQuotaSettle after the pod's end, so that the shrink of the
// executor's container it causes does not meet the kernel still counting that quota (EINVAL, and Mesos
// destroys the executor's container). A pod without CPU limits is reported at once.
func TestTerminalUpdateWaitsForCPUQuotasToSettle(t *testing.T) {
	const settle = 2 * time.Second
	var mu sync.Mutex
	doneAt := map[types.UID]time.Time{}
	env := newSimEnvWith(t, func(*agent.Config) {}, func(c *Config) {
		c.CFSQuotaSettle = settle
		c.OnPodStatus = func(pod *corev1.Pod, _ corev1.PodStatus, done bool) {
			mu.Lock()
			defer mu.Unlock()
			if _, seen := doneAt[pod.UID]; done && !seen {
				doneAt[pod.UID] = time.Now()
			}
		}
	})
	limited := shPod("limited", corev1.RestartPolicyNever, 30, `true`)
	limited.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	unlimited := shPod("unlimited", corev1.RestartPolicyNever, 30, `true`)
	unlimited.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	for _, tc := range []struct {
		pod  *corev1.Pod
		held bool
	}{{limited, true}, {unlimited, false}} {
		st := env.awaitState(env.launch(tc.pod), "TASK_FINISHED")
		mu.Lock()
		end, ok := doneAt[tc.pod.UID]
		mu.Unlock()
		if !ok {
			t.Fatalf("%s: no last pod status seen", tc.pod.Name)
		}
		sent := time.Unix(0, int64(st.GetTimestamp()*1e9))
		if held := sent.Sub(end); tc.held != (held >= settle) {
			t.Errorf("%s: TASK_FINISHED sent %s after the pod's end; held for the quotas to settle (%s): %v", tc.pod.Name, held, settle, tc.held)
		}
	}
}

// A held terminal update never outlives the executor: on SHUTDOWN it goes out by the shutdown deadline
// (the agent's grace period less ShutdownMargin: 4 s here), however long CFSQuotaSettle is.
func TestHeldTerminalUpdateGoesOutByTheShutdownDeadline(t *testing.T) {
	env := newSimEnvWith(t, func(*agent.Config) {}, func(c *Config) { c.CFSQuotaSettle = time.Hour })
	pod := shPod("svc", corev1.RestartPolicyAlways, 30, `trap 'exit 0' TERM; while true; do sleep 0.05; done`)
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	task := env.launch(pod)
	env.awaitState(task, "TASK_RUNNING")
	env.agent.ShutdownExecutor(*env.fw.ID, env.exec.ExecutorID)
	if st := env.awaitState(task, "TASK_KILLED"); st.GetSource() != mesos.SOURCE_EXECUTOR {
		t.Errorf("TASK_KILLED from %s, want the executor's", st.GetSource())
	}
}
