package offerbridge

import (
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// res builds an offered resource allocated to role alloc; reservedFor != "" makes it statically
// reserved for that role.
type res struct {
	name        string
	value       float64
	ports       [][2]uint64
	alloc       string
	reservedFor string
}

func (r res) mesos() mesos.Resource {
	out := mesos.Resource{Name: r.name}
	if r.ports != nil {
		out.Type = mesos.RANGES.Enum()
		var rs []mesos.Value_Range
		for _, p := range r.ports {
			rs = append(rs, mesos.Value_Range{Begin: p[0], End: p[1]})
		}
		out.Ranges = &mesos.Value_Ranges{Range: rs}
	} else {
		out.Type = mesos.SCALAR.Enum()
		out.Scalar = &mesos.Value_Scalar{Value: r.value}
	}
	if r.alloc != "" {
		role := r.alloc
		out.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
	}
	if r.reservedFor != "" {
		role := r.reservedFor
		out.Reservations = []mesos.Resource_ReservationInfo{{
			Type: mesos.Resource_ReservationInfo_STATIC.Enum(),
			Role: &role,
		}}
	}
	return out
}

// offer builds an offer of agent (hostname "<agent>.example") allocated to role.
func offer(id, agentID, role string, rs ...res) mesos.Offer {
	o := mesos.Offer{
		ID:          mesos.OfferID{Value: id},
		FrameworkID: mesos.FrameworkID{Value: "fw"},
		AgentID:     mesos.AgentID{Value: agentID},
		Hostname:    agentID + ".example",
	}
	if role != "" {
		r := role
		o.AllocationInfo = &mesos.Resource_AllocationInfo{Role: &r}
	}
	for _, r := range rs {
		if r.alloc == "" {
			r.alloc = role
		}
		o.Resources = append(o.Resources, r.mesos())
	}
	return o
}

// basic is an unreserved offer of cpus, mem and disk for role "kubemesos".
func basic(id, agentID string, cpus, mem float64) mesos.Offer {
	return offer(id, agentID, "kubemesos",
		res{name: "cpus", value: cpus},
		res{name: "mem", value: mem},
		res{name: "disk", value: 10000},
		res{name: "ports", ports: [][2]uint64{{31000, 32000}}},
	)
}

type podOpt func(*corev1.Pod)

// pod builds a pod with one container requesting cpu (cores) and mem (MiB).
func pod(name string, cpu, memMB float64, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(cpu*1000), resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(int64(memMB)<<20, resource.BinarySI),
			}},
		}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// gpuPod is pod with gpus nvidia.com/gpu requested.
func gpuPod(name string, cpu, memMB float64, gpus int64) *corev1.Pod {
	p := pod(name, cpu, memMB)
	p.Spec.Containers[0].Resources.Requests["nvidia.com/gpu"] = *resource.NewQuantity(gpus, resource.DecimalSI)
	p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": *resource.NewQuantity(gpus, resource.DecimalSI)}
	return p
}

func hostPort(ports ...int32) podOpt {
	return func(p *corev1.Pod) {
		for _, hp := range ports {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports,
				corev1.ContainerPort{Name: fmt.Sprintf("p%d", hp), ContainerPort: hp, HostPort: hp, Protocol: corev1.ProtocolTCP})
		}
	}
}

func nodeSelector(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Spec.NodeSelector[kv[i]] = kv[i+1]
		}
	}
}

func tolerate(t corev1.Toleration) podOpt {
	return func(p *corev1.Pod) { p.Spec.Tolerations = append(p.Spec.Tolerations, t) }
}

func nodeNamed(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func requiredAffinity(terms ...corev1.NodeSelectorTerm) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
}

func node(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: taints},
	}
}

// placed returns "pod@agent" for every placement, in launch order.
func placed(p Plan) []string {
	var out []string
	for _, l := range p.Launches {
		for _, pp := range l.Pods {
			out = append(out, pp.Pod.Name+"@"+l.AgentID.Value)
		}
	}
	return out
}

func offerIDs(ids ...string) []mesos.OfferID {
	out := make([]mesos.OfferID, len(ids))
	for i, id := range ids {
		out[i] = mesos.OfferID{Value: id}
	}
	return out
}

func unfitNames(p Plan) map[string]string {
	out := map[string]string{}
	for _, u := range p.Unschedulable {
		out[u.Pod.Name] = u.Message
	}
	return out
}
