package offerbridge

import (
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// Labels every agent's Node carries (docs/design.md, "Kubernetes side").
const (
	// LabelHostname is the well-known hostname label; its value is the agent's hostname.
	LabelHostname = corev1.LabelHostname
	// LabelAgentID holds the Mesos agent ID.
	LabelAgentID = "kubemesos.io/agent-id"
	// LabelAttrPrefix prefixes one label per agent attribute (text and scalar values).
	LabelAttrPrefix = "kubemesos.io/attr-"
)

// AgentLabels returns the labels of the Node that represents the offer's agent: the hostname, the agent
// ID and one label per text or scalar attribute (ranges and sets are skipped). Placement uses them for
// agents that have no Node yet, so a pod's nodeSelector matches the same way before and after the
// framework creates the Node; the framework should label Nodes with the same function.
func AgentLabels(o *mesos.Offer) map[string]string {
	labels := make(map[string]string, 2+len(o.Attributes))
	for i := range o.Attributes {
		a := &o.Attributes[i]
		switch a.GetType() {
		case mesos.TEXT:
			labels[LabelAttrPrefix+a.GetName()] = a.GetText().GetValue()
		case mesos.SCALAR:
			labels[LabelAttrPrefix+a.GetName()] = strconv.FormatFloat(a.GetScalar().GetValue(), 'f', -1, 64)
		}
	}
	labels[LabelHostname] = o.GetHostname()
	labels[LabelAgentID] = o.AgentID.Value
	return labels
}
