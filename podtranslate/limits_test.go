package podtranslate

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TaskLimits follows the kubelet's pod-level cgroup: a limit only when every container (init ones
// too) declares it, summed as kube's PodLimits (the larger of the app containers' sum and each init
// container), plus overheads; +Inf otherwise; never below the request; only where res requests.
func TestTaskLimits(t *testing.T) {
	inf := math.Inf(1)
	cpuMem := func(cpu, mem float64) map[string]mesos.Value_Scalar {
		return map[string]mesos.Value_Scalar{"cpus": {Value: cpu}, "mem": {Value: mem}}
	}
	res := Resources(Demand{CPUs: 0.5, MemMB: 64, DiskMB: 10}, "")
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		o    Options
		res  mesos.Resources
		want map[string]mesos.Value_Scalar
	}{
		{"best effort", testPod(), Options{}, res, cpuMem(inf, inf)},
		{"burstable: limits above requests", testPod(containers(ctr("a", rl("cpu", "250m", "memory", "64Mi"), rl("cpu", "1", "memory", "256Mi")))),
			Options{}, res, cpuMem(1, 256)},
		{"summed over containers", testPod(containers(
			ctr("a", nil, rl("cpu", "500m", "memory", "100Mi")), ctr("b", nil, rl("cpu", "1500m", "memory", "300Mi")))),
			Options{}, res, cpuMem(2, 400)},
		{"one container without a memory limit", testPod(containers(
			ctr("a", nil, rl("cpu", "500m", "memory", "100Mi")), ctr("b", nil, rl("cpu", "1500m")))),
			Options{}, res, cpuMem(2, inf)},
		{"an init container above the app containers", testPod(containers(ctr("a", nil, rl("cpu", "1", "memory", "100Mi"))),
			func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{ctr("init", nil, rl("cpu", "3", "memory", "50Mi"))}
			}), Options{}, res, cpuMem(3, 100)},
		{"an init container without limits", testPod(containers(ctr("a", nil, rl("cpu", "1", "memory", "100Mi"))),
			func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{ctr("init", nil, nil)} }), Options{}, res, cpuMem(inf, inf)},
		{"pod overhead and the framework's", testPod(containers(ctr("a", nil, rl("cpu", "1", "memory", "100Mi"))),
			func(p *corev1.Pod) {
				p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("10Mi")}
			}), Options{Overhead: Overhead{CPUs: 0.05, MemMB: 5}}, res, cpuMem(1.15, 115)},
		{"never below the request", testPod(containers(ctr("a", nil, rl("cpu", "100m", "memory", "16Mi")))), Options{}, res, cpuMem(0.5, 64)},
		{"pod-level limits", testPod(containers(ctr("a", nil, nil)), func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: rl("cpu", "2", "memory", "1Gi")}
		}), Options{}, res, cpuMem(2, 1024)},
		{"no memory request: no memory limit (Mesos wants a request)", testPod(containers(ctr("a", nil, rl("cpu", "1", "memory", "100Mi")))),
			Options{}, Resources(Demand{CPUs: 1}, ""), map[string]mesos.Value_Scalar{"cpus": {Value: 1}}},
		{"no cpus or mem at all", testPod(), Options{}, Resources(Demand{DiskMB: 1}, ""), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.o.TaskLimits(tc.pod, tc.res)); diff != "" {
				t.Errorf("TaskLimits (-want +got):\n%s", diff)
			}
		})
	}
}
