package offerbridge

import (
	"math"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// Preemption with kube-scheduler v1.37's DefaultPreemption semantics
// (pkg/scheduler/framework/plugins/defaultpreemption and pkg/scheduler/framework/preemption): a pod no
// offer took may evict pods of lower priority from one agent so that it fits there. Only kubemesos' own
// pods are ever victims: what other frameworks run on an agent is not in its Free and never comes back.

// PostFilter messages, kube-scheduler's texts (DefaultPreemption.PodEligibleToPreemptOthers,
// SelectVictimsOnNode and Evaluator.Preempt); the framework appends "preemption: " + one of them to the
// pod's FailedScheduling message as kube-scheduler's FitError does.
const (
	NotEligibleNever       = "not eligible due to preemptionPolicy=Never."
	NotEligibleTerminating = "not eligible due to a terminating pod on the nominated node."
	ReasonNoVictims        = "No preemption victims found for incoming pod"
	ReasonNotHelpful       = "Preemption is not helpful for scheduling"
)

// PreemptInput is what one preemption round looks at.
type PreemptInput struct {
	// Pods are the pods no offer took, in placement order (priority, then FIFO). Each may preempt;
	// a later pod sees the victims chosen for an earlier one as going and the earlier one as nominated.
	Pods []*corev1.Pod
	// Agents are the framework's agents that have a Node.
	Agents []PreemptAgent
	// PDBs are the PodDisruptionBudgets of every namespace.
	PDBs []*policyv1.PodDisruptionBudget
	// Translate are the settings every pod's demand is computed with (as for Place).
	Translate podtranslate.Options
	// Namespaces are the namespaces' labels, for pod affinity terms' namespaceSelector (as Input's).
	Namespaces map[string]map[string]string
}

// PreemptAgent is one agent as preemption sees it.
type PreemptAgent struct {
	AgentID string
	Node    *corev1.Node
	// Allocatable is what pods may use on the agent in all: the Node's allocatable.
	Allocatable podtranslate.Demand
	// Pods are the framework's pods bound to the Node that have not finished, terminating ones too
	// (their resources come back only when their tasks end): the possible victims.
	Pods []*corev1.Pod
	// Others are the other pods bound to the Node that have not finished (another scheduler's): they
	// use room but are never victims.
	Others []*corev1.Pod
	// Nominated are pods not bound yet whose status.nominatedNodeName is this Node: those of the
	// preemptor's priority or higher count as already there (RunFilterPluginsWithNominatedPods).
	Nominated []*corev1.Pod
}

// Preemption is one pod's decision: delete Victims so that Pod fits on the agent.
type Preemption struct {
	Pod      *corev1.Pod
	AgentID  string
	NodeName string
	// Victims are ordered most important first.
	Victims       []*corev1.Pod
	PDBViolations int
}

// PreemptPlan is the outcome of Preempt.
type PreemptPlan struct {
	Preemptions []Preemption
	// Messages are the PostFilter messages ("preemption: …") of pods that do not preempt, by UID.
	// A pod that fits an agent without victims (its resources are just not offered yet) has none.
	Messages map[types.UID]string
	// ClearNomination are nominated pods for which preemption no longer helps anywhere: their
	// nominatedNodeName goes, as kube-scheduler clears it, so their agent's room is free again.
	ClearNomination []*corev1.Pod
}

// Preempt decides, pod by pod, which lower-priority pods to evict. It is pure.
func Preempt(in PreemptInput) PreemptPlan {
	plan := PreemptPlan{Messages: map[types.UID]string{}}
	st := newPreemptState(&in)
	for _, pod := range in.Pods {
		if pod == nil {
			continue
		}
		p, msg := st.preempt(pod)
		if p != nil {
			plan.Preemptions = append(plan.Preemptions, *p)
			st.commit(p)
			st.commitRules(p)
			continue
		}
		if msg != "" {
			plan.Messages[pod.UID] = "preemption: " + msg
			if pod.Status.NominatedNodeName != "" && msg != NotEligibleNever && msg != NotEligibleTerminating {
				plan.ClearNomination = append(plan.ClearNomination, pod)
			}
		}
	}
	return plan
}

type preemptAgent struct {
	in   *PreemptAgent
	a    *agent // for the static checkers
	free [numDims]int64
	// going are pods chosen as victims earlier in this round; nominated the preemptors sent here.
	going     map[types.UID]bool
	nominated []*corev1.Pod
	topo      *topoNode // in the rules' cluster (preempt_rules.go), once built
}

type preemptState struct {
	in     *PreemptInput
	agents []*preemptAgent
	// pdbAllowed is each PDB's disruptionsAllowed less the victims chosen in this round.
	pdbAllowed []int32
	pdbSel     []labels.Selector
	needs      map[types.UID]need
	// cl is the pod rules' view of the agents and cps their pods' parsed affinity, built when a
	// preemptor's rules can matter.
	cl  *cluster
	cps map[types.UID]*clusterPod
}

func newPreemptState(in *PreemptInput) *preemptState {
	st := &preemptState{in: in, needs: map[types.UID]need{}}
	for i := range in.Agents {
		pa := &in.Agents[i]
		if pa.Node == nil {
			continue
		}
		a := &agent{id: pa.AgentID, nodeName: pa.Node.Name, labels: pa.Node.Labels, cordoned: pa.Node.Spec.Unschedulable, maxPods: DefaultMaxPods}
		a.setTaints(pa.Node.Spec.Taints)
		if q, ok := pa.Node.Status.Allocatable[corev1.ResourcePods]; ok {
			a.maxPods = int(q.Value())
		}
		x := &preemptAgent{in: pa, a: a, free: scalarNeed(pa.Allocatable), going: map[types.UID]bool{}}
		for _, p := range append(slices.Clip(pa.Pods), pa.Others...) {
			n := st.need(p)
			for d := range x.free {
				x.free[d] -= n.scalar[d]
			}
		}
		x.nominated = append(x.nominated, pa.Nominated...)
		st.agents = append(st.agents, x)
	}
	sort.SliceStable(st.agents, func(i, j int) bool { return st.agents[i].a.nodeName < st.agents[j].a.nodeName })
	for _, pdb := range in.PDBs {
		st.pdbAllowed = append(st.pdbAllowed, pdb.Status.DisruptionsAllowed)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			sel = labels.Nothing() // an invalid selector matches no pod
		}
		st.pdbSel = append(st.pdbSel, sel)
	}
	return st
}

// need is a pod's demand in placement units; a pod podtranslate refuses needs nothing (it never runs).
func (st *preemptState) need(p *corev1.Pod) need {
	if n, ok := st.needs[p.UID]; ok && p.UID != "" {
		return n
	}
	var n need
	if d, err := podtranslate.PodDemand(p, st.in.Translate); err == nil {
		n = newPodInfo(p, &d, [numDims]int64{}, st.in.Translate.Sandboxed(p)).need
	}
	st.needs[p.UID] = n
	return n
}

// preempt is kube-scheduler's Evaluator.Preempt for one pod: eligibility, a dry run on every agent,
// then the best candidate.
func (st *preemptState) preempt(pod *corev1.Pod) (*Preemption, string) {
	if _, err := podtranslate.PodDemand(pod, st.in.Translate); err != nil {
		return nil, "" // unresolvable: Place already said why
	}
	pi := st.podInfo(pod)
	if ok, msg := st.eligible(pi); !ok {
		return nil, msg
	}
	reasons := map[string]int{}
	var cands []*candidateNode
	r := st.preemptorRules(pod)
	for _, x := range st.agents {
		if why := runStatic(pi, x.a); why != "" {
			reasons[ReasonNotHelpful]++ // UnschedulableAndUnresolvable: removing pods does not help
			continue
		}
		c, why := st.selectVictims(pi, x, r)
		switch {
		case c == nil && why == "":
			return nil, "" // fits without victims: waiting for the agent's offer is enough
		case c == nil:
			reasons[why]++
		default:
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, Message(len(st.agents), reasons)
	}
	best := pickCandidate(cands)
	return &Preemption{Pod: pod, AgentID: best.x.in.AgentID, NodeName: best.x.a.nodeName, Victims: best.victims, PDBViolations: best.pdbViolations}, ""
}

func (st *preemptState) podInfo(pod *corev1.Pod) *podInfo {
	d, _ := podtranslate.PodDemand(pod, st.in.Translate)
	return newPodInfo(pod, &d, [numDims]int64{}, st.in.Translate.Sandboxed(pod))
}

// eligible is DefaultPreemption.PodEligibleToPreemptOthers: never with preemptionPolicy Never, and not
// while a pod it preempted earlier still terminates on its nominated Node (unless that Node can no
// longer take it at all).
func (st *preemptState) eligible(pi *podInfo) (bool, string) {
	pod := pi.pod
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return false, NotEligibleNever
	}
	nom := pod.Status.NominatedNodeName
	if nom == "" {
		return true, ""
	}
	for _, x := range st.agents {
		if x.a.nodeName != nom {
			continue
		}
		if runStatic(pi, x.a) != "" {
			return true, ""
		}
		for _, v := range x.in.Pods {
			if podPriority(v) < podPriority(pod) && terminatingByPreemption(v) {
				return false, NotEligibleTerminating
			}
		}
	}
	return true, ""
}

// terminatingByPreemption is kube-scheduler's PodTerminatingByPreemption.
func terminatingByPreemption(p *corev1.Pod) bool {
	if p.DeletionTimestamp == nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget {
			return c.Status == corev1.ConditionTrue && c.Reason == corev1.PodReasonPreemptionByScheduler
		}
	}
	return false
}

type candidateNode struct {
	x             *preemptAgent
	victims       []*corev1.Pod
	pdbViolations int
}

// selectVictims is DefaultPreemption.SelectVictimsOnNode: remove every lower-priority pod, check the
// pod fits, then reprieve victims from the most important down (PDB-violating ones first) while it
// still fits. It returns nil and "" when the pod fits without any victim, nil and the reason when no
// set of victims makes it fit.
func (st *preemptState) selectVictims(pi *podInfo, x *preemptAgent, r *rules) (*candidateNode, string) {
	prio := podPriority(pi.pod)
	tr := st.trial(r, x)
	defer tr.undo()
	if why := tr.filter(); unresolvable(why) || (r != nil && r.err != nil) {
		return nil, ReasonNotHelpful // UnschedulableAndUnresolvable: removing pods does not help
	}
	var potential []*corev1.Pod
	removed := map[types.UID]bool{}
	for _, p := range x.in.Pods {
		// A terminating pod is going anyway; deleting it again frees nothing sooner.
		if p.DeletionTimestamp == nil && !x.going[p.UID] && podPriority(p) < prio {
			potential = append(potential, p)
			removed[p.UID] = true
			tr.take(p)
		}
	}
	fits := func() bool { return st.fitsWithout(pi, x, removed) && tr.filter() == "" }
	if len(potential) == 0 {
		if fits() {
			return nil, ""
		}
		if why := tr.filter(); why != "" && st.fitsWithout(pi, x, removed) {
			return nil, why
		}
		return nil, ReasonNoVictims
	}
	if !fits() {
		if why := tr.filter(); why != "" && st.fitsWithout(pi, x, removed) {
			return nil, why
		}
		return nil, st.unfitReason(pi, x, removed)
	}
	sort.SliceStable(potential, func(i, j int) bool { return moreImportant(potential[i], potential[j]) })
	violating, nonViolating := st.splitByPDB(potential)
	var victims []*corev1.Pod
	reprieve := func(p *corev1.Pod) bool {
		delete(removed, p.UID)
		tr.putBack(p)
		if fits() {
			return true
		}
		removed[p.UID] = true
		tr.take(p)
		victims = append(victims, p)
		return false
	}
	n := 0
	for _, p := range violating {
		if !reprieve(p) {
			n++
		}
	}
	for _, p := range nonViolating {
		reprieve(p)
	}
	if len(victims) == 0 {
		return nil, ""
	}
	if len(violating) > 0 && len(nonViolating) > 0 {
		sort.SliceStable(victims, func(i, j int) bool { return moreImportant(victims[i], victims[j]) })
	}
	return &candidateNode{x: x, victims: victims, pdbViolations: n}, ""
}

// fitsWithout reports whether the pod fits on the agent once the pods in removed are gone, the pods
// nominated there with its priority or higher counting as present.
func (st *preemptState) fitsWithout(pi *podInfo, x *preemptAgent, removed map[types.UID]bool) bool {
	free, count, busy := st.after(pi, x, removed)
	for d := range free {
		if pi.need.scalar[d] > free[d] {
			return false
		}
	}
	for _, p := range pi.need.ports {
		if busy[p] {
			return false
		}
	}
	return count < x.a.maxPods
}

// after returns the agent's free resources, pod count and busy host ports once removed are gone.
func (st *preemptState) after(pi *podInfo, x *preemptAgent, removed map[types.UID]bool) ([numDims]int64, int, map[uint64]bool) {
	free := x.free
	count := 0
	var busy map[uint64]bool // only when the pod needs host ports
	if len(pi.need.ports) > 0 {
		busy = map[uint64]bool{}
	}
	for _, p := range x.in.Pods {
		n := st.need(p)
		if removed[p.UID] || x.going[p.UID] {
			for d := range free {
				free[d] += n.scalar[d]
			}
			continue
		}
		count++
		if busy != nil {
			for _, port := range n.ports {
				busy[port] = true
			}
		}
	}
	for _, p := range x.in.Others {
		count++
		if busy != nil {
			for _, port := range st.need(p).ports {
				busy[port] = true
			}
		}
	}
	prio := podPriority(pi.pod)
	for _, p := range x.nominated {
		if p.UID == pi.pod.UID || podPriority(p) < prio {
			continue
		}
		n := st.need(p)
		for d := range free {
			free[d] -= n.scalar[d]
		}
		if busy != nil {
			for _, port := range n.ports {
				busy[port] = true
			}
		}
		count++
	}
	return free, count, busy
}

// unfitReason is why the pod does not fit even with every lower-priority pod gone, as the Filter
// plugins say it.
func (st *preemptState) unfitReason(pi *podInfo, x *preemptAgent, removed map[types.UID]bool) string {
	free, count, busy := st.after(pi, x, removed)
	for _, p := range pi.need.ports {
		if busy[p] {
			return ReasonHostPorts
		}
	}
	if count >= x.a.maxPods {
		return ReasonTooManyPods
	}
	for d := range free {
		if pi.need.scalar[d] > free[d] {
			return fitStages[1][1+d].reason()
		}
	}
	return ReasonNoVictims
}

// splitByPDB is kube-scheduler's FilterVictimsWithPDBViolation: a pod whose eviction takes a
// matching PDB below zero disruptions allowed violates it.
func (st *preemptState) splitByPDB(pods []*corev1.Pod) (violating, nonViolating []*corev1.Pod) {
	allowed := append([]int32(nil), st.pdbAllowed...)
	for _, p := range pods {
		if st.violates(p, allowed) {
			violating = append(violating, p)
		} else {
			nonViolating = append(nonViolating, p)
		}
	}
	return violating, nonViolating
}

// violates decrements allowed for every PDB matching p and reports whether one went below zero.
func (st *preemptState) violates(p *corev1.Pod, allowed []int32) bool {
	if len(p.Labels) == 0 {
		return false
	}
	for i, pdb := range st.in.PDBs {
		if pdb.Namespace != p.Namespace || st.pdbSel[i].Empty() || !st.pdbSel[i].Matches(labels.Set(p.Labels)) {
			continue
		}
		if _, ok := pdb.Status.DisruptedPods[p.Name]; ok {
			continue
		}
		allowed[i]--
		if allowed[i] < 0 {
			return true
		}
	}
	return false
}

// commit records a preemption for the pods after it: its victims are going and the preemptor is
// nominated to the agent.
func (st *preemptState) commit(p *Preemption) {
	for _, x := range st.agents {
		if x.in.AgentID != p.AgentID {
			continue
		}
		for _, v := range p.Victims {
			x.going[v.UID] = true
			st.violates(v, st.pdbAllowed)
		}
		x.nominated = append(x.nominated, p.Pod)
	}
}

// moreImportant is kube-scheduler's MoreImportantPod: higher priority, then the earlier start.
func moreImportant(a, b *corev1.Pod) bool {
	pa, pb := podPriority(a), podPriority(b)
	if pa != pb {
		return pa > pb
	}
	return startTime(a).Before(startTime(b))
}

// startTime is kube-scheduler's GetPodStartTime without its clock: a pod not started yet counts as
// starting last.
func startTime(p *corev1.Pod) time.Time {
	if p.Status.StartTime != nil {
		return p.Status.StartTime.Time
	}
	return time.Unix(math.MaxInt32, 0)
}

func podPriority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// pickCandidate is kube-scheduler's pickOneNodeForPreemption: fewest PDB violations, then the lowest
// highest-priority victim, the smallest sum of priorities, the fewest victims, the latest start of the
// highest-priority victims; the first agent (by Node name) on a tie.
func pickCandidate(cands []*candidateNode) *candidateNode {
	scores := []func(c *candidateNode) int64{
		func(c *candidateNode) int64 { return -int64(c.pdbViolations) },
		func(c *candidateNode) int64 { return -int64(podPriority(c.victims[0])) },
		func(c *candidateNode) int64 {
			var sum int64
			for _, v := range c.victims {
				sum += int64(podPriority(v)) + math.MaxInt32 + 1
			}
			return -sum
		},
		func(c *candidateNode) int64 { return -int64(len(c.victims)) },
		func(c *candidateNode) int64 {
			// GetEarliestPodStartTime: the earliest start among the victims of the highest priority.
			top := podPriority(c.victims[0])
			earliest := startTime(c.victims[0])
			for _, v := range c.victims {
				if podPriority(v) == top && startTime(v).Before(earliest) {
					earliest = startTime(v)
				}
			}
			return earliest.UnixNano()
		},
	}
	for _, f := range scores {
		var kept []*candidateNode
		best := int64(math.MinInt64)
		for _, c := range cands {
			s := f(c)
			if s > best {
				best, kept = s, kept[:0]
			}
			if s == best {
				kept = append(kept, c)
			}
		}
		if len(kept) == 1 {
			return kept[0]
		}
		cands = kept
	}
	return cands[0]
}
