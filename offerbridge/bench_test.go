package offerbridge

import (
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

// benchInput is 1,000 pending pods (a tenth with a host port, a tenth with a node selector) on 5,000
// offers of 5,000 agents, a fifth of which have a tainted Node.
func benchInput(strategy Strategy) Input {
	in := Input{Strategy: strategy, Seed: 1, Nodes: map[string]*corev1.Node{},
		Executor: ExecutorCost{CPUs: 0.1, MemMB: 64, RunningOn: map[string]bool{}}}
	for i := range 5000 {
		id := fmt.Sprintf("agent-%04d", i)
		o := basic(fmt.Sprintf("offer-%04d", i), id, 4, 8192)
		o.Attributes = []mesos.Attribute{{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: fmt.Sprintf("r%d", i%10)}}}
		in.Offers = append(in.Offers, o)
		if i%5 == 0 {
			in.Nodes[id] = node(id+".example", AgentLabels(&o), corev1.Taint{Key: "gpu", Effect: corev1.TaintEffectNoSchedule})
		}
		if i%2 == 0 {
			in.Executor.RunningOn[id] = true
		}
	}
	for i := range 1000 {
		var opts []podOpt
		if i%10 == 0 {
			opts = append(opts, hostPort(31080))
		}
		if i%10 == 1 {
			opts = append(opts, nodeSelector(LabelAttrPrefix+"rack", "r3"))
		}
		in.Pods = append(in.Pods, pod(fmt.Sprintf("pod-%04d", i), 0.5, 512, opts...))
	}
	return in
}

func BenchmarkPlace1000Pods5000Offers(b *testing.B) {
	for _, s := range []Strategy{Spread, BinPack} {
		b.Run(s.String(), func(b *testing.B) {
			in := benchInput(s)
			b.ReportAllocs()
			var plan Plan
			for b.Loop() {
				plan = Place(in)
			}
			if len(plan.Unschedulable) != 0 {
				b.Fatalf("benchmark input must place every pod, %d unschedulable", len(plan.Unschedulable))
			}
			reportPerPod(b, len(in.Pods))
		})
	}
}

// reportPerPod reports the placement cost per pod, the figure issue 15 asks for.
func reportPerPod(b *testing.B, pods int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(pods), "ns/pod")
}

// rulesInput is benchInput with the rules kube-scheduler users write: 5,000 pods already bound (one per
// agent, spread over 100 apps), and 1,000 pending pods of 100 Deployments of 10 replicas, each with
// required anti-affinity on the hostname against its own app, a DoNotSchedule spread over the rack
// attribute (maxSkew 1), a ScheduleAnyway spread over hostnames and a preferred node affinity.
func rulesInput(strategy Strategy) Input {
	in := benchInput(strategy)
	for i := range 5000 {
		id := fmt.Sprintf("agent-%04d", i)
		host := id + ".example"
		if n := in.Nodes[id]; n != nil {
			host = n.Name
		}
		in.Bound = append(in.Bound, pod(fmt.Sprintf("bound-%04d", i), 0.1, 64, labelled("app", fmt.Sprintf("app-%02d", i%100)),
			func(p *corev1.Pod) { p.Spec.NodeName = host }))
	}
	in.Pods = nil
	for i := range 1000 {
		app := fmt.Sprintf("app-%02d", i/10)
		s := sel("app", app)
		in.Pods = append(in.Pods, pod(fmt.Sprintf("pod-%04d", i), 0.5, 512, labelled("app", app),
			antiAffinity(LabelHostname, s),
			spread(1, rackLabel, corev1.DoNotSchedule, s, func(c *corev1.TopologySpreadConstraint) {
				c.NodeTaintsPolicy = ptr.To(corev1.NodeInclusionPolicyHonor) // the gpu racks are no domain
			}),
			spread(1, LabelHostname, corev1.ScheduleAnyway, s),
			affinity(func(a *corev1.Affinity) {
				a.NodeAffinity = &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
					Weight: 10, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: rackLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{"r1", "r2"}}}}}}}
			})))
	}
	return in
}

// BenchmarkPlaceRules is the placement cost per pod at 5,000 agents with pod anti-affinity, topology
// spread and preferred node affinity on every pod (compare BenchmarkPlace1000Pods5000Offers).
func BenchmarkPlaceRules(b *testing.B) {
	for _, s := range []Strategy{Spread, BinPack} {
		b.Run(s.String(), func(b *testing.B) {
			in := rulesInput(s)
			b.ReportAllocs()
			var plan Plan
			for b.Loop() {
				plan = Place(in)
			}
			if len(plan.Unschedulable) != 0 {
				b.Fatalf("benchmark input must place every pod, %d unschedulable: %v", len(plan.Unschedulable), plan.Unschedulable[0].Message)
			}
			reportPerPod(b, len(in.Pods))
		})
	}
}

// BenchmarkPlacePodNetwork is BenchmarkPlace1000Pods5000Offers with --pod-network kubemesos: every pod
// is carved three ways (sandbox executor, sandbox task, pod task).
func BenchmarkPlacePodNetwork(b *testing.B) {
	in := benchInput(Spread)
	in.Translate.PodNetwork = "kubemesos"
	b.ReportAllocs()
	var plan Plan
	for b.Loop() {
		plan = Place(in)
	}
	if len(plan.Unschedulable) != 0 || plan.Launches[0].Pods[0].Sandbox == nil {
		b.Fatalf("benchmark input must place every pod in a sandbox, %d unschedulable", len(plan.Unschedulable))
	}
}

func BenchmarkBookCycle(b *testing.B) {
	offers := benchInput(Spread).Offers
	bk := NewBook(clocktesting.NewFakePassiveClock(t0), time.Second)
	b.ReportAllocs()
	for b.Loop() {
		bk.Add(offers...)
		taken := bk.Take()
		bk.Settle(Plan{Decline: idsOf(taken)})
	}
}

// BenchmarkPlaceFullCluster is a backlog on a full cluster: 1,000 replicas that fit none of 5,000
// offers, each needing its FailedScheduling reasons.
func BenchmarkPlaceFullCluster(b *testing.B) {
	in := benchInput(Spread)
	for i, p := range in.Pods {
		in.Pods[i] = pod(p.Name, 5, 512)
	}
	b.ReportAllocs()
	var plan Plan
	for b.Loop() {
		plan = Place(in)
	}
	if len(plan.Unschedulable) != len(in.Pods) {
		b.Fatalf("want every pod unschedulable, got %d", len(plan.Unschedulable))
	}
}
