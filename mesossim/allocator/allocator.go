// Package allocator is the simulated Mesos master's resource allocator: weighted Dominant Resource
// Fairness across roles, then across the frameworks of a role, with per-agent offer filters
// (refuse_seconds) and per-role suppression, as Mesos' hierarchical allocator does.
//
// It is a pure data structure: no goroutines, no I/O and no clock. The master feeds it events (agents and
// frameworks come and go, resources are offered, used and recovered) and calls Allocate(now) once per
// allocation cycle; the returned offers are what the master sends. A fixed seed makes the agent visiting
// order, and therefore every cycle, reproducible.
package allocator

import (
	"math"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
)

// Config tunes an Allocator.
type Config struct {
	// Weights per role (master flag --weights); roles not listed weigh 1.
	Weights map[string]float64
	// FairSharingExcluded are resource names no DRF share counts (master flag
	// --fair_sharing_excluded_resource_names; DRFSorter's fairnessExcludeResourceNames).
	FairSharingExcluded []string
	// Seed for the per-cycle agent shuffle.
	Seed int64
	// MinCPUs and MinMem: an agent is offered only if it has at least this much free cpus OR mem
	// (Mesos' default --min_allocatable_resources=cpus:0.01|mem:32). Zero values take those defaults.
	MinCPUs, MinMem float64
}

// Offer is one allocation decision: all the free resources of one agent for one framework in one role.
// Resources carry allocation_info.role = Role, as in a Mesos 1.x offer.
type Offer struct {
	FrameworkID string
	Role        string
	AgentID     string
	Resources   mesos.Resources
}

type filter struct {
	resources mesos.Resources
	until     time.Time
}

type agentState struct {
	id        string
	total     mesos.Resources
	available mesos.Resources
	totalSc   scalars
	used      map[useKey]scalars // by framework and role
	quotaUsed map[useKey]scalars // the part of used that counts against quota
}

type useKey struct{ framework, role string }

type frameworkState struct {
	id         string
	roles      []string
	active     bool
	suppressed map[string]bool
	filters    map[string]map[string][]filter // by role, then agent ID (Mesos' offerFilters)
	alloc      map[string]scalars             // by role
	// count is how often the framework was allocated to in each role: the DRF sorter's
	// allocation.count, its tie-break between equal shares.
	count map[string]uint64
}

// scalars is a sum of scalar resources by name (cpus, mem, disk, gpus...), the quantities DRF compares.
type scalars map[string]float64

func (s scalars) add(rs mesos.Resources, sign float64) {
	for i := range rs {
		if rs[i].GetType() == mesos.SCALAR && rs[i].Scalar != nil {
			s[rs[i].Name] += sign * rs[i].Scalar.Value
			if math.Abs(s[rs[i].Name]) < 1e-9 {
				delete(s, rs[i].Name)
			}
		}
	}
}

func (s scalars) sub(o scalars) {
	for n, v := range o {
		s[n] -= v
		if math.Abs(s[n]) < 1e-9 {
			delete(s, n)
		}
	}
}

// Allocator holds the allocation state. It is not safe for concurrent use; the master serialises calls.
type Allocator struct {
	cfg        Config
	rnd        *rand.Rand
	agents     map[string]*agentState
	agentOrder []string // sorted IDs; shuffled copy per cycle
	frameworks map[string]*frameworkState
	total      scalars
	roleAlloc  map[string]scalars
	roleCount  map[string]uint64 // the role sorter's allocation.count
	// maint are the agents with an unavailability; ioFilters the inverse offer filters by framework,
	// then agent (maintenance.go).
	maint     map[string]*agentMaintenance
	ioFilters map[string]map[string]time.Time
	// quota by role (quota.go); quotaUse the unreserved non-revocable scalars offered or allocated to
	// each role, what counts against quota besides reservations.
	quota    map[string]Quota
	quotaUse map[string]scalars
}

// New returns an empty allocator.
func New(cfg Config) *Allocator {
	if cfg.MinCPUs == 0 {
		cfg.MinCPUs = 0.01
	}
	if cfg.MinMem == 0 {
		cfg.MinMem = 32
	}
	return &Allocator{
		cfg:        cfg,
		rnd:        rand.New(rand.NewSource(cfg.Seed)),
		agents:     map[string]*agentState{},
		frameworks: map[string]*frameworkState{},
		total:      scalars{},
		roleAlloc:  map[string]scalars{},
		roleCount:  map[string]uint64{},
		quotaUse:   map[string]scalars{},
	}
}

// Weight is the weight of role (1 unless configured).
func (a *Allocator) Weight(role string) float64 {
	if w, ok := a.cfg.Weights[role]; ok && w > 0 {
		return w
	}
	return 1
}

// AddAgent adds an agent with all of total free. Adding a known agent replaces its total and frees
// everything; callers re-add allocations with Allocated.
func (a *Allocator) AddAgent(id string, total mesos.Resources) {
	if _, ok := a.agents[id]; ok {
		a.RemoveAgent(id)
	}
	t := total.Clone().Unallocate()
	ag := &agentState{id: id, total: t, available: t.Clone(), used: map[useKey]scalars{}, quotaUsed: map[useKey]scalars{}, totalSc: scalars{}}
	ag.totalSc.add(t, 1)
	a.total.add(t, 1)
	a.agents[id] = ag
	i := sort.SearchStrings(a.agentOrder, id)
	a.agentOrder = slices.Insert(a.agentOrder, i, id)
}

// RemoveAgent forgets an agent and everything allocated on it.
func (a *Allocator) RemoveAgent(id string) {
	ag, ok := a.agents[id]
	if !ok {
		return
	}
	for k, s := range ag.used {
		a.roleScalars(k.role).sub(s)
		if u := a.quotaUse[k.role]; u != nil {
			u.sub(ag.quotaUsed[k])
		}
		if fw, ok := a.frameworks[k.framework]; ok && fw.alloc[k.role] != nil {
			fw.alloc[k.role].sub(s)
		}
	}
	for _, fw := range a.frameworks {
		for _, byAgent := range fw.filters {
			delete(byAgent, id)
		}
	}
	a.total.add(ag.total, -1)
	delete(a.agents, id)
	if i := sort.SearchStrings(a.agentOrder, id); i < len(a.agentOrder) && a.agentOrder[i] == id {
		a.agentOrder = slices.Delete(a.agentOrder, i, i+1)
	}
}

// AddFramework registers a framework subscribed to roles; it starts active with no role suppressed
// except those listed in suppressed (SUBSCRIBE's suppressed_roles).
func (a *Allocator) AddFramework(id string, roles []string, suppressed []string) {
	fw, ok := a.frameworks[id]
	if !ok {
		fw = &frameworkState{id: id, filters: map[string]map[string][]filter{}, alloc: map[string]scalars{}, count: map[string]uint64{}}
		a.frameworks[id] = fw
	}
	fw.roles = slices.Clone(roles)
	fw.active = true
	fw.suppressed = map[string]bool{}
	for _, r := range suppressed {
		fw.suppressed[r] = true
	}
}

// RemoveFramework forgets a framework. Its allocations must have been recovered before.
func (a *Allocator) RemoveFramework(id string) {
	fw, ok := a.frameworks[id]
	if !ok {
		return
	}
	for role, s := range fw.alloc {
		a.roleScalars(role).sub(s)
	}
	for _, ag := range a.agents {
		for k := range ag.used {
			if k.framework == id {
				delete(ag.used, k)
				if u := a.quotaUse[k.role]; u != nil {
					u.sub(ag.quotaUsed[k])
				}
				delete(ag.quotaUsed, k)
			}
		}
	}
	delete(a.frameworks, id)
}

// SetActive activates or deactivates a framework (a disconnected framework gets no offers).
func (a *Allocator) SetActive(id string, active bool) {
	if fw, ok := a.frameworks[id]; ok {
		fw.active = active
	}
}

// Suppress stops offers to the framework for roles (all its roles when empty).
func (a *Allocator) Suppress(id string, roles []string) {
	fw, ok := a.frameworks[id]
	if !ok {
		return
	}
	if len(roles) == 0 {
		roles = fw.roles
	}
	for _, r := range roles {
		fw.suppressed[r] = true
	}
}

// Revive clears the framework's filters of roles and un-suppresses them (all its roles when empty),
// as reviveRoles does: offer filters are kept per role.
func (a *Allocator) Revive(id string, roles []string) {
	fw, ok := a.frameworks[id]
	if !ok {
		return
	}
	if len(roles) == 0 {
		roles = fw.roles
	}
	for _, r := range roles {
		delete(fw.filters, r)
		delete(fw.suppressed, r)
	}
}

// UpdateFramework changes a framework's roles and suppressed roles as the hierarchical allocator's
// updateFramework does: a role left loses its filters and suppression, while what the framework still
// holds in it stays allocated to it there (Mesos keeps tracking the framework under the role until those
// resources come back); roles no longer suppressed are revived (filters cleared), and afterwards exactly
// suppressed are suppressed.
func (a *Allocator) UpdateFramework(id string, roles, suppressed []string) {
	fw, ok := a.frameworks[id]
	if !ok {
		return
	}
	for _, r := range fw.roles {
		if !slices.Contains(roles, r) {
			delete(fw.filters, r)
			delete(fw.suppressed, r)
		}
	}
	fw.roles = slices.Clone(roles)
	want := map[string]bool{}
	for _, r := range suppressed {
		want[r] = true
	}
	for r := range fw.suppressed {
		if !want[r] && slices.Contains(roles, r) {
			delete(fw.filters, r) // reviveRoles
		}
	}
	fw.suppressed = want
}

// Allocated records resources in use by a framework's role on an agent (tasks found when an agent
// re-registers, or resources the master handed out by other means).
func (a *Allocator) Allocated(agentID, frameworkID, role string, res mesos.Resources) {
	ag, ok := a.agents[agentID]
	if !ok {
		return
	}
	r := withRole(res, nil)
	ag.available = ag.available.Minus(r...)
	a.track(ag, frameworkID, role, r, 1)
}

// Recover returns resources (an unused offer, a finished task) to the agent's free pool. With
// refuse > 0 the framework will not be offered those resources on that agent again until now+refuse.
func (a *Allocator) Recover(agentID, frameworkID, role string, res mesos.Resources, refuse time.Duration, now time.Time) {
	r := withRole(res, nil)
	ag, ok := a.agents[agentID]
	if !ok {
		return // a removed agent's allocations went with it
	}
	a.track(ag, frameworkID, role, r, -1)
	if len(ag.available) == 0 {
		ag.available = cloneResources(r) // the common case (a whole agent declined): no reflection
	} else {
		ag.available.Add(r...) // Add replaces values rather than mutating shared ones
	}
	// Never exceed the total (a duplicate recovery must not create resources).
	if exceeds(ag.available, ag.totalSc) {
		ag.available = ag.total.Clone()
	}
	if fw, ok := a.frameworks[frameworkID]; ok && refuse > 0 && len(r) > 0 {
		byAgent := fw.filters[role]
		if byAgent == nil {
			byAgent = map[string][]filter{}
			fw.filters[role] = byAgent
		}
		byAgent[agentID] = append(byAgent[agentID], filter{resources: r, until: now.Add(refuse)})
	}
}

func (a *Allocator) track(ag *agentState, frameworkID, role string, r mesos.Resources, sign float64) {
	k := useKey{frameworkID, role}
	u, ok := ag.used[k]
	if !ok {
		u = scalars{}
		ag.used[k] = u
	}
	u.add(r, sign)
	if len(u) == 0 {
		delete(ag.used, k)
	}
	a.roleScalars(role).add(r, sign)
	if q := quotaScalars(r); len(q) > 0 {
		u, ok := a.quotaUse[role]
		if !ok {
			u = scalars{}
			a.quotaUse[role] = u
		}
		au, ok := ag.quotaUsed[k]
		if !ok {
			au = scalars{}
			ag.quotaUsed[k] = au
		}
		for n, v := range q {
			u[n] += sign * v
			au[n] += sign * v
			if math.Abs(u[n]) < 1e-9 {
				delete(u, n)
			}
			if math.Abs(au[n]) < 1e-9 {
				delete(au, n)
			}
		}
		if len(au) == 0 {
			delete(ag.quotaUsed, k)
		}
	}
	if sign > 0 {
		a.roleCount[role]++ // DRFSorter's allocated(): every allocation counts, none is taken back
	}
	if fw, ok := a.frameworks[frameworkID]; ok {
		if sign > 0 {
			fw.count[role]++
		}
		s, ok := fw.alloc[role]
		if !ok {
			s = scalars{}
			fw.alloc[role] = s
		}
		s.add(r, sign)
	}
}

func (a *Allocator) roleScalars(role string) scalars {
	s, ok := a.roleAlloc[role]
	if !ok {
		s = scalars{}
		a.roleAlloc[role] = s
	}
	return s
}

// share is the dominant share of alloc in the cluster (DRFSorter::calculateShare, before the weight).
func (a *Allocator) share(alloc scalars) float64 {
	var max float64
	for name, v := range alloc {
		if slices.Contains(a.cfg.FairSharingExcluded, name) {
			continue
		}
		if t := a.total[name]; t > 0 {
			if s := v / t; s > max {
				max = s
			}
		}
	}
	return max
}

// RoleShare is the weighted dominant share of a role (DRF share / weight).
func (a *Allocator) RoleShare(role string) float64 {
	return a.share(a.roleAlloc[role]) / a.Weight(role)
}

// FrameworkShare is the dominant share of a framework's allocation across its roles.
func (a *Allocator) FrameworkShare(id string) float64 {
	fw, ok := a.frameworks[id]
	if !ok {
		return 0
	}
	sum := scalars{}
	for _, s := range fw.alloc {
		for n, v := range s {
			sum[n] += v
		}
	}
	return a.share(sum)
}

func (a *Allocator) filtered(fw *frameworkState, role, agentID string, avail mesos.Resources, now time.Time) bool {
	fs := fw.filters[role][agentID]
	if len(fs) == 0 {
		return false
	}
	keep := fs[:0]
	hit := false
	for _, f := range fs {
		if !now.Before(f.until) {
			continue // expired
		}
		keep = append(keep, f)
		if containsAll(f.resources, avail) {
			hit = true
		}
	}
	if len(keep) == 0 {
		delete(fw.filters[role], agentID)
	} else {
		fw.filters[role][agentID] = keep
	}
	return hit
}

func (a *Allocator) allocatable(avail mesos.Resources) bool {
	var cpus, mem float64
	for i := range avail {
		if avail[i].Scalar == nil {
			continue
		}
		switch avail[i].Name {
		case "cpus":
			cpus += avail[i].Scalar.Value
		case "mem":
			mem += avail[i].Scalar.Value
		}
	}
	return cpus >= a.cfg.MinCPUs || mem >= a.cfg.MinMem
}

// Allocate runs one allocation cycle at time now: every agent (in a seeded random order) with
// allocatable free resources goes, whole, to the first eligible framework of the role with the lowest
// weighted DRF share (within a role: the framework with the lowest share). The returned offers are
// already accounted as allocated; unused ones come back through Recover.
func (a *Allocator) Allocate(now time.Time) []Offer {
	order := slices.Clone(a.agentOrder)
	a.rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })

	// role → frameworks subscribed to it, sorted by ID for determinism.
	byRole := map[string][]*frameworkState{}
	for _, fw := range a.frameworks {
		if !fw.active {
			continue
		}
		for _, r := range fw.roles {
			if !fw.suppressed[r] {
				byRole[r] = append(byRole[r], fw)
			}
		}
	}
	if len(byRole) == 0 {
		return nil
	}
	roles := make([]string, 0, len(byRole))
	for r, fws := range byRole {
		roles = append(roles, r)
		sort.Slice(fws, func(i, j int) bool { return fws[i].id < fws[j].id })
	}

	if len(a.quota) > 0 {
		return a.allocateWithQuota(now, order, roles, byRole)
	}
	var offers []Offer
	hierarchical := a.hierarchicalRoles(roles)
	ordered, scratch := make([]string, len(roles)), &roleSortScratch{}
	for _, id := range order {
		ag := a.agents[id]
		if len(ag.available) == 0 || !a.allocatable(ag.available) {
			continue
		}
		for _, role := range a.sortRolesInto(ordered, roles, hierarchical, scratch) {
			offerable := allocatableTo(ag.available, role)
			if len(offerable) == 0 || !a.allocatable(offerable) {
				continue
			}
			for _, fw := range a.frameworkOrder(byRole[role], role) {
				if a.filtered(fw, role, id, offerable, now) {
					continue
				}
				if len(offerable) == len(ag.available) {
					ag.available = nil
				} else {
					ag.available = ag.available.Minus(offerable...)
				}
				a.track(ag, fw.id, role, offerable, 1)
				offers = append(offers, Offer{FrameworkID: fw.id, Role: role, AgentID: id, Resources: withRole(offerable, &mesos.Resource_AllocationInfo{Role: &role})})
				break
			}
			if len(ag.available) == 0 {
				break
			}
		}
	}
	return offers
}

// sortRoles is the role sorter's order of the active roles now: DRFSorter::Node::compareDRF (weighted
// share, then allocation count, then name), over the role tree when a role is nested.
func (a *Allocator) sortRoles(roles []string, hierarchical bool) []string {
	return a.sortRolesInto(make([]string, len(roles)), roles, hierarchical, &roleSortScratch{})
}

// roleSortScratch is sortRolesInto's reusable memory (one allocation per cycle, not per agent).
type roleSortScratch struct {
	shares []float64
	counts []uint64
	idx    []int
}

func (a *Allocator) sortRolesInto(dst, roles []string, hierarchical bool, sc *roleSortScratch) []string {
	if hierarchical {
		return a.roleTreeOrder(roles)
	}
	if len(sc.idx) != len(roles) {
		sc.shares, sc.counts, sc.idx = make([]float64, len(roles)), make([]uint64, len(roles)), make([]int, len(roles))
	}
	for i, r := range roles {
		sc.shares[i], sc.counts[i], sc.idx[i] = a.RoleShare(r), a.roleCount[r], i
	}
	idx := sc.idx
	sort.SliceStable(idx, func(i, j int) bool {
		x, y := idx[i], idx[j]
		if sc.shares[x] != sc.shares[y] {
			return sc.shares[x] < sc.shares[y]
		}
		if sc.counts[x] != sc.counts[y] {
			return sc.counts[x] < sc.counts[y]
		}
		return roles[x] < roles[y]
	})
	for i, x := range idx {
		dst[i] = roles[x]
	}
	return dst
}

// frameworkOrder is a role's framework sorter: lowest share first, then fewest allocations, then ID
// (byRole's order). fws is sorted in place.
func (a *Allocator) frameworkOrder(fws []*frameworkState, role string) []*frameworkState {
	if len(fws) < 2 {
		return fws
	}
	sort.SliceStable(fws, func(i, j int) bool {
		si, sj := a.share(fws[i].alloc[role]), a.share(fws[j].alloc[role])
		if si != sj {
			return si < sj
		}
		if fws[i].count[role] != fws[j].count[role] {
			return fws[i].count[role] < fws[j].count[role]
		}
		return fws[i].id < fws[j].id
	})
	return fws
}

// hierarchicalRoles reports whether a role with offers to make, or one holding resources, is nested
// (a/b): only then does the role order need the sorter's tree.
func (a *Allocator) hierarchicalRoles(active []string) bool {
	for _, r := range active {
		if strings.Contains(r, "/") {
			return true
		}
	}
	for r, s := range a.roleAlloc {
		if len(s) > 0 && strings.Contains(r, "/") {
			return true
		}
	}
	return false
}

// roleNode is a node of the DRF sorter's role tree: a/b is a child of a. A role that also has
// children holds its own allocation in a virtual leaf "." under its node, as DRFSorter::add does.
type roleNode struct {
	path     string
	role     string // set on leaves: the role whose allocation this is
	children map[string]*roleNode
	alloc    scalars
	count    uint64
	share    float64
	active   bool // a leaf with frameworks to offer to, or an inner node above one
}

// roleTreeOrder lists the active roles as the hierarchical DRF sorter does (DRFSorter::sort): at each
// level, children by weighted share of their subtree's allocation, then allocation count, then path;
// roles in pre-order.
func (a *Allocator) roleTreeOrder(active []string) []string {
	root := &roleNode{children: map[string]*roleNode{}}
	insert := func(role string) *roleNode {
		cur := root
		for _, tok := range strings.Split(role, "/") {
			next := cur.children[tok]
			if next == nil {
				path := tok
				if cur.path != "" {
					path = cur.path + "/" + tok
				}
				next = &roleNode{path: path, children: map[string]*roleNode{}}
				cur.children[tok] = next
			}
			cur = next
		}
		return cur
	}
	leaves := map[string]bool{}
	for r, s := range a.roleAlloc {
		if len(s) > 0 {
			insert(r)
			leaves[r] = true
		}
	}
	isActive := map[string]bool{}
	for _, r := range active {
		insert(r)
		leaves[r], isActive[r] = true, true
	}
	for r := range leaves {
		n := insert(r)
		if len(n.children) == 0 {
			n.role = r
			continue
		}
		n.children["."] = &roleNode{path: n.path + "/.", role: r, children: map[string]*roleNode{}}
	}
	var fill func(n *roleNode)
	fill = func(n *roleNode) {
		n.alloc = scalars{}
		if len(n.children) == 0 {
			n.alloc.add2(a.roleAlloc[n.role])
			n.count, n.active = a.roleCount[n.role], isActive[n.role]
		}
		for _, c := range n.children {
			fill(c)
			n.alloc.add2(c.alloc)
			n.count += c.count
			n.active = n.active || c.active
		}
		n.share = a.share(n.alloc) / a.Weight(n.path)
	}
	fill(root)
	out := make([]string, 0, len(active))
	var list func(n *roleNode)
	list = func(n *roleNode) {
		kids := make([]*roleNode, 0, len(n.children))
		for _, c := range n.children {
			if c.active {
				kids = append(kids, c)
			}
		}
		sort.Slice(kids, func(i, j int) bool {
			x, y := kids[i], kids[j]
			if x.share != y.share {
				return x.share < y.share
			}
			if x.count != y.count {
				return x.count < y.count
			}
			return x.path < y.path
		})
		for _, c := range kids {
			if len(c.children) == 0 {
				out = append(out, c.role)
			} else {
				list(c)
			}
		}
	}
	list(root)
	return out
}

// add2 adds o to s.
func (s scalars) add2(o scalars) {
	for n, v := range o {
		s[n] += v
	}
}

// Available is what is free on an agent (nil for an unknown agent).
func (a *Allocator) Available(agentID string) mesos.Resources {
	if ag, ok := a.agents[agentID]; ok {
		return ag.available.Clone()
	}
	return nil
}

// withRole returns a shallow copy of rs whose resources carry allocation info ai (nil: none). The
// copies share values with rs; mesos.Resources' Plus and Minus clone before they modify.
func withRole(rs mesos.Resources, ai *mesos.Resource_AllocationInfo) mesos.Resources {
	out := make(mesos.Resources, len(rs))
	copy(out, rs)
	for i := range out {
		out[i].AllocationInfo = ai
	}
	return out
}

// cloneResources deep-copies the values Add and Subtract change (scalars, ranges, sets) without
// reflection; other fields are shared and never modified.
func cloneResources(rs mesos.Resources) mesos.Resources {
	out := make(mesos.Resources, len(rs))
	copy(out, rs)
	for i := range out {
		if v := out[i].Scalar; v != nil {
			c := *v
			out[i].Scalar = &c
		}
		if v := out[i].Ranges; v != nil {
			out[i].Ranges = &mesos.Value_Ranges{Range: append([]mesos.Value_Range(nil), v.Range...)}
		}
		if v := out[i].Set; v != nil {
			out[i].Set = &mesos.Value_Set{Item: append([]string(nil), v.Item...)}
		}
	}
	return out
}

// exceeds reports whether rs holds more of some scalar than total.
func exceeds(rs mesos.Resources, total scalars) bool {
	sum := scalars{}
	sum.add(rs, 1)
	for n, v := range sum {
		if v > total[n]+1e-9 {
			return true
		}
	}
	return false
}

// allocatableTo is the part of rs a role may be offered: unreserved resources and those reserved for it.
func allocatableTo(rs mesos.Resources, role string) mesos.Resources {
	for i := range rs {
		if !rs[i].IsAllocatableTo(role) {
			out := make(mesos.Resources, 0, len(rs))
			for j := range rs {
				if rs[j].IsAllocatableTo(role) {
					out = append(out, rs[j])
				}
			}
			return out
		}
	}
	return rs
}

// containsAll reports whether have contains every resource of want.
func containsAll(have, want mesos.Resources) bool { return rez.ContainsAll(have, want) }

// RoleInfo is a role as the master's GET_ROLES shows it.
type RoleInfo struct {
	Name string
	// Frameworks subscribed to the role or holding resources allocated to it (Mesos' Role::frameworks),
	// sorted.
	Frameworks []string
	// Allocated is what the role holds, offered resources included, by resource name.
	Allocated map[string]float64
}

// Roles lists the known roles as Master::knownRoles does (roles frameworks are subscribed to or hold
// resources in, reservation roles, roles with a weight, and their ancestors), sorted by name.
func (a *Allocator) Roles() []RoleInfo {
	known := map[string]bool{}
	frameworks := map[string][]string{}
	for id, fw := range a.frameworks {
		for _, r := range fw.roles {
			known[r] = true
			frameworks[r] = append(frameworks[r], id)
		}
		for r, s := range fw.alloc {
			if len(s) > 0 && !slices.Contains(fw.roles, r) {
				known[r] = true
				frameworks[r] = append(frameworks[r], id)
			}
		}
	}
	for _, ag := range a.agents {
		for i := range ag.total {
			if rs := ag.total[i].Reservations; len(rs) > 0 {
				known[rs[len(rs)-1].GetRole()] = true
			} else if r := ag.total[i].GetRole(); r != "" && r != "*" {
				known[r] = true
			}
		}
	}
	for r := range a.cfg.Weights {
		known[r] = true
	}
	for r := range a.quota {
		known[r] = true
	}
	for r := range known {
		for i := len(r) - 1; i > 0; i-- {
			if r[i] == '/' {
				known[r[:i]] = true
			}
		}
	}
	out := make([]RoleInfo, 0, len(known))
	for r := range known {
		alloc := map[string]float64{}
		for n, v := range a.roleAlloc[r] {
			alloc[n] = v
		}
		fws := frameworks[r]
		slices.Sort(fws)
		out = append(out, RoleInfo{Name: r, Frameworks: fws, Allocated: alloc})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
