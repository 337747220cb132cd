package podtranslate

import (
	"math"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// TaskLimits is the TaskInfo.limits of the task that carries a pod's resources (the pod task in host
// mode, else its sandbox task): the kubelet's pod-level cgroup limits (ResourceConfigForPod). Mesos
// sizes the executor's container from its tasks' limits (Slave::computeExecutorLimits), and the pod's
// containers are nested under that container, whose CFS quota and memory limit bound theirs: without
// limits a container limited above its request fails ("cpu.cfs_quota_us: invalid argument") and a
// container without a limit is held to the pod's request.
//   - cpus / mem: the pod's limits (k8s.io/component-helpers' PodLimits, overhead included, plus
//     o.Overhead) when every container declares one, or pod-level resources do; otherwise +Inf, Mesos'
//     "no limit" (a Burstable pod's cgroup has none either). Never below res' request.
//   - Only for a resource res requests: Mesos refuses a limit without a request.
func (o Options) TaskLimits(pod *corev1.Pod, res mesos.Resources) map[string]mesos.Value_Scalar {
	var cpuReq, memReq float64
	for _, r := range res {
		switch r.GetName() {
		case ResourceNameCPUs:
			cpuReq += r.GetScalar().GetValue()
		case ResourceNameMem:
			memReq += r.GetScalar().GetValue()
		}
	}
	lim := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	cpuDeclared, memDeclared := true, true
	each := func(cs []corev1.Container) {
		for i := range cs {
			if cs[i].Resources.Limits.Cpu().IsZero() {
				cpuDeclared = false
			}
			if cs[i].Resources.Limits.Memory().IsZero() {
				memDeclared = false
			}
		}
	}
	each(pod.Spec.InitContainers)
	each(pod.Spec.Containers)
	if pr := pod.Spec.Resources; pr != nil {
		cpuDeclared = cpuDeclared || !pr.Limits.Cpu().IsZero()
		memDeclared = memDeclared || !pr.Limits.Memory().IsZero()
	}
	out := map[string]mesos.Value_Scalar{}
	if cpuReq > 0 {
		v := math.Inf(1)
		if q, ok := lim[corev1.ResourceCPU]; ok && cpuDeclared {
			v = max(roundUpMilli(float64(q.MilliValue())/1000+o.Overhead.CPUs), cpuReq)
		}
		out[ResourceNameCPUs] = mesos.Value_Scalar{Value: v}
	}
	if memReq > 0 {
		v := math.Inf(1)
		if q, ok := lim[corev1.ResourceMemory]; ok && memDeclared {
			v = max(roundUpMilli(ceilDiv(q.Value(), mib)+o.Overhead.MemMB), memReq)
		}
		out[ResourceNameMem] = mesos.Value_Scalar{Value: v}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
