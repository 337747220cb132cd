package allocator

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
)

// offeredTo sums the scalars offered to each role.
func offeredTo(offers []Offer) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, o := range offers {
		if out[o.Role] == nil {
			out[o.Role] = map[string]float64{}
		}
		for _, r := range o.Resources {
			if r.Scalar != nil {
				out[o.Role][r.Name] += r.Scalar.Value
			}
		}
	}
	return out
}

func quotaAllocator(agents int, cpus, mem float64) *Allocator {
	a := New(Config{Seed: 1})
	for i := 0; i < agents; i++ {
		a.AddAgent(string(rune('a'+i)), agentRes(cpus, mem))
	}
	return a
}

// A limit caps a role's offers across allocation cycles: the agent is chopped at the limit (not skipped)
// and the rest goes to the other role.
func TestQuotaLimitCapsAllocation(t *testing.T) {
	a := quotaAllocator(2, 4, 4096)
	a.AddFramework("f1", []string{"capped"}, nil)
	a.AddFramework("f2", []string{"other"}, nil)
	a.SetQuota("capped", Quota{Limits: map[string]float64{"cpus": 3, "mem": 2048}})
	offers := a.Allocate(t0)
	got := offeredTo(offers)
	if c := got["capped"]; c["cpus"] != 3 || c["mem"] != 2048 {
		t.Errorf("capped role offered %v, want its limit cpus 3 mem 2048", c)
	}
	if o := got["other"]; o["cpus"] != 5 || o["mem"] != 6144 {
		t.Errorf("other role offered %v, want the rest (cpus 5 mem 6144)", o)
	}
	for _, o := range offers {
		if o.Role == "capped" && !hasPorts(o.Resources) {
			t.Errorf("capped role offered %v: non-scalar resources are never held back", o.Resources)
		}
	}
	// Nothing is left, and the limit holds in the next cycle as well.
	if more := a.Allocate(t0); len(more) != 0 {
		t.Errorf("second cycle offered %v", more)
	}
	// Back to the default quota: the role may have everything again.
	a.SetQuota("capped", Quota{})
	a.AddAgent("z", agentRes(4, 4096))
	a.Suppress("f2", nil)
	if got := offeredTo(a.Allocate(t0)); got["capped"]["cpus"] != 4 {
		t.Errorf("after the quota is removed the role got %v, want the whole new agent", got)
	}
}

// Consumed quota counts what the role's subroles hold: a parent at its limit through a child gets
// nothing more itself (Mesos 1.12 sets quota only on top-level roles; a child's own offers are not
// capped by its parent's limit, as there getQuota(child) is the default).
func TestQuotaLimitCountsSubroles(t *testing.T) {
	a := quotaAllocator(2, 4, 4096)
	a.AddFramework("child", []string{"eng/batch"}, nil)
	first := a.Allocate(t0)
	if got := offeredTo(first); got["eng/batch"]["cpus"] != 8 {
		t.Fatalf("child offered %v, want every agent", got)
	}
	a.SetQuota("eng", Quota{Limits: map[string]float64{"cpus": 6}})
	if got := a.QuotaOfferedOrConsumed("eng"); got["cpus"] != 8 {
		t.Errorf("eng consumes %v, want its child's 8 cpus", got)
	}
	a.AddFramework("parent", []string{"eng"}, nil)
	// The child gives one agent back: eng consumes 4 cpus, so eng itself may get 2 of the 4 freed.
	a.Recover(first[0].AgentID, "child", "eng/batch", first[0].Resources, 0, t0)
	a.Suppress("child", nil)
	if got := offeredTo(a.Allocate(t0)); got["eng"]["cpus"] != 2 {
		t.Errorf("eng offered %v, want 2 cpus (limit 6 less 4 held by eng/batch)", got)
	}
}

// A guarantee holds back headroom: with a role guaranteed 4 cpus and none of its frameworks asking,
// a greedy framework of another role gets everything except those 4 cpus, and the guaranteed role's
// framework gets them once it subscribes.
func TestQuotaGuaranteeKeepsHeadroom(t *testing.T) {
	a := quotaAllocator(3, 4, 4096)
	a.SetQuota("tenant", Quota{Guarantees: map[string]float64{"cpus": 4, "mem": 1024}, Limits: map[string]float64{"cpus": 4, "mem": 1024}})
	a.AddFramework("batch", []string{"batch"}, nil)
	got := offeredTo(a.Allocate(t0))
	if b := got["batch"]; b["cpus"] != 8 || b["mem"] != 3*4096-1024 {
		t.Errorf("batch offered %v, want all but the guarantee (cpus 8, mem 11264)", b)
	}
	a.AddFramework("t", []string{"tenant"}, nil)
	got = offeredTo(a.Allocate(t0))
	if tn := got["tenant"]; tn["cpus"] != 4 || tn["mem"] != 1024 {
		t.Errorf("tenant offered %v, want its guarantee", tn)
	}
}

// Without quota, the same greedy framework takes every agent whole: the headroom above is the quota's.
func TestNoQuotaNoHeadroom(t *testing.T) {
	a := quotaAllocator(3, 4, 4096)
	a.AddFramework("batch", []string{"batch"}, nil)
	if got := offeredTo(a.Allocate(t0)); got["batch"]["cpus"] != 12 {
		t.Errorf("batch offered %v, want all 12 cpus", got)
	}
}

// Stage 1 serves a guarantee before DRF: a role with a guarantee and a bigger share than its peer
// still gets its guarantee first; reservations count as consumed quota.
func TestQuotaGuaranteeFirstAndReservations(t *testing.T) {
	a := New(Config{Seed: 3})
	reserved := rez.NewCPUs(2).Resource
	reserved.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: strPtr("g")}}
	a.AddAgent("r", mesos.Resources{reserved, rez.NewMemory(1024).Resource})
	a.AddAgent("u", agentRes(4, 4096))
	a.SetQuota("g", Quota{Guarantees: map[string]float64{"cpus": 3}})
	if got := a.QuotaOfferedOrConsumed("g"); !cmp.Equal(got, map[string]float64{"cpus": 2}) {
		t.Errorf("consumed %v, want the 2 reserved cpus", got)
	}
	a.AddFramework("g1", []string{"g"}, nil)
	a.AddFramework("o1", []string{"o"}, nil)
	offers := a.Allocate(t0)
	got := offeredTo(offers)
	// g: its reservation, plus 1 unreserved cpu to reach 3 in stage 1, plus bursting (no limit) only
	// as far as the headroom allows — none is needed once the guarantee is met.
	if got["g"]["cpus"] < 3 {
		t.Errorf("g offered %v, want at least its 3 cpus guarantee", got)
	}
	if total := got["g"]["cpus"] + got["o"]["cpus"]; total != 6 {
		t.Errorf("offered %v, want all 6 cpus", got)
	}
}

func strPtr(s string) *string { return &s }

func TestShrinkTo(t *testing.T) {
	rs := agentRes(4, 4096)
	sum := func(rs mesos.Resources) map[string]float64 { return sumScalars(rs) }
	if got := sum(shrinkTo(rs, map[string]float64{"cpus": 1}, false)); !cmp.Equal(got, map[string]float64{"cpus": 1}) {
		t.Errorf("quantities target: %v (absent names are dropped)", got)
	}
	if got := shrinkTo(rs, map[string]float64{"cpus": 1}, true); len(got) != 3 || sum(got)["cpus"] != 1 || sum(got)["mem"] != 4096 {
		t.Errorf("limits target: %v (absent names are unlimited)", got)
	}
	if got := sum(shrinkTo(rs, map[string]float64{"cpus": 0}, true)); got["cpus"] != 0 {
		t.Errorf("a zero limit drops the resource: %v", got)
	}
}

func hasPorts(rs mesos.Resources) bool {
	for _, r := range rs {
		if r.Name == "ports" {
			return true
		}
	}
	return false
}
