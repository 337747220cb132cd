package podtranslate

import (
	"errors"
	"fmt"
	"math"
	"sort"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Overhead is added to every pod's task on top of what the pod asks for (the framework's
// --pod-overhead-cpus/--pod-overhead-mem), for example to cover the executor's per-pod bookkeeping.
type Overhead struct {
	CPUs  float64
	MemMB float64
}

// HostPort is one port a pod needs on its agent. Mesos' `ports` resource has no protocol, so TCP and
// UDP on the same number both take that port.
type HostPort struct {
	Port     uint32
	Protocol corev1.Protocol
}

// Demand is what a pod's task needs from an offer, in Mesos units: cores, MiB, MiB, whole GPUs, and
// the host ports (sorted by port then protocol, without duplicates).
type Demand struct {
	CPUs, MemMB, DiskMB, GPUs float64
	HostPorts                 []HostPort
}

// MinCPUs is the cpu share given to a pod that asks for none (a BestEffort pod with no overhead):
// Mesos refuses a task without resources ("Task uses no resources"), and 0.01 is Mesos' own
// MIN_CPUS.
const MinCPUs = 0.01

// MinMemMB is the memory given to a pod that asks for none: Mesos refuses a memory limit without a
// memory request, and a pod without requests needs the unlimited one (see TaskLimits), else its
// containers would be held to its executor container's own memory.
const MinMemMB = 1

const mib = 1 << 20

// PodDemand computes a pod's demand the way Kubernetes computes a pod's requests for scheduling:
//   - per container, the request of each resource, or its limit where only the limit is set;
//   - app containers (and restartable init containers) are summed; the pod needs the larger of that sum
//     and each init container's request plus the restartable init containers started before it;
//   - pod-level resources (spec.resources, cpu and memory) replace the container aggregate;
//   - spec.overhead is added, then o.
//
// CPU is in cores with millicore precision, memory (memory) and disk (ephemeral-storage) in MiB rounded
// up, GPUs (nvidia.com/gpu) whole. A pod asking for no cpu at all gets MinCPUs, no memory MinMemMB. Host ports are the
// containers' hostPorts; for a pod on its agent's network (hostNetwork, or every pod in host mode) a
// containerPort without hostPort is a host port too, init containers' included: they listen on the
// agent's port while they run, and a port taken by another pod of the agent would make them fail,
// so the port is the pod's for its whole life. A pod with fields o.Check refuses yields an error
// wrapping ErrUnsupported (an *UnsupportedError).
func PodDemand(pod *corev1.Pod, o Options) (Demand, error) {
	if pod == nil {
		return Demand{}, errors.New("nil pod")
	}
	if bad := o.Check(pod); len(bad) > 0 {
		return Demand{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, &UnsupportedError{Fields: bad})
	}
	ov := o.Overhead
	if !validOverhead(ov.CPUs) || !validOverhead(ov.MemMB) {
		return Demand{}, fmt.Errorf("invalid pod overhead cpus=%v mem=%v", ov.CPUs, ov.MemMB)
	}
	req := podRequests(pod)
	d := Demand{
		CPUs:      roundUpMilli(float64(req[corev1.ResourceCPU])/1000 + ov.CPUs),
		MemMB:     roundUpMilli(ceilDiv(req[corev1.ResourceMemory], mib) + ov.MemMB),
		DiskMB:    ceilDiv(req[corev1.ResourceEphemeralStorage], mib),
		GPUs:      float64(req[ResourceGPU]),
		HostPorts: hostPorts(pod, o.sharesAgentNetwork(pod)),
	}
	if d.CPUs == 0 {
		d.CPUs = MinCPUs
	}
	if d.MemMB == 0 {
		d.MemMB = MinMemMB
	}
	return d, nil
}

func validOverhead(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }

// amounts holds resource quantities in base units: millicores for cpu, bytes or counts for the rest.
type amounts map[corev1.ResourceName]int64

// podRequests is Kubernetes' PodRequests (k8s.io/component-helpers/resource) over the resources
// kubemesos knows, with requests defaulted from limits.
func podRequests(pod *corev1.Pod) amounts {
	sum := amounts{}
	for i := range pod.Spec.Containers {
		sum.add(effective(&pod.Spec.Containers[i].Resources))
	}
	sidecars, initMax := amounts{}, amounts{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		use := effective(&c.Resources)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum.add(use)
			sidecars.add(use)
			use = sidecars
		} else {
			use.add(sidecars)
		}
		initMax.max(use)
	}
	sum.max(initMax)
	if pr := pod.Spec.Resources; pr != nil {
		for name, v := range effective(pr) {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
				sum[name] = v
			}
		}
	}
	sum.add(amountsOf(pod.Spec.Overhead))
	return sum
}

// effective returns a container's requests, taking the limit for resources that have only a limit
// (what API defaulting does, repeated here for pods that did not go through it).
func effective(r *corev1.ResourceRequirements) amounts {
	out := amountsOf(r.Requests)
	for name, q := range r.Limits {
		if _, ok := r.Requests[name]; !ok && knownResource(name) {
			out[name] = amount(name, q)
		}
	}
	return out
}

func amountsOf(list corev1.ResourceList) amounts {
	out := amounts{}
	for name, q := range list {
		if knownResource(name) {
			out[name] = amount(name, q)
		}
	}
	return out
}

func amount(name corev1.ResourceName, q resource.Quantity) int64 {
	var v int64
	if name == corev1.ResourceCPU {
		v = q.MilliValue()
	} else {
		v = q.Value()
	}
	return max(v, 0)
}

func (a amounts) add(b amounts) {
	for name, v := range b {
		s := a[name] + v
		if s < a[name] { // saturate instead of wrapping on absurd quantities
			s = math.MaxInt64
		}
		a[name] = s
	}
}

func (a amounts) max(b amounts) {
	for name, v := range b {
		if v > a[name] {
			a[name] = v
		}
	}
}

func ceilDiv(v, unit int64) float64 {
	if v <= 0 {
		return 0
	}
	return float64((v-1)/unit + 1)
}

// roundUpMilli rounds up to Mesos' scalar precision (three decimals), ignoring float noise below it.
func roundUpMilli(x float64) float64 {
	return math.Ceil(math.Round(x*1e6)/1e3) / 1e3
}

// hostPorts lists the agent ports the pod takes; agentNetwork says its containers listen on the agent's
// own ports.
func hostPorts(pod *corev1.Pod, agentNetwork bool) []HostPort {
	seen := map[HostPort]bool{}
	var out []HostPort
	collect := func(cs []corev1.Container) {
		for i := range cs {
			for _, p := range cs[i].Ports {
				port := p.HostPort
				if agentNetwork && port == 0 {
					port = p.ContainerPort
				}
				if port <= 0 {
					continue
				}
				proto := p.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				hp := HostPort{Port: uint32(port), Protocol: proto}
				if !seen[hp] {
					seen[hp] = true
					out = append(out, hp)
				}
			}
		}
	}
	collect(pod.Spec.InitContainers)
	collect(pod.Spec.Containers)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol < out[j].Protocol
	})
	return out
}

// Mesos resource names.
const (
	ResourceNameCPUs  = "cpus"
	ResourceNameMem   = "mem"
	ResourceNameDisk  = "disk"
	ResourceNameGPUs  = "gpus"
	ResourceNamePorts = "ports"
)

// Resources turns a demand into unreserved Mesos resources allocated to role (AllocationInfo.role, as
// offers to a MULTI_ROLE framework carry it; no allocation info when role is empty): scalars for the
// non-zero amounts and one `ports` range resource for the host ports. Resources offered with a
// reservation do not contain these; carving reserved resources is the placement code's job.
func Resources(d Demand, role string) mesos.Resources {
	var alloc *mesos.Resource_AllocationInfo
	if role != "" {
		r := role
		alloc = &mesos.Resource_AllocationInfo{Role: &r}
	}
	var rs mesos.Resources
	for _, s := range []struct {
		name string
		v    float64
	}{{ResourceNameCPUs, d.CPUs}, {ResourceNameMem, d.MemMB}, {ResourceNameDisk, d.DiskMB}, {ResourceNameGPUs, d.GPUs}} {
		if s.v > 0 {
			rs = append(rs, mesos.Resource{
				Name:           s.name,
				Type:           mesos.SCALAR.Enum(),
				Scalar:         &mesos.Value_Scalar{Value: s.v},
				AllocationInfo: cloneAlloc(alloc),
			})
		}
	}
	if len(d.HostPorts) > 0 {
		ports := make([]uint64, len(d.HostPorts))
		for i, hp := range d.HostPorts {
			ports[i] = uint64(hp.Port)
		}
		rs = append(rs, mesos.Resource{
			Name:           ResourceNamePorts,
			Type:           mesos.RANGES.Enum(),
			Ranges:         &mesos.Value_Ranges{Range: mesos.NewRanges(ports...)},
			AllocationInfo: cloneAlloc(alloc),
		})
	}
	return rs
}

func cloneAlloc(a *mesos.Resource_AllocationInfo) *mesos.Resource_AllocationInfo {
	if a == nil {
		return nil
	}
	r := *a.Role
	return &mesos.Resource_AllocationInfo{Role: &r}
}

func sortedNames(list corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(list))
	for n := range list {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
