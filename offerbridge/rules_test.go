package offerbridge

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const rackLabel = LabelAttrPrefix + "rack"

// rackOffer is basic with a rack attribute (the Node label kubemesos.io/attr-rack).
func rackOffer(id, agentID, rack string, cpus, mem float64) mesos.Offer {
	o := basic(id, agentID, cpus, mem)
	o.Attributes = []mesos.Attribute{{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: rack}}}
	return o
}

func labelled(kv ...string) podOpt {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func inNamespace(ns string) podOpt { return func(p *corev1.Pod) { p.Namespace = ns } }

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func affinity(f func(a *corev1.Affinity)) podOpt {
	return func(p *corev1.Pod) {
		if p.Spec.Affinity == nil {
			p.Spec.Affinity = &corev1.Affinity{}
		}
		f(p.Spec.Affinity)
	}
}

func antiAffinity(key string, s *metav1.LabelSelector) podOpt {
	return affinity(func(a *corev1.Affinity) {
		a.PodAntiAffinity = &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
			{LabelSelector: s, TopologyKey: key}}}
	})
}

func podAffinity(key string, s *metav1.LabelSelector) podOpt {
	return affinity(func(a *corev1.Affinity) {
		a.PodAffinity = &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
			{LabelSelector: s, TopologyKey: key}}}
	})
}

func spread(maxSkew int32, key string, when corev1.UnsatisfiableConstraintAction, s *metav1.LabelSelector, mut ...func(*corev1.TopologySpreadConstraint)) podOpt {
	return func(p *corev1.Pod) {
		c := corev1.TopologySpreadConstraint{MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when, LabelSelector: s}
		for _, m := range mut {
			m(&c)
		}
		p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, c)
	}
}

// boundTo is a pod already on the Node of agent (hostname "<agent>.example").
// hostNodes are the Nodes of agents a<i>, named and labelled with their hostnames as offers name them.
func hostNodes(agentIDs ...string) map[string]*corev1.Node {
	out := map[string]*corev1.Node{}
	for _, id := range agentIDs {
		out[id] = node(id+".example", map[string]string{LabelHostname: id + ".example"})
	}
	return out
}

func boundTo(agentID string) podOpt {
	return func(p *corev1.Pod) { p.Spec.NodeName = agentID + ".example" }
}

func replicas(prefix string, n int, opts ...podOpt) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, pod(fmt.Sprintf("%s-%d", prefix, i), 0.1, 64, opts...))
	}
	return out
}

// perAgent counts placements per agent.
func perAgent(p Plan) map[string]int {
	out := map[string]int{}
	for _, l := range p.Launches {
		out[l.AgentID.Value] += len(l.Pods)
	}
	return out
}

// perRack counts placements per rack of the rackOffers a<rack><i>.
func perRack(p Plan, rackOf map[string]string) map[string]int {
	out := map[string]int{}
	for _, l := range p.Launches {
		out[rackOf[l.AgentID.Value]] += len(l.Pods)
	}
	return out
}

func TestRequiredPodAntiAffinity(t *testing.T) {
	three := []mesos.Offer{basic("o1", "a1", 8, 8192), basic("o2", "a2", 8, 8192), basic("o3", "a3", 8, 8192)}
	web := antiAffinity(LabelHostname, sel("app", "web"))
	tests := []struct {
		name       string
		in         Input
		wantPlaced map[string]int
		wantUnfit  map[string]string
	}{
		{
			name: "replicas of one cycle see each other: 3 over 3 agents, the 4th pending",
			in:   Input{Offers: three, Pods: replicas("web", 4, labelled("app", "web"), web)},
			// Without the rule all four would go to the agents by free share, two on one of them.
			wantPlaced: map[string]int{"a1": 1, "a2": 1, "a3": 1},
			wantUnfit:  map[string]string{"web-3": "0/3 agents are available: 3 node(s) didn't match pod anti-affinity rules."},
		},
		{
			name: "bound pods count",
			in: Input{Offers: three, Pods: replicas("web", 2, labelled("app", "web"), web),
				Bound: []*corev1.Pod{pod("old", 0.1, 64, labelled("app", "web"), boundTo("a2"))}},
			wantPlaced: map[string]int{"a1": 1, "a3": 1},
		},
		{
			name: "other namespaces do not count by default",
			in: Input{Offers: three[:1], Pods: replicas("web", 1, labelled("app", "web"), web),
				Bound: []*corev1.Pod{pod("old", 0.1, 64, labelled("app", "web"), boundTo("a1"), inNamespace("other"))}},
			wantPlaced: map[string]int{"a1": 1},
		},
		{
			name: "namespaceSelector picks namespaces by label",
			in: Input{Offers: three[:1],
				Namespaces: map[string]map[string]string{"other": {"team": "a"}, "default": {}},
				Pods: replicas("web", 1, labelled("app", "web"), affinity(func(a *corev1.Affinity) {
					a.PodAntiAffinity = &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
						{LabelSelector: sel("app", "web"), TopologyKey: LabelHostname, NamespaceSelector: sel("team", "a")}}}
				})),
				Bound: []*corev1.Pod{pod("old", 0.1, 64, labelled("app", "web"), boundTo("a1"), inNamespace("other"))}},
			wantUnfit: map[string]string{"web-0": "0/1 agents are available: 1 node(s) didn't match pod anti-affinity rules."},
		},
		{
			name: "an existing pod's anti-affinity keeps the incoming pod off",
			in: Input{Offers: three[:2], Pods: []*corev1.Pod{pod("client", 0.1, 64, labelled("app", "client"))},
				Bound: []*corev1.Pod{pod("loner", 0.1, 64, boundTo("a1"), antiAffinity(LabelHostname, sel("app", "client")))}},
			wantPlaced: map[string]int{"a2": 1},
		},
		{
			name: "existing pods' anti-affinity reason",
			in: Input{Offers: three[:1], Pods: []*corev1.Pod{pod("client", 0.1, 64, labelled("app", "client"))},
				Bound: []*corev1.Pod{pod("loner", 0.1, 64, boundTo("a1"), antiAffinity(LabelHostname, sel("app", "client")))}},
			wantUnfit: map[string]string{"client": "0/1 agents are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."},
		},
		{
			name: "a pod bound before (relaunch) is not held to the rules",
			in: Input{Offers: three[:1], Pods: replicas("web", 1, labelled("app", "web"), web, nodeNamed("a1.example")),
				Bound: []*corev1.Pod{pod("old", 0.1, 64, labelled("app", "web"), boundTo("a1"))}},
			wantPlaced: map[string]int{"a1": 1},
		},
		{
			name: "an existing pod's namespaceSelector sees the incoming pod's namespace labels",
			// a1 is the emptier agent: only the rule sends the client to a2.
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 16, 16384), basic("o2", "a2", 2, 2048)},
				Namespaces: map[string]map[string]string{"web": {"tier": "front"}},
				Pods:       []*corev1.Pod{pod("client", 0.1, 64, labelled("app", "client"), inNamespace("web"))},
				Bound: []*corev1.Pod{pod("loner", 0.1, 64, boundTo("a1"), affinity(func(a *corev1.Affinity) {
					a.PodAntiAffinity = &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
						LabelSelector: sel("app", "client"), TopologyKey: LabelHostname, NamespaceSelector: sel("tier", "front")}}}
				}))}},
			wantPlaced: map[string]int{"a2": 1},
		},
		{
			name: "topology key on an agent attribute: one replica per rack",
			in: Input{Offers: []mesos.Offer{rackOffer("o1", "a1", "r1", 8, 8192), rackOffer("o2", "a2", "r1", 8, 8192),
				rackOffer("o3", "a3", "r2", 8, 8192)},
				Pods: replicas("db", 3, labelled("app", "db"), antiAffinity(rackLabel, sel("app", "db")))},
			wantPlaced: map[string]int{"a3": 1, "a1": 1},
			wantUnfit:  map[string]string{"db-2": "0/3 agents are available: 3 node(s) didn't match pod anti-affinity rules."},
		},
		{
			// kube-scheduler counts every Node: agents whose offers are elsewhere count when their Node
			// refuses the pod whatever they would offer.
			name: "agents without an offer count when their Node refuses the pod",
			in: Input{Offers: three[:1], Nodes: hostNodes("a1", "a2", "a3"), Pods: replicas("web", 1, labelled("app", "web"), web),
				Bound: []*corev1.Pod{
					pod("old-1", 0.1, 64, labelled("app", "web"), boundTo("a1")), pod("old-2", 0.1, 64, labelled("app", "web"), boundTo("a2")),
					pod("old-3", 0.1, 64, labelled("app", "web"), boundTo("a3"))}},
			wantUnfit: map[string]string{"web-0": "0/3 agents are available: 3 node(s) didn't match pod anti-affinity rules."},
		},
		{
			name: "agents without an offer that would take the pod are not counted",
			in: Input{Offers: three[:1], Nodes: hostNodes("a1", "a2", "a3"), Pods: replicas("web", 1, labelled("app", "web"), web),
				Bound: []*corev1.Pod{pod("old-1", 0.1, 64, labelled("app", "web"), boundTo("a1"))}},
			wantUnfit: map[string]string{"web-0": "0/1 agents are available: 1 node(s) didn't match pod anti-affinity rules."},
		},
		{
			name: "a Node without the topology key does not conflict",
			in: Input{Offers: three[:1], Nodes: map[string]*corev1.Node{"a1": node("a1.example", map[string]string{})},
				Pods: replicas("web", 2, labelled("app", "web"), antiAffinity("zone", sel("app", "web")))},
			wantPlaced: map[string]int{"a1": 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Seed = 1
			plan := Place(tc.in)
			if diff := cmp.Diff(tc.wantPlaced, perAgent(plan), cmpEmptyMap); diff != "" {
				t.Errorf("placed per agent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnfit, unfitNames(plan), cmpEmptyMap); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmptyMap = cmp.FilterValues(func(a, b any) bool {
	la, lb := mapLen(a), mapLen(b)
	return la == 0 && lb == 0
}, cmp.Ignore())

func mapLen(v any) int {
	switch m := v.(type) {
	case map[string]int:
		return len(m)
	case map[string]string:
		return len(m)
	}
	return -1
}

func TestRequiredPodAffinity(t *testing.T) {
	offers := []mesos.Offer{rackOffer("o1", "a1", "r1", 8, 8192), rackOffer("o2", "a2", "r2", 8, 8192), rackOffer("o3", "a3", "r2", 8, 8192)}
	withCache := podAffinity(rackLabel, sel("app", "cache"))
	tests := []struct {
		name       string
		in         Input
		wantPlaced map[string]int
		wantUnfit  map[string]string
	}{
		{
			name: "follows a matching pod into its rack",
			in: Input{Offers: offers, Pods: replicas("web", 4, labelled("app", "web"), withCache),
				Bound: []*corev1.Pod{pod("cache", 0.1, 64, labelled("app", "cache"), boundTo("a2"))}},
			wantPlaced: map[string]int{"a2": 2, "a3": 2},
		},
		{
			name: "a pod placed earlier in the cycle counts",
			in: Input{Offers: offers[1:], Pods: append(replicas("cache", 1, labelled("app", "cache"), nodeNamed("a3.example")),
				replicas("web", 1, labelled("app", "web"), podAffinity(LabelHostname, sel("app", "cache")))...)},
			wantPlaced: map[string]int{"a3": 2},
		},
		{
			name:      "no matching pod anywhere and not matching itself",
			in:        Input{Offers: offers, Pods: replicas("web", 1, labelled("app", "web"), withCache)},
			wantUnfit: map[string]string{"web-0": "0/3 agents are available: 3 node(s) didn't match pod affinity rules."},
		},
		{
			name: "the first of a group with affinity to itself goes anywhere, the rest follow",
			in:   Input{Offers: offers, Pods: replicas("c", 3, labelled("app", "cache"), withCache)},
			// c-0 goes to r2's a3 (the first best agent for seed 1); the others follow into its rack.
			wantPlaced: map[string]int{"a2": 1, "a3": 2},
		},
		{
			name: "every topology key must be on the Node",
			in: Input{Offers: offers[:1], Pods: replicas("web", 1, labelled("app", "web"), podAffinity("zone", sel("app", "web"))),
				Bound: []*corev1.Pod{pod("cache", 0.1, 64, labelled("app", "web"), boundTo("a1"))}},
			wantUnfit: map[string]string{"web-0": "0/1 agents are available: 1 node(s) didn't match pod affinity rules."},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Seed = 1
			plan := Place(tc.in)
			if diff := cmp.Diff(tc.wantPlaced, perAgent(plan), cmpEmptyMap); diff != "" {
				t.Errorf("placed per agent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnfit, unfitNames(plan), cmpEmptyMap); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
		})
	}
}

// racks is 3 racks of 2 agents each: a<r><i> in rack r<r>.
func racks(cpus float64) ([]mesos.Offer, map[string]string) {
	var offers []mesos.Offer
	rackOf := map[string]string{}
	for r := 1; r <= 3; r++ {
		for i := 1; i <= 2; i++ {
			id := fmt.Sprintf("a%d%d", r, i)
			offers = append(offers, rackOffer("o"+id, id, fmt.Sprintf("r%d", r), cpus, 8192))
			rackOf[id] = fmt.Sprintf("r%d", r)
		}
	}
	return offers, rackOf
}

func TestTopologySpreadDoNotSchedule(t *testing.T) {
	offers, rackOf := racks(8)
	web := sel("app", "web")
	tests := []struct {
		name      string
		in        Input
		wantRacks map[string]int
		wantUnfit map[string]string
	}{
		{
			name: "balanced over racks within maxSkew 1",
			in:   Input{Offers: offers, Pods: replicas("web", 7, labelled("app", "web"), spread(1, rackLabel, corev1.DoNotSchedule, web))},
			// BinPack would put all seven on one agent: the constraint holds against it.
			wantRacks: map[string]int{"r1": 3, "r2": 2, "r3": 2},
		},
		{
			name: "bound pods count: the empty rack first, then binpacking within the skew",
			in: Input{Offers: offers, Pods: replicas("web", 2, labelled("app", "web"), spread(1, rackLabel, corev1.DoNotSchedule, web)),
				Bound: []*corev1.Pod{
					pod("b1", 0.1, 64, labelled("app", "web"), boundTo("a11")), pod("b2", 0.1, 64, labelled("app", "web"), boundTo("a21")),
				}},
			wantRacks: map[string]int{"r3": 2},
		},
		{
			name: "a domain without offers still counts as the global minimum",
			in: Input{Offers: offers[:4], Nodes: map[string]*corev1.Node{
				"a31": node("a31.example", map[string]string{LabelHostname: "a31.example", rackLabel: "r3"})},
				Pods: replicas("web", 3, labelled("app", "web"), spread(1, rackLabel, corev1.DoNotSchedule, web))},
			wantRacks: map[string]int{"r1": 1, "r2": 1},
			wantUnfit: map[string]string{"web-2": "0/4 agents are available: 4 node(s) didn't match pod topology spread constraints."},
		},
		{
			name: "missing topology label",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 8, 8192)},
				Pods: replicas("web", 1, labelled("app", "web"), spread(1, rackLabel, corev1.DoNotSchedule, web))},
			wantUnfit: map[string]string{"web-0": "0/1 agents are available: 1 node(s) didn't match pod topology spread constraints (missing required label)."},
		},
		{
			name: "minDomains above the domains: the global minimum is 0",
			in: Input{Offers: offers[:4], Pods: replicas("web", 5, labelled("app", "web"),
				spread(2, rackLabel, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) { c.MinDomains = ptr.To[int32](3) }))},
			wantRacks: map[string]int{"r1": 2, "r2": 2},
			wantUnfit: map[string]string{"web-4": "0/4 agents are available: 4 node(s) didn't match pod topology spread constraints."},
		},
		{
			name: "nodeAffinityPolicy Honor (default): Nodes the pod cannot go to are no domain",
			in: Input{Offers: offers, Pods: replicas("web", 4, labelled("app", "web"), nodeSelector(LabelHostname, "a11.example"),
				spread(1, rackLabel, corev1.DoNotSchedule, web))},
			wantRacks: map[string]int{"r1": 4},
		},
		{
			name: "nodeAffinityPolicy Ignore: they are",
			in: Input{Offers: offers, Pods: replicas("web", 4, labelled("app", "web"), nodeSelector(LabelHostname, "a11.example"),
				spread(1, rackLabel, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) {
					c.NodeAffinityPolicy = ptr.To(corev1.NodeInclusionPolicyIgnore)
				}))},
			wantRacks: map[string]int{"r1": 1},
			wantUnfit: map[string]string{
				"web-1": "0/6 agents are available: 1 node(s) didn't match pod topology spread constraints, 5 node(s) didn't match Pod's node affinity/selector.",
				"web-2": "0/6 agents are available: 1 node(s) didn't match pod topology spread constraints, 5 node(s) didn't match Pod's node affinity/selector.",
				"web-3": "0/6 agents are available: 1 node(s) didn't match pod topology spread constraints, 5 node(s) didn't match Pod's node affinity/selector.",
			},
		},
		{
			name: "nodeTaintsPolicy Honor: a tainted rack is no domain",
			in: Input{Offers: offers, Nodes: map[string]*corev1.Node{
				"a31": node("a31.example", map[string]string{LabelHostname: "a31.example", rackLabel: "r3"}, corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoSchedule}),
				"a32": node("a32.example", map[string]string{LabelHostname: "a32.example", rackLabel: "r3"}, corev1.Taint{Key: "x", Effect: corev1.TaintEffectNoSchedule}),
			}, Pods: replicas("web", 4, labelled("app", "web"), spread(1, rackLabel, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) {
				c.NodeTaintsPolicy = ptr.To(corev1.NodeInclusionPolicyHonor)
			}))},
			wantRacks: map[string]int{"r1": 2, "r2": 2},
		},
		{
			name: "matchLabelKeys: only pods of the same revision count",
			in: Input{Offers: offers[:2], Pods: replicas("web", 2, labelled("app", "web", "rev", "2"),
				spread(1, LabelHostname, corev1.DoNotSchedule, web, func(c *corev1.TopologySpreadConstraint) { c.MatchLabelKeys = []string{"rev"} })),
				Bound: []*corev1.Pod{
					pod("old1", 0.1, 64, labelled("app", "web", "rev", "1"), boundTo("a11")),
					pod("old2", 0.1, 64, labelled("app", "web", "rev", "1"), boundTo("a11")),
				}},
			wantRacks: map[string]int{"r1": 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Seed = 1
			tc.in.Strategy = BinPack
			plan := Place(tc.in)
			if diff := cmp.Diff(tc.wantRacks, perRack(plan, rackOf), cmpEmptyMap); diff != "" {
				t.Errorf("placed per rack (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnfit, unfitNames(plan), cmpEmptyMap); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchLabelKeysSpreadsEachRevision(t *testing.T) {
	offers, _ := racks(8)
	c := func(c *corev1.TopologySpreadConstraint) { c.MatchLabelKeys = []string{"rev"} }
	in := Input{Offers: offers[:2], Seed: 1, Strategy: BinPack,
		Pods: replicas("web", 2, labelled("app", "web", "rev", "2"), spread(1, LabelHostname, corev1.DoNotSchedule, sel("app", "web"), c))}
	if got := perAgent(Place(in)); got["a11"] != 1 || got["a12"] != 1 {
		t.Fatalf("want one per agent, got %v", got)
	}
}

func TestScores(t *testing.T) {
	offers, rackOf := racks(8)
	tests := []struct {
		name      string
		in        Input
		wantRacks map[string]int
		wantAgent map[string]int
	}{
		{
			name: "ScheduleAnyway spreads over racks even when binpacking",
			in: Input{Offers: offers, Strategy: BinPack,
				Pods: replicas("web", 6, labelled("app", "web"), spread(1, rackLabel, corev1.ScheduleAnyway, sel("app", "web")))},
			wantRacks: map[string]int{"r1": 2, "r2": 2, "r3": 2},
		},
		{
			name: "ScheduleAnyway on hostname spreads over agents",
			in: Input{Offers: offers[:2], Strategy: BinPack,
				Pods: replicas("web", 4, labelled("app", "web"), spread(1, LabelHostname, corev1.ScheduleAnyway, sel("app", "web")))},
			wantAgent: map[string]int{"a11": 2, "a12": 2},
		},
		{
			name: "preferred node affinity wins over the free share",
			in: Input{Offers: []mesos.Offer{rackOffer("o1", "a1", "r1", 2, 2048), rackOffer("o2", "a2", "r2", 16, 16384)},
				Pods: replicas("web", 3, affinity(func(a *corev1.Affinity) {
					a.NodeAffinity = &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
						Weight: 10, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
							{Key: rackLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"r1"}}}}}}}
				}))},
			wantAgent: map[string]int{"a1": 3},
		},
		{
			name: "preferred node affinity honoured when possible: the rest go elsewhere",
			in: Input{Offers: []mesos.Offer{rackOffer("o1", "a1", "r1", 0.25, 2048), rackOffer("o2", "a2", "r2", 16, 16384)},
				Pods: replicas("web", 3, affinity(func(a *corev1.Affinity) {
					a.NodeAffinity = &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
						Weight: 10, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
							{Key: rackLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"r1"}}}}}}}
				}))},
			wantAgent: map[string]int{"a1": 2, "a2": 1},
		},
		{
			name: "PreferNoSchedule avoided while another agent fits",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 16, 16384), basic("o2", "a2", 2, 2048)},
				Nodes: map[string]*corev1.Node{"a1": node("a1.example", map[string]string{LabelHostname: "a1.example"},
					corev1.Taint{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule})},
				Pods: replicas("web", 2)},
			wantAgent: map[string]int{"a2": 2},
		},
		{
			name: "PreferNoSchedule tolerated: the free share decides",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 16, 16384), basic("o2", "a2", 2, 2048)},
				Nodes: map[string]*corev1.Node{"a1": node("a1.example", map[string]string{LabelHostname: "a1.example"},
					corev1.Taint{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule})},
				Pods: replicas("web", 2, tolerate(corev1.Toleration{Key: "spot", Operator: corev1.TolerationOpExists}))},
			wantAgent: map[string]int{"a1": 2},
		},
		{
			name: "preferred pod affinity: next to the cache though another agent is emptier",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 2, 2048), basic("o2", "a2", 16, 16384)},
				Bound: []*corev1.Pod{pod("cache", 0.1, 64, labelled("app", "cache"), boundTo("a1"))},
				Pods: replicas("web", 2, affinity(func(a *corev1.Affinity) {
					a.PodAffinity = &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
						Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: sel("app", "cache"), TopologyKey: LabelHostname}}}}
				}))},
			wantAgent: map[string]int{"a1": 2},
		},
		{
			name: "preferred pod anti-affinity spreads replicas when binpacking",
			in: Input{Offers: offers[:3], Strategy: BinPack,
				Pods: replicas("web", 3, labelled("app", "web"), affinity(func(a *corev1.Affinity) {
					a.PodAntiAffinity = &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
						Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: sel("app", "web"), TopologyKey: LabelHostname}}}}
				}))},
			wantAgent: map[string]int{"a11": 1, "a12": 1, "a21": 1},
		},
		{
			name: "an existing pod's required affinity draws the pods it names (hardPodAffinityWeight)",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 2, 2048), basic("o2", "a2", 16, 16384)},
				Bound: []*corev1.Pod{pod("web", 0.1, 64, boundTo("a1"), podAffinity(LabelHostname, sel("app", "cache")))},
				Pods:  replicas("cache", 1, labelled("app", "cache"))},
			wantAgent: map[string]int{"a1": 1},
		},
		{
			name: "an existing pod's preferred anti-affinity pushes pods it names away",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 16, 16384), basic("o2", "a2", 2, 2048)},
				Bound: []*corev1.Pod{pod("noisy", 0.1, 64, boundTo("a1"), affinity(func(a *corev1.Affinity) {
					a.PodAntiAffinity = &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
						Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{LabelSelector: sel("app", "web"), TopologyKey: LabelHostname}}}}
				}))},
				Pods: replicas("web", 1, labelled("app", "web"))},
			wantAgent: map[string]int{"a2": 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Seed = 1
			plan := Place(tc.in)
			if len(plan.Unschedulable) > 0 {
				t.Fatalf("unschedulable: %v", unfitNames(plan))
			}
			if tc.wantRacks != nil {
				if diff := cmp.Diff(tc.wantRacks, perRack(plan, rackOf)); diff != "" {
					t.Errorf("placed per rack (-want +got):\n%s", diff)
				}
			}
			if tc.wantAgent != nil {
				if diff := cmp.Diff(tc.wantAgent, perAgent(plan)); diff != "" {
					t.Errorf("placed per agent (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestPodCount(t *testing.T) {
	full := node("a1.example", map[string]string{LabelHostname: "a1.example"})
	full.Status.Allocatable = corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(2, resource.DecimalSI)}
	tests := []struct {
		name       string
		in         Input
		wantPlaced map[string]int
		wantUnfit  map[string]string
	}{
		{
			name: "a Node at its allocatable pods",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 8, 8192)}, Nodes: map[string]*corev1.Node{"a1": full},
				Pods:  replicas("web", 1),
				Bound: []*corev1.Pod{pod("b1", 0.1, 64, boundTo("a1")), pod("b2", 0.1, 64, boundTo("a1"))}},
			wantUnfit: map[string]string{"web-0": "0/1 agents are available: 1 Too many pods."},
		},
		{
			name: "reported with the resources lacking",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 1, 8192)}, Nodes: map[string]*corev1.Node{"a1": full},
				Pods:  []*corev1.Pod{pod("big", 2, 64)},
				Bound: []*corev1.Pod{pod("b1", 0.1, 64, boundTo("a1")), pod("b2", 0.1, 64, boundTo("a1"))}},
			wantUnfit: map[string]string{"big": "0/1 agents are available: 1 Insufficient cpu, 1 Too many pods."},
		},
		{
			name: "pods placed in the cycle count",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 8, 8192)}, Nodes: map[string]*corev1.Node{"a1": full},
				Pods: replicas("web", 3)},
			wantPlaced: map[string]int{"a1": 2},
			wantUnfit:  map[string]string{"web-2": "0/1 agents are available: 1 Too many pods."},
		},
		{
			name: "without a Node: the kubelet's 110",
			in: Input{Offers: []mesos.Offer{basic("o1", "a1", 64, 65536)}, Executor: ExecutorCost{RunningOn: map[string]bool{"a1": true}},
				Pods: func() []*corev1.Pod {
					ps := replicas("web", 111)
					for _, p := range ps {
						p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
					}
					return ps
				}()},
			wantPlaced: map[string]int{"a1": 110},
			wantUnfit:  map[string]string{"web-110": "0/1 agents are available: 1 Too many pods."},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := Place(tc.in)
			if diff := cmp.Diff(tc.wantPlaced, perAgent(plan), cmpEmptyMap); diff != "" {
				t.Errorf("placed per agent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantUnfit, unfitNames(plan), cmpEmptyMap); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRulesHoldOverSeeds: whatever the agents' order, one cycle of replicas never breaks a required
// anti-affinity or a DoNotSchedule spread, counting the pods bound before.
func TestRulesHoldOverSeeds(t *testing.T) {
	offers, rackOf := racks(8)
	for seed := range uint64(50) {
		bound := []*corev1.Pod{pod("b", 0.1, 64, labelled("app", "web"), boundTo(fmt.Sprintf("a%d1", seed%3+1)))}
		pods := replicas("web", 8, labelled("app", "web"), spread(1, rackLabel, corev1.DoNotSchedule, sel("app", "web")))
		pods = append(pods, replicas("db", 4, labelled("app", "db"), antiAffinity(LabelHostname, sel("app", "db")))...)
		plan := Place(Input{Offers: offers, Pods: pods, Bound: bound, Seed: seed, Strategy: Strategy(seed % 2)})
		webRacks := map[string]int{rackOf[fmt.Sprintf("a%d1", seed%3+1)]: 1}
		dbAgents := map[string]int{}
		for _, l := range plan.Launches {
			for _, pp := range l.Pods {
				if pp.Pod.Labels["app"] == "web" {
					webRacks[rackOf[l.AgentID.Value]]++
				} else {
					dbAgents[l.AgentID.Value]++
				}
			}
		}
		lo, hi := 99, 0
		for _, r := range []string{"r1", "r2", "r3"} {
			lo, hi = min(lo, webRacks[r]), max(hi, webRacks[r])
		}
		if hi-lo > 1 || len(plan.Unschedulable) != 0 {
			t.Errorf("seed %d: web per rack %v (skew %d), unschedulable %v", seed, webRacks, hi-lo, unfitNames(plan))
		}
		for a, n := range dbAgents {
			if n > 1 {
				t.Errorf("seed %d: %d db pods on %s", seed, n, a)
			}
		}
	}
}

func TestPodCountBit(t *testing.T) {
	if _, ok := fitCheckers[podCountBit].(podCount); !ok {
		t.Fatalf("fitCheckers[podCountBit] is %T, want podCount", fitCheckers[podCountBit])
	}
}

// kube-scheduler's countPodsMatchSelector counts no pod for an empty selector, so such a constraint
// never keeps a pod off.
func TestSpreadEmptySelectorCountsNoPod(t *testing.T) {
	offers, _ := racks(8)
	in := Input{Offers: offers[:2], Seed: 1, Strategy: BinPack,
		Pods: replicas("web", 3, labelled("app", "web"), spread(1, LabelHostname, corev1.DoNotSchedule, &metav1.LabelSelector{}))}
	plan := Place(in)
	if got := perAgent(plan); len(got) != 1 || len(plan.Unschedulable) != 0 {
		t.Fatalf("placed %v, unschedulable %v; want all three binpacked on one agent", got, unfitNames(plan))
	}
}
