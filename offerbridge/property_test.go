package offerbridge

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/resources"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// TestPlaceProperties places random pods on random offers and checks the invariants of checkPlan:
// nothing carved beyond what was offered, no host port used twice on an agent, every offer and every
// pod accounted for exactly once.
func TestPlaceProperties(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		in := randomInput(seed, 1+int(seed%17), 1+int(seed%41))
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			checkPlan(t, in, Place(in))
		})
	}
	// Larger clusters, where the search stops after enough feasible agents and rotates.
	for seed := uint64(1000); seed < 1010; seed++ {
		in := randomInput(seed, 150+int(seed%60), 300)
		in.PercentageOfAgentsToScore = int(seed % 3 * 20)
		t.Run(fmt.Sprintf("large/seed=%d", seed), func(t *testing.T) {
			checkPlan(t, in, Place(in))
		})
	}
}

// TestUnfitCacheChangesNothing: plans are the same with and without the caches (unschedulable pods'
// reasons, static checker outcomes), for backlogs with many identical pods.
func TestUnfitCacheChangesNothing(t *testing.T) {
	defer func() { useUnfitCache, useStaticCache = true, true }()
	for seed := uint64(1); seed <= 100; seed++ {
		in := randomInput(seed, 1+int(seed%9), 10)
		// Replicas: every pod spec three times, in an interleaved order.
		var pods []*corev1.Pod
		for r := range 3 {
			for _, p := range in.Pods {
				q := p.DeepCopy()
				q.Name = fmt.Sprintf("%s-%d", p.Name, r)
				q.UID = types.UID("uid-" + q.Name)
				pods = append(pods, q)
			}
		}
		in.Pods = pods
		useUnfitCache, useStaticCache = true, true
		plan := Place(in)
		checkPlan(t, in, plan)
		with := summary(plan)
		useUnfitCache, useStaticCache = false, false
		without := summary(Place(in))
		if diff := cmp.Diff(without, with); diff != "" {
			t.Errorf("seed %d: cache changes the plan (-without +with):\n%s", seed, diff)
		}
	}
}

func randomInput(seed uint64, agents, pods int) Input {
	rng := rand.New(rand.NewPCG(seed, 1))
	in := Input{Seed: seed, Nodes: map[string]*corev1.Node{}, Strategy: Strategy(rng.IntN(2))}
	in.Executor = ExecutorCost{CPUs: 0.1, MemMB: 32, RunningOn: map[string]bool{}}
	roles := []string{"kubemesos", "batch"}
	n := 0
	for a := range agents {
		id := fmt.Sprintf("a%02d", a)
		if rng.IntN(3) == 0 {
			in.Executor.RunningOn[id] = true
		}
		for k := range 1 + rng.IntN(2) {
			n++
			role := roles[rng.IntN(len(roles))]
			var rs []res
			for _, name := range []string{"cpus", "mem", "disk", "gpus"} {
				scale := map[string]float64{"cpus": 4, "mem": 4096, "disk": 2000, "gpus": 2}[name]
				if name == "gpus" {
					rs = append(rs, res{name: name, value: float64(rng.IntN(3))})
					continue
				}
				rs = append(rs, res{name: name, value: float64(rng.IntN(int(scale*1000))) / 1000})
				if rng.IntN(3) == 0 {
					rs = append(rs, res{name: name, value: float64(rng.IntN(int(scale*1000))) / 1000, reservedFor: role})
				}
			}
			// Mesos never offers one port of an agent twice: the offers of an agent are disjoint.
			base := uint64(31000 + 100*k)
			lo := base + uint64(rng.IntN(10))
			rs = append(rs, res{name: "ports", ports: [][2]uint64{{lo, lo + uint64(rng.IntN(5))}, {base + 50, base + 52}}})
			o := offer(fmt.Sprintf("o%03d", n), id, role, rs...)
			if rng.IntN(2) == 0 {
				o.Attributes = []mesos.Attribute{{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: fmt.Sprintf("r%d", rng.IntN(3))}}}
			}
			in.Offers = append(in.Offers, o)
			// Some agents also have room returning from an ACCEPT, in this role or another; an agent
			// may have only that.
			if rng.IntN(4) == 0 {
				r := offer(fmt.Sprintf("r%03d", n), id, roles[rng.IntN(len(roles))], rs...)
				r.Attributes = o.Attributes
				in.Returning = append(in.Returning, r)
				if rng.IntN(2) == 0 {
					in.Offers = in.Offers[:len(in.Offers)-1]
				}
			}
		}
		if rng.IntN(4) == 0 {
			in.Nodes[id] = node(id+".example", map[string]string{"zone": fmt.Sprintf("z%d", rng.IntN(2))},
				corev1.Taint{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule})
		}
	}
	for i := range pods {
		var opts []podOpt
		if rng.IntN(3) == 0 {
			opts = append(opts, hostPort(int32(31000+100*rng.IntN(2)+rng.IntN(12))))
		}
		if rng.IntN(5) == 0 {
			base := int32(31000 + 100*rng.IntN(2))
			opts = append(opts, hostPort(base+50, base+51))
		}
		if rng.IntN(5) == 0 {
			opts = append(opts, nodeSelector(LabelAttrPrefix+"rack", fmt.Sprintf("r%d", rng.IntN(3))))
		}
		if rng.IntN(4) == 0 {
			opts = append(opts, tolerate(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists}))
		}
		if i%7 == 3 {
			opts = append(opts, func(p *corev1.Pod) { p.Spec.HostNetwork = true })
		}
		in.Pods = append(in.Pods, pod(fmt.Sprintf("p%03d", i), float64(rng.IntN(3000))/1000, float64(rng.IntN(2048)), opts...))
	}
	// Half the inputs on a CNI pod network: most pods there are two tasks.
	if seed%2 == 0 {
		in.Translate.PodNetwork = "kubemesos"
	}
	return in
}

// checkPlan checks a plan against its input with mesos-go's own resource arithmetic as the oracle.
func checkPlan(t *testing.T, in Input, plan Plan) {
	t.Helper()
	offers := map[string]*mesos.Offer{}
	for i := range in.Offers {
		offers[in.Offers[i].ID.Value] = &in.Offers[i]
	}
	seen := map[string]int{}
	for _, l := range plan.Launches {
		for _, id := range l.OfferIDs {
			seen[id.Value]++
		}
	}
	for _, id := range plan.Decline {
		seen[id.Value]++
	}
	for id := range offers {
		if seen[id] != 1 {
			t.Errorf("offer %s is launched or declined %d times, want exactly once", id, seen[id])
		}
	}
	if len(seen) != len(offers) {
		t.Errorf("plan mentions %d offers, input has %d", len(seen), len(offers))
	}

	podSeen := map[*corev1.Pod]int{}
	for _, u := range plan.Unschedulable {
		podSeen[u.Pod]++
	}
	for _, p := range plan.Waiting {
		podSeen[p]++
	}
	portsByAgent := map[string]map[uint64]bool{}
	executors := map[string]int{}
	for _, l := range plan.Launches {
		var offered mesos.Resources
		for _, id := range l.OfferIDs {
			o := offers[id.Value]
			if o == nil {
				t.Fatalf("launch uses unknown offer %s", id.Value)
			}
			if o.AgentID != l.AgentID {
				t.Errorf("launch on %s uses offer %s of agent %s", l.AgentID.Value, id.Value, o.AgentID.Value)
			}
			if got := offerRole(o); got != l.Role {
				t.Errorf("launch for role %q uses offer %s of role %q", l.Role, id.Value, got)
			}
			offered.Add(o.Resources...)
		}
		var carved mesos.Resources
		if l.Executor != nil {
			executors[l.AgentID.Value]++
			if in.Executor.RunningOn[l.AgentID.Value] {
				t.Errorf("executor launched again on %s", l.AgentID.Value)
			}
			carved.Add(l.Executor...)
			checkCarved(t, l, l.Executor)
		}
		if len(l.Pods) == 0 {
			t.Errorf("launch on %s has no pods", l.AgentID.Value)
		}
		for _, pp := range l.Pods {
			podSeen[pp.Pod]++
			checkCarved(t, l, pp.Resources)
			carved.Add(pp.Resources...)
			own := pp.Resources
			if pp.Sandbox != nil {
				checkCarved(t, l, pp.Sandbox.Executor)
				checkCarved(t, l, pp.Sandbox.Task)
				carved.Add(pp.Sandbox.Executor...)
				carved.Add(pp.Sandbox.Task...)
				own = pp.Sandbox.Task
			}
			checkCovers(t, in.Translate, pp)
			if portsByAgent[l.AgentID.Value] == nil {
				portsByAgent[l.AgentID.Value] = map[uint64]bool{}
			}
			rs, _ := portsOf(own)
			for _, r := range rs {
				for p := r.Begin; p <= r.End; p++ {
					if portsByAgent[l.AgentID.Value][p] {
						t.Errorf("port %d used twice on %s", p, l.AgentID.Value)
					}
					portsByAgent[l.AgentID.Value][p] = true
				}
			}
		}
		if !resources.ContainsAll(offered, carved) {
			t.Errorf("launch on %s/%s carves more than offered:\noffered %s\ncarved  %s", l.AgentID.Value, l.Role, offered, carved)
		}
	}
	for a, n := range executors {
		if n > 1 {
			t.Errorf("executor launched %d times on %s", n, a)
		}
	}
	for _, p := range in.Pods {
		if podSeen[p] != 1 {
			t.Errorf("pod %s placed, waiting or unschedulable %d times, want exactly once", p.Name, podSeen[p])
		}
	}
}

// checkCarved: every carved resource is valid and allocated to the launch's role.
func checkCarved(t *testing.T, l Launch, rs mesos.Resources) {
	t.Helper()
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			t.Errorf("carved resource %s is invalid: %v", rs[i:i+1].Format(), err)
		}
		if got := rs[i].GetAllocationInfo().GetRole(); got != l.Role {
			t.Errorf("carved resource %s allocated to %q, launch role %q", rs[i:i+1].Format(), got, l.Role)
		}
	}
}

// checkCovers: a pod's resources cover its demand, and its host ports exactly; a sandboxed pod's are
// its sandbox task's, and its pod task and sandbox executor get exactly their shares.
func checkCovers(t *testing.T, o podtranslate.Options, pp PodPlacement) {
	t.Helper()
	want, err := podtranslate.PodDemand(pp.Pod, o)
	if err != nil {
		t.Fatalf("PodDemand(%s): %v", pp.Pod.Name, err)
	}
	own := pp.Resources
	if o.Sandboxed(pp.Pod) != (pp.Sandbox != nil) {
		t.Fatalf("pod %s: sandboxed %v, sandbox placement %v", pp.Pod.Name, o.Sandboxed(pp.Pod), pp.Sandbox)
	}
	if pp.Sandbox != nil {
		own = pp.Sandbox.Task
		checkScalars(t, pp.Pod.Name+" (pod task)", pp.Resources, podtranslate.PodTaskDemand)
		checkScalars(t, pp.Pod.Name+" (sandbox executor)", pp.Sandbox.Executor, podtranslate.SandboxExecutorDemand)
		for _, rs := range []mesos.Resources{pp.Resources, pp.Sandbox.Executor} {
			if p, _ := portsOf(rs); len(p) > 0 {
				t.Errorf("pod %s: ports %v outside its sandbox task", pp.Pod.Name, p)
			}
		}
	}
	checkScalars(t, pp.Pod.Name, own, want)
	ports, _ := portsOf(own)
	wantPorts := map[uint64]bool{}
	for _, hp := range want.HostPorts {
		wantPorts[uint64(hp.Port)] = true
	}
	if int(ports.Size()) != len(wantPorts) {
		t.Errorf("pod %s got ports %v, wants %v", pp.Pod.Name, ports, wantPorts)
	}
	for p := range wantPorts {
		if ports.Search(p) < 0 {
			t.Errorf("pod %s lacks host port %d", pp.Pod.Name, p)
		}
	}
}

func checkScalars(t *testing.T, what string, rs mesos.Resources, want podtranslate.Demand) {
	t.Helper()
	got := map[string]int64{}
	for _, r := range rs {
		got[r.Name] += milli(r.GetScalar().GetValue())
	}
	for name, v := range map[string]float64{"cpus": want.CPUs, "mem": want.MemMB, "disk": want.DiskMB, "gpus": want.GPUs} {
		if got[name] != milli(v) {
			t.Errorf("%s got %s %d/1000, wants %v", what, name, got[name], v)
		}
	}
}

// summary renders a plan as strings for comparison.
func summary(p Plan) []string {
	var out []string
	for _, l := range p.Launches {
		out = append(out, fmt.Sprintf("launch %s/%s %v executor=%s", l.AgentID.Value, l.Role, l.OfferIDs, l.Executor.Format()))
		for _, pp := range l.Pods {
			out = append(out, fmt.Sprintf("  %s %s", pp.Pod.Name, pp.Resources.Format()))
			if pp.Sandbox != nil {
				out = append(out, fmt.Sprintf("    sandbox executor %s task %s", pp.Sandbox.Executor.Format(), pp.Sandbox.Task.Format()))
			}
		}
	}
	out = append(out, fmt.Sprintf("decline %v", p.Decline))
	for _, u := range p.Unschedulable {
		out = append(out, fmt.Sprintf("unfit %s: %s", u.Pod.Name, u.Message))
	}
	for _, w := range p.Waiting {
		out = append(out, "waiting "+w.Name)
	}
	return out
}
