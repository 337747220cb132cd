package framework

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// burstAllocator plays the master's allocator to the framework in simulated time, as Mesos' (and
// mesossim's) does: every allocation interval each agent without an outstanding offer, not filtered
// and with the framework not suppressed is offered all it has free; ACCEPT and DECLINE return what
// they leave unused, filtered for their refuse_seconds (Mesos' default 5 s when unset); REVIVE clears
// the filters and allocates at once (HierarchicalAllocatorProcess::reviveOffers → generateOffers).
type burstAllocator struct {
	f           *fixture
	interval    time.Duration
	next        time.Time
	seen        int // calls of f.caller handled
	seq         int
	suppressed  bool
	agents      []*burstAgent
	outstanding map[string]*burstAgent // offer ID → agent
	accepts     int
	launched    map[string]time.Time // task ID → when its ACCEPT was seen
}

type burstAgent struct {
	id, host       string
	cpus, mem      float64
	filteredUntil  time.Time
	executor       bool
	offerOutstandi bool
}

func (al *burstAllocator) allocate(now time.Time) {
	if al.suppressed {
		return
	}
	var offers []mesos.Offer
	for _, a := range al.agents {
		if a.offerOutstandi || now.Before(a.filteredUntil) {
			continue
		}
		al.seq++
		id := fmt.Sprintf("o%d", al.seq)
		var execs []string
		if a.executor {
			execs = []string{ExecutorID}
		}
		offers = append(offers, offer(id, a.id, a.host, a.cpus, a.mem, execs...))
		al.outstanding[id] = a
		a.offerOutstandi = true
	}
	if len(offers) > 0 {
		al.f.offers(offers...)
	}
}

// handle answers the calls the framework made since the last time.
func (al *burstAllocator) handle(now time.Time) {
	al.f.caller.mu.Lock()
	calls := slices.Clone(al.f.caller.calls[al.seen:])
	al.seen = len(al.f.caller.calls)
	al.f.caller.mu.Unlock()
	revive := false
	for _, c := range calls {
		refuse := func(fs *mesos.Filters) time.Duration {
			if fs == nil || fs.RefuseSeconds == nil {
				return 5 * time.Second
			}
			return time.Duration(*fs.RefuseSeconds * float64(time.Second))
		}
		switch c.GetType() {
		case scheduler.Call_ACCEPT:
			al.accepts++
			ac := c.GetAccept()
			var a *burstAgent
			for _, id := range ac.OfferIDs {
				if a = al.outstanding[id.Value]; a != nil {
					delete(al.outstanding, id.Value)
				}
			}
			if a == nil {
				continue
			}
			a.offerOutstandi = false
			a.filteredUntil = now.Add(refuse(ac.Filters))
			for _, op := range ac.Operations {
				for _, ti := range op.GetLaunch().GetTaskInfos() {
					al.launched[ti.TaskID.Value] = now
					rs := ti.Resources
					if ti.Executor != nil && !a.executor {
						a.executor = true
						rs = append(slices.Clone(rs), ti.Executor.Resources...)
					}
					for _, r := range rs {
						switch r.Name {
						case "cpus":
							a.cpus -= r.GetScalar().GetValue()
						case "mem":
							a.mem -= r.GetScalar().GetValue()
						}
					}
				}
			}
		case scheduler.Call_DECLINE:
			d := c.GetDecline()
			for _, id := range d.OfferIDs {
				if a := al.outstanding[id.Value]; a != nil {
					delete(al.outstanding, id.Value)
					a.offerOutstandi = false
					a.filteredUntil = now.Add(refuse(d.Filters))
				}
			}
		case scheduler.Call_REVIVE:
			al.suppressed = false
			for _, a := range al.agents {
				a.filteredUntil = time.Time{}
			}
			revive = true
		case scheduler.Call_SUPPRESS:
			al.suppressed = true
		}
	}
	if revive {
		al.allocate(now)
	}
}

// BenchmarkBurstPlacement replays issue 13's benchmark shape in simulated time, without the noise of a
// shared machine: 1,000 pods of 10m/8Mi created at 500/s onto 100 agents of 4 cpus and 8 GiB (Nodes
// with the bench's allocatable), Mesos allocating every second, the framework's cycle run every 10 ms
// of simulated time (its loop runs one whenever offers or pods arrive). API calls cost nothing here:
// what it measures is how placement and the offer cycle shape the ACCEPTs, i.e. the bound at high
// client limits. Reported: ACCEPTs per pod, simulated pods launched per second (first create to last
// launch) and the p99 of create → ACCEPT, in simulated seconds.
func BenchmarkBurstPlacement(b *testing.B) {
	const agents, pods, perStep = 100, 1000, 5 // 5 pods per 10 ms: 500/s
	const step = 10 * time.Millisecond
	var accepts, rate, p99 float64
	for i := 0; i < b.N; i++ {
		f := newFixtureWith(&testing.T{}, fake.NewSimpleClientset(), State{}) //nolint:staticcheck // see BenchmarkCycle
		f.subscribe("fw-1")
		al := &burstAllocator{f: f, interval: time.Second, next: f.clock.Now(), outstanding: map[string]*burstAgent{},
			launched: map[string]time.Time{}}
		for a := range agents {
			host := fmt.Sprintf("h%d", a)
			n := agentNode(host, fmt.Sprintf("a%d", a))
			n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3900m"),
				corev1.ResourceMemory: resource.MustParse("8096Mi"), corev1.ResourcePods: resource.MustParse("110")}
			f.addNode(n)
			al.agents = append(al.agents, &burstAgent{id: fmt.Sprintf("a%d", a), host: host, cpus: 4, mem: 8192})
		}
		created := map[string]time.Time{}
		start := f.clock.Now()
		for p := 0; len(al.launched) < pods; {
			now := f.clock.Now()
			if now.Sub(start) > 5*time.Minute {
				b.Fatalf("only %d of %d pods launched after 5 simulated minutes", len(al.launched), pods)
			}
			for k := 0; k < perStep && p < pods; k++ {
				uid := fmt.Sprintf("uid-%d", p)
				f.addPod(pod(fmt.Sprintf("p%d", p), uid, func(po *corev1.Pod) {
					po.CreationTimestamp = metav1.NewTime(now)
					po.Spec.Containers[0].Resources.Requests = corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("8Mi")}
				}))
				created[taskIDPrefix+uid] = now
				p++
			}
			f.drain()
			if !now.Before(al.next) {
				al.allocate(now)
				al.next = al.next.Add(al.interval)
			}
			f.s.cycleAndLaunch(f.ctx)
			al.handle(now)
			f.clock.Step(step)
		}
		var lat []float64
		last := start
		for id, at := range al.launched {
			lat = append(lat, at.Sub(created[id]).Seconds())
			if at.After(last) {
				last = at
			}
		}
		sort.Float64s(lat)
		accepts = float64(al.accepts) / pods
		rate = pods / (last.Sub(start) + step).Seconds()
		p99 = lat[(len(lat)*99+99)/100-1]
	}
	b.ReportMetric(accepts, "ACCEPTs/pod")
	b.ReportMetric(rate, "sim-pods/s")
	b.ReportMetric(p99, "sim-p99-s")
}
