package offerbridge

import (
	"fmt"
	"slices"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/podtranslate"
)

func prio(p int32) podOpt { return func(pod *corev1.Pod) { pod.Spec.Priority = &p } }

func started(minute int) podOpt {
	return func(pod *corev1.Pod) {
		pod.Status.StartTime = &metav1.Time{Time: time.Date(2026, 1, 1, 0, minute, 0, 0, time.UTC)}
	}
}

func terminatingByScheduler(pod *corev1.Pod) {
	pod.DeletionTimestamp = &metav1.Time{Time: time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: corev1.PodReasonPreemptionByScheduler,
	})
}

// full is an agent whose Node is name, with free cpus left besides the given pods bound.
func full(name string, freeCPUs float64, pods ...*corev1.Pod) PreemptAgent {
	alloc := podtranslate.Demand{CPUs: freeCPUs, MemMB: 4096, DiskMB: 1000}
	for _, p := range pods {
		p.Spec.NodeName = name
		d, err := podtranslate.PodDemand(p, podtranslate.Options{})
		if err != nil {
			panic(err)
		}
		alloc.CPUs += d.CPUs
		alloc.MemMB += d.MemMB
	}
	return PreemptAgent{AgentID: "id-" + name, Node: node(name, nil), Allocatable: alloc, Pods: pods}
}

func names(ps []*corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func pdb(ns string, allowed int32, kv ...string) *policyv1.PodDisruptionBudget {
	sel := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		sel[kv[i]] = kv[i+1]
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pdb"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: sel}},
		Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
	}
}

func TestPreempt(t *testing.T) {
	never := corev1.PreemptNever
	tests := []struct {
		name        string
		pods        []*corev1.Pod
		agents      []PreemptAgent
		pdbs        []*policyv1.PodDisruptionBudget
		want        map[string]string   // preemptor → agent ID
		wantVictims map[string][]string // preemptor → victims, most important first
		wantPDB     map[string]int
		wantMsg     map[string]string // preemptor → PostFilter message
	}{
		{
			name: "fewest victims: one 2-cpu pod rather than two 1-cpu pods",
			pods: []*corev1.Pod{pod("hi", 2, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("a1", 1, 100, prio(1)), pod("a2", 1, 100, prio(1)), pod("a3", 1, 100, prio(1)), pod("a4", 1, 100, prio(1))),
				full("b", 0, pod("b1", 2, 100, prio(1)), pod("b2", 2, 100, prio(1))),
			},
			want:        map[string]string{"hi": "id-b"},
			wantVictims: map[string][]string{"hi": {"b2"}}, // equal: the first listed is reprieved first
		},
		{
			name: "free cpus count: one victim where half is already free",
			pods: []*corev1.Pod{pod("hi", 2, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 1, pod("a1", 1, 100, prio(1)), pod("a2", 1, 100, prio(1))),
				full("b", 0, pod("b1", 1, 100, prio(1)), pod("b2", 1, 100, prio(1))),
			},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"a2"}},
		},
		{
			name: "lowest highest-priority victim wins over fewer victims",
			pods: []*corev1.Pod{pod("hi", 2, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("a1", 2, 100, prio(50))),
				full("b", 0, pod("b1", 1, 100, prio(1)), pod("b2", 1, 100, prio(1))),
			},
			want:        map[string]string{"hi": "id-b"},
			wantVictims: map[string][]string{"hi": {"b1", "b2"}},
		},
		{
			name: "reprieve the more important pods: only the lowest priority goes",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("a-low", 1, 100, prio(1)), pod("a-mid", 1, 100, prio(10)), pod("a-top", 1, 100, prio(20))),
			},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"a-low"}},
		},
		{
			name: "equal priority: the latest started goes (the older is more important)",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("old", 1, 100, prio(1), started(1)), pod("new", 1, 100, prio(1), started(30))),
			},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"new"}},
		},
		{
			name: "latest start time breaks a tie between agents",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("a1", 1, 100, prio(1), started(1))),
				full("b", 0, pod("b1", 1, 100, prio(1), started(9))),
			},
			want:        map[string]string{"hi": "id-b"},
			wantVictims: map[string][]string{"hi": {"b1"}},
		},
		{
			name: "an agent whose victim violates a PDB loses to one that violates none",
			pods: []*corev1.Pod{pod("hi", 2, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("a1", 1, 100, prio(1)), pod("a2", 1, 100, prio(1))),
				full("b", 0, pod("b1", 2, 100, prio(1), labelled("app", "db"))),
			},
			pdbs:        []*policyv1.PodDisruptionBudget{pdb("default", 0, "app", "db")},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"a1", "a2"}},
		},
		{
			name: "PDB violations are reprieved first: the non-violating pod goes",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("guarded", 1, 100, prio(1), started(30), labelled("app", "db")), pod("free", 1, 100, prio(5))),
			},
			pdbs:        []*policyv1.PodDisruptionBudget{pdb("default", 0, "app", "db")},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"free"}},
			wantPDB:     map[string]int{"hi": 0},
		},
		{
			name: "a PDB violation when nothing else helps is counted",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("guarded", 1, 100, prio(1), labelled("app", "db"))),
			},
			pdbs:        []*policyv1.PodDisruptionBudget{pdb("default", 0, "app", "db")},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"guarded"}},
			wantPDB:     map[string]int{"hi": 1},
		},
		{
			name:    "preemptionPolicy Never",
			pods:    []*corev1.Pod{pod("hi", 1, 100, prio(100), func(p *corev1.Pod) { p.Spec.PreemptionPolicy = &never })},
			agents:  []PreemptAgent{full("a", 0, pod("a1", 1, 100, prio(1)))},
			wantMsg: map[string]string{"hi": "preemption: not eligible due to preemptionPolicy=Never."},
		},
		{
			name:    "equal priority pods are never victims",
			pods:    []*corev1.Pod{pod("hi", 1, 100, prio(1))},
			agents:  []PreemptAgent{full("a", 0, pod("a1", 1, 100, prio(1))), full("b", 0, pod("b1", 1, 100, prio(7)))},
			wantMsg: map[string]string{"hi": "preemption: 0/2 agents are available: 2 No preemption victims found for incoming pod."},
		},
		{
			name: "too big even with every victim gone; a tainted agent is not helped",
			pods: []*corev1.Pod{pod("hi", 8, 100, prio(100))},
			agents: []PreemptAgent{
				full("a", 0, pod("a1", 1, 100, prio(1))),
				func() PreemptAgent {
					a := full("b", 0, pod("b1", 1, 100, prio(1)))
					a.Node.Spec.Taints = []corev1.Taint{{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}}
					return a
				}(),
			},
			wantMsg: map[string]string{"hi": "preemption: 0/2 agents are available: 1 Insufficient cpu, 1 Preemption is not helpful for scheduling."},
		},
		{
			name:   "fits without victims: nothing to do, no message",
			pods:   []*corev1.Pod{pod("hi", 1, 100, prio(100))},
			agents: []PreemptAgent{full("a", 0, pod("a1", 1, 100, prio(1))), full("b", 2, pod("b1", 1, 100, prio(1)))},
		},
		{
			name: "a terminating victim of the nominated Node makes the preemptor wait",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), func(p *corev1.Pod) { p.Status.NominatedNodeName = "a" })},
			agents: []PreemptAgent{
				full("a", 0, pod("gone", 1, 100, prio(1), terminatingByScheduler)),
				full("b", 0, pod("b1", 1, 100, prio(1))),
			},
			wantMsg: map[string]string{"hi": "preemption: not eligible due to a terminating pod on the nominated node."},
		},
		{
			name: "two preemptors of one round take different victims; the second sees the first nominated",
			pods: []*corev1.Pod{pod("hi1", 1, 100, prio(100)), pod("hi2", 1, 100, prio(90))},
			agents: []PreemptAgent{
				full("a", 0, pod("a1", 1, 100, prio(1))),
				full("b", 0, pod("b1", 1, 100, prio(2))),
			},
			want:        map[string]string{"hi1": "id-a", "hi2": "id-b"},
			wantVictims: map[string][]string{"hi1": {"a1"}, "hi2": {"b1"}},
		},
		{
			name: "a host port held by a higher-priority pod cannot be freed",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), hostPort(8080))},
			agents: []PreemptAgent{
				full("a", 1, pod("port", 0.1, 100, prio(200), hostPort(8080))),
				full("b", 0, pod("b1", 1, 100, prio(1), hostPort(8080))),
			},
			want:        map[string]string{"hi": "id-b"},
			wantVictims: map[string][]string{"hi": {"b1"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := Preempt(PreemptInput{Pods: tc.pods, Agents: tc.agents, PDBs: tc.pdbs})
			checkPreemptPlan(t, plan, tc.pods, tc.want, tc.wantVictims, tc.wantMsg)
			for _, p := range plan.Preemptions {
				if want, ok := tc.wantPDB[p.Pod.Name]; ok && p.PDBViolations != want {
					t.Errorf("%s: %d PDB violations, want %d", p.Pod.Name, p.PDBViolations, want)
				}
				if p.NodeName != p.AgentID[len("id-"):] {
					t.Errorf("%s: node %q for agent %q", p.Pod.Name, p.NodeName, p.AgentID)
				}
			}
		})
	}
}

// A pod nominated to an agent with the preemptor's priority or higher takes its room there: a later,
// lower pod must find other victims (kube-scheduler's RunFilterPluginsWithNominatedPods).
func TestPreemptNominatedPodsTakeRoom(t *testing.T) {
	a := full("a", 1, pod("a1", 1, 100, prio(1)))
	a.Nominated = []*corev1.Pod{pod("earlier", 1, 100, prio(500))}
	b := full("b", 0, pod("b1", 1, 100, prio(0)))
	plan := Preempt(PreemptInput{Pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))}, Agents: []PreemptAgent{a, b}})
	if len(plan.Preemptions) != 1 || plan.Preemptions[0].AgentID != "id-b" {
		t.Fatalf("preemptions %d, want one on id-b (id-a's free cpu is the nominated pod's)", len(plan.Preemptions))
	}
	// A nominated pod of lower priority does not count: the free cpu is the preemptor's.
	a.Nominated = []*corev1.Pod{pod("lower", 1, 100, prio(5))}
	plan = Preempt(PreemptInput{Pods: []*corev1.Pod{pod("hi", 1, 100, prio(100))}, Agents: []PreemptAgent{a, b}})
	if len(plan.Preemptions) != 0 || len(plan.Messages) != 0 {
		t.Fatalf("plan %+v, want nothing: hi fits id-a once the lower nominated pod is ignored", plan)
	}
}

// A preemptor's own nomination is not room taken.
func TestPreemptIgnoresOwnNomination(t *testing.T) {
	hi := pod("hi", 1, 100, prio(100), func(p *corev1.Pod) { p.Status.NominatedNodeName = "a" })
	a := full("a", 1, pod("a1", 1, 100, prio(1)))
	a.Nominated = []*corev1.Pod{hi}
	plan := Preempt(PreemptInput{Pods: []*corev1.Pod{hi}, Agents: []PreemptAgent{a}})
	if len(plan.Preemptions) != 0 || len(plan.Messages) != 0 {
		t.Fatalf("plan %+v, want nothing: hi fits its nominated agent", plan)
	}
}

// The PDB budget is shared by the preemptors of one round: the first uses the only disruption allowed.
func TestPreemptSharesPDBBudget(t *testing.T) {
	agents := []PreemptAgent{
		full("a", 0, pod("a1", 1, 100, prio(1), labelled("app", "db"))),
		full("b", 0, pod("b1", 1, 100, prio(1), labelled("app", "db"))),
	}
	plan := Preempt(PreemptInput{
		Pods:   []*corev1.Pod{pod("hi1", 1, 100, prio(100)), pod("hi2", 1, 100, prio(100))},
		Agents: agents,
		PDBs:   []*policyv1.PodDisruptionBudget{pdb("default", 1, "app", "db")},
	})
	if len(plan.Preemptions) != 2 {
		t.Fatalf("preemptions %+v, want 2", plan.Preemptions)
	}
	if plan.Preemptions[0].PDBViolations != 0 || plan.Preemptions[1].PDBViolations != 1 {
		t.Errorf("PDB violations %d, %d, want 0 then 1", plan.Preemptions[0].PDBViolations, plan.Preemptions[1].PDBViolations)
	}
}

// A pod nominated to an agent (it preempted there) takes the agent's room for pods of its priority
// or lower, in Place as in kube-scheduler, so the freed resources go to it; a higher pod is not held.
func TestPlaceNominatedPodsTakeRoom(t *testing.T) {
	hi := pod("hi", 2, 100, prio(100))
	in := Input{
		Offers:    []mesos.Offer{basic("o1", "a", 2, 1000)},
		Nominated: map[string][]*corev1.Pod{"a": {hi}},
	}
	in.Pods = []*corev1.Pod{pod("lo", 1, 100, prio(0)), pod("peer", 1, 100, prio(100))}
	plan := Place(in)
	if got := placed(plan); len(got) != 0 {
		t.Fatalf("placed %v while hi is nominated to a", got)
	}
	if msg := unfitNames(plan)["lo"]; msg != "0/1 agents are available: 1 Insufficient cpu." {
		t.Errorf("lo: %q", msg)
	}
	in.Pods = []*corev1.Pod{pod("lo", 1, 100, prio(0)), pod("top", 1, 100, prio(200))}
	if got := placed(Place(in)); !slices.Equal(got, []string{"top@a"}) {
		t.Errorf("placed %v, want top@a: a higher pod ignores the nomination", got)
	}
	// The nominated pod itself takes the room, and once placed frees nobody else's.
	in.Pods = []*corev1.Pod{hi, pod("lo", 1, 100, prio(0))}
	in.Offers = []mesos.Offer{basic("o1", "a", 3, 1000)}
	if got := placed(Place(in)); !slices.Equal(got, []string{"hi@a", "lo@a"}) {
		t.Errorf("placed %v, want hi@a and lo@a", got)
	}
}

// Another scheduler's pods use room but are never victims.
func TestPreemptNeverEvictsOthers(t *testing.T) {
	a := full("a", 0, pod("ours", 1, 100, prio(1)), pod("theirs", 1, 100, prio(0)))
	a.Pods, a.Others = a.Pods[:1], a.Pods[1:]
	plan := Preempt(PreemptInput{Pods: []*corev1.Pod{pod("hi", 2, 100, prio(100))}, Agents: []PreemptAgent{a}})
	if len(plan.Preemptions) != 0 {
		t.Fatalf("victims %v, want none: only another scheduler's pod could make room", names(plan.Preemptions[0].Victims))
	}
	if got, want := plan.Messages["uid-hi"], "preemption: 0/1 agents are available: 1 Insufficient cpu."; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// BenchmarkPreempt: one preemptor over full agents of 10 low-priority pods each.
func BenchmarkPreempt(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			agents := make([]PreemptAgent, n)
			for i := range agents {
				var pods []*corev1.Pod
				for j := 0; j < 10; j++ {
					pods = append(pods, pod(fmt.Sprintf("p-%d-%d", i, j), 0.4, 256, prio(int32(j%3))))
				}
				agents[i] = full(fmt.Sprintf("n%05d", i), 0, pods...)
			}
			hi := pod("hi", 1, 512, prio(100))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				plan := Preempt(PreemptInput{Pods: []*corev1.Pod{hi}, Agents: agents})
				if len(plan.Preemptions) != 1 {
					b.Fatal("no preemption")
				}
			}
		})
	}
}

// A nominated pod for which preemption helps nowhere any more loses its nomination, as kube-scheduler
// clears it; one that only waits for its victims keeps it.
func TestPreemptClearsHopelessNomination(t *testing.T) {
	hopeless := pod("hopeless", 8, 100, prio(100), func(p *corev1.Pod) { p.Status.NominatedNodeName = "a" })
	waiting := pod("waiting", 1, 100, prio(100), func(p *corev1.Pod) { p.Status.NominatedNodeName = "b" })
	plan := Preempt(PreemptInput{Pods: []*corev1.Pod{hopeless, waiting}, Agents: []PreemptAgent{
		full("a", 0, pod("a1", 1, 100, prio(1))),
		full("b", 0, pod("gone", 1, 100, prio(1), terminatingByScheduler)),
	}})
	if len(plan.ClearNomination) != 1 || plan.ClearNomination[0] != hopeless {
		t.Errorf("ClearNomination %v, want only hopeless", names(plan.ClearNomination))
	}
}

// checkPreemptPlan compares a plan with a table case's expectations: the agent of each preemptor, its victims
// (most important first) and the PostFilter message of each pod.
func checkPreemptPlan(t *testing.T, plan PreemptPlan, pods []*corev1.Pod, want map[string]string, wantVictims map[string][]string, wantMsg map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, p := range plan.Preemptions {
		got[p.Pod.Name] = p.AgentID
		if w := wantVictims[p.Pod.Name]; !slices.Equal(names(p.Victims), w) {
			t.Errorf("%s: victims %v, want %v", p.Pod.Name, names(p.Victims), w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("preemptions %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("preemptions %v, want %v", got, want)
		}
	}
	msgs := map[string]string{}
	for _, p := range pods {
		if m, ok := plan.Messages[p.UID]; ok {
			msgs[p.Name] = m
		}
	}
	if len(msgs) != len(wantMsg) {
		t.Errorf("messages %q, want %q", msgs, wantMsg)
	}
	for k, v := range wantMsg {
		if msgs[k] != v {
			t.Errorf("message of %s %q, want %q", k, msgs[k], v)
		}
	}
}
