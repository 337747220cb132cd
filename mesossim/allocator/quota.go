package allocator

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Quota is a role's quota as the hierarchical allocator holds it (mesos::Quota): guarantees are
// quantities Mesos keeps headroom for, limits cap what the role (its subroles' allocations counted) is
// ever offered. A name absent from Limits is unlimited; absent from Guarantees, not guaranteed.
type Quota struct {
	Guarantees map[string]float64
	Limits     map[string]float64
}

// IsDefault reports whether q is DEFAULT_QUOTA (no guarantee, no limit).
func (q Quota) IsDefault() bool { return len(q.Guarantees) == 0 && len(q.Limits) == 0 }

// SetQuota sets a role's quota (updateQuota); the default quota removes it. The master validates
// first: Mesos 1.12 accepts quota only on top-level roles.
func (a *Allocator) SetQuota(role string, q Quota) {
	if q.IsDefault() {
		delete(a.quota, role)
		return
	}
	if a.quota == nil {
		a.quota = map[string]Quota{}
	}
	a.quota[role] = Quota{Guarantees: cloneMap(q.Guarantees), Limits: cloneMap(q.Limits)}
}

// GetQuota returns a role's quota (the default one if none is set).
func (a *Allocator) GetQuota(role string) Quota { return a.quota[role] }

// QuotaRoles lists the roles with a non-default quota, sorted.
func (a *Allocator) QuotaRoles() []string {
	out := make([]string, 0, len(a.quota))
	for r := range a.quota {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func cloneMap(m map[string]float64) map[string]float64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// quotaScalars is the part of rs that counts against quota: unreserved, non-revocable scalars.
func quotaScalars(rs mesos.Resources) scalars {
	s := scalars{}
	for i := range rs {
		if isQuotaResource(&rs[i]) {
			s[rs[i].Name] += rs[i].Scalar.Value
		}
	}
	return s
}

func isQuotaResource(r *mesos.Resource) bool {
	return r.GetType() == mesos.SCALAR && r.Scalar != nil && isUnreserved(r) && r.Revocable == nil
}

func isUnreserved(r *mesos.Resource) bool {
	return len(r.Reservations) == 0 && (r.Role == nil || *r.Role == "*")
}

// reservationRole is the role a reserved resource is reserved for ("" for an unreserved one).
func reservationRole(r *mesos.Resource) string {
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].GetRole()
	}
	if r.Role != nil && *r.Role != "*" {
		return *r.Role
	}
	return ""
}

// inSubtree reports whether role is root or one of its descendants.
func inSubtree(role, root string) bool {
	return role == root || strings.HasPrefix(role, root+"/")
}

// QuotaOfferedOrConsumed is Role::quotaOfferedOrConsumed: the unreserved non-revocable scalars offered
// or allocated to the role and its subroles, plus every scalar reserved for them on any agent, whether
// allocated or not (a reservation is bound to its role).
func (a *Allocator) QuotaOfferedOrConsumed(role string) map[string]float64 {
	out := scalars{}
	for r, s := range a.quotaUse {
		if inSubtree(r, role) {
			out.add2(s)
		}
	}
	for _, ag := range a.agents {
		for i := range ag.total {
			res := &ag.total[i]
			if res.GetType() == mesos.SCALAR && res.Scalar != nil {
				if rr := reservationRole(res); rr != "" && inSubtree(rr, role) {
					out[res.Name] += res.Scalar.Value
				}
			}
		}
	}
	return out
}

// minus returns s - o, names at or below zero dropped (ResourceQuantities' operator-).
func (s scalars) minus(o map[string]float64) scalars {
	out := scalars{}
	for n, v := range s {
		if d := v - o[n]; d > 1e-9 {
			out[n] = d
		}
	}
	return out
}

// limitMinus is ResourceLimits - ResourceQuantities: each finite limit less the quantity, floored at
// zero; names without a limit stay unlimited (absent).
func limitMinus(limits map[string]float64, q map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(limits))
	for n, v := range limits {
		out[n] = math.Max(v-q[n], 0)
	}
	return out
}

// shrinkTo is shrinkResources: scalars cut down to target. With unlimited (a ResourceLimits target) a
// name absent from target is kept whole; otherwise (ResourceQuantities) it is dropped. A resource cut
// to zero is dropped.
func shrinkTo(rs mesos.Resources, target map[string]float64, unlimited bool) mesos.Resources {
	if unlimited && len(target) == 0 {
		return rs
	}
	left := make(map[string]float64, len(target))
	for n, v := range target {
		left[n] = v
	}
	var out mesos.Resources
	for i := range rs {
		r := rs[i]
		t, ok := left[r.Name]
		if !ok {
			if unlimited {
				out = append(out, r)
			}
			continue
		}
		if t <= 1e-9 || r.Scalar == nil {
			continue
		}
		if r.Scalar.Value > t {
			r.Scalar = &mesos.Value_Scalar{Value: t}
		}
		left[r.Name] = t - r.Scalar.Value
		out = append(out, r)
	}
	return out
}

// splitQuota splits available into the unreserved non-revocable scalars (what quota counts) and the
// rest (reservations, non-scalars, revocable resources), which quota never holds back.
func splitQuota(available mesos.Resources) (quotaRes, rest mesos.Resources) {
	for i := range available {
		if isQuotaResource(&available[i]) {
			quotaRes = append(quotaRes, available[i])
		} else {
			rest = append(rest, available[i])
		}
	}
	return quotaRes, rest
}

func sumScalars(rs mesos.Resources) scalars {
	s := scalars{}
	s.add(rs, 1)
	return s
}

// allocateWithQuota is __generateOffers with quota set (hierarchical.cpp, Mesos 1.12): a first stage
// offers roles with unsatisfied guarantees what helps them towards their guarantees (bursting up to
// their limits while the headroom holds), a second stage offers everyone else, every role's unreserved
// scalars shrunk to its limit, and everything shrunk so that the unreserved resources left free still
// cover every role's unsatisfied guarantee (the headroom).
func (a *Allocator) allocateWithQuota(now time.Time, order []string, roles []string, byRole map[string][]*frameworkState) []Offer {
	consumed := map[string]scalars{}
	for r := range a.quota {
		consumed[r] = scalars(a.QuotaOfferedOrConsumed(r))
	}
	// Required headroom = Σ (guarantee - consumed quota) over the roles.
	required := scalars{}
	for r, q := range a.quota {
		required.add2(scalars(q.Guarantees).minus(consumed[r]))
	}
	// Available headroom = the unallocated unreserved non-revocable resources.
	availHead := scalars{}
	for _, ag := range a.agents {
		availHead.add2(quotaScalars(ag.available))
	}

	var offers []Offer
	index := map[useKey]map[string]int{} // (framework, role) → agent → index in offers
	give := func(ag *agentState, fw *frameworkState, role string, res mesos.Resources) {
		if len(res) == len(ag.available) && containsAll(res, ag.available) {
			ag.available = nil
		} else {
			ag.available = ag.available.Minus(res...)
		}
		a.track(ag, fw.id, role, res, 1)
		k := useKey{fw.id, role}
		if i, ok := index[k][ag.id]; ok {
			// Both stages offered to the same framework, role and agent: one offer, as Mesos'
			// offerable[framework][role][agent] += toOffer.
			offers[i].Resources = offers[i].Resources.Plus(withRole(res, &mesos.Resource_AllocationInfo{Role: &role})...)
			return
		}
		if index[k] == nil {
			index[k] = map[string]int{}
		}
		index[k][ag.id] = len(offers)
		offers = append(offers, Offer{FrameworkID: fw.id, Role: role, AgentID: ag.id, Resources: withRole(res, &mesos.Resource_AllocationInfo{Role: &role})})
	}
	charge := func(role string, inc scalars) {
		for r := range consumed {
			if inSubtree(role, r) {
				consumed[r].add2(inc)
			}
		}
	}
	hierarchical := a.hierarchicalRoles(roles)

	// Stage 1: roles with unsatisfied guarantees.
	for _, id := range order {
		ag := a.agents[id]
		for _, role := range a.sortRoles(roles, hierarchical) {
			q := a.quota[role]
			if len(q.Guarantees) == 0 || len(byRole[role]) == 0 {
				continue
			}
			if len(ag.available) == 0 {
				break
			}
			unsatisfied := scalars(q.Guarantees).minus(consumed[role])
			if len(unsatisfied) == 0 {
				continue
			}
			for _, fw := range a.frameworkOrder(byRole[role], role) {
				if len(unsatisfied) == 0 {
					break
				}
				available := allocatableTo(ag.available, role)
				if len(available) == 0 {
					break
				}
				if !a.allocatable(available) {
					continue
				}
				quotaRes, rest := splitQuota(available)
				guaranteed := shrinkTo(quotaRes, unsatisfied, false)
				if len(guaranteed) == 0 {
					continue // no progress towards the guarantees here
				}
				gq := sumScalars(guaranteed)
				extra := scalarsAsResources(quotaRes, gq)
				if len(q.Limits) > 0 {
					extra = shrinkTo(extra, limitMinus(limitMinus(q.Limits, consumed[role]), gq), true)
				}
				if len(required) > 0 && len(extra) > 0 {
					extra = shrinkTo(extra, availHead.minus(required), false)
				}
				toOffer := append(append(slices.Clone(guaranteed), rest...), extra...)
				if !a.allocatable(toOffer) || a.filtered(fw, role, id, toOffer, now) {
					continue
				}
				inc := sumScalars(guaranteed)
				inc.add(extra, 1)
				give(ag, fw, role, toOffer)
				unsatisfied = unsatisfied.minus(inc)
				charge(role, inc)
				required = required.minus(gq)
				availHead = availHead.minus(inc)
			}
		}
	}

	// Stage 2: everyone, within limits and the headroom.
	order = slices.Clone(order)
	a.rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, id := range order {
		ag := a.agents[id]
		for _, role := range a.sortRoles(roles, hierarchical) {
			if len(ag.available) == 0 {
				break
			}
			limits := a.quota[role].Limits
			for _, fw := range a.frameworkOrder(byRole[role], role) {
				available := allocatableTo(ag.available, role)
				if len(available) == 0 {
					break
				}
				if !a.allocatable(available) {
					continue
				}
				quotaRes, rest := splitQuota(available)
				if len(limits) > 0 {
					quotaRes = shrinkTo(quotaRes, limitMinus(limits, consumed[role]), true)
				}
				if len(required) > 0 && len(quotaRes) > 0 {
					quotaRes = shrinkTo(quotaRes, availHead.minus(required), false)
				}
				toOffer := append(slices.Clone(rest), quotaRes...)
				if len(toOffer) == 0 || !a.allocatable(toOffer) || a.filtered(fw, role, id, toOffer, now) {
					continue
				}
				inc := sumScalars(quotaRes)
				give(ag, fw, role, toOffer)
				if _, ok := a.quota[role]; ok {
					consumed[role].add2(inc)
				}
				availHead = availHead.minus(inc)
			}
		}
	}
	return offers
}

// scalarsAsResources is rs less the quantities q, taken from rs' entries in order (Resources minus
// the shrunk guarantees).
func scalarsAsResources(rs mesos.Resources, q scalars) mesos.Resources {
	left := map[string]float64{}
	for n, v := range q {
		left[n] = v
	}
	var out mesos.Resources
	for i := range rs {
		r := rs[i]
		v := r.Scalar.Value
		if t := left[r.Name]; t > 0 {
			cut := math.Min(t, v)
			left[r.Name] = t - cut
			v -= cut
		}
		if v <= 1e-9 {
			continue
		}
		r.Scalar = &mesos.Value_Scalar{Value: v}
		out = append(out, r)
	}
	return out
}
