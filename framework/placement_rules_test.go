package framework

import (
	"strings"
	"testing"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubemesos/kubemesos/offerbridge"
)

func webAntiAffinity(p *corev1.Pod) {
	p.Labels = map[string]string{"app": "web"}
	p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			TopologyKey:   corev1.LabelHostname,
		}},
	}}
}

// acceptedAgents returns the agent of every ACCEPT, in order.
func acceptedAgents(cs []*scheduler.Call) []string {
	var out []string
	for _, c := range cs {
		for _, op := range c.GetAccept().GetOperations() {
			for _, ti := range op.GetLaunch().GetTaskInfos() {
				out = append(out, ti.AgentID.Value)
			}
		}
	}
	return out
}

// A pod launched in one cycle counts in the next though the informer does not show its binding yet,
// like kube-scheduler's assumed pods.
func TestPlacementSeesPodsLaunchedBeforeTheInformerShowsThem(t *testing.T) {
	f := newFixture(t, State{}, pod("web-1", "uid-1", webAntiAffinity))
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT)); len(got) != 1 || got[0] != "a1" {
		t.Fatalf("first replica launched on %v, want a1", got)
	}
	// The informer still has web-1 unbound.
	f.addPod(pod("web-2", "uid-2", webAntiAffinity))
	f.drain()
	f.offers(offer("o2", "a1", "h1", 3, 3000, ExecutorID))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 1 {
		t.Fatalf("second replica launched next to the first (%d ACCEPTs)", n)
	}
	var event string
	for len(f.recorder.Events) > 0 {
		if e := <-f.recorder.Events; strings.Contains(e, EventFailedScheduling) {
			event = e
		}
	}
	if !strings.Contains(event, "0/1 agents are available: 1 "+offerbridge.ReasonPodAntiAffinity+".") {
		t.Errorf("FailedScheduling = %q, want the anti-affinity reason", event)
	}
	// Once the informer shows the binding, the assumption is forgotten.
	f.refreshCache("default", "web-1")
	bound := f.s.boundPods()
	if len(bound) != 1 || bound[0].Spec.NodeName != "h1" {
		t.Errorf("bound pods = %v, want web-1 on h1", bound)
	}
	f.s.mu.Lock()
	n := len(f.s.placement.assumed)
	f.s.mu.Unlock()
	if n != 0 {
		t.Errorf("%d pods still assumed after the informer caught up", n)
	}
}

func TestNamespaceSelectorSeesNamespaceLabels(t *testing.T) {
	other := pod("other-web", "uid-o", func(p *corev1.Pod) {
		p.Namespace = "other"
		p.Labels = map[string]string{"app": "web"}
		p.Spec.NodeName = "h1"
		p.Status.Phase = corev1.PodRunning
	})
	f := newFixture(t, State{}, other, pod("web-1", "uid-1", func(p *corev1.Pod) {
		webAntiAffinity(p)
		p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].NamespaceSelector =
			&metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	}))
	nsIndex := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"team": "a"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
	} {
		if err := nsIndex.Add(ns); err != nil {
			t.Fatal(err)
		}
	}
	f.s.placement.namespaces = corelisters.NewNamespaceLister(nsIndex)
	f.addNode(agentNode("h1", "a1"))
	f.subscribe("fw-1")
	f.drain()
	f.offers(offer("o1", "a1", "h1", 4, 4096))
	f.s.cycleAndLaunch(f.ctx)
	if n := len(f.caller.ofType(scheduler.Call_ACCEPT)); n != 0 {
		t.Fatalf("web-1 launched next to a pod of a namespace its namespaceSelector selects")
	}
}

func TestPlacementStrategyFlag(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		var c Config
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		c.BindFlags(fs)
		if err := fs.Parse(args); err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	if c, err := parse(); err != nil || c.PlacementStrategy != "spread" {
		t.Errorf("default = %q, %v; want spread", c.PlacementStrategy, err)
	}
	if _, err := parse("--placement-strategy", "tetris"); err == nil || !strings.Contains(err.Error(), "--placement-strategy") {
		t.Errorf("--placement-strategy tetris: %v, want an error naming the flag", err)
	}
	for _, tc := range []struct {
		strategy string
		agents   int // distinct agents the two pods go to
	}{
		{"spread", 2},
		{"binpack", 1},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			cfg, err := parse("--placement-strategy", tc.strategy)
			if err != nil {
				t.Fatal(err)
			}
			f := newFixtureConfig(t, cfg, fake.NewClientset(), State{}, pod("a", "uid-a"), pod("b", "uid-b"))
			f.subscribe("fw-1")
			f.drain()
			f.offers(offer("o1", "a1", "h1", 4, 4096), offer("o2", "a2", "h2", 4, 4096))
			f.s.cycleAndLaunch(f.ctx)
			got := acceptedAgents(f.caller.ofType(scheduler.Call_ACCEPT))
			distinct := map[string]bool{}
			for _, a := range got {
				distinct[a] = true
			}
			if len(got) != 2 || len(distinct) != tc.agents {
				t.Errorf("pods launched on %v, want 2 pods on %d agent(s)", got, tc.agents)
			}
		})
	}
}
