package kubemesos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/offerbridge"
)

// Issue 15, must show 5 (placement rules at kube-scheduler parity), against the real API server and
// the simulated agents.

const rackLabel = offerbridge.LabelAttrPrefix + "rack"

// twoRacks gives agent i the attribute rack:rack-<i/2>, so agents 0 and 1 are rack-0, 2 and 3 rack-1.
func twoRacks(i int, cfg *agent.Config) {
	attrs, err := mesossim.ParseAttributes(fmt.Sprintf("rack:rack-%d", i/2), i)
	if err != nil {
		panic(err)
	}
	cfg.Attributes = attrs
}

// Required anti-affinity spreads 3 replicas over 3 agents, the pods of one placement cycle seeing
// each other, and leaves a 4th Pending with kube-scheduler's reason.
func TestPlacementRequiredAntiAffinity(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	spec := podSpec(sleeper)
	spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "anti"}},
			TopologyKey:   corev1.LabelHostname,
		}},
	}}
	e.createDeployment(deployment("anti", 4, spec))
	sel := selector(map[string]string{"app": "anti"})

	const want = "0/3 agents are available: 3 " + offerbridge.ReasonPodAntiAffinity + "."
	var running []corev1.Pod
	var pending corev1.Pod
	e.eventually("3 replicas running on 3 Nodes, the 4th pending with the anti-affinity reason", 2*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, sel)
		if err != nil {
			return false, err
		}
		running = nil
		var unbound []corev1.Pod
		for _, p := range pods {
			switch {
			case p.Status.Phase == corev1.PodRunning && podReady(&p):
				running = append(running, p)
			case p.Spec.NodeName == "":
				unbound = append(unbound, p)
			}
		}
		if len(pods) != 4 || len(running) != 3 || len(unbound) != 1 {
			return false, fmt.Errorf("%d pods: %d running, %d unbound", len(pods), len(running), len(unbound))
		}
		pending = unbound[0]
		msgs, err := e.schedulingEvents(ctx, pending.Name)
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if m == want {
				return true, nil
			}
		}
		return false, fmt.Errorf("FailedScheduling messages of %s: %q", pending.Name, msgs)
	})
	nodes := map[string]string{}
	for _, p := range running {
		if other, ok := nodes[p.Spec.NodeName]; ok {
			t.Errorf("replicas %s and %s share Node %s despite required anti-affinity", other, p.Name, p.Spec.NodeName)
		}
		nodes[p.Spec.NodeName] = p.Name
	}
	got, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, pending.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cond *corev1.PodCondition
	for i := range got.Status.Conditions {
		if got.Status.Conditions[i].Type == corev1.PodScheduled {
			cond = &got.Status.Conditions[i]
		}
	}
	if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || cond.Message != want {
		t.Errorf("pod %s PodScheduled = %+v, want False/Unschedulable %q", pending.Name, cond, want)
	}
	t.Logf("replicas on %v; %s pending: %s", nodes, pending.Name, want)
}

// A DoNotSchedule topology spread over the agents' rack attribute balances within maxSkew, though
// binpacking alone would put every replica on one agent.
func TestPlacementTopologySpreadOverRackAttribute(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 4, AgentTweak: twoRacks, FrameworkArgs: []string{"--placement-strategy=binpack"}})
	e.waitSchedulableNodes(4)
	spec := podSpec(sleeper)
	spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       rackLabel,
		WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
		MatchLabelKeys:    []string{"pod-template-hash"},
	}}
	e.createDeployment(deployment("spread", 5, spec))
	pods := e.waitRunningPods(selector(map[string]string{"app": "spread"}), 5, 2*time.Minute)
	perRack, perNode := e.racksOf(pods)
	if len(perRack) != 2 || abs(perRack["rack-0"]-perRack["rack-1"]) > 1 {
		t.Errorf("replicas per rack %v, want both racks within maxSkew 1", perRack)
	}
	t.Logf("replicas per rack %v, per Node %v", perRack, perNode)

	// Scaling up keeps the balance: pods bound in earlier cycles count.
	e.scale("spread", 8)
	pods = e.waitRunningPods(selector(map[string]string{"app": "spread"}), 8, 2*time.Minute)
	perRack, perNode = e.racksOf(pods)
	if abs(perRack["rack-0"]-perRack["rack-1"]) > 1 {
		t.Errorf("after scaling to 8: replicas per rack %v, want within maxSkew 1", perRack)
	}
	t.Logf("after scaling to 8: replicas per rack %v, per Node %v", perRack, perNode)
}

// A preferred node affinity is honoured when possible: replicas go to the preferred rack while it has
// room, the rest to the other rack, where spreading alone would have used all four agents evenly.
func TestPlacementPreferredAffinity(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 4, AgentTweak: twoRacks})
	// Every agent must be a candidate in the first cycle: a new Node carries the not-ready taint until
	// the node controller sees it Ready.
	e.waitSchedulableNodes(4)
	spec := podSpec(sleeper)
	// 1.5 cpus: two per agent (4 cpus, the executor's 0.1), four in the preferred rack.
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("1500m")
	spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
			Weight: 50,
			Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: rackLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"rack-1"},
			}}},
		}},
	}}
	e.createDeployment(deployment("pref", 5, spec))
	pods := e.waitRunningPods(selector(map[string]string{"app": "pref"}), 5, 2*time.Minute)
	perRack, perNode := e.racksOf(pods)
	if perRack["rack-1"] != 4 || perRack["rack-0"] != 1 {
		t.Errorf("replicas per rack %v, want 4 in the preferred rack-1 (its room) and 1 in rack-0", perRack)
	}
	t.Logf("replicas per rack %v, per Node %v", perRack, perNode)

	// Preferred pod affinity: a client prefers the rack with the most of those replicas, and gets it.
	most := "rack-0"
	if perRack["rack-1"] > perRack["rack-0"] {
		most = "rack-1"
	}
	client := podSpec(sleeper)
	client.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pref"}},
				TopologyKey:   rackLabel,
			},
		}},
	}}
	e.createPod("client", client)
	got := e.runningPod("client")
	if clientRack := e.nodeRack(got.Spec.NodeName); clientRack != most {
		t.Errorf("client on %s (%s), want %s where most of the pods it prefers run (%v)", got.Spec.NodeName, clientRack, most, perRack)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// racksOf counts pods per rack (their Node's kubemesos.io/attr-rack label) and per Node.
func (e *env) racksOf(pods []corev1.Pod) (perRack, perNode map[string]int) {
	e.t.Helper()
	perRack, perNode = map[string]int{}, map[string]int{}
	for _, p := range pods {
		perRack[e.nodeRack(p.Spec.NodeName)]++
		perNode[strings.TrimPrefix(p.Spec.NodeName, e.prefix+"-")]++
	}
	return perRack, perNode
}

func (e *env) nodeRack(node string) string {
	e.t.Helper()
	n, err := e.kube.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return n.Labels[rackLabel]
}
