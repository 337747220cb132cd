package framework

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// BenchmarkCycle measures one placement cycle of the framework: pending pods onto held offers,
// Binding every pod (fake API server) and building the ACCEPTs (fake Mesos), i.e. the framework's own
// cost on top of offerbridge.Place.
func BenchmarkCycle(b *testing.B) {
	for _, size := range []struct{ pods, agents int }{{100, 10}, {1000, 100}} {
		b.Run(fmt.Sprintf("pods=%d/agents=%d", size.pods, size.agents), func(b *testing.B) {
			b.ReportAllocs()
			launched := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				// The field-managing fake clientset costs far more per write than the framework itself;
				// the simple one keeps the measurement on the framework.
				f := newFixtureWith(&testing.T{}, fake.NewSimpleClientset(), State{}) //nolint:staticcheck

				for p := 0; p < size.pods; p++ {
					f.addPod(pod(fmt.Sprintf("p%d", p), fmt.Sprintf("uid-%d", p)))
				}
				f.subscribe("fw-1")
				f.drain()
				offers := make([]mesos.Offer, size.agents)
				for a := range offers {
					offers[a] = offer(fmt.Sprintf("o%d", a), fmt.Sprintf("a%d", a), fmt.Sprintf("h%d", a), 64, 65536)
				}
				f.offers(offers...)
				b.StartTimer()
				f.s.cycleAndLaunch(f.ctx)
				b.StopTimer()
				launched += len(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT)))
			}
			if launched != b.N*size.pods {
				b.Fatalf("launched %d pods in %d cycles, want %d each", launched, b.N, size.pods)
			}
			b.ReportMetric(float64(size.pods), "pods/cycle")
		})
	}
}

// BenchmarkCycleWithAPILatency is BenchmarkCycle with 2 ms per Binding, about a real API server's
// latency: Bindings run 16 at a time, so 100 pods take far less than 100 × 2 ms.
func BenchmarkCycleWithAPILatency(b *testing.B) {
	const pods, agents = 100, 10
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		kube := fake.NewSimpleClientset() //nolint:staticcheck // see BenchmarkCycle
		kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() == "binding" {
				time.Sleep(2 * time.Millisecond)
			}
			return false, nil, nil
		})
		f := newFixtureWith(&testing.T{}, kube, State{})
		for p := 0; p < pods; p++ {
			f.addPod(pod(fmt.Sprintf("p%d", p), fmt.Sprintf("uid-%d", p)))
		}
		f.subscribe("fw-1")
		f.drain()
		offers := make([]mesos.Offer, agents)
		for a := range offers {
			offers[a] = offer(fmt.Sprintf("o%d", a), fmt.Sprintf("a%d", a), fmt.Sprintf("h%d", a), 64, 65536)
		}
		f.offers(offers...)
		b.StartTimer()
		f.s.cycleAndLaunch(f.ctx)
		b.StopTimer()
		if n := len(launchedTasks(f.caller.ofType(scheduler.Call_ACCEPT))); n != pods {
			b.Fatalf("launched %d pods, want %d", n, pods)
		}
	}
	b.ReportMetric(pods, "pods/cycle")
}

// BenchmarkHeartbeatRound measures one Lease renewal round for 1,000 active, synced agents (fake API
// server without latency): the framework's cost of standing in for 1,000 kubelets.
func BenchmarkHeartbeatRound(b *testing.B) {
	const agents = 1000
	kube := fake.NewSimpleClientset() //nolint:staticcheck // see BenchmarkCycle
	clk := clocktesting.NewFakeClock(t0)
	log := quiet()
	c := newNodeController(kube, clk, 40*time.Second, 0.1, 64, log)
	c.SetOwner("fw-1", nil)
	for i := 0; i < agents; i++ {
		o := offer(fmt.Sprintf("o%d", i), fmt.Sprintf("a%d", i), fmt.Sprintf("h%d", i), 4, 4096)
		c.ObserveOffer(&o)
	}
	ctx := context.Background()
	c.SyncAll(ctx, true)
	clk.Step(10 * time.Second)
	c.SyncAll(ctx, true)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clk.Step(10 * time.Second)
		c.SyncAll(ctx, true)
	}
	b.ReportMetric(agents, "agents/round")
}

// BenchmarkPlacementNodes measures placement's view of the Nodes each cycle: 5,000 Nodes in the cache,
// half of them another framework's, sorted into ours (by agent ID) and the others'.
func BenchmarkPlacementNodes(b *testing.B) {
	const nodes = 5000
	f := newFixtureWith(&testing.T{}, fake.NewSimpleClientset(), State{FrameworkID: "fw-1"}) //nolint:staticcheck // see BenchmarkCycle
	for i := 0; i < nodes; i++ {
		owner := "fw-1"
		if i%2 == 1 {
			owner = "fw-other"
		}
		f.addNode(frameworkNode(fmt.Sprintf("h%d", i), fmt.Sprintf("a%d", i), owner))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ours, foreign := f.s.placementNodes()
		if len(ours) != nodes/2 || len(foreign) != nodes/2 {
			b.Fatalf("ours %d, foreign %d", len(ours), len(foreign))
		}
	}
	b.ReportMetric(nodes, "nodes/cycle")
}

// BenchmarkBoundPods measures what every cycle gets as the bound pods: 10,000 pods bound in the
// cache and 5,000 launched ones whose Bindings the cache does not show yet (assumed). The assumed
// pods are copied once, at launch, not at each call (B/op).
func BenchmarkBoundPods(b *testing.B) {
	const bound, assumed = 10000, 5000
	f := newFixtureWith(&testing.T{}, fake.NewSimpleClientset(), State{FrameworkID: "fw-1"}) //nolint:staticcheck // see BenchmarkCycle
	for i := 0; i < bound+assumed; i++ {
		p := pod(fmt.Sprintf("p%d", i), fmt.Sprintf("uid-%d", i))
		if i < bound {
			p.Spec.NodeName = fmt.Sprintf("h%d", i%1000)
		}
		if err := f.podIndex.Add(f.cacheForm.compactPod(p)); err != nil {
			b.Fatal(err)
		}
		if i >= bound {
			f.s.mu.Lock()
			f.s.assumeLocked(p, "h0")
			f.s.mu.Unlock()
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := len(f.s.boundPods()); n != bound+assumed {
			b.Fatalf("%d bound pods, want %d", n, bound+assumed)
		}
	}
}
