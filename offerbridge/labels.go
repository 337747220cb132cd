package offerbridge

import (
	"runtime"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels every agent's Node carries (docs/design.md, "Kubernetes side").
const (
	// LabelHostname is the well-known hostname label; its value is the agent's hostname.
	LabelHostname = corev1.LabelHostname
	// LabelAgentID holds the Mesos agent ID.
	LabelAgentID = "kubemesos.io/agent-id"
	// LabelAttrPrefix prefixes one label per agent attribute (text and scalar values).
	LabelAttrPrefix = "kubemesos.io/attr-"
	// AttributeArch is the agent attribute (e.g. --attributes=arch:arm64) that gives its Node's
	// kubernetes.io/arch; without it the agent is taken to run the framework's architecture, as the
	// executor binary the agents fetch from the framework is the framework's own.
	AttributeArch = "arch"
)

// AgentLabels returns the labels of the Node that represents the offer's agent, as a kubelet labels
// its Node: the hostname, kubernetes.io/os (linux) and kubernetes.io/arch (AgentArch); then the agent
// ID and one label per text or scalar attribute (ranges and sets are skipped, and so are attributes
// whose name or value is not a valid label, see SkippedAttributes). Placement uses them for agents that
// have no Node yet, so a pod's nodeSelector matches the same way before and after the framework
// creates the Node; the framework labels Nodes with the same function.
func AgentLabels(o *mesos.Offer) map[string]string {
	labels := make(map[string]string, 4+len(o.Attributes))
	for i := range o.Attributes {
		if k, v, why := attributeLabel(&o.Attributes[i]); k != "" && why == "" {
			labels[k] = v
		}
	}
	labels[LabelHostname] = o.GetHostname()
	labels[LabelAgentID] = o.AgentID.Value
	labels[corev1.LabelOSStable] = "linux"
	labels[corev1.LabelArchStable] = AgentArch(o.Attributes)
	return labels
}

// AgentArch is the value of the agent's text attribute AttributeArch when it is a valid label value,
// else the framework's GOARCH.
func AgentArch(attrs []mesos.Attribute) string {
	for i := range attrs {
		a := &attrs[i]
		if a.GetName() == AttributeArch && a.GetType() == mesos.TEXT {
			if v := a.GetText().GetValue(); v != "" && len(validation.IsValidLabelValue(v)) == 0 {
				return v
			}
		}
	}
	return runtime.GOARCH
}

// SkippedAttributes explains, per attribute name, why a text or scalar attribute has no label: its
// name does not make a valid label key or its value is not a valid label value (a pod CIDR such as
// 10.244.3.0/24 is not). Ranges and sets, which never have labels, are not listed.
func SkippedAttributes(attrs []mesos.Attribute) map[string]string {
	var out map[string]string
	for i := range attrs {
		if _, _, why := attributeLabel(&attrs[i]); why != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[attrs[i].GetName()] = why
		}
	}
	return out
}

// attributeLabel is the label of a text or scalar attribute, or why it has none ("" key and reason
// for ranges and sets).
func attributeLabel(a *mesos.Attribute) (key, value, why string) {
	switch a.GetType() {
	case mesos.TEXT:
		value = a.GetText().GetValue()
	case mesos.SCALAR:
		value = strconv.FormatFloat(a.GetScalar().GetValue(), 'f', -1, 64)
	default:
		return "", "", ""
	}
	key = LabelAttrPrefix + a.GetName()
	// Placement labels every agent without a Node on every cycle: the common case skips the regexps.
	if labelName(key[len("kubemesos.io/"):]) && (value == "" || labelName(value)) {
		return key, value, ""
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", "", "label key " + strconv.Quote(key) + ": " + strings.Join(errs, "; ")
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return "", "", "label value " + strconv.Quote(value) + ": " + strings.Join(errs, "; ")
	}
	return key, value, ""
}

// labelName reports whether s is a valid label value that is not empty, which is also what the name
// part of a label key must be: at most 63 characters, alphanumerics, '-', '_' or '.', beginning and ending
// with an alphanumeric (k8s.io/apimachinery/pkg/util/validation).
func labelName(s string) bool {
	if len(s) == 0 || len(s) > validation.LabelValueMaxLength || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
