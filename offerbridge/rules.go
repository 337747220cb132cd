package offerbridge

import (
	"encoding/json"
	"math"
	"sort"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	v1helper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// The placement rules that look at other pods and at the whole cluster, with kube-scheduler v1.37's
// semantics (pkg/scheduler/framework/plugins: interpodaffinity, podtopologyspread, and the scores of
// nodeaffinity and tainttoleration). kube-scheduler's plugins compute a PreFilter state per pod from
// every Node's pods and update it with AddPod when a pod is assumed onto a Node; here a state is kept
// per class of equal pods (replicas) and updated on every placement of the cycle, so the pods placed in
// one Place call see each other exactly as pods scheduled one after another do.

// Rejection reasons of the rules, kube-scheduler's texts.
const (
	// ReasonTooManyPods is NodeResourcesFit's: the Node already runs its allocatable pods.
	ReasonTooManyPods = "Too many pods"
	// ReasonPodAffinity, ReasonPodAntiAffinity and ReasonExistingPodsAntiAffinity are InterPodAffinity's.
	ReasonPodAffinity              = "node(s) didn't match pod affinity rules"
	ReasonPodAntiAffinity          = "node(s) didn't match pod anti-affinity rules"
	ReasonExistingPodsAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
	// ReasonTopologySpread and ReasonTopologySpreadLabel are PodTopologySpread's.
	ReasonTopologySpread      = "node(s) didn't match pod topology spread constraints"
	ReasonTopologySpreadLabel = ReasonTopologySpread + " (missing required label)"
)

// DefaultMaxPods is a Node's pod capacity when it states none (the kubelet's --max-pods default).
const DefaultMaxPods = 110

// hardPodAffinityWeight is InterPodAffinityArgs.hardPodAffinityWeight's default: an existing pod's
// required affinity term the incoming pod matches scores as a preferred term of this weight.
const hardPodAffinityWeight = 1

// Score weights of kube-scheduler's default profile (pkg/scheduler/apis/config/v1/default_plugins.go).
const (
	weightResources    = 1
	weightTaints       = 3
	weightNodeAffinity = 2
	weightSpread       = 2
	weightPodAffinity  = 2
	maxNodeScore       = 100
)

// topoNode is one Node as the rules see it: every Node of the framework, with offers in this cycle or
// not, and the pods on it (bound before, or placed in this cycle).
type topoNode struct {
	idx    int // in cluster.nodes
	name   string
	labels map[string]string
	// node is the Node; nil for an agent without a Node yet until k8sNode makes one of its labels.
	node  *corev1.Node
	pods  []*clusterPod
	agent *agent // nil when the Node has no offer in this cycle
}

// clusterPod is a pod on a Node with its parsed pod affinity terms.
type clusterPod struct {
	pod      *corev1.Pod
	reqAff   []affTerm
	reqAnti  []affTerm
	prefAff  []weightedTerm
	prefAnti []weightedTerm
}

func (c *clusterPod) hasAffinity() bool {
	return len(c.reqAff)+len(c.reqAnti)+len(c.prefAff)+len(c.prefAnti) > 0
}

// cluster is the rules' view of every Node and pod.
type cluster struct {
	nodes    []*topoNode // sorted by name
	byName   map[string]*topoNode
	nsLabels map[string]map[string]string
	// withAffinity counts pods with pod affinity terms: while none has any, a pod without rules of its
	// own needs no rule state at all.
	withAffinity int
	// states are the rule states per podRuleKey, updated on every placement.
	states map[string]*rules
	// prefNodeScores caches NodeAffinity's raw scores by topoNode.idx (-1: not computed yet) per
	// preferred node affinity, which many classes of pods share.
	prefNodeScores map[string][]int64
}

type topoPair struct{ key, value string }

// affTerm is kube-scheduler's fwk.AffinityTerm: a parsed PodAffinityTerm.
type affTerm struct {
	namespaces map[string]bool
	nsSelector labels.Selector
	selector   labels.Selector
	key        string
}

type weightedTerm struct {
	affTerm
	weight int64
}

// newAffTerm is kube-scheduler's newAffinityTerm: no namespaces and no namespaceSelector mean the pod's
// own namespace; a nil namespaceSelector selects nothing, an empty one every namespace.
func newAffTerm(pod *corev1.Pod, t *corev1.PodAffinityTerm) (affTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		return affTerm{}, err
	}
	nsSel, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector)
	if err != nil {
		return affTerm{}, err
	}
	ns := map[string]bool{}
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		ns[pod.Namespace] = true
	}
	for _, n := range t.Namespaces {
		ns[n] = true
	}
	return affTerm{namespaces: ns, nsSelector: nsSel, selector: sel, key: t.TopologyKey}, nil
}

// matches is fwk.AffinityTerm.Matches: the pod is in one of the term's namespaces (or its namespace's
// labels match the namespaceSelector) and its labels match the selector.
func (t *affTerm) matches(pod *corev1.Pod, nsLabels labels.Set) bool {
	if t.namespaces[pod.Namespace] || t.nsSelector.Matches(nsLabels) {
		return t.selector.Matches(labels.Set(pod.Labels))
	}
	return false
}

// mergeNamespaces is InterPodAffinity's mergeAffinityTermNamespacesIfNotEmpty: the incoming pod's
// namespaceSelector is resolved to the namespaces it selects now.
func (t *affTerm) mergeNamespaces(ns map[string]map[string]string) {
	if t.nsSelector.Empty() {
		return
	}
	for name, l := range ns {
		if t.nsSelector.Matches(labels.Set(l)) {
			t.namespaces[name] = true
		}
	}
	t.nsSelector = labels.Nothing()
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) ([]affTerm, error) {
	var out []affTerm
	for i := range terms {
		t, err := newAffTerm(pod, &terms[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseWeighted(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) ([]weightedTerm, error) {
	var out []weightedTerm
	for i := range terms {
		t, err := newAffTerm(pod, &terms[i].PodAffinityTerm)
		if err != nil {
			return nil, err
		}
		out = append(out, weightedTerm{affTerm: t, weight: int64(terms[i].Weight)})
	}
	return out, nil
}

// newClusterPod parses a pod's pod affinity terms.
func newClusterPod(pod *corev1.Pod) (*clusterPod, error) {
	c := &clusterPod{pod: pod}
	a := pod.Spec.Affinity
	if a == nil {
		return c, nil
	}
	var err error
	if pa := a.PodAffinity; pa != nil {
		if c.reqAff, err = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
			return c, err
		}
		if c.prefAff, err = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
			return c, err
		}
	}
	if pa := a.PodAntiAffinity; pa != nil {
		if c.reqAnti, err = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution); err != nil {
			return c, err
		}
		if c.prefAnti, err = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution); err != nil {
			return c, err
		}
	}
	return c, nil
}

// newCluster builds the rules' view: every Node of in.Nodes and every agent with offers, and the bound
// pods on them (pods of Nodes kubemesos does not own are not seen). Pending pods listed in in.Bound are
// skipped.
func newCluster(in *Input, agents []*agent, byAgent map[string]*agent) *cluster {
	c := &cluster{byName: make(map[string]*topoNode, len(agents)+len(in.Nodes)), nsLabels: in.Namespaces, states: map[string]*rules{}}
	c.nodes = make([]*topoNode, 0, len(agents)+len(in.Nodes))
	all := make([]topoNode, 0, len(agents)+len(in.Nodes)) // one allocation for every Node
	for id, n := range in.Nodes {
		if n == nil || byAgent[id] != nil {
			continue
		}
		all = append(all, topoNode{name: n.Name, labels: n.Labels, node: n})
		c.add(&all[len(all)-1])
	}
	for _, a := range agents {
		all = append(all, topoNode{name: a.nodeName, labels: a.labels, node: in.Nodes[a.id], agent: a})
		t := &all[len(all)-1]
		a.topo = t
		c.add(t)
	}
	sort.Slice(c.nodes, func(i, j int) bool { return c.nodes[i].name < c.nodes[j].name })
	for i, t := range c.nodes {
		t.idx = i
	}
	pending := make(map[string]bool, len(in.Pods))
	for _, p := range in.Pods {
		if p != nil && p.UID != "" {
			pending[string(p.UID)] = true
		}
	}
	plain := make([]clusterPod, 0, len(in.Bound)) // one allocation for the bound pods
	for _, p := range in.Bound {
		if p == nil || p.Spec.NodeName == "" || (p.UID != "" && pending[string(p.UID)]) {
			continue
		}
		t := c.byName[p.Spec.NodeName]
		if t == nil {
			continue
		}
		plain = append(plain, clusterPod{pod: p})
		cp := &plain[len(plain)-1]
		if p.Spec.Affinity != nil {
			if parsed, err := newClusterPod(p); err == nil {
				cp = parsed // the API server validates selectors: one that does not parse is no rule
			}
		}
		c.place(cp, t)
	}
	return c
}

// k8sNode is the Node for component-helpers' node affinity and taint matching.
func (t *topoNode) k8sNode() *corev1.Node {
	if t.node == nil {
		t.node = &corev1.Node{}
		t.node.Name, t.node.Labels = t.name, t.labels
	}
	return t.node
}

func (c *cluster) add(t *topoNode) {
	if c.byName[t.name] != nil {
		return // two agents with one hostname: the first keeps the name
	}
	c.byName[t.name] = t
	c.nodes = append(c.nodes, t)
}

// place puts a pod on a Node and updates every rule state, as kube-scheduler's AddPod does.
func (c *cluster) place(cp *clusterPod, t *topoNode) {
	t.pods = append(t.pods, cp)
	if t.agent != nil {
		t.agent.pods++
	}
	if cp.hasAffinity() {
		c.withAffinity++
	}
	for _, r := range c.states {
		r.add(cp, t)
	}
}

// spreadConstraint is podtopologyspread's topologySpreadConstraint.
type spreadConstraint struct {
	maxSkew        int32
	key            string
	selector       labels.Selector
	minDomains     int32
	honorAffinity  bool // nodeAffinityPolicy Honor (the default)
	honorTaints    bool // nodeTaintsPolicy Honor (default Ignore)
	domainCounts   map[string]int
	inDomain       []bool // by topoNode.idx: the Node passes spreadDomain
	min            int
	minValid       bool
	hostnameScored bool // a ScheduleAnyway constraint on kubernetes.io/hostname: counted per node when scoring
}

// spreadConstraints is filterTopologySpreadConstraints: the pod's constraints of one action, with
// matchLabelKeys merged into the selector and the inclusion policies' defaults.
func spreadConstraints(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) ([]*spreadConstraint, error) {
	var out []*spreadConstraint
	for _, tsc := range pod.Spec.TopologySpreadConstraints {
		if tsc.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
		if err != nil {
			return nil, err
		}
		if len(tsc.MatchLabelKeys) > 0 {
			set := labels.Set{}
			for _, k := range tsc.MatchLabelKeys {
				if v, ok := pod.Labels[k]; ok {
					set[k] = v
				}
			}
			if len(set) > 0 {
				if reqs, ok := sel.Requirements(); ok {
					merged := labels.SelectorFromSet(set)
					for _, r := range reqs {
						merged = merged.Add(r)
					}
					sel = merged
				}
			}
		}
		c := &spreadConstraint{maxSkew: tsc.MaxSkew, key: tsc.TopologyKey, selector: sel, minDomains: 1,
			honorAffinity: true, domainCounts: map[string]int{}}
		if tsc.MinDomains != nil {
			c.minDomains = *tsc.MinDomains
		}
		if tsc.NodeAffinityPolicy != nil {
			c.honorAffinity = *tsc.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor
		}
		if tsc.NodeTaintsPolicy != nil {
			c.honorTaints = *tsc.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor
		}
		c.hostnameScored = action == corev1.ScheduleAnyway && c.key == corev1.LabelHostname
		out = append(out, c)
	}
	return out, nil
}

// counts reports whether a pod with these labels counts in the constraint's domains: as
// countPodsMatchSelector, an empty selector counts no pod (though the pod itself matches it).
func (sc *spreadConstraint) counts(podLabels labels.Set) bool {
	return !sc.selector.Empty() && sc.selector.Matches(podLabels)
}

// minNum is the fewest matching pods of any domain (kube-scheduler's criticalPaths[0]). It is
// recomputed when the domain that had the fewest gains a pod: kube-scheduler recomputes its PreFilter
// state for every pod, and its two-path shortcut is only right for one AddPod or RemovePod.
func (sc *spreadConstraint) minNum() int {
	if !sc.minValid {
		sc.min = math.MaxInt32
		for _, n := range sc.domainCounts {
			sc.min = min(sc.min, n)
		}
		sc.minValid = true
	}
	return sc.min
}

// rules is the state of one class of equal pods: the PreFilter and PreScore states of kube-scheduler's
// InterPodAffinity and PodTopologySpread, and what the scores of NodeAffinity and TaintToleration need.
type rules struct {
	pod      *corev1.Pod
	nsLabels labels.Set
	err      error // a selector that does not parse: the pod fits nowhere

	// InterPodAffinity's filter: the pod's required terms and, per topology pair, the pods that match
	// all affinity terms, each anti-affinity term, and the existing pods whose anti-affinity terms
	// match this pod.
	aff, anti                           []affTerm
	affCounts, antiCounts, existingAnti map[topoPair]int64
	// InterPodAffinity's score: weights per topology key and value.
	prefAff, prefAnti []weightedTerm
	topoScore         map[string]map[string]int64

	// PodTopologySpread: DoNotSchedule (filter) and ScheduleAnyway (score).
	hard, soft []*spreadConstraint
	reqNode    nodeaffinity.RequiredNodeAffinity

	// NodeAffinity's and TaintToleration's scores; prefNodeScores caches NodeAffinity's raw score by
	// topoNode.idx (-1: not computed yet).
	prefNode       *nodeaffinity.PreferredSchedulingTerms
	prefNodeScores []int64
	// sizes is spreadScores' scratch: the values of each ScheduleAnyway constraint's key among the
	// candidates.
	sizes  []map[string]bool
	tolPNS []corev1.Toleration
}

// ruleKey is equal for two pods exactly when every rule treats them alike; "" for a pod that needs no
// rule state while no pod in the cluster has pod affinity terms.
func ruleKey(pod *corev1.Pod) string {
	s := &pod.Spec
	b, _ := json.Marshal(struct {
		NS   string
		L    map[string]string
		A    *corev1.Affinity
		T    []corev1.TopologySpreadConstraint
		Tol  []corev1.Toleration
		Sel  map[string]string
		Name string
	}{pod.Namespace, pod.Labels, s.Affinity, s.TopologySpreadConstraints, s.Tolerations, s.NodeSelector, s.NodeName})
	return string(b)
}

// hasPodRules reports whether the pod has pod affinity terms or topology spread constraints.
func hasPodRules(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	return len(pod.Spec.TopologySpreadConstraints) > 0 || a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil)
}

// hasPreferredNodeAffinity reports whether NodeAffinity's score applies.
func hasPreferredNodeAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	return a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0
}

// rulesFor returns the class state of the pod, computing it from every Node's pods the first time.
func (c *cluster) rulesFor(pod *corev1.Pod) *rules {
	key := ruleKey(pod)
	if r := c.states[key]; r != nil {
		return r
	}
	r := c.newRules(pod)
	c.states[key] = r
	return r
}

func (c *cluster) newRules(pod *corev1.Pod) *rules {
	r := &rules{pod: pod, nsLabels: labels.Set(c.nsLabels[pod.Namespace]),
		affCounts: map[topoPair]int64{}, antiCounts: map[topoPair]int64{}, existingAnti: map[topoPair]int64{},
		topoScore: map[string]map[string]int64{}, reqNode: nodeaffinity.GetRequiredNodeAffinity(pod)}
	self, err := newClusterPod(pod)
	if err != nil {
		r.err = err
		return r
	}
	r.aff, r.anti, r.prefAff, r.prefAnti = self.reqAff, self.reqAnti, self.prefAff, self.prefAnti
	for _, ts := range [][]affTerm{r.aff, r.anti} {
		for i := range ts {
			ts[i].mergeNamespaces(c.nsLabels)
		}
	}
	for _, ts := range [][]weightedTerm{r.prefAff, r.prefAnti} {
		for i := range ts {
			ts[i].mergeNamespaces(c.nsLabels)
		}
	}
	if r.hard, err = spreadConstraints(pod, corev1.DoNotSchedule); err != nil {
		r.err = err
		return r
	}
	if r.soft, err = spreadConstraints(pod, corev1.ScheduleAnyway); err != nil {
		r.err = err
		return r
	}
	if hasPreferredNodeAffinity(pod) {
		r.prefNode, err = nodeaffinity.NewPreferredSchedulingTerms(pod.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
		if err != nil {
			r.err = err
			return r
		}
	}
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			r.tolPNS = append(r.tolPNS, t)
		}
	}
	// PodTopologySpread's domains: every Node with all the constraints' keys that passes the inclusion
	// policies, with zero pods so far.
	for _, cs := range [][]*spreadConstraint{r.hard, r.soft} {
		for _, sc := range cs {
			sc.inDomain = make([]bool, len(c.nodes))
			if sc.hostnameScored {
				continue // counted per node when scoring
			}
			for _, t := range c.nodes {
				if r.spreadDomain(cs, sc, t) {
					sc.inDomain[t.idx] = true
					if _, ok := sc.domainCounts[t.labels[sc.key]]; !ok {
						sc.domainCounts[t.labels[sc.key]] = 0
					}
				}
			}
		}
	}
	if r.prefNode != nil {
		b, _ := json.Marshal(pod.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
		if c.prefNodeScores == nil {
			c.prefNodeScores = map[string][]int64{}
		}
		if r.prefNodeScores = c.prefNodeScores[string(b)]; r.prefNodeScores == nil {
			r.prefNodeScores = make([]int64, len(c.nodes))
			for i := range r.prefNodeScores {
				r.prefNodeScores[i] = -1
			}
			c.prefNodeScores[string(b)] = r.prefNodeScores
		}
	}
	for _, t := range c.nodes {
		for _, cp := range t.pods {
			r.add(cp, t)
		}
	}
	return r
}

// spreadDomain reports whether the Node is one of the constraint's domains: it has every key of the
// pod's constraints of this action, and passes nodeAffinityPolicy and nodeTaintsPolicy.
func (r *rules) spreadDomain(cs []*spreadConstraint, sc *spreadConstraint, t *topoNode) bool {
	for _, o := range cs {
		if _, ok := t.labels[o.key]; !ok {
			return false
		}
	}
	if sc.honorAffinity {
		if ok, _ := r.reqNode.Match(t.k8sNode()); !ok {
			return false
		}
	}
	if sc.honorTaints && t.node != nil {
		// FindMatchingUntoleratedTaint with DoNotScheduleTaintsFilterFunc, without its copy of the taints.
		for i := range t.node.Spec.Taints {
			taint := &t.node.Spec.Taints[i]
			if (taint.Effect == corev1.TaintEffectNoSchedule || taint.Effect == corev1.TaintEffectNoExecute) &&
				!v1helper.TolerationsTolerateTaint(logr.Discard(), r.pod.Spec.Tolerations, taint, true) {
				return false
			}
		}
	}
	return true
}

// add accounts for one pod on a Node (kube-scheduler's AddPod for InterPodAffinity and
// PodTopologySpread, and PreScore's processExistingPod).
func (r *rules) add(cp *clusterPod, t *topoNode) {
	if r.err != nil {
		return
	}
	q := cp.pod
	r.affinityPairs(cp, t, countPair)
	if len(t.labels) > 0 {
		for i := range r.prefAff {
			r.scoreTerm(&r.prefAff[i].affTerm, r.prefAff[i].weight, q, nil, t)
		}
		for i := range r.prefAnti {
			r.scoreTerm(&r.prefAnti[i].affTerm, -r.prefAnti[i].weight, q, nil, t)
		}
		for i := range cp.reqAff {
			r.scoreTerm(&cp.reqAff[i], hardPodAffinityWeight, r.pod, r.nsLabels, t)
		}
		for i := range cp.prefAff {
			r.scoreTerm(&cp.prefAff[i].affTerm, cp.prefAff[i].weight, r.pod, r.nsLabels, t)
		}
		for i := range cp.prefAnti {
			r.scoreTerm(&cp.prefAnti[i].affTerm, -cp.prefAnti[i].weight, r.pod, r.nsLabels, t)
		}
	}
	if q.Namespace != r.pod.Namespace || q.DeletionTimestamp != nil {
		return // countPodsMatchSelector: same namespace, not terminating
	}
	set := labels.Set(q.Labels)
	for _, sc := range r.hard {
		if !sc.inDomain[t.idx] || !sc.counts(set) {
			continue
		}
		v := t.labels[sc.key]
		if sc.minValid && sc.domainCounts[v] == sc.min {
			sc.minValid = false
		}
		sc.domainCounts[v]++
	}
	for _, sc := range r.soft {
		if sc.hostnameScored {
			continue
		}
		if !sc.inDomain[t.idx] || !sc.counts(set) {
			continue
		}
		sc.domainCounts[t.labels[sc.key]]++
	}
}

// affinityPairs calls count for each topology pair the required pod affinity filters count cp under:
// the placed pod's affinity and anti-affinity terms matching cp, and cp's anti-affinity terms matching
// the placed pod (kube-scheduler's updateWithPod: add counts, remove uncounts).
func (r *rules) affinityPairs(cp *clusterPod, t *topoNode, count func(map[topoPair]int64, *topoNode, string)) {
	q := cp.pod
	// The pod's own terms were resolved to namespaces: nil namespace labels, as kube-scheduler passes.
	if podMatchesAll(r.aff, q) {
		for i := range r.aff {
			count(r.affCounts, t, r.aff[i].key)
		}
	}
	for i := range r.anti {
		if r.anti[i].matches(q, nil) {
			count(r.antiCounts, t, r.anti[i].key)
		}
	}
	for i := range cp.reqAnti {
		if cp.reqAnti[i].matches(r.pod, r.nsLabels) {
			count(r.existingAnti, t, cp.reqAnti[i].key)
		}
	}
}

func countPair(m map[topoPair]int64, t *topoNode, key string) {
	if v, ok := t.labels[key]; ok {
		m[topoPair{key, v}]++
	}
}

func (r *rules) scoreTerm(term *affTerm, weight int64, pod *corev1.Pod, ns labels.Set, t *topoNode) {
	if !term.matches(pod, ns) {
		return
	}
	v, ok := t.labels[term.key]
	if !ok {
		return
	}
	m := r.topoScore[term.key]
	if m == nil {
		m = map[string]int64{}
		r.topoScore[term.key] = m
	}
	m[v] += weight
}

// podMatchesAll is podMatchesAllAffinityTerms: false for no terms.
func podMatchesAll(terms []affTerm, pod *corev1.Pod) bool {
	if len(terms) == 0 {
		return false
	}
	for i := range terms {
		if !terms[i].matches(pod, nil) {
			return false
		}
	}
	return true
}

// filter runs PodTopologySpread's and InterPodAffinity's filters (in the default profile's order) for
// the Node; "" when it passes.
func (r *rules) filter(t *topoNode) string {
	if r.err != nil {
		return r.err.Error()
	}
	set := labels.Set(r.pod.Labels)
	for _, sc := range r.hard {
		v, ok := t.labels[sc.key]
		if !ok {
			return ReasonTopologySpreadLabel
		}
		minNum := sc.minNum()
		if len(sc.domainCounts) < int(sc.minDomains) {
			minNum = 0 // fewer eligible domains than minDomains: the global minimum is 0
		}
		self := 0
		if sc.selector.Matches(set) {
			self = 1
		}
		if sc.domainCounts[v]+self-minNum > int(sc.maxSkew) {
			return ReasonTopologySpread
		}
	}
	if len(r.aff) > 0 {
		exist := true
		for i := range r.aff {
			v, ok := t.labels[r.aff[i].key]
			if !ok {
				return ReasonPodAffinity // every topology key must be on the Node, self-affinity too
			}
			if r.affCounts[topoPair{r.aff[i].key, v}] <= 0 {
				exist = false
			}
		}
		// The first of pods with affinity to each other: no pod anywhere matches, the pod matches
		// its own terms.
		if !exist && !(len(r.affCounts) == 0 && podMatchesAll(r.aff, r.pod)) {
			return ReasonPodAffinity
		}
	}
	for i := range r.anti {
		if v, ok := t.labels[r.anti[i].key]; ok && r.antiCounts[topoPair{r.anti[i].key, v}] > 0 {
			return ReasonPodAntiAffinity
		}
	}
	if len(r.existingAnti) > 0 {
		for k, v := range t.labels {
			if r.existingAnti[topoPair{k, v}] > 0 {
				return ReasonExistingPodsAntiAffinity
			}
		}
	}
	return ""
}

// scored reports whether any score besides the resources' can tell the candidates apart.
func (r *rules) scored() bool {
	return r != nil && r.err == nil && (r.prefNode != nil || len(r.soft) > 0 || len(r.topoScore) > 0)
}

// addScores adds the weighted, normalized scores of TaintToleration, NodeAffinity, PodTopologySpread
// and InterPodAffinity of each candidate to total (kube-scheduler's Score and NormalizeScore of each).
func (r *rules) addScores(cands []candidate, total []float64, raw []int64) {
	if r == nil || r.err != nil {
		return
	}
	// TaintToleration: untolerated PreferNoSchedule taints, fewer is better.
	anyPNS := false
	for i := range cands {
		raw[i] = 0
		for j := range cands[i].a.preferTaints {
			if !v1helper.TolerationsTolerateTaint(logr.Discard(), r.tolPNS, &cands[i].a.preferTaints[j], true) {
				raw[i]++
				anyPNS = true
			}
		}
	}
	if anyPNS {
		defaultNormalize(raw, true)
		addWeighted(total, raw, weightTaints)
	}
	if r.prefNode != nil {
		for i := range cands {
			t := cands[i].a.topo
			if r.prefNodeScores[t.idx] < 0 {
				r.prefNodeScores[t.idx] = r.prefNode.Score(t.k8sNode())
			}
			raw[i] = r.prefNodeScores[t.idx]
		}
		defaultNormalize(raw, false)
		addWeighted(total, raw, weightNodeAffinity)
	}
	if len(r.soft) > 0 {
		r.spreadScores(cands, raw)
		addWeighted(total, raw, weightSpread)
	}
	if len(r.topoScore) > 0 {
		minS, maxS := int64(math.MaxInt64), int64(math.MinInt64)
		for i := range cands {
			var s int64
			for k, vs := range r.topoScore {
				if v, ok := cands[i].a.labels[k]; ok {
					s += vs[v]
				}
			}
			raw[i] = s
			minS, maxS = min(minS, s), max(maxS, s)
		}
		for i := range raw {
			f := 0.0
			if maxS > minS {
				f = float64(maxNodeScore) * float64(raw[i]-minS) / float64(maxS-minS)
			}
			raw[i] = int64(f)
		}
		addWeighted(total, raw, weightPodAffinity)
	}
}

// spreadScores is PodTopologySpread's Score and NormalizeScore over the candidates: fewer matching pods
// in the candidate's domains is better; candidates without every key score 0.
func (r *rules) spreadScores(cands []candidate, raw []int64) {
	const invalid = -1
	ignored := 0
	if r.sizes == nil {
		r.sizes = make([]map[string]bool, len(r.soft))
		for j := range r.sizes {
			r.sizes[j] = map[string]bool{}
		}
	}
	sizes := r.sizes
	for j := range sizes {
		clear(sizes[j])
	}
	for i := range cands {
		raw[i] = 0
		for _, sc := range r.soft {
			if _, ok := cands[i].a.labels[sc.key]; !ok {
				raw[i] = invalid
			}
		}
		if raw[i] == invalid {
			ignored++
			continue
		}
		for j, sc := range r.soft {
			if sc.key != corev1.LabelHostname {
				sizes[j][cands[i].a.labels[sc.key]] = true
			}
		}
	}
	weights := make([]float64, len(r.soft))
	for j, sc := range r.soft {
		n := len(sizes[j])
		if sc.key == corev1.LabelHostname {
			n = len(cands) - ignored
		}
		weights[j] = math.Log(float64(n + 2))
	}
	set := func(cp *clusterPod, sc *spreadConstraint) bool {
		q := cp.pod
		return q.Namespace == r.pod.Namespace && q.DeletionTimestamp == nil && sc.counts(labels.Set(q.Labels))
	}
	minS, maxS := int64(math.MaxInt64), int64(0)
	for i := range cands {
		if raw[i] == invalid {
			continue
		}
		t := cands[i].a.topo
		var s float64
		for j, sc := range r.soft {
			var cnt int
			if sc.hostnameScored {
				for _, cp := range t.pods {
					if set(cp, sc) {
						cnt++
					}
				}
			} else {
				cnt = sc.domainCounts[t.labels[sc.key]]
			}
			s += float64(cnt)*weights[j] + float64(sc.maxSkew-1)
		}
		raw[i] = int64(math.Round(s))
		minS, maxS = min(minS, raw[i]), max(maxS, raw[i])
	}
	for i := range raw[:len(cands)] {
		switch {
		case raw[i] == invalid:
			raw[i] = 0
		case maxS == 0:
			raw[i] = maxNodeScore
		default:
			raw[i] = maxNodeScore * (maxS + minS - raw[i]) / maxS
		}
	}
}

// defaultNormalize is helper.DefaultNormalizeScore: scale [0, max] to [0, 100], reversed if asked.
func defaultNormalize(raw []int64, reverse bool) {
	var maxS int64
	for _, s := range raw {
		maxS = max(maxS, s)
	}
	for i := range raw {
		switch {
		case maxS == 0 && reverse:
			raw[i] = maxNodeScore
		case maxS == 0:
		default:
			raw[i] = maxNodeScore * raw[i] / maxS
			if reverse {
				raw[i] = maxNodeScore - raw[i]
			}
		}
	}
}

func addWeighted(total []float64, raw []int64, w int64) {
	for i := range total {
		total[i] += float64(raw[i] * w)
	}
}
