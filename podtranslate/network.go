package podtranslate

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// PodNetworkHost is the --pod-network value (and the meaning of an empty one) under which every pod
// uses its agent's network: no CNI network is named, and every containerPort is a Mesos `ports`
// resource so that two pods of one agent never listen on the same port.
const PodNetworkHost = "host"

// LabelPodNetwork on a TaskInfo names the CNI network (Mesos NetworkInfo.name) the executor attaches
// the pod's sandbox container to. It is absent for hostNetwork pods and in host mode.
const LabelPodNetwork = "kubemesos.io/pod-network"

// Options are the framework settings translation depends on. The zero value is host mode without
// overhead.
type Options struct {
	// Overhead is added to every pod's task (--pod-overhead-cpus/--pod-overhead-mem).
	Overhead Overhead
	// PodNetwork is --pod-network: PodNetworkHost (or empty) for the agents' network, else the name of
	// the CNI network configured on the agents.
	PodNetwork string
}

// HostMode reports whether pods use their agents' network (no CNI network).
func (o Options) HostMode() bool { return o.PodNetwork == "" || o.PodNetwork == PodNetworkHost }

// NetworkOf is the CNI network the pod joins, "" when it uses its agent's network (hostNetwork
// pods, host mode).
func (o Options) NetworkOf(pod *corev1.Pod) string {
	if o.HostMode() || pod.Spec.HostNetwork {
		return ""
	}
	return o.PodNetwork
}

// sharesAgentNetwork reports whether the pod's containers listen on the agent's own ports.
func (o Options) sharesAgentNetwork(pod *corev1.Pod) bool { return o.NetworkOf(pod) == "" }

// PodNetworkOf reads LabelPodNetwork from a TaskInfo's labels: "" means the agent's network.
func PodNetworkOf(l *mesos.Labels) string {
	for _, lb := range l.GetLabels() {
		if lb.Key == LabelPodNetwork {
			return lb.GetValue()
		}
	}
	return ""
}
