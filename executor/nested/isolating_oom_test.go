package nested_test

import (
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// A container whose memory exceeds its 64Mi limit is OOM-killed by the agent's cgroups/mem isolator,
// which the kubelet view reports as OOMKilled.
func TestIsolatedMemoryLimitOOMKilled(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		t.Skip("no cgroup v1 memory hierarchy")
	}
	// A sandbox process whose memory does not depend on how the test binary was built (-race).
	r := isolatingRuntimeWith(t, "filesystem/linux,namespaces/pid,cgroups/cpu,cgroups/mem", nil, []string{"sleep", "3600"})
	limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("500m")}
	// 128 MiB in a shell variable: more than the limit, without relying on a tool to allocate. (The
	// limit leaves room for the launch helpers of a -race test binary, which share the pod's cgroup.)
	pod := shPod("hog", `x=$(head -c 134217728 /dev/zero | tr '\0' a); echo survived ${#x}`, nil, nil, corev1.ResourceRequirements{Limits: limits})
	st, out := run(t, r, pod)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("a container past its 64Mi limit: %+v, output %q; want OOMKilled, 137", st, out)
	}
	// Its sandbox's memory cgroup (share_cgroups=false), which it shares, has the pod's limit plus the
	// sandbox's own memory as hard limit.
	pod = shPod("fits", `x=$(head -c 1048576 /dev/zero | tr '\0' a); echo ${#x}; `+
		`cat /sys/fs/cgroup/memory$(grep -E '^[0-9]+:memory:' /proc/self/cgroup | cut -d: -f3)/memory.limit_in_bytes`,
		nil, nil, corev1.ResourceRequirements{Limits: limits})
	if st, out := run(t, r, pod); st.ExitCode != 0 || st.Reason != "" || out != "1048576\n83886080\n" {
		t.Errorf("a container within its limit: %+v, output %q; want the 1 MiB string and a 64Mi+16Mi limit", st, out)
	}
}
