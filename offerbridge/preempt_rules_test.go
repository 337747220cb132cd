package offerbridge

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const hostKey = "kubernetes.io/hostname"

// fullOn is full() on a Node with labels (its hostname label always).
func fullOn(name string, labels map[string]string, freeCPUs float64, pods ...*corev1.Pod) PreemptAgent {
	a := full(name, freeCPUs, pods...)
	l := map[string]string{hostKey: name}
	for k, v := range labels {
		l[k] = v
	}
	a.Node.Labels = l
	return a
}

// Preemption runs InterPodAffinity and PodTopologySpread with the victims removed, then reprieved, as
// kube-scheduler's SelectVictimsOnNode runs every filter.
func TestPreemptPodRules(t *testing.T) {
	tests := []struct {
		name        string
		pods        []*corev1.Pod
		agents      []PreemptAgent
		ns          map[string]map[string]string
		want        map[string]string   // preemptor → agent ID
		wantVictims map[string][]string // preemptor → victims
		wantMsg     map[string]string
	}{
		{
			name: "required affinity: the agent with the pod it needs, though it costs more victims",
			pods: []*corev1.Pod{pod("hi", 2, 100, prio(100), labelled("app", "web"), podAffinity(hostKey, sel("app", "db")))},
			agents: []PreemptAgent{
				fullOn("a", nil, 0, pod("a1", 2, 100, prio(1))),
				fullOn("b", nil, 0, pod("db", 1, 100, prio(1000), labelled("app", "db")), pod("b1", 1, 100, prio(1)), pod("b2", 1, 100, prio(1))),
			},
			want:        map[string]string{"hi": "id-b"},
			wantVictims: map[string][]string{"hi": {"b1", "b2"}},
		},
		{
			name: "required affinity met nowhere: no victims, preemption is not helpful",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), podAffinity(hostKey, sel("app", "db")), labelled("app", "web"))},
			agents: []PreemptAgent{
				fullOn("a", nil, 0, pod("a1", 1, 100, prio(1))),
				fullOn("b", nil, 0, pod("b1", 1, 100, prio(1))),
			},
			wantMsg: map[string]string{"hi": "preemption: 0/2 agents are available: 2 Preemption is not helpful for scheduling."},
		},
		{
			name: "anti-affinity: evicting the pod it avoids makes room, though the cpu is free",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), labelled("app", "web"), antiAffinity(hostKey, sel("app", "web")))},
			agents: []PreemptAgent{
				fullOn("a", nil, 1, pod("web-old", 0.5, 100, prio(1), labelled("app", "web")), pod("other", 0.5, 100, prio(1))),
			},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"web-old"}},
		},
		{
			name: "existing pods' anti-affinity: the low-priority pod that refuses the preemptor goes",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), labelled("app", "web"))},
			agents: []PreemptAgent{
				fullOn("a", nil, 1, pod("loner", 0.5, 100, prio(1), antiAffinity(hostKey, sel("app", "web"))), pod("other", 0.5, 100, prio(1))),
			},
			want:        map[string]string{"hi": "id-a"},
			wantVictims: map[string][]string{"hi": {"loner"}},
		},
		{
			name: "anti-affinity with a more important pod: no victim helps, the filter says why",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), labelled("app", "web"), antiAffinity(hostKey, sel("app", "web")))},
			agents: []PreemptAgent{
				fullOn("a", nil, 0.5, pod("web-top", 0.5, 100, prio(500), labelled("app", "web")), pod("low", 0.5, 100, prio(1))),
			},
			wantMsg: map[string]string{"hi": "preemption: 0/1 agents are available: 1 node(s) didn't match pod anti-affinity rules."},
		},
		{
			name: "anti-affinity by zone: victims on another agent of the zone do not help that agent",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), labelled("app", "web"), antiAffinity("zone", sel("app", "web")))},
			agents: []PreemptAgent{
				fullOn("a", map[string]string{"zone": "z1"}, 0, pod("a1", 1, 100, prio(1))),
				fullOn("b", map[string]string{"zone": "z1"}, 0, pod("web-top", 1, 100, prio(500), labelled("app", "web"))),
				fullOn("c", map[string]string{"zone": "z2"}, 0, pod("c1", 1, 100, prio(2))),
			},
			want:        map[string]string{"hi": "id-c"},
			wantVictims: map[string][]string{"hi": {"c1"}},
		},
		{
			name: "topology spread: the agent without the key is not helped; skew decides the victims",
			pods: []*corev1.Pod{pod("hi", 1, 100, prio(100), labelled("app", "s"), spread(1, "rack", corev1.DoNotSchedule, sel("app", "s")))},
			agents: []PreemptAgent{
				fullOn("nolabel", nil, 0, pod("n1", 1, 100, prio(1))),
				fullOn("r1", map[string]string{"rack": "1"}, 0, pod("s1", 1, 100, prio(1), labelled("app", "s")), pod("s2", 1, 100, prio(1), labelled("app", "s"))),
				fullOn("r2", map[string]string{"rack": "2"}, 0, pod("top", 1, 100, prio(500))),
			},
			// r1 has 2 of app=s and r2 none: with hi there, r1 may keep none of them (skew 1+1-0 > 1).
			want:        map[string]string{"hi": "id-r1"},
			wantVictims: map[string][]string{"hi": {"s1", "s2"}},
		},
		{
			name: "two preemptors with anti-affinity to each other do not pick the same agent",
			pods: []*corev1.Pod{
				pod("hi1", 1, 100, prio(100), labelled("app", "web"), antiAffinity(hostKey, sel("app", "web"))),
				pod("hi2", 1, 100, prio(90), labelled("app", "web"), antiAffinity(hostKey, sel("app", "web"))),
			},
			agents: []PreemptAgent{
				fullOn("a", nil, 0, pod("a1", 1, 100, prio(1)), pod("a2", 1, 100, prio(1))),
				fullOn("b", nil, 0, pod("b1", 1, 100, prio(2)), pod("b2", 1, 100, prio(2))),
			},
			want:        map[string]string{"hi1": "id-a", "hi2": "id-b"},
			wantVictims: map[string][]string{"hi1": {"a2"}, "hi2": {"b2"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := Preempt(PreemptInput{Pods: tc.pods, Agents: tc.agents, Namespaces: tc.ns})
			checkPreemptPlan(t, plan, tc.pods, tc.want, tc.wantVictims, tc.wantMsg)
		})
	}
}

// BenchmarkPreemptWithRules is BenchmarkPreempt with a preemptor that has a required anti-affinity
// (one app=web pod per agent, of low priority) and a DoNotSchedule spread over racks of 10 agents.
func BenchmarkPreemptWithRules(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			agents := make([]PreemptAgent, n)
			for i := range agents {
				var pods []*corev1.Pod
				for j := 0; j < 10; j++ {
					opts := []podOpt{prio(int32(j % 3))}
					if j == 0 {
						opts = append(opts, labelled("app", "web"))
					}
					pods = append(pods, pod(fmt.Sprintf("p-%d-%d", i, j), 0.4, 256, opts...))
				}
				name := fmt.Sprintf("n%05d", i)
				agents[i] = fullOn(name, map[string]string{"rack": fmt.Sprint(i / 10)}, 0, pods...)
			}
			hi := pod("hi", 1, 512, prio(100), labelled("app", "web"), antiAffinity(hostKey, sel("app", "web")),
				spread(1, "rack", corev1.DoNotSchedule, sel("app", "web")))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				plan := Preempt(PreemptInput{Pods: []*corev1.Pod{hi}, Agents: agents})
				if len(plan.Preemptions) != 1 {
					b.Fatal("no preemption", plan.Messages)
				}
			}
		})
	}
}
