package allocator

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func agentRes(cpus, mem float64) mesos.Resources {
	return mesos.Resources{
		rez.NewCPUs(cpus).Resource,
		rez.NewMemory(mem).Resource,
		rez.Build().Name(rez.NamePorts).Ranges(rez.BuildRanges().Span(31000, 32000).Ranges).Resource,
	}
}

// offered maps framework → sorted agent IDs it got offers for.
func offered(offers []Offer) map[string][]string {
	out := map[string][]string{}
	for _, o := range offers {
		out[o.FrameworkID] = append(out[o.FrameworkID], o.AgentID)
	}
	for _, v := range out {
		sortStrings(v)
	}
	return out
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestAllocateScenarios(t *testing.T) {
	type step struct {
		do   func(a *Allocator, last []Offer)
		at   time.Duration
		want map[string][]string
	}
	declineAll := func(refuse time.Duration, at time.Duration) func(a *Allocator, last []Offer) {
		return func(a *Allocator, last []Offer) {
			for _, o := range last {
				a.Recover(o.AgentID, o.FrameworkID, o.Role, o.Resources, refuse, t0.Add(at))
			}
		}
	}
	tests := []struct {
		name   string
		agents int
		fws    map[string][]string // framework → roles
		steps  []step
	}{
		{
			name: "one framework gets every agent", agents: 3, fws: map[string][]string{"f1": {"r"}},
			steps: []step{{want: map[string][]string{"f1": {"a0", "a1", "a2"}}}},
		},
		{
			name: "offered resources are not offered twice", agents: 2, fws: map[string][]string{"f1": {"r"}},
			steps: []step{
				{want: map[string][]string{"f1": {"a0", "a1"}}},
				{want: map[string][]string{}},
			},
		},
		{
			name:   "decline filter holds for refuse_seconds, other framework gets the agent",
			agents: 1, fws: map[string][]string{"f1": {"r1"}, "f2": {"r2"}},
			steps: []step{
				{want: map[string][]string{"f1": {"a0"}}},
				{do: declineAll(5*time.Second, 0), at: time.Second, want: map[string][]string{"f2": {"a0"}}},
				{do: declineAll(0, time.Second), at: 2 * time.Second, want: map[string][]string{"f2": {"a0"}}},
				{do: declineAll(5*time.Second, 2*time.Second), at: 3 * time.Second, want: map[string][]string{}},
				{at: 6 * time.Second, want: map[string][]string{"f1": {"a0"}}},
			},
		},
		{
			name:   "suppress stops offers, revive resumes and clears filters",
			agents: 1, fws: map[string][]string{"f1": {"r1"}},
			steps: []step{
				{do: func(a *Allocator, _ []Offer) { a.Suppress("f1", nil) }, want: map[string][]string{}},
				{do: func(a *Allocator, _ []Offer) { a.Revive("f1", []string{"r1"}) }, want: map[string][]string{"f1": {"a0"}}},
				{do: declineAll(time.Hour, 0), want: map[string][]string{}},
				{do: func(a *Allocator, _ []Offer) { a.Revive("f1", nil) }, want: map[string][]string{"f1": {"a0"}}},
			},
		},
		{
			name:   "per-role suppress of a multi-role framework",
			agents: 2, fws: map[string][]string{"f1": {"ra", "rb"}},
			steps: []step{
				{do: func(a *Allocator, _ []Offer) { a.Suppress("f1", []string{"ra"}) }, want: map[string][]string{"f1": {"a0", "a1"}}},
			},
		},
		{
			name:   "inactive framework gets nothing",
			agents: 1, fws: map[string][]string{"f1": {"r1"}},
			steps: []step{
				{do: func(a *Allocator, _ []Offer) { a.SetActive("f1", false) }, want: map[string][]string{}},
				{do: func(a *Allocator, _ []Offer) { a.SetActive("f1", true) }, want: map[string][]string{"f1": {"a0"}}},
			},
		},
		{
			name:   "removed agent frees its allocation",
			agents: 2, fws: map[string][]string{"f1": {"r1"}},
			steps: []step{
				{want: map[string][]string{"f1": {"a0", "a1"}}},
				{do: func(a *Allocator, _ []Offer) { a.RemoveAgent("a1"); a.AddAgent("a1", agentRes(4, 8192)) }, want: map[string][]string{"f1": {"a1"}}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{Seed: 1})
			for i := 0; i < tc.agents; i++ {
				a.AddAgent(fmt.Sprintf("a%d", i), agentRes(4, 8192))
			}
			for id, roles := range tc.fws {
				a.AddFramework(id, roles, nil)
			}
			var last []Offer
			for i, s := range tc.steps {
				if s.do != nil {
					s.do(a, last)
				}
				last = a.Allocate(t0.Add(s.at))
				if diff := cmp.Diff(s.want, offered(last)); diff != "" {
					t.Fatalf("step %d offers (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestOfferCarriesRoleAndAllFreeResources(t *testing.T) {
	a := New(Config{})
	total := agentRes(4, 8192)
	a.AddAgent("a0", total)
	a.AddFramework("f1", []string{"web"}, nil)
	a.Allocated("a0", "f1", "web", mesos.Resources{rez.NewCPUs(1).Resource})
	offers := a.Allocate(t0)
	if len(offers) != 1 {
		t.Fatalf("got %d offers, want 1", len(offers))
	}
	for _, r := range offers[0].Resources {
		if r.GetAllocationInfo().GetRole() != "web" {
			t.Errorf("resource %v lacks allocation role web", r)
		}
	}
	cpus, _ := rez.CPUs(offers[0].Resources...)
	if cpus != 3 {
		t.Errorf("offered cpus = %v, want 3", cpus)
	}
}

// TestWeightedDRF: two greedy frameworks in roles weighted 1 and 3 that keep everything they are offered
// end up with a 1:3 split of the cluster.
func TestWeightedDRF(t *testing.T) {
	for _, tc := range []struct {
		agents       int
		wantA, wantB int
	}{{4, 1, 3}, {12, 3, 9}, {40, 10, 30}} {
		t.Run(fmt.Sprint(tc.agents), func(t *testing.T) {
			a := New(Config{Seed: 7, Weights: map[string]float64{"light": 1, "heavy": 3}})
			for i := 0; i < tc.agents; i++ {
				a.AddAgent(fmt.Sprintf("a%02d", i), agentRes(4, 8192))
			}
			a.AddFramework("fa", []string{"light"}, nil)
			a.AddFramework("fb", []string{"heavy"}, nil)
			got := map[string]int{}
			for _, o := range a.Allocate(t0) {
				got[o.FrameworkID]++
			}
			if diff := cmp.Diff(map[string]int{"fa": tc.wantA, "fb": tc.wantB}, got); diff != "" {
				t.Errorf("agents per framework (-want +got):\n%s", diff)
			}
			if ra, rb := a.RoleShare("light"), a.RoleShare("heavy"); ra != rb {
				t.Errorf("weighted shares differ: light %v heavy %v", ra, rb)
			}
		})
	}
}

func TestDRFWithinRolePrefersLowerShare(t *testing.T) {
	a := New(Config{Seed: 3})
	for i := 0; i < 4; i++ {
		a.AddAgent(fmt.Sprintf("a%d", i), agentRes(4, 8192))
	}
	a.AddFramework("f1", []string{"r"}, nil)
	a.AddFramework("f2", []string{"r"}, nil)
	a.Allocated("a0", "f1", "r", agentRes(4, 8192)[:2])
	got := offered(a.Allocate(t0))
	// f1 already holds one agent: f2 must get two of the three free agents and f1 one.
	if len(got["f2"]) != 2 || len(got["f1"]) != 1 {
		t.Errorf("offers = %v, want f2 two agents and f1 one", got)
	}
}

func TestRecoverNeverExceedsTotal(t *testing.T) {
	a := New(Config{})
	a.AddAgent("a0", agentRes(4, 8192))
	a.AddFramework("f1", []string{"r"}, nil)
	o := a.Allocate(t0)[0]
	a.Recover("a0", "f1", "r", o.Resources, 0, t0)
	a.Recover("a0", "f1", "r", o.Resources, 0, t0) // duplicate
	cpus, _ := rez.CPUs(a.Available("a0")...)
	if cpus != 4 {
		t.Errorf("available cpus after duplicate recover = %v, want 4", cpus)
	}
}

func TestSameSeedSameOffers(t *testing.T) {
	run := func() []Offer {
		a := New(Config{Seed: 42})
		for i := 0; i < 20; i++ {
			a.AddAgent(fmt.Sprintf("a%02d", i), agentRes(4, 8192))
		}
		for _, f := range []string{"f1", "f2", "f3"} {
			a.AddFramework(f, []string{"r" + f}, nil)
		}
		return a.Allocate(t0)
	}
	first, second := run(), run()
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same seed gave different cycles:\n%s", diff)
	}
}

func TestStaticReservationsOnlyToTheirRole(t *testing.T) {
	a := New(Config{})
	res := agentRes(2, 1024)
	web := "web"
	reserved := rez.NewCPUs(2).Resource
	reserved.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: &web}}
	a.AddAgent("a0", append(res, reserved))
	a.AddFramework("batch", []string{"batch"}, nil)
	a.AddFramework("web", []string{"web"}, nil)
	got := map[string]float64{}
	for _, o := range a.Allocate(t0) {
		c, _ := rez.CPUs(o.Resources...)
		got[o.FrameworkID] += c
	}
	// batch sorts first (tie, lower name) and takes the unreserved cpus; the reserved ones go to web.
	if diff := cmp.Diff(map[string]float64{"batch": 2, "web": 2}, got); diff != "" {
		t.Errorf("cpus offered (-want +got):\n%s", diff)
	}
}

// roleOf returns the roles offered in order.
func rolesOf(offers []Offer) []string {
	var out []string
	for _, o := range offers {
		out = append(out, o.FrameworkID+"/"+o.Role)
	}
	return out
}

// TestRoleFiltersArePerRole: Mesos keeps a framework's offer filters per role (offerFilters[role]);
// reviving one role clears that role's filters only.
func TestRoleFiltersArePerRole(t *testing.T) {
	a := New(Config{Seed: 1})
	a.AddAgent("a0", agentRes(4, 8192))
	a.AddFramework("f1", []string{"ra", "rb"}, nil)
	decline := func(os []Offer) {
		for _, o := range os {
			a.Recover(o.AgentID, o.FrameworkID, o.Role, o.Resources, time.Hour, t0)
		}
	}
	steps := []struct {
		revive []string
		want   []string
	}{
		{want: []string{"f1/ra"}},
		{want: []string{"f1/rb"}}, // ra is filtered
		{want: nil},               // both filtered
		{revive: []string{"rb"}, want: []string{"f1/rb"}},
	}
	for i, s := range steps {
		if s.revive != nil {
			a.Revive("f1", s.revive)
		}
		got := a.Allocate(t0)
		if diff := cmp.Diff(s.want, rolesOf(got)); diff != "" {
			t.Fatalf("step %d (-want +got):\n%s", i, diff)
		}
		decline(got)
	}
}

// TestEqualSharesBreakTiesByAllocationCount: DRFSorter::Node::compareDRF orders equal shares by how
// often each client was allocated to, so two idle roles take turns instead of the first name always
// winning.
func TestEqualSharesBreakTiesByAllocationCount(t *testing.T) {
	a := New(Config{Seed: 1})
	a.AddAgent("a0", agentRes(4, 8192))
	a.AddFramework("f1", []string{"r1"}, nil)
	a.AddFramework("f2", []string{"r2"}, nil)
	a.AddFramework("f3", []string{"r2"}, nil)
	var got []string
	for i := 0; i < 4; i++ {
		os := a.Allocate(t0)
		got = append(got, rolesOf(os)...)
		for _, o := range os {
			a.Recover(o.AgentID, o.FrameworkID, o.Role, o.Resources, 0, t0)
		}
	}
	// r1, r2 (f2 first by ID), r1, r2 (f3: f2 was allocated to once already).
	if diff := cmp.Diff([]string{"f1/r1", "f2/r2", "f1/r1", "f3/r2"}, got); diff != "" {
		t.Fatalf("allocation order (-want +got):\n%s", diff)
	}
}

// TestUpdateFramework follows the hierarchical allocator's updateFramework: resources still held in a
// role the framework left stay allocated to it there (the role's share keeps them), the role gets no
// more offers, and the suppressed roles afterwards are exactly those of the call; a role no longer
// suppressed is revived, its filters cleared.
func TestUpdateFramework(t *testing.T) {
	a := New(Config{Seed: 1})
	a.AddAgent("a0", agentRes(4, 8192))
	a.AddAgent("a1", agentRes(4, 8192))
	a.AddFramework("f1", []string{"old"}, nil)
	first := a.Allocate(t0)
	if len(first) != 2 {
		t.Fatalf("offers %v, want both agents", rolesOf(first))
	}
	// f1 keeps a0 (a task runs there) and hands a1 back.
	for _, o := range first {
		if o.AgentID == "a1" {
			a.Recover("a1", "f1", "old", o.Resources, 0, t0)
		}
	}
	heldShare := a.RoleShare("old")
	a.UpdateFramework("f1", []string{"new", "other"}, []string{"other"})
	if got := a.RoleShare("old"); got != heldShare || got == 0 {
		t.Errorf("share of the left role %v, want the held %v", got, heldShare)
	}
	got := a.Allocate(t0)
	if diff := cmp.Diff([]string{"f1/new"}, rolesOf(got)); diff != "" {
		t.Fatalf("offers after UPDATE_FRAMEWORK (-want +got):\n%s", diff)
	}
	a.Recover(got[0].AgentID, "f1", "new", got[0].Resources, time.Hour, t0)
	if got := a.Allocate(t0); len(got) != 0 {
		t.Fatalf("offers %v while new is filtered and other suppressed", rolesOf(got))
	}
	// Unsuppressing other revives it; new stays filtered (it was not suppressed).
	a.UpdateFramework("f1", []string{"new", "other"}, nil)
	if diff := cmp.Diff([]string{"f1/other"}, rolesOf(a.Allocate(t0))); diff != "" {
		t.Fatalf("offers after unsuppressing other (-want +got):\n%s", diff)
	}
}

// TestFairSharingExcluded: --fair_sharing_excluded_resource_names leaves a resource out of every DRF
// share, so a role holding much of it is not ranked by it.
func TestFairSharingExcluded(t *testing.T) {
	for _, tc := range []struct {
		excluded []string
		want     string
	}{
		{nil, "r2"},              // r1's half of the disk outranks r2's 2/7 of the cpus
		{[]string{"disk"}, "r1"}, // by cpus only, r1 (1/7) is below r2 (2/7)
	} {
		a := New(Config{Seed: 1, FairSharingExcluded: tc.excluded})
		// a0 is held whole: r1 has 1 of 7 cpus and half the disk, r2 2 of 7 cpus.
		a.AddAgent("a0", mesos.Resources{rez.NewCPUs(3).Resource, rez.NewMemory(64).Resource, rez.NewDisk(20000).Resource})
		a.AddAgent("a1", append(agentRes(4, 8192), rez.NewDisk(20000).Resource))
		a.AddFramework("f1", []string{"r1"}, nil)
		a.AddFramework("f2", []string{"r2"}, nil)
		a.Allocated("a0", "f1", "r1", mesos.Resources{rez.NewCPUs(1).Resource, rez.NewDisk(20000).Resource})
		a.Allocated("a0", "f2", "r2", mesos.Resources{rez.NewCPUs(2).Resource, rez.NewMemory(64).Resource})
		var got []string
		for _, o := range a.Allocate(t0) {
			if o.AgentID == "a1" {
				got = append(got, o.Role)
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("excluded %v: a1 offered to %v, want %s", tc.excluded, got, tc.want)
		}
	}
}

// TestHierarchicalRoles: the DRF sorter orders roles as a tree (a/b under a): a parent competes with
// its siblings by its whole subtree's allocation and its own weight, then its children among
// themselves; a role with children holds its own allocation in a virtual leaf "." of weight 1.
func TestHierarchicalRoles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights map[string]float64
		held    map[string]float64 // role → cpus held on a0
		want    string             // role offered a1
	}{
		// Flat, eng/web and eng/batch (2 each) would go before ops (3); as a tree, eng (4) is above ops.
		{"subtree counts", nil, map[string]float64{"eng/web": 2, "eng/batch": 2, "ops": 3}, "ops"},
		// eng's weight 3 makes its 6 cpus weigh 2, below ops' 2.5 (flat: ops, below each child's 3);
		// then eng/batch before eng/web by path.
		{"parent's weight", map[string]float64{"eng": 3}, map[string]float64{"eng/web": 3, "eng/batch": 3, "ops": 2.5}, "eng/batch"},
		// A child's weight acts among its siblings: eng/web's 4 cpus weigh 1 against eng/batch's 1.5.
		{"child's weight", map[string]float64{"eng/web": 4}, map[string]float64{"eng/web": 4, "eng/batch": 1.5, "ops": 6}, "eng/web"},
		// eng's own cpus sit in the virtual leaf eng/., whose weight is 1, not eng's 10: under eng, its
		// 1.5 is above eng/web's 1 (flat: eng's 1.5 weighs 0.15, lowest).
		{"virtual leaf", map[string]float64{"eng": 10}, map[string]float64{"eng": 1.5, "eng/web": 1, "ops": 5}, "eng/web"},
		// The virtual leaf's allocation counts in eng's subtree: eng 1 + eng/web 2 is above ops' 2.5.
		{"virtual leaf in the subtree", nil, map[string]float64{"eng": 1, "eng/web": 2, "ops": 2.5}, "ops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{Seed: 1, Weights: tc.weights})
			sum := 0.0
			for _, cpus := range tc.held {
				sum += cpus
			}
			a.AddAgent("a0", mesos.Resources{rez.NewCPUs(sum).Resource}) // held whole
			for role, cpus := range tc.held {
				a.AddFramework("f-"+role, []string{role}, nil)
				a.Allocated("a0", "f-"+role, role, mesos.Resources{rez.NewCPUs(cpus).Resource})
			}
			a.AddAgent("a1", agentRes(4, 8192))
			var got []string
			for _, o := range a.Allocate(t0) {
				if o.AgentID == "a1" {
					got = append(got, o.Role)
				}
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("a1 offered to %v, want %s", got, tc.want)
			}
		})
	}
}
