package offerbridge

import (
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Rejection reasons. They are kube-scheduler's phrases (pkg/scheduler/framework/plugins), so users and
// tooling that know kube-scheduler's FailedScheduling events read ours the same way.
const (
	ReasonNodeName           = "node(s) didn't match the requested node name"
	ReasonUnschedulable      = "node(s) were unschedulable"
	ReasonNodeAffinity       = "node(s) didn't match Pod's node affinity/selector"
	ReasonHostPorts          = "node(s) didn't have free ports for the requested pod ports"
	ReasonInsufficientCPU    = "Insufficient cpu"
	ReasonInsufficientMemory = "Insufficient memory"
	ReasonInsufficientDisk   = "Insufficient ephemeral-storage"
	ReasonInsufficientGPUs   = "Insufficient gpus"
	// reasonTaintFormat names the first taint an agent's Node has that the pod does not tolerate.
	reasonTaintFormat = "node(s) had untolerated taint {%s: %s}"
)

// podInfo is what placement needs of one pending pod, computed once per Place call.
type podInfo struct {
	pod  *corev1.Pod
	need need
	// sandboxed pods are two tasks (podtranslate.Options.Sandboxed): need then also holds the sandbox
	// executor and the pod task's token.
	sandboxed bool
	// needExec is need plus the executor, for agents where the executor is not running yet.
	needExec need
	// statics is the static checkers' outcome per agent rank, shared by pods with equal constraints;
	// nil for unconstrained pods.
	statics []staticResult
	// rules is the state of the rules that look at other pods and Nodes (rules.go); nil when none
	// applies, then only the checkers below and the resources' score place the pod.
	rules *rules
	// constrained is false when the pod has no node name, node selector, required node affinity or
	// tolerations, so that the static checkers can only fail on agents with taints or cordoned Nodes.
	constrained bool
}

// need is a demand in placement units: thousandths of each scalar, and distinct host ports.
type need struct {
	scalar [numDims]int64
	ports  []uint64
}

// plus returns n with the executor's resources added.
func (n need) plus(e [numDims]int64) need {
	for d := range n.scalar {
		n.scalar[d] += e[d]
	}
	return n
}

// agent is what one Mesos agent offers in this Place call, with the Node facts checkers look at.
type agent struct {
	id       string
	hostname string
	nodeName string
	labels   map[string]string
	taints   []corev1.Taint // NoSchedule and NoExecute only: the effects that keep pods off
	// taintReasons[i] is the rejection reason for taints[i], formatted once.
	taintReasons []string
	// preferTaints are the PreferNoSchedule taints, which only score.
	preferTaints []corev1.Taint
	cordoned     bool
	topo         *topoNode
	// maintenance is true when the agent's offers carry an unavailability (a maintenance window).
	maintenance bool
	// nominated are the pods waiting for this agent's resources (Input.Nominated).
	nominated []nominatedPod
	buckets   []*bucket // one per allocation role, sorted by role
	// executorRunning is true when our executor already runs on the agent, so pods need no executor
	// resources there. executorBucket is the bucket the executor was carved from in this plan: later
	// pods on the agent use the same bucket, so the executor is launched by the first ACCEPT.
	executorRunning bool
	executorBucket  *bucket
	// pods is how many pods the agent's Node has, bound or placed in this plan; maxPods its
	// allocatable pods (DefaultMaxPods without a Node). Next to the buckets: fitBucket reads both.
	pods, maxPods int
	free          [numDims]int64 // sum over buckets
	capacity      [numDims]int64 // for scoring: the Node's allocatable, or else what is offered
	rank          int            // seeded tie-break
}

// nominatedPod is a pod nominated to an agent, with its priority and need.
type nominatedPod struct {
	uid    types.UID
	prio   int32
	scalar [numDims]int64
}

// A checker decides whether an agent can host a pod regardless of resources, like a kube-scheduler
// Filter plugin or a Nomad FeasibilityChecker. It returns "" when the agent is feasible, or else the reason.
type checker interface {
	check(p *podInfo, a *agent) string
}

// staticCheckers run in the order of kube-scheduler's default profile; the first rejection wins.
var staticCheckers = []checker{nodeName{}, nodeUnschedulable{}, taintToleration{}, nodeAffinity{}}

var (
	_ checker = nodeName{}
	_ checker = nodeUnschedulable{}
	_ checker = taintToleration{}
	_ checker = nodeAffinity{}
)

// nodeName: a pod whose spec.nodeName is already set may only go to that agent.
type nodeName struct{}

func (nodeName) check(p *podInfo, a *agent) string {
	if n := p.pod.Spec.NodeName; n != "" && n != a.nodeName {
		return ReasonNodeName
	}
	return ""
}

// nodeUnschedulable: a cordoned Node takes no new pods unless they tolerate the unschedulable taint.
type nodeUnschedulable struct{}

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

func (nodeUnschedulable) check(p *podInfo, a *agent) string {
	if a.cordoned && !tolerated(p.pod.Spec.Tolerations, &unschedulableTaint) {
		return ReasonUnschedulable
	}
	return ""
}

// taintToleration: every NoSchedule and NoExecute taint of the agent's Node must be tolerated.
type taintToleration struct{}

func (taintToleration) check(p *podInfo, a *agent) string {
	for i := range a.taints {
		if !tolerated(p.pod.Spec.Tolerations, &a.taints[i]) {
			return a.taintReasons[i]
		}
	}
	return ""
}

func tolerated(tolerations []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(logr.Discard(), t, true) {
			return true
		}
	}
	return false
}

// nodeAffinity: spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution must both match.
type nodeAffinity struct{}

func (nodeAffinity) check(p *podInfo, a *agent) string {
	for k, v := range p.pod.Spec.NodeSelector {
		if got, ok := a.labels[k]; !ok || got != v {
			return ReasonNodeAffinity
		}
	}
	aff := p.pod.Spec.Affinity
	if aff == nil || aff.NodeAffinity == nil || aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	if !matchesTerms(aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms, a) {
		return ReasonNodeAffinity
	}
	return ""
}

// matchesTerms: terms are ORed; within a term, expressions and fields are ANDed; an empty term matches
// nothing (k8s.io/api core/v1 NodeSelectorTerm).
func matchesTerms(terms []corev1.NodeSelectorTerm, a *agent) bool {
	for i := range terms {
		t := &terms[i]
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue
		}
		if labelsMatch(t.MatchExpressions, a) && fieldsMatch(t.MatchFields, a) {
			return true
		}
	}
	return false
}

func labelsMatch(reqs []corev1.NodeSelectorRequirement, a *agent) bool {
	for i := range reqs {
		v, ok := a.labels[reqs[i].Key]
		if !matches(&reqs[i], v, ok) {
			return false
		}
	}
	return true
}

// fieldsMatch: metadata.name is the only node field selectors support.
func fieldsMatch(reqs []corev1.NodeSelectorRequirement, a *agent) bool {
	for i := range reqs {
		if reqs[i].Key != "metadata.name" || !matches(&reqs[i], a.nodeName, true) {
			return false
		}
	}
	return true
}

func matches(r *corev1.NodeSelectorRequirement, v string, ok bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return ok && contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !ok || !contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// A fitChecker decides whether a need fits into what one agent offers to one role.
type fitChecker interface {
	fits(n *need, b *bucket) bool
	reason() string
}

// fitStages run in order: host ports first (kube-scheduler's NodePorts runs before NodeResourcesFit),
// then every scalar so that a pod too big in cpu and memory is reported for both, like NodeResourcesFit.
// A stage fails when any of its checkers fails; later stages do not run.
var fitStages = [][]fitChecker{
	{hostPorts{}},
	{
		podCount{},
		scalarFit{dimCPU, ReasonInsufficientCPU},
		scalarFit{dimMem, ReasonInsufficientMemory},
		scalarFit{dimDisk, ReasonInsufficientDisk},
		scalarFit{dimGPU, ReasonInsufficientGPUs},
	},
}

// fitCheckers is fitStages flattened; a rejection is a bit mask over its indexes.
var fitCheckers = func() []fitChecker {
	var all []fitChecker
	for _, s := range fitStages {
		all = append(all, s...)
	}
	return all
}()

var (
	_ fitChecker = hostPorts{}
	_ fitChecker = podCount{}
	_ fitChecker = scalarFit{}
)

// podCount: the Node must have room for one more pod (NodeResourcesFit's allowed pod number), reported
// with the resources the agent lacks. It is a property of the agent, not of a bucket: fitBucket checks
// it once, and fit never fails it.
type podCount struct{}

func (podCount) fits(*need, *bucket) bool { return true }

// podCountBit is the podCount checker's bit in a rejection mask.
const podCountBit = 1

func (podCount) reason() string { return ReasonTooManyPods }

// hostPortsBit is the hostPorts checker's bit in a rejection mask.
const hostPortsBit = 0

// HostPortsReason is ReasonHostPorts naming the ports an agent did not have free, so that a pod's
// FailedScheduling says which port to change: "… pod ports (port 8080)", "… (ports 80, 443)".
func HostPortsReason(ports []uint64) string {
	if len(ports) == 0 {
		return ReasonHostPorts
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.FormatUint(p, 10)
	}
	if len(ports) == 1 {
		return ReasonHostPorts + " (port " + s[0] + ")"
	}
	return ReasonHostPorts + " (ports " + strings.Join(s, ", ") + ")"
}

// hostPorts: every host port must be free in the role's `ports` resource, which also keeps two pods of
// one plan from taking the same port (carving removes it).
type hostPorts struct{}

func (hostPorts) fits(n *need, b *bucket) bool { return b.portsFree(n.ports) }
func (hostPorts) reason() string               { return ReasonHostPorts }

// scalarFit: the scalar resource must be offered in the amount needed.
type scalarFit struct {
	dim int
	why string
}

func (s scalarFit) fits(n *need, b *bucket) bool { return n.scalar[s.dim] <= b.free[s.dim] }
func (s scalarFit) reason() string               { return s.why }

// fit returns 0 when n fits into b, or else a mask of the failing checkers of the first failing stage.
func fit(n *need, b *bucket) uint32 {
	var mask uint32
	bit := 0
	for _, stage := range fitStages {
		for _, c := range stage {
			if !c.fits(n, b) {
				mask |= 1 << bit
			}
			bit++
		}
		if mask != 0 {
			return mask
		}
	}
	return 0
}
