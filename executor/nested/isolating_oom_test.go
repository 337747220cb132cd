package nested_test

import (
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// A container whose memory exceeds its 256Mi limit is OOM-killed by the agent's cgroups/mem isolator,
// which the kubelet view reports as OOMKilled.
func TestIsolatedMemoryLimitOOMKilled(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		t.Skip("no cgroup v1 memory hierarchy")
	}
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid,cgroups/cpu,cgroups/mem", nil)
	limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi"), corev1.ResourceCPU: resource.MustParse("500m")}
	// tail looks for a line end in /dev/zero and buffers without bound. (The limit leaves room for the
	// launch helpers of a -race test binary, which share the pod's cgroup.)
	pod := shPod("hog", `tail /dev/zero; echo survived`, nil, nil, corev1.ResourceRequirements{Limits: limits})
	st, out := run(t, r, pod)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("a container past its 256Mi limit: %+v, output %q; want OOMKilled, 137", st, out)
	}
	// Its own memory cgroup (share_cgroups=false, one level under its parent: Mesos nests them,
	// mesos/<parent>/mesos/<id>) has its limit.
	pod = shPod("fits", `x=$(head -c 1048576 /dev/zero | tr '\0' a); echo ${#x}; `+
		`cg=/sys/fs/cgroup/memory$(grep -E '^[0-9]+:memory:' /proc/self/cgroup | cut -d: -f3); `+
		`cat $cg/memory.limit_in_bytes`,
		nil, nil, corev1.ResourceRequirements{Limits: limits})
	if st, out := run(t, r, pod); st.ExitCode != 0 || st.Reason != "" || out != "1048576\n268435456\n" {
		t.Errorf("a container within its limit: %+v, output %q; want the 1 MiB string and its 256Mi limit", st, out)
	}
}
