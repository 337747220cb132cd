package offerbridge

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// The preemption dry run with the pod rules, as kube-scheduler's SelectVictimsOnNode runs every Filter
// plugin: InterPodAffinity and PodTopologySpread see the lower-priority pods removed (their RemovePod
// on the cycle state), then each victim reprieved (AddPod) while the preemptor still fits. So a
// preemptor whose required pod affinity or topology spread no eviction can satisfy evicts nobody, and
// evicting a pod that holds an anti-affinity against the preemptor (or is the pod its anti-affinity
// avoids) counts as making room.

// ruleCluster builds the rules' view of every agent's Node with its pods, once per Preempt.
func (st *preemptState) ruleCluster() *cluster {
	if st.cl != nil {
		return st.cl
	}
	c := &cluster{byName: map[string]*topoNode{}, nsLabels: st.in.Namespaces, states: map[string]*rules{}}
	st.cps = map[types.UID]*clusterPod{}
	for _, x := range st.agents {
		t := &topoNode{name: x.a.nodeName, labels: x.in.Node.Labels, node: x.in.Node}
		c.add(t)
		x.topo = c.byName[x.a.nodeName]
	}
	sort.Slice(c.nodes, func(i, j int) bool { return c.nodes[i].name < c.nodes[j].name })
	for i, t := range c.nodes {
		t.idx = i
	}
	for _, x := range st.agents {
		for _, p := range x.in.Pods {
			if !x.going[p.UID] {
				c.place(st.clusterPod(p), x.topo)
			}
		}
		for _, p := range x.in.Others {
			c.place(st.clusterPod(p), x.topo)
		}
	}
	st.cl = c
	return c
}

// clusterPod is the parsed pod affinity of p, parsed once.
func (st *preemptState) clusterPod(p *corev1.Pod) *clusterPod {
	if cp := st.cps[p.UID]; cp != nil && p.UID != "" {
		return cp
	}
	cp := &clusterPod{pod: p}
	if p.Spec.Affinity != nil {
		if parsed, err := newClusterPod(p); err == nil {
			cp = parsed // the API server validates selectors: one that does not parse is no rule
		}
	}
	st.cps[p.UID] = cp
	return cp
}

// unplace takes a pod off its Node (a victim chosen for an earlier preemptor of the round).
func (c *cluster) unplace(cp *clusterPod, t *topoNode) {
	for i, q := range t.pods {
		if q == cp {
			t.pods = append(t.pods[:i:i], t.pods[i+1:]...)
			if cp.hasAffinity() {
				c.withAffinity--
			}
			return
		}
	}
}

// remove undoes add for the filters (kube-scheduler's RemovePod of InterPodAffinity and
// PodTopologySpread, updateWithPod with multiplier -1); the scores' state is left as it is, the
// preemption dry run only filters.
func (r *rules) remove(cp *clusterPod, t *topoNode) {
	if r.err != nil {
		return
	}
	q := cp.pod
	r.affinityPairs(cp, t, uncountPair)
	if q.Namespace != r.pod.Namespace || q.DeletionTimestamp != nil {
		return
	}
	set := labels.Set(q.Labels)
	for _, cs := range [][]*spreadConstraint{r.hard, r.soft} {
		for _, sc := range cs {
			if sc.hostnameScored || !sc.inDomain[t.idx] || !sc.counts(set) {
				continue
			}
			v := t.labels[sc.key]
			sc.domainCounts[v]--
			if sc.minValid && sc.domainCounts[v] < sc.min {
				sc.min = sc.domainCounts[v] // a count below the minimum is the new minimum
			}
		}
	}
}

// uncountPair is countPair's inverse; a pair at zero goes, as kube-scheduler's topologyToMatchedTermCount
// drops it (the "first pod of its group" case of pod affinity looks at whether any pair is left).
func uncountPair(m map[topoPair]int64, t *topoNode, key string) {
	if v, ok := t.labels[key]; ok {
		p := topoPair{key, v}
		if m[p]--; m[p] <= 0 {
			delete(m, p)
		}
	}
}

// ruleTrial is one preemptor's rules on one agent during selectVictims: every change to what is on the
// agent goes through it, and undo puts the state back for the next agent.
type ruleTrial struct {
	r       *rules
	t       *topoNode
	st      *preemptState
	added   []*clusterPod // nominated pods counted on the agent
	removed map[types.UID]*clusterPod
}

// trial starts the preemptor's rules on agent x, with the pods nominated there with the preemptor's
// priority or higher counted as present (addGENominatedPods). nil when no rule can matter: the
// preemptor has no pod rules and no pod anywhere has pod affinity terms.
func (st *preemptState) trial(r *rules, x *preemptAgent) *ruleTrial {
	if r == nil {
		return nil
	}
	tr := &ruleTrial{r: r, t: x.topo, st: st, removed: map[types.UID]*clusterPod{}}
	prio := podPriority(r.pod)
	for _, p := range x.nominated {
		if p.UID == r.pod.UID || podPriority(p) < prio {
			continue
		}
		cp := st.clusterPod(p)
		r.add(cp, x.topo)
		tr.added = append(tr.added, cp)
	}
	return tr
}

func (tr *ruleTrial) take(p *corev1.Pod) {
	if tr == nil {
		return
	}
	cp := tr.st.clusterPod(p)
	tr.r.remove(cp, tr.t)
	tr.removed[p.UID] = cp
}

func (tr *ruleTrial) putBack(p *corev1.Pod) {
	if tr == nil {
		return
	}
	if cp := tr.removed[p.UID]; cp != nil {
		tr.r.add(cp, tr.t)
		delete(tr.removed, p.UID)
	}
}

// filter is the rules' verdict on the agent now ("" when it passes).
func (tr *ruleTrial) filter() string {
	if tr == nil {
		return ""
	}
	return tr.r.filter(tr.t)
}

func (tr *ruleTrial) undo() {
	if tr == nil {
		return
	}
	for _, cp := range tr.removed {
		tr.r.add(cp, tr.t)
	}
	for _, cp := range tr.added {
		tr.r.remove(cp, tr.t)
	}
}

// unresolvable reports whether the rules reject the agent in a way no eviction changes, as the
// plugins' UnschedulableAndUnresolvable statuses make nodesWherePreemptionMightHelp skip a Node:
// InterPodAffinity's unmatched required affinity and PodTopologySpread's missing topology label.
func unresolvable(why string) bool {
	return why == ReasonPodAffinity || why == ReasonTopologySpreadLabel
}

// preemptorRules is the preemptor's rules over the round's cluster, nil when none can matter.
func (st *preemptState) preemptorRules(pod *corev1.Pod) *rules {
	if !hasPodRules(pod) {
		// Only existing pods' required anti-affinity can reject it.
		any := false
		for _, x := range st.agents {
			for _, p := range x.in.Pods {
				if hasRequiredAntiAffinity(p) {
					any = true
					break
				}
			}
			for _, p := range x.in.Others {
				if hasRequiredAntiAffinity(p) {
					any = true
					break
				}
			}
			for _, p := range x.nominated {
				if hasRequiredAntiAffinity(p) {
					any = true
					break
				}
			}
		}
		if !any {
			return nil
		}
	}
	return st.ruleCluster().newRules(pod)
}

func hasRequiredAntiAffinity(p *corev1.Pod) bool {
	a := p.Spec.Affinity
	return a != nil && a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0
}

// commitRules takes a preemption's victims off the rules' cluster.
func (st *preemptState) commitRules(p *Preemption) {
	if st.cl == nil {
		return
	}
	for _, x := range st.agents {
		if x.in.AgentID != p.AgentID {
			continue
		}
		for _, v := range p.Victims {
			st.cl.unplace(st.clusterPod(v), x.topo)
		}
	}
}
