package offerbridge

import (
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/podtranslate"
)

func TestPlace(t *testing.T) {
	withAttr := basic("o1", "a1", 4, 4096)
	withAttr.Attributes = []mesos.Attribute{{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: "r1"}}}
	tests := []struct {
		name        string
		in          Input
		wantPlaced  []string
		wantDecline []mesos.OfferID
		wantUnfit   map[string]string
	}{
		{
			name: "insufficient cpu everywhere",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 1, 4096), basic("o2", "a2", 1, 4096), basic("o3", "a3", 1, 4096)},
				Pods:   []*corev1.Pod{pod("big", 2, 128)},
			},
			wantDecline: offerIDs("o1", "o2", "o3"),
			wantUnfit:   map[string]string{"big": "0/3 agents are available: 3 Insufficient cpu."},
		},
		{
			name: "reasons counted per agent",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 4, 4096), basic("o2", "a2", 1, 4096), basic("o3", "a3", 8, 8192)},
				Nodes: map[string]*corev1.Node{
					"a1": node("n1", map[string]string{"zone": "z1"}),
					"a2": node("n2", map[string]string{"zone": "z2"}),
					"a3": node("n3", map[string]string{"zone": "z2"}, corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute}),
				},
				Pods: []*corev1.Pod{pod("p", 2, 128, nodeSelector("zone", "z2"))},
			},
			wantDecline: offerIDs("o1", "o2", "o3"),
			wantUnfit: map[string]string{"p": "0/3 agents are available: 1 Insufficient cpu, " +
				"1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: db}."},
		},
		{
			name: "many pods packed into one offer, executor paid once",
			in: Input{
				Offers:   []mesos.Offer{basic("o1", "a1", 4, 4096)},
				Executor: ExecutorCost{CPUs: 0.1, MemMB: 64},
				Pods: []*corev1.Pod{
					pod("p1", 0.5, 256), pod("p2", 0.5, 256), pod("p3", 0.5, 256), pod("p4", 0.5, 256), pod("p5", 0.5, 256),
					pod("p6", 0.5, 256), pod("p7", 0.5, 256), pod("p8", 0.5, 256), pod("p9", 0.5, 256),
				},
			},
			wantPlaced: []string{"p1@a1", "p2@a1", "p3@a1", "p4@a1", "p5@a1", "p6@a1", "p7@a1"},
			wantUnfit: map[string]string{
				"p8": "0/1 agents are available: 1 Insufficient cpu.",
				"p9": "0/1 agents are available: 1 Insufficient cpu.",
			},
		},
		{
			name: "executor already running costs nothing",
			in: Input{
				Offers:   []mesos.Offer{basic("o1", "a1", 4, 4096)},
				Executor: ExecutorCost{CPUs: 0.1, MemMB: 64, RunningOn: map[string]bool{"a1": true}},
				Pods:     []*corev1.Pod{pod("p1", 2, 256), pod("p2", 2, 256)},
			},
			wantPlaced: []string{"p1@a1", "p2@a1"},
		},
		{
			name: "executor listed in the offer costs nothing",
			in: Input{
				Offers: func() []mesos.Offer {
					o := basic("o1", "a1", 4, 4096)
					o.ExecutorIDs = []mesos.ExecutorID{{Value: "kubemesos-executor"}}
					return []mesos.Offer{o}
				}(),
				Executor: ExecutorCost{CPUs: 0.1, MemMB: 64, ID: "kubemesos-executor"},
				Pods:     []*corev1.Pod{pod("p1", 2, 256), pod("p2", 2, 256)},
			},
			wantPlaced: []string{"p1@a1", "p2@a1"},
		},
		{
			name: "spread puts one pod per agent",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 4, 4096), basic("o2", "a2", 4, 4096), basic("o3", "a3", 4, 4096)},
				Pods:   []*corev1.Pod{pod("p1", 1, 256), pod("p2", 1, 256), pod("p3", 1, 256)},
				Seed:   7,
			},
			// Equal agents: the seeded order picks a3 first; each later pod goes to a less allocated agent.
			wantPlaced: []string{"p2@a1", "p3@a2", "p1@a3"},
		},
		{
			name: "spread prefers the emptier agent",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 2, 2048), basic("o2", "a2", 8, 8192)},
				Pods:   []*corev1.Pod{pod("p1", 1, 256), pod("p2", 1, 256)},
			},
			wantPlaced:  []string{"p1@a2", "p2@a2"},
			wantDecline: offerIDs("o1"),
		},
		{
			name: "binpack fills the fullest agent that fits",
			in: Input{
				Offers:   []mesos.Offer{basic("o1", "a1", 2, 2048), basic("o2", "a2", 8, 8192)},
				Pods:     []*corev1.Pod{pod("p1", 1, 256), pod("p2", 1, 256), pod("p3", 1, 256)},
				Strategy: BinPack,
			},
			wantPlaced: []string{"p1@a1", "p2@a1", "p3@a2"},
		},
		{
			name: "GPU agents kept for GPU pods",
			in: Input{
				Offers: []mesos.Offer{
					offer("o1", "a1", "kubemesos", res{name: "cpus", value: 32}, res{name: "mem", value: 65536}, res{name: "gpus", value: 2}),
					basic("o2", "a2", 2, 2048),
				},
				Pods: []*corev1.Pod{pod("cpu-1", 1, 256), gpuPod("train", 1, 256, 1), pod("cpu-2", 1, 256), pod("cpu-3", 1, 256)},
			},
			// cpu-3 fits only on the GPU agent now: it goes there rather than nowhere.
			wantPlaced: []string{"train@a1", "cpu-3@a1", "cpu-1@a2", "cpu-2@a2"},
		},
		{
			name: "agents scheduled for maintenance used last",
			in: Input{
				Offers: func() []mesos.Offer {
					o := basic("o1", "a1", 32, 65536)
					o.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: 1}}
					return []mesos.Offer{o, basic("o2", "a2", 2, 2048)}
				}(),
				Pods: []*corev1.Pod{pod("p1", 1, 256), pod("p2", 1, 256), pod("p3", 1, 256)},
			},
			wantPlaced: []string{"p3@a1", "p1@a2", "p2@a2"},
		},
		{
			name: "preset node name",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 4, 4096), basic("o2", "a2", 4, 4096)},
				Pods:   []*corev1.Pod{pod("p", 1, 256, nodeNamed("a2.example")), pod("q", 1, 256, nodeNamed("gone"))},
			},
			wantPlaced:  []string{"p@a2"},
			wantDecline: offerIDs("o1"),
			wantUnfit:   map[string]string{"q": "0/2 agents are available: 2 node(s) didn't match the requested node name."},
		},
		{
			name: "agent without a Node matches on offer labels",
			in: Input{
				Offers: []mesos.Offer{withAttr, basic("o2", "a2", 4, 4096)},
				Pods:   []*corev1.Pod{pod("p", 1, 256, nodeSelector(LabelAttrPrefix+"rack", "r1", LabelAgentID, "a1"))},
			},
			wantPlaced:  []string{"p@a1"},
			wantDecline: offerIDs("o2"),
		},
		{
			name: "identical requests, different constraints",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 4, 4096)},
				Nodes: map[string]*corev1.Node{"a1": node("n1", map[string]string{"zone": "z1"},
					corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule})},
				Pods: []*corev1.Pod{
					pod("plain", 1, 256),
					pod("elsewhere", 1, 256, nodeSelector("zone", "z2"), tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists})),
					pod("affine-elsewhere", 1, 256, tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists}),
						requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z2"}}}})),
					pod("affine-here", 1, 256, tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists}),
						requiredAffinity(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}}})),
					pod("plain-again", 1, 256),
					pod("here", 1, 256, tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists})),
				},
			},
			wantPlaced: []string{"affine-here@a1", "here@a1"},
			wantUnfit: map[string]string{
				"plain":            "0/1 agents are available: 1 node(s) had untolerated taint {dedicated: db}.",
				"plain-again":      "0/1 agents are available: 1 node(s) had untolerated taint {dedicated: db}.",
				"elsewhere":        "0/1 agents are available: 1 node(s) didn't match Pod's node affinity/selector.",
				"affine-elsewhere": "0/1 agents are available: 1 node(s) didn't match Pod's node affinity/selector.",
			},
		},
		{
			name: "cordoned node",
			in: Input{
				Offers: []mesos.Offer{basic("o1", "a1", 4, 4096)},
				Nodes:  map[string]*corev1.Node{"a1": {Spec: corev1.NodeSpec{Unschedulable: true}}},
				Pods:   []*corev1.Pod{pod("p", 1, 256)},
			},
			wantDecline: offerIDs("o1"),
			wantUnfit:   map[string]string{"p": "0/1 agents are available: 1 node(s) were unschedulable."},
		},
		{
			name: "no offers",
			in:   Input{Pods: []*corev1.Pod{pod("p", 1, 256)}},
			wantUnfit: map[string]string{
				"p": "0/0 agents are available: no offers held.",
			},
		},
		{
			name:        "no pods declines everything",
			in:          Input{Offers: []mesos.Offer{basic("o1", "a1", 4, 4096), basic("o2", "a1", 4, 4096)}},
			wantDecline: offerIDs("o1", "o2"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Place(tt.in)
			if diff := cmp.Diff(tt.wantPlaced, placed(plan)); diff != "" {
				t.Errorf("placed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDecline, plan.Decline); diff != "" {
				t.Errorf("declined (-want +got):\n%s", diff)
			}
			want := tt.wantUnfit
			if want == nil {
				want = map[string]string{}
			}
			if diff := cmp.Diff(want, unfitNames(plan)); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
			checkPlan(t, tt.in, plan)
		})
	}
}

// TestPlaceWholeBatchInOneCycle is mesosphere/kubernetes-mesos#624: one pod per offer and one offer
// cycle per pod made a rolling update crawl. A batch of replicas lands in one cycle, one ACCEPT per agent.
func TestPlaceWholeBatchInOneCycle(t *testing.T) {
	in := Input{
		Offers:   []mesos.Offer{basic("o1", "a1", 8, 16384), basic("o2", "a2", 8, 16384), basic("o3", "a3", 8, 16384)},
		Executor: ExecutorCost{CPUs: 0.1, MemMB: 64},
	}
	for i := range 20 {
		in.Pods = append(in.Pods, pod(fmt.Sprintf("web-%02d", i), 1, 512))
	}
	plan := Place(in)
	checkPlan(t, in, plan)
	var perAgent []int
	for _, l := range plan.Launches {
		perAgent = append(perAgent, len(l.Pods))
	}
	sort.Ints(perAgent)
	// Spread: 20 pods over 3 equal agents, the executor on each.
	if diff := cmp.Diff([]int{6, 7, 7}, perAgent); diff != "" {
		t.Errorf("pods per agent (-want +got):\n%s", diff)
	}
	if len(plan.Launches) != 3 || len(plan.Unschedulable) != 0 {
		t.Errorf("want 3 launches and every pod placed, got %d launches, %d unschedulable", len(plan.Launches), len(plan.Unschedulable))
	}
}

// TestPlaceReasonsFollowPlacements: an unschedulable pod's reasons describe the offers as left by the
// pods placed before it, not as they were when an identical pod was found unschedulable.
func TestPlaceReasonsFollowPlacements(t *testing.T) {
	in := Input{
		Offers: []mesos.Offer{basic("o1", "a1", 2, 4096)},
		Pods: []*corev1.Pod{
			pod("big-1", 3, 128, hostPort(31080)),
			pod("small", 0.5, 128, hostPort(31080)),
			pod("big-2", 3, 128, hostPort(31080)),
		},
	}
	plan := Place(in)
	checkPlan(t, in, plan)
	want := map[string]string{
		"big-1": "0/1 agents are available: 1 Insufficient cpu.",
		"big-2": "0/1 agents are available: 1 " + ReasonHostPorts + " (port 31080).",
	}
	if diff := cmp.Diff(want, unfitNames(plan)); diff != "" {
		t.Errorf("unschedulable (-want +got):\n%s", diff)
	}
}

func TestFeasibleToFind(t *testing.T) {
	tests := []struct {
		agents, percentage, want int
	}{
		{0, 0, 0},
		{50, 0, 50},
		{99, 10, 99},
		{100, 0, 100},
		{1000, 0, 420},
		{5000, 0, 500},
		{100000, 0, 5000},
		{5000, 10, 500},
		{5000, 1, 100},
		{5000, 100, 5000},
	}
	for _, tt := range tests {
		if got := feasibleToFind(tt.agents, tt.percentage); got != tt.want {
			t.Errorf("feasibleToFind(%d, %d) = %d, want %d", tt.agents, tt.percentage, got, tt.want)
		}
	}
}

func TestPlaceReasonsAreCounts(t *testing.T) {
	plan := Place(Input{
		Offers: []mesos.Offer{basic("o1", "a1", 1, 100), basic("o2", "a2", 1, 4096), basic("o3", "a3", 8, 8192)},
		Nodes:  map[string]*corev1.Node{"a3": node("n3", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule})},
		Pods:   []*corev1.Pod{pod("p", 2, 1024)},
	})
	want := []Unfit{{
		Pod:     plan.Unschedulable[0].Pod,
		Message: "0/3 agents are available: 1 Insufficient memory, 1 node(s) had untolerated taint {k: }, 2 Insufficient cpu.",
		Reasons: map[string]int{ReasonInsufficientCPU: 2, ReasonInsufficientMemory: 1, "node(s) had untolerated taint {k: }": 1},
		Waits:   AgentsWaitedFor{Offered: []string{"a1", "a3", "a2"}}, // in rank order
	}}
	if diff := cmp.Diff(want, plan.Unschedulable); diff != "" {
		t.Errorf("unschedulable (-want +got):\n%s", diff)
	}
}

func TestPlaceSamePodTwice(t *testing.T) {
	p := pod("p", 1, 128)
	again := p.DeepCopy()
	plan := Place(Input{Offers: []mesos.Offer{basic("o1", "a1", 4, 4096)}, Pods: []*corev1.Pod{p, again}})
	if diff := cmp.Diff([]string{"p@a1"}, placed(plan)); diff != "" {
		t.Errorf("placed (-want +got):\n%s", diff)
	}
	if len(plan.Unschedulable) != 0 {
		t.Errorf("unschedulable: %v", unfitNames(plan))
	}
}

func TestPlaceUnsupportedPod(t *testing.T) {
	hostPID := pod("pid", 1, 128)
	hostPID.Spec.HostPID = true
	in := Input{Offers: []mesos.Offer{basic("o1", "a1", 4, 4096), basic("o2", "a2", 4, 4096)}, Pods: []*corev1.Pod{hostPID, pod("ok", 1, 128)}}
	plan := Place(in)
	checkPlan(t, in, plan)
	want := []Unfit{{
		Pod:          hostPID,
		Message:      "0/2 agents are available: unsupported: spec.hostPID: " + podtranslate.ReasonHostPID + ".",
		Reasons:      map[string]int{"spec.hostPID: " + podtranslate.ReasonHostPID: 2},
		Unresolvable: true,
	}}
	if diff := cmp.Diff(want, plan.Unschedulable); diff != "" {
		t.Errorf("unschedulable (-want +got):\n%s", diff)
	}
	if got := len(placed(plan)); got != 1 {
		t.Errorf("the supported pod must still be placed, placed %v", placed(plan))
	}
}

func TestPlaceHostPorts(t *testing.T) {
	t.Run("same port twice on one agent", func(t *testing.T) {
		in := Input{
			Offers: []mesos.Offer{basic("o1", "a1", 4, 4096)},
			Pods:   []*corev1.Pod{pod("p1", 1, 256, hostPort(31080)), pod("p2", 1, 256, hostPort(31080))},
		}
		plan := Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff([]string{"p1@a1"}, placed(plan)); diff != "" {
			t.Errorf("placed (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]string{"p2": "0/1 agents are available: 1 " + ReasonHostPorts + " (port 31080)."}, unfitNames(plan)); diff != "" {
			t.Errorf("unschedulable (-want +got):\n%s", diff)
		}
		got, _ := portsOf(plan.Launches[0].Pods[0].Resources)
		if diff := cmp.Diff(mesos.Ranges{{Begin: 31080, End: 31080}}, got); diff != "" {
			t.Errorf("carved ports (-want +got):\n%s", diff)
		}
	})
	t.Run("same port on two agents", func(t *testing.T) {
		in := Input{
			Offers: []mesos.Offer{basic("o1", "a1", 4, 4096), basic("o2", "a2", 4, 4096)},
			Pods:   []*corev1.Pod{pod("p1", 1, 256, hostPort(31080)), pod("p2", 1, 256, hostPort(31080))},
			// BinPack would prefer one agent; the port forces the second pod elsewhere.
			Strategy: BinPack,
		}
		plan := Place(in)
		checkPlan(t, in, plan)
		if len(plan.Unschedulable) != 0 || len(plan.Launches) != 2 {
			t.Fatalf("want both pods placed on two agents, got %v, unschedulable %v", placed(plan), unfitNames(plan))
		}
	})
	t.Run("several ports of one pod from several ranges", func(t *testing.T) {
		o := offer("o1", "a1", "kubemesos", res{name: "cpus", value: 4}, res{name: "mem", value: 4096},
			res{name: "ports", ports: [][2]uint64{{80, 80}, {443, 443}}},
			res{name: "ports", ports: [][2]uint64{{8080, 8081}}, reservedFor: "kubemesos"})
		in := Input{Offers: []mesos.Offer{o}, Pods: []*corev1.Pod{pod("web", 1, 256, hostPort(80, 443, 8080, 8081))}}
		plan := Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff([]string{"web@a1"}, placed(plan)); diff != "" {
			t.Fatalf("placed (-want +got):\n%s", diff)
		}
		var got []string
		for _, r := range plan.Launches[0].Pods[0].Resources {
			if r.Name == "ports" {
				got = append(got, mesos.Resources{r}.Format())
			}
		}
		want := []string{
			"ports(reservations: [(STATIC,kubemesos)]):[8080-8081]",
			"ports:[80,443]",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("port resources (-want +got):\n%s", diff)
		}
	})
	t.Run("port not offered", func(t *testing.T) {
		in := Input{Offers: []mesos.Offer{basic("o1", "a1", 4, 4096)}, Pods: []*corev1.Pod{pod("p", 1, 256, hostPort(80))}}
		plan := Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff(map[string]string{"p": "0/1 agents are available: 1 " + ReasonHostPorts + " (port 80)."}, unfitNames(plan)); diff != "" {
			t.Errorf("unschedulable (-want +got):\n%s", diff)
		}
	})
	t.Run("the message names the ports each agent lacks", func(t *testing.T) {
		o1 := offer("o1", "a1", "kubemesos", res{name: "cpus", value: 4}, res{name: "mem", value: 4096},
			res{name: "ports", ports: [][2]uint64{{80, 80}}})
		o2 := offer("o2", "a2", "kubemesos", res{name: "cpus", value: 4}, res{name: "mem", value: 4096},
			res{name: "ports", ports: [][2]uint64{{443, 443}}})
		o3 := offer("o3", "a3", "kubemesos", res{name: "cpus", value: 4}, res{name: "mem", value: 4096})
		in := Input{Offers: []mesos.Offer{o1, o2, o3}, Pods: []*corev1.Pod{pod("web", 1, 256, hostPort(80, 443))}}
		plan := Place(in)
		checkPlan(t, in, plan)
		want := "0/3 agents are available: 1 " + ReasonHostPorts + " (port 443), 1 " + ReasonHostPorts +
			" (port 80), 1 " + ReasonHostPorts + " (ports 80, 443)."
		if diff := cmp.Diff(map[string]string{"web": want}, unfitNames(plan)); diff != "" {
			t.Errorf("unschedulable (-want +got):\n%s", diff)
		}
	})
	t.Run("host mode: two pods with one containerPort never share an agent", func(t *testing.T) {
		listen := func(p *corev1.Pod) { p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}} }
		pods := []*corev1.Pod{pod("p1", 1, 256, listen), pod("p2", 1, 256, listen)}
		offers := func() []mesos.Offer {
			return []mesos.Offer{offer("o1", "a1", "kubemesos", res{name: "cpus", value: 4}, res{name: "mem", value: 4096},
				res{name: "ports", ports: [][2]uint64{{8000, 9000}}})}
		}
		in := Input{Offers: offers(), Pods: pods}
		plan := Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff(map[string]string{"p2": "0/1 agents are available: 1 " + ReasonHostPorts + " (port 8080)."}, unfitNames(plan)); diff != "" {
			t.Errorf("host mode, unschedulable (-want +got):\n%s", diff)
		}
		// On a CNI pod network each pod has its own port space: both fit, no ports carved.
		in = Input{Offers: offers(), Pods: pods, Translate: podtranslate.Options{PodNetwork: "kubemesos"}}
		plan = Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff([]string{"p1@a1", "p2@a1"}, placed(plan)); diff != "" {
			t.Errorf("pod network, placed (-want +got):\n%s", diff)
		}
		for _, pp := range plan.Launches[0].Pods {
			if got, _ := portsOf(pp.Resources); len(got) != 0 {
				t.Errorf("pod network: pod %s carved ports %v", pp.Pod.Name, got)
			}
		}
	})
}

func TestPlaceRoles(t *testing.T) {
	t.Run("reserved before unreserved, allocation kept", func(t *testing.T) {
		o := offer("o1", "a1", "kubemesos",
			res{name: "cpus", value: 2},
			res{name: "cpus", value: 1, reservedFor: "kubemesos"},
			res{name: "mem", value: 4096})
		in := Input{Offers: []mesos.Offer{o}, Pods: []*corev1.Pod{pod("p", 1.5, 512)}}
		plan := Place(in)
		checkPlan(t, in, plan)
		if len(plan.Launches) != 1 {
			t.Fatalf("want one launch, got %+v", plan)
		}
		var got []string
		for _, r := range plan.Launches[0].Pods[0].Resources {
			got = append(got, mesos.Resources{r}.Format(func(o *mesos.ResourcesFormatOptions) { o.ShowAllocated = true }))
		}
		want := []string{
			"cpus(allocated: kubemesos)(reservations: [(STATIC,kubemesos)]):1",
			"cpus(allocated: kubemesos):0.5",
			"mem(allocated: kubemesos):512",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("resources (-want +got):\n%s", diff)
		}
	})
	twoRoles := []mesos.Offer{
		offer("o-r2", "a1", "r2", res{name: "cpus", value: 2}, res{name: "mem", value: 2048}),
		offer("o-r1", "a1", "r1", res{name: "cpus", value: 1}, res{name: "mem", value: 1024}),
	}
	t.Run("one launch per role; executor pins the agent to its role", func(t *testing.T) {
		in := Input{
			Offers:   twoRoles,
			Executor: ExecutorCost{CPUs: 0.1, MemMB: 32},
			Pods:     []*corev1.Pod{pod("small", 0.5, 128), pod("large", 1.5, 128)},
		}
		plan := Place(in)
		checkPlan(t, in, plan)
		// small goes to r1 (first role that fits) with the executor; large would fit r2, but a second
		// ACCEPT could reach the master before the one that launches the executor.
		if diff := cmp.Diff([]string{"small@a1"}, placed(plan)); diff != "" {
			t.Errorf("placed (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff("r1", plan.Launches[0].Role); diff != "" {
			t.Errorf("role (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(offerIDs("o-r2"), plan.Decline); diff != "" {
			t.Errorf("declined (-want +got):\n%s", diff)
		}
		if plan.Launches[0].Executor == nil {
			t.Errorf("launch must carry the executor's resources")
		}
	})
	t.Run("executor running: roles used side by side", func(t *testing.T) {
		in := Input{
			Offers:   twoRoles,
			Executor: ExecutorCost{CPUs: 0.1, MemMB: 32, RunningOn: map[string]bool{"a1": true}},
			Pods:     []*corev1.Pod{pod("small", 0.5, 128), pod("large", 1.5, 128)},
		}
		plan := Place(in)
		checkPlan(t, in, plan)
		var got [][]string
		for _, l := range plan.Launches {
			var ids []string
			for _, id := range l.OfferIDs {
				ids = append(ids, id.Value)
			}
			got = append(got, append([]string{l.Role, l.Pods[0].Pod.Name}, ids...))
			if l.Executor != nil {
				t.Errorf("launch %s carries executor resources though the executor runs", l.Role)
			}
		}
		if diff := cmp.Diff([][]string{{"r1", "small", "o-r1"}, {"r2", "large", "o-r2"}}, got); diff != "" {
			t.Errorf("launches (-want +got):\n%s", diff)
		}
	})
	t.Run("framework without MULTI_ROLE: no allocation info", func(t *testing.T) {
		o := offer("o1", "a1", "", res{name: "cpus", value: 2}, res{name: "mem", value: 1024})
		in := Input{Offers: []mesos.Offer{o}, Pods: []*corev1.Pod{pod("p", 1, 128)}}
		plan := Place(in)
		checkPlan(t, in, plan)
		if len(plan.Launches) != 1 || plan.Launches[0].Role != "" {
			t.Fatalf("want one launch without role, got %+v", plan.Launches)
		}
		if got := plan.Launches[0].Pods[0].Resources.Format(); got != "cpus:1;mem:128" {
			t.Errorf("resources = %s, want cpus:1;mem:128", got)
		}
	})
	t.Run("offers of one agent and role merged", func(t *testing.T) {
		in := Input{
			Offers: []mesos.Offer{basic("o1", "a1", 1, 1024), basic("o2", "a1", 1, 1024)},
			Pods:   []*corev1.Pod{pod("p", 1.5, 1536)},
		}
		plan := Place(in)
		checkPlan(t, in, plan)
		if len(plan.Launches) != 1 {
			t.Fatalf("want one launch, got %+v", plan)
		}
		if diff := cmp.Diff(offerIDs("o1", "o2"), plan.Launches[0].OfferIDs); diff != "" {
			t.Errorf("offer IDs (-want +got):\n%s", diff)
		}
	})
	t.Run("revocable, shared and volume resources are not used", func(t *testing.T) {
		o := basic("o1", "a1", 0.5, 4096)
		rev := res{name: "cpus", value: 8, alloc: "kubemesos"}.mesos()
		rev.Revocable = &mesos.Resource_RevocableInfo{}
		vol := res{name: "disk", value: 100000, alloc: "kubemesos", reservedFor: "kubemesos"}.mesos()
		vol.Disk = &mesos.Resource_DiskInfo{Persistence: &mesos.Resource_DiskInfo_Persistence{ID: "v1"}}
		o.Resources = append(o.Resources, rev, vol)
		in := Input{Offers: []mesos.Offer{o}, Pods: []*corev1.Pod{pod("p", 1, 128)}}
		plan := Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff(map[string]string{"p": "0/1 agents are available: 1 Insufficient cpu."}, unfitNames(plan)); diff != "" {
			t.Errorf("unschedulable (-want +got):\n%s", diff)
		}
	})
}

func TestPlaceIsDeterministic(t *testing.T) {
	in := randomInput(42, 30, 60)
	a, b := Place(in), Place(in)
	if diff := cmp.Diff(summary(a), summary(b)); diff != "" {
		t.Errorf("same input, different plans (-first +second):\n%s", diff)
	}
}

func TestParseStrategy(t *testing.T) {
	for _, s := range []Strategy{Spread, BinPack} {
		got, err := ParseStrategy(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStrategy(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseStrategy("random"); err == nil {
		t.Errorf("ParseStrategy(random) must fail")
	}
}

func portsOf(rs mesos.Resources) (mesos.Ranges, bool) {
	var out mesos.Ranges
	found := false
	for _, r := range rs {
		if r.Name == "ports" {
			out = append(out, r.GetRanges().GetRange()...)
			found = true
		}
	}
	return out.Sort(), found
}

// A pod on a CNI pod network is two tasks: its resources go to its sandbox task, the sandbox executor
// and the pod task's token come on top, and the fit check counts all three.
func TestPlaceSandboxedPod(t *testing.T) {
	network := podtranslate.Options{PodNetwork: "kubemesos"}
	running := ExecutorCost{ID: "kubemesos-executor", CPUs: 0.1, MemMB: 64, RunningOn: map[string]bool{"a1": true}}
	offerOf := func(cpus, mem float64) []mesos.Offer {
		return []mesos.Offer{offer("o1", "a1", "kubemesos", res{name: "cpus", value: cpus}, res{name: "mem", value: mem},
			res{name: "ports", ports: [][2]uint64{{31000, 31100}}})}
	}
	t.Run("carved apart", func(t *testing.T) {
		in := Input{Offers: offerOf(1.02, 288), Pods: []*corev1.Pod{pod("web", 1, 256, hostPort(31080))}, Translate: network, Executor: running}
		plan := Place(in)
		checkPlan(t, in, plan)
		if diff := cmp.Diff([]string{"web@a1"}, placed(plan)); diff != "" {
			t.Fatalf("placed (-want +got):\n%s (unfit %v)", diff, unfitNames(plan))
		}
		pp := plan.Launches[0].Pods[0]
		if pp.Sandbox == nil {
			t.Fatal("no sandbox placement")
		}
		got := map[string]string{
			"pod task":         pp.Resources.Format(),
			"sandbox executor": pp.Sandbox.Executor.Format(),
			"sandbox task":     pp.Sandbox.Task.Format(),
		}
		want := map[string]string{
			"pod task":         "cpus:0.01",
			"sandbox executor": "cpus:0.01;mem:32",
			"sandbox task":     "cpus:1;mem:256;ports:[31080]",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("carved (-want +got):\n%s", diff)
		}
	})
	for _, tc := range []struct {
		name      string
		cpus, mem float64
		want      string
	}{
		{"the token's cpu missing", 1.01, 288, ReasonInsufficientCPU},
		{"the sandbox executor's memory missing", 1.02, 287, ReasonInsufficientMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Offers: offerOf(tc.cpus, tc.mem), Pods: []*corev1.Pod{pod("web", 1, 256)}, Translate: network, Executor: running}
			plan := Place(in)
			checkPlan(t, in, plan)
			if diff := cmp.Diff(map[string]string{"web": "0/1 agents are available: 1 " + tc.want + "."}, unfitNames(plan)); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
			// The same pod on the agent's network needs only its own resources.
			in.Pods[0].Spec.HostNetwork = true
			plan = Place(in)
			checkPlan(t, in, plan)
			if len(plan.Launches) != 1 || plan.Launches[0].Pods[0].Sandbox != nil {
				t.Errorf("hostNetwork pod: placed %v, unfit %v", placed(plan), unfitNames(plan))
			}
		})
	}
	t.Run("with the kubelet executor on a new agent", func(t *testing.T) {
		exec := ExecutorCost{ID: "kubemesos-executor", CPUs: 0.1, MemMB: 64}
		in := Input{Offers: offerOf(1.12, 352), Pods: []*corev1.Pod{pod("web", 1, 256)}, Translate: network, Executor: exec}
		plan := Place(in)
		checkPlan(t, in, plan)
		if len(plan.Launches) != 1 || plan.Launches[0].Executor.Format() != "cpus:0.1;mem:64" {
			t.Fatalf("placed %v, unfit %v", summary(plan), unfitNames(plan))
		}
		in.Offers = offerOf(1.119, 352)
		if diff := cmp.Diff(map[string]string{"web": "0/1 agents are available: 1 " + ReasonInsufficientCPU + "."}, unfitNames(Place(in))); diff != "" {
			t.Errorf("unschedulable (-want +got):\n%s", diff)
		}
	})
}

// Returning room (Input.Returning) is ranked with the offers in hand: a pod whose best agent is a
// returning one waits for it instead of taking a worse agent in hand, and its room there is taken
// for the pods after it.
func TestPlaceReturning(t *testing.T) {
	rack := func(o mesos.Offer, r string) mesos.Offer {
		o.Attributes = []mesos.Attribute{{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: r}}}
		return o
	}
	preferRack := func(r string) podOpt {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 50,
					Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: LabelAttrPrefix + "rack", Operator: corev1.NodeSelectorOpIn, Values: []string{r}}}}}},
			}}
		}
	}
	inMaintenance := basic("o1", "a1", 4, 4096)
	inMaintenance.Unavailability = &mesos.Unavailability{Start: mesos.TimeInfo{Nanoseconds: 1}}
	tests := []struct {
		name        string
		in          Input
		wantPlaced  []string
		wantWaiting []string
		wantDecline []mesos.OfferID
		wantUnfit   map[string]string
	}{
		{
			name: "spread: a pod waits for the least allocated agent, ties go to the offer in hand",
			in: Input{
				Offers:    []mesos.Offer{basic("o1", "a1", 4, 4096)},
				Returning: []mesos.Offer{basic("r2", "a2", 4, 4096)},
				Pods:      []*corev1.Pod{pod("p1", 1, 128), pod("p2", 1, 128), pod("p3", 1, 128)},
			},
			wantPlaced:  []string{"p1@a1", "p3@a1"},
			wantWaiting: []string{"p2"},
		},
		{
			name: "preferred node affinity waits for the preferred rack's returning room",
			in: Input{
				Offers:    []mesos.Offer{rack(basic("o1", "a1", 4, 4096), "r0")},
				Returning: []mesos.Offer{rack(basic("r2", "a2", 2, 4096), "r1")},
				Pods: []*corev1.Pod{pod("p1", 1.5, 128, preferRack("r1")), pod("p2", 1.5, 128, preferRack("r1")),
					pod("p3", 1.5, 128, preferRack("r1"))},
			},
			// a2's 2 cpus take one of them; the others go where there is room.
			wantPlaced:  []string{"p2@a1", "p3@a1"},
			wantWaiting: []string{"p1"},
		},
		{
			name: "an agent scheduled for maintenance is not taken while another's room returns",
			in: Input{
				Offers:    []mesos.Offer{inMaintenance},
				Returning: []mesos.Offer{basic("r2", "a2", 1, 4096)},
				Pods:      []*corev1.Pod{pod("p1", 0.5, 128), pod("p2", 0.5, 128), pod("p3", 0.5, 128)},
			},
			wantPlaced:  []string{"p3@a1"},
			wantWaiting: []string{"p1", "p2"},
			wantDecline: nil,
		},
		{
			name: "binpack waits for the fuller agent",
			in: Input{
				Strategy:  BinPack,
				Offers:    []mesos.Offer{basic("o1", "a1", 4, 4096)},
				Returning: []mesos.Offer{basic("r2", "a2", 2, 4096)},
				Pods:      []*corev1.Pod{pod("p1", 1, 128), pod("p2", 1, 128), pod("p3", 1, 128)},
			},
			wantPlaced:  []string{"p3@a1"},
			wantWaiting: []string{"p1", "p2"},
		},
		{
			name: "an offer in hand of the same agent and role replaces its returning room",
			in: Input{
				Offers:    []mesos.Offer{basic("o1", "a1", 1, 4096)},
				Returning: []mesos.Offer{basic("r1", "a1", 8, 8192)},
				Pods:      []*corev1.Pod{pod("p1", 2, 128)},
			},
			wantDecline: offerIDs("o1"),
			wantUnfit:   map[string]string{"p1": "0/1 agents are available: 1 Insufficient cpu."},
		},
		{
			name: "returning agents count in the reasons; nothing returning is declined",
			in: Input{
				Offers:    []mesos.Offer{basic("o1", "a1", 1, 4096)},
				Returning: []mesos.Offer{basic("r2", "a2", 1, 4096), basic("r3", "a3", 1, 4096)},
				Pods:      []*corev1.Pod{pod("big", 2, 128)},
			},
			wantDecline: offerIDs("o1"),
			wantUnfit:   map[string]string{"big": "0/3 agents are available: 3 Insufficient cpu."},
		},
		{
			name: "an unused offer is declined when every pod waits",
			in: Input{
				Offers:    []mesos.Offer{basic("o1", "a1", 1, 1024)},
				Returning: []mesos.Offer{basic("r2", "a2", 4, 4096)},
				Pods:      []*corev1.Pod{pod("p1", 0.5, 128)},
			},
			wantWaiting: []string{"p1"},
			wantDecline: offerIDs("o1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := Place(tt.in)
			if diff := cmp.Diff(tt.wantPlaced, placed(plan)); diff != "" {
				t.Errorf("placed (-want +got):\n%s", diff)
			}
			var waiting []string
			for _, p := range plan.Waiting {
				waiting = append(waiting, p.Name)
			}
			if diff := cmp.Diff(tt.wantWaiting, waiting); diff != "" {
				t.Errorf("waiting (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantDecline, plan.Decline); diff != "" {
				t.Errorf("declined (-want +got):\n%s", diff)
			}
			want := tt.wantUnfit
			if want == nil {
				want = map[string]string{}
			}
			if diff := cmp.Diff(want, unfitNames(plan)); diff != "" {
				t.Errorf("unschedulable (-want +got):\n%s", diff)
			}
			checkPlan(t, tt.in, plan)
		})
	}
}

// An unschedulable pod names the agents whose offers may still place it: without an offer in hand and
// with a Node that would take it (Idle), and those whose offers refused it (Offered), while at most
// MaxAgentsListed of each.
func TestUnfitNamesTheAgentsItWaitsFor(t *testing.T) {
	nodes := map[string]*corev1.Node{}
	for i := range MaxAgentsListed + 3 { // 2 with offers, one idle agent more than listed
		id := fmt.Sprintf("a%02d", i)
		nodes[id] = node("h-"+id, map[string]string{LabelHostname: "h-" + id})
	}
	offers := []mesos.Offer{basic("o0", "a00", 0.05, 100), basic("o1", "a01", 0.05, 100)}
	pinned := pod("pinned", 1, 128, nodeSelector(LabelHostname, "h-a05"))
	any := pod("any", 1, 128)
	plan := Place(Input{Offers: offers, Nodes: nodes, Pods: []*corev1.Pod{pinned, any}})
	if len(plan.Unschedulable) != 2 {
		t.Fatalf("unschedulable %v, want both pods", plan.Unschedulable)
	}
	got := map[string]AgentsWaitedFor{}
	for _, u := range plan.Unschedulable {
		got[u.Pod.Name] = u.Waits
	}
	if w := got["pinned"]; !slices.Equal(w.Idle, []string{"a05"}) || w.IdleMore || len(w.Offered) != 2 || w.OfferedMore {
		t.Errorf("pinned waits for %+v, want idle [a05] and the 2 offered agents", w)
	}
	if w := got["any"]; w.Idle != nil || !w.IdleMore || len(w.Offered) != 2 || w.OfferedMore {
		t.Errorf("any waits for %+v, want more idle agents than listed and the 2 offered agents", w)
	}
	for _, c := range []struct {
		pod, agent string
		want       bool
	}{{"pinned", "a05", true}, {"pinned", "a06", false}, {"pinned", "a00", false}, {"any", "a06", true}, {"any", "a00", false}} {
		w := got[c.pod]
		if w.MayPlace(c.agent) != c.want {
			t.Errorf("%s: MayPlace(%s) = %v, want %v", c.pod, c.agent, !c.want, c.want)
		}
	}
}
