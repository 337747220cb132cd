package mesossim

import (
	"fmt"
	"runtime"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
)

// BenchmarkClusterAllocationCycle: a Cluster of N real simulated agents (each with its own HTTP
// endpoint) and 5 frameworks in 5 weighted roles. One op = one allocation cycle through the master
// (allocator, offer bookkeeping, OFFERS events encoded as protobuf) plus the frameworks declining every
// offer. Reported: ns/op (cycle time), offers/op, and the heap held by the whole cluster per agent.
func BenchmarkClusterAllocationCycle(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c, err := StartCluster(ClusterConfig{
				Master: Config{Log: quietLog(), Weights: map[string]float64{"r1": 1, "r2": 2, "r3": 3, "r4": 4, "r5": 5}},
				Agents: n, AgentAttributes: "rack:r%d", WorkDir: b.TempDir(),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			m := c.Master
			streams := make([]*stream, 5)
			for i := range streams {
				role := fmt.Sprintf("r%d", i+1)
				streams[i] = newStream(mediaProtobuf)
				m.subscribe(streams[i], &scheduler.Call_Subscribe{FrameworkInfo: &mesos.FrameworkInfo{User: "u", Name: role, Role: &role}})
				streams[i].take()
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			refuse := 0.0
			b.ReportAllocs()
			b.ResetTimer()
			offers := 0
			for i := 0; i < b.N; i++ {
				offers += m.Allocate()
				for _, s := range streams {
					for range s.take() {
					}
				}
				m.lock()
				var ids []mesos.OfferID
				fws := map[string][]mesos.OfferID{}
				for id, o := range m.offers {
					fws[o.offer.FrameworkID.Value] = append(fws[o.offer.FrameworkID.Value], mesos.OfferID{Value: id})
				}
				m.unlock()
				for _, s := range streams {
					ids = fws[s.frameworkID]
					if len(ids) == 0 {
						continue
					}
					call := &scheduler.Call{Type: scheduler.Call_DECLINE, FrameworkID: &mesos.FrameworkID{Value: s.frameworkID},
						Decline: &scheduler.Call_Decline{OfferIDs: ids, Filters: &mesos.Filters{RefuseSeconds: &refuse}}}
					if code, msg := m.handleCall(s.id, "", call); code != 202 {
						b.Fatalf("decline: %d %s", code, msg)
					}
				}
			}
			b.StopTimer()
			if offers/b.N != n {
				b.Fatalf("%d offers per cycle, want %d", offers/b.N, n)
			}
			b.ReportMetric(float64(offers)/float64(b.N), "offers/op")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-bytes/agent")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heap-MB")
		})
	}
}
