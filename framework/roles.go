package framework

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubemesos/kubemesos/internal/mesosrole"
	"github.com/kubemesos/kubemesos/offerbridge"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// RoleAnnotation on a namespace names the Mesos role its pods run in: they are placed only on
// resources Mesos allocated to that role, so Mesos' weights (and quota) make each namespace a DRF
// peer of the other frameworks. Namespaces without it use --default-role.
const RoleAnnotation = "kubemesos.io/mesos-role"

// EventInvalidMesosRole is the Warning event on a namespace whose RoleAnnotation is no valid Mesos role.
const EventInvalidMesosRole = "InvalidMesosRole"

// roleDebounce is how long the roles in use must stay the same before UPDATE_FRAMEWORK tells Mesos:
// annotating several namespaces at once costs one call, and a role flapping costs none.
const roleDebounce = time.Second

// namespaceRole is the role of a namespace's pods: its RoleAnnotation, validated as Mesos validates
// role names (roles::validate), else def.
func namespaceRole(ns *corev1.Namespace, def string) (string, error) {
	r, ok := ns.Annotations[RoleAnnotation]
	if !ok {
		return def, nil
	}
	if err := mesosrole.Validate(r); err != nil {
		return "", fmt.Errorf("annotation %s=%q of namespace %s is not a valid Mesos role: %v", RoleAnnotation, r, ns.Name, err)
	}
	return r, nil
}

// rolesInUse is what the framework subscribes to: the static roles (--roles and --default-role) and
// every role a namespace names, sorted and without duplicates.
func rolesInUse(static []string, def string, namespaces []*corev1.Namespace) []string {
	out := append(slices.Clone(static), def)
	for _, ns := range namespaces {
		if r, err := namespaceRole(ns, def); err == nil {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// roleSubscription is the set of roles Mesos has for the framework and the debounce of changes to it.
type roleSubscription struct {
	current []string // as sent with the last SUBSCRIBE or UPDATE_FRAMEWORK
	want    []string // the roles in use that differ from current, since `since`
	since   time.Time
}

// next returns the roles to send with UPDATE_FRAMEWORK once the roles in use have differed from the
// current ones, the same way, for roleDebounce.
func (r *roleSubscription) next(want []string, now time.Time) ([]string, bool) {
	if slices.Equal(want, r.current) {
		r.want = nil
		return nil, false
	}
	if !slices.Equal(want, r.want) {
		r.want, r.since = slices.Clone(want), now
	}
	if now.Sub(r.since) < roleDebounce {
		return nil, false
	}
	return slices.Clone(r.want), true
}

// roleFlow is the suppress/revive state per subscribed role: Mesos suppresses and filters per role.
type roleFlow struct {
	suppressed map[string]bool
	filtered   map[string]bool
}

// decide applies offerbridge.DecideOffers to every role: roles to revive and roles to suppress.
// pending counts the pods waiting per role; newPending and filtered apply to every role.
func (f *roleFlow) decide(roles []string, pending map[string]int, newPending bool) (revive, suppress []string) {
	for _, r := range roles {
		switch offerbridge.DecideOffers(offerbridge.OfferFlow{Pending: pending[r], Suppressed: f.suppressed[r],
			NewPending: newPending && pending[r] > 0, Filtered: f.filtered[r]}) {
		case offerbridge.Revive:
			revive = append(revive, r)
		case offerbridge.Suppress:
			suppress = append(suppress, r)
		}
	}
	return revive, suppress
}

// roleState is the framework's side of namespaces as roles. Its own lock: it is used by the placement
// loop and by SUBSCRIBE attempts.
type roleState struct {
	static []string
	def    string

	mu     sync.Mutex
	sub    roleSubscription
	flow   roleFlow
	warned map[string]string // namespace → the invalid annotation value a Warning was recorded for
}

func newRoleState(cfg Config) *roleState {
	r := &roleState{static: slices.Clone(cfg.Roles), def: cfg.defaultRole(),
		flow: roleFlow{suppressed: map[string]bool{}, filtered: map[string]bool{}}, warned: map[string]string{}}
	// Until a SUBSCRIBE says otherwise (FrameworkInfo), the roles are the static ones.
	r.sub.current = rolesInUse(r.static, r.def, nil)
	return r
}

// namespaces lists the namespaces, none without a lister.
func (s *sched) namespaceList() []*corev1.Namespace {
	if s.placement.namespaces == nil {
		return nil
	}
	nss, err := s.placement.namespaces.List(labels.Everything())
	if err != nil {
		return nil
	}
	return nss
}

// subscribeRoles returns the roles for the next SUBSCRIBE (the roles in use now) and records them as
// Mesos' after it: SUBSCRIBE replaces a framework's roles, and leaves none suppressed.
func (s *sched) subscribeRoles() []string {
	roles := rolesInUse(s.roles.static, s.roles.def, s.namespaceList())
	s.roles.mu.Lock()
	s.roles.sub = roleSubscription{current: slices.Clone(roles)}
	s.roles.flow = roleFlow{suppressed: map[string]bool{}, filtered: map[string]bool{}}
	s.roles.mu.Unlock()
	return roles
}

// rolesCycle is the roles' part of a placement cycle: UPDATE_FRAMEWORK when the roles in use changed,
// pods of namespaces with an invalid role marked unschedulable, per-role REVIVE and SUPPRESS. It
// returns the pending pods that can be placed now and the role of a pod ("" for one whose namespace's
// role is invalid, or not yet subscribed: UPDATE_FRAMEWORK adds it after roleDebounce).
func (s *sched) rolesCycle(ctx context.Context, pods []*corev1.Pod, now time.Time) ([]*corev1.Pod, func(*corev1.Pod) string) {
	nss := s.namespaceList()
	s.updateRoles(ctx, rolesInUse(s.roles.static, s.roles.def, nss), now)

	byName := make(map[string]*corev1.Namespace, len(nss))
	for _, ns := range nss {
		byName[ns.Name] = ns
	}
	s.roles.mu.Lock()
	subscribed := slices.Clone(s.roles.sub.current)
	s.roles.mu.Unlock()
	roleOf := func(pod *corev1.Pod) string {
		role := s.roles.def
		if ns := byName[pod.Namespace]; ns != nil {
			r, err := namespaceRole(ns, s.roles.def)
			if err != nil {
				return ""
			}
			role = r
		}
		if !slices.Contains(subscribed, role) {
			return ""
		}
		return role
	}
	var placeable []*corev1.Pod
	for _, pod := range pods {
		if ns := byName[pod.Namespace]; ns != nil {
			if _, err := namespaceRole(ns, s.roles.def); err != nil {
				s.invalidRole(ctx, ns, pod, err, now)
				continue
			}
		}
		if roleOf(pod) != "" {
			placeable = append(placeable, pod)
		}
	}
	// A role's demand is every pod waiting for it, backing off or not: suppressing a role whose pods
	// back off would give its fair share away until they retry, and Mesos' DRF would hand it to the
	// other roles for good (what they take, they keep).
	pending := map[string]int{}
	s.mu.Lock()
	for key := range s.pending {
		ns, _ := splitKey(key)
		role := s.roles.def
		if n := byName[ns]; n != nil {
			r, err := namespaceRole(n, s.roles.def)
			if err != nil {
				continue
			}
			role = r
		}
		pending[role]++
	}
	s.mu.Unlock()

	s.mu.Lock()
	newPending, filtered := s.newPending, s.filtered
	s.newPending, s.filtered = false, false
	s.mu.Unlock()
	s.roles.mu.Lock()
	if filtered {
		// A DECLINE with a refuse filter since the last cycle: its offers' roles are no longer known
		// here, so every role counts as filtered until revived.
		for _, r := range subscribed {
			s.roles.flow.filtered[r] = true
		}
	}
	revive, suppress := s.roles.flow.decide(subscribed, pending, newPending)
	s.roles.mu.Unlock()

	if len(revive) > 0 {
		if err := s.call(ctx, calls.ReviveWith(revive)); err != nil {
			s.log.WithError(err).WithField("roles", revive).Warn("revive")
		} else {
			s.log.WithFields(logrus.Fields{"roles": revive, "pending": len(pods)}).Debug("revived offers")
			s.roles.mu.Lock()
			for _, r := range revive {
				s.roles.flow.suppressed[r], s.roles.flow.filtered[r] = false, false
			}
			s.roles.mu.Unlock()
		}
	}
	if len(suppress) > 0 {
		if err := s.call(ctx, calls.SuppressWith(suppress)); err != nil {
			s.log.WithError(err).WithField("roles", suppress).Warn("suppress")
		} else {
			s.log.WithField("roles", suppress).Debug("suppressed offers: nothing pending")
			s.roles.mu.Lock()
			for _, r := range suppress {
				s.roles.flow.suppressed[r] = true
			}
			s.roles.mu.Unlock()
		}
	}
	s.roles.mu.Lock()
	all := len(subscribed) > 0
	for _, r := range subscribed {
		all = all && s.roles.flow.suppressed[r]
	}
	s.roles.mu.Unlock()
	s.mu.Lock()
	s.suppressed = all
	s.mu.Unlock()
	return placeable, roleOf
}

// updateRoles sends UPDATE_FRAMEWORK when the roles in use have changed for roleDebounce. Mesos keeps
// the tasks of a role left running, and counts what they hold against that role until they end
// (the allocator keeps tracking the framework under it); only its offers are rescinded. So a role is
// left as soon as no namespace names it.
func (s *sched) updateRoles(ctx context.Context, want []string, now time.Time) {
	s.roles.mu.Lock()
	roles, ok := s.roles.sub.next(want, now)
	var suppressed []string
	for _, r := range roles {
		if s.roles.flow.suppressed[r] {
			suppressed = append(suppressed, r) // UPDATE_FRAMEWORK revives every role it does not list
		}
	}
	s.roles.mu.Unlock()
	if !ok {
		return
	}
	fi := s.frameworkInfo
	s.mu.Lock()
	fi.ID = &mesos.FrameworkID{Value: s.state.FrameworkID} // must equal the call's framework_id
	s.mu.Unlock()
	fi.Roles = roles
	err := s.call(ctx, calls.UpdateFramework(fi, func(u *scheduler.Call_UpdateFramework) { u.SuppressedRoles = suppressed }))
	if err != nil {
		s.log.WithError(err).WithField("roles", roles).Warn("UPDATE_FRAMEWORK")
		return
	}
	s.log.WithFields(logrus.Fields{"roles": roles, "suppressed": suppressed}).Info("Mesos roles updated")
	s.roles.mu.Lock()
	s.roles.sub = roleSubscription{current: roles}
	for r := range s.roles.flow.suppressed {
		if !slices.Contains(roles, r) {
			delete(s.roles.flow.suppressed, r)
		}
	}
	for r := range s.roles.flow.filtered {
		if !slices.Contains(roles, r) {
			delete(s.roles.flow.filtered, r)
		}
	}
	s.roles.mu.Unlock()
}

// invalidRole keeps a pod of a namespace with an invalid role Pending: a Warning on the namespace (once
// per annotation value) and, on the pod, FailedScheduling and PodScheduled=False with the reason.
func (s *sched) invalidRole(ctx context.Context, ns *corev1.Namespace, pod *corev1.Pod, err error, now time.Time) {
	value := ns.Annotations[RoleAnnotation]
	s.roles.mu.Lock()
	warn := s.roles.warned[ns.Name] != value
	s.roles.warned[ns.Name] = value
	s.roles.mu.Unlock()
	if warn {
		s.recorder.Eventf(ns, corev1.EventTypeWarning, EventInvalidMesosRole, "%v: pods of the namespace stay Pending", err)
	}
	s.unschedulable(ctx, &offerbridge.Unfit{Pod: pod, Message: err.Error(), Reasons: map[string]int{EventInvalidMesosRole: 1}, Unresolvable: true}, now)
}

// retryForOffers brings back, from their back-off, the pending pods of an offer's role that the offer
// may place: kube-scheduler likewise requeues a pod as soon as an event may make it schedulable (its
// queueing hints on Node changes), rather than when its back-off ends, and for a framework the event is
// an offer. Such pods are those
//   - that last failed for lack of resources or of pod slots (NodeResourcesFit's "Insufficient" and
//     "Too many pods"), on an offer with room for them (for "Too many pods", of an agent with a free slot);
//   - whose last attempt found an agent that would take them without an offer in hand
//     (offerbridge.AgentsWaitedFor), on an offer of such an agent with room for them.
//
// Without it, a role whose pods all back off up to 30 s after finding only crumbs would let each
// resource another framework frees go to that framework; pods that found only full agents' offers
// missed, back-off after back-off, the offers of agents with free slots, which arrived and were
// declined while they backed off (30,000 pods on 5,000 agents: 10,560 pods pending for 20 minutes); and
// with offers held 500 ms and declined for 5 s, 46 warm-up pods pinned to one agent each of 5,000 never
// had their agent's offer in hand at a retry, for 10 minutes.
func (s *sched) retryForOffers(offers []mesos.Offer) {
	now := s.clock.Now()
	s.mu.Lock()
	var keys []string
	slotsWanted := false
	for key, p := range s.pending {
		if !p.notBefore.After(now) {
			continue
		}
		if strings.Contains(p.message, "Insufficient") || strings.Contains(p.message, offerbridge.ReasonTooManyPods) || p.waits.Any() {
			keys = append(keys, key)
			slotsWanted = slotsWanted || strings.Contains(p.message, offerbridge.ReasonTooManyPods)
		}
	}
	s.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	var withSlot map[string]bool
	if slotsWanted {
		withSlot = s.agentsWithPodSlots(offers)
	}
	type room struct{ cpus, mem float64 }
	type rooms struct{ best, bestNew room } // the largest offer for the executor's agents, and for others
	type agentRoom struct {
		agent string
		room
	}
	// Placement pools one agent's offers in one role (a bucket), so their room is summed first, and a
	// new executor's share comes off the sum once.
	offered := map[[2]string]room{} // role and agent
	for i := range offers {
		o := &offers[i]
		k := [2]string{offerRole(o), o.AgentID.Value}
		r := offered[k]
		for _, res := range o.Resources {
			switch res.Name {
			case "cpus":
				r.cpus += res.GetScalar().GetValue()
			case "mem":
				r.mem += res.GetScalar().GetValue()
			}
		}
		offered[k] = r
	}
	byRole, slottedByRole := map[string]rooms{}, map[string]rooms{}
	byAgent := map[[2]string]room{}     // role and agent: the room of its offers for a pod
	largest := map[string][]agentRoom{} // by role: the offers with the most room, one more than an Offered list holds
	exec := s.executorCost()
	for k, r := range offered {
		role, agentID := k[0], k[1]
		running := exec.RunningOn[agentID]
		forPod := r // the room a pod has there
		if !running {
			forPod = room{r.cpus - exec.CPUs, r.mem - exec.MemMB} // a first pod there also starts the executor
		}
		add := func(m map[string]rooms) {
			rs := m[role]
			if running {
				rs.best = room{max(rs.best.cpus, forPod.cpus), max(rs.best.mem, forPod.mem)}
			} else {
				rs.bestNew = room{max(rs.bestNew.cpus, forPod.cpus), max(rs.bestNew.mem, forPod.mem)}
			}
			m[role] = rs
		}
		add(byRole)
		if withSlot[agentID] {
			add(slottedByRole)
		}
		byAgent[k] = forPod
		largest[role] = keepLargest(largest[role], agentRoom{agentID, forPod}, offerbridge.MaxAgentsListed+1,
			func(a, b agentRoom) bool { return a.cpus > b.cpus || a.cpus == b.cpus && a.mem > b.mem })
	}
	retried := 0
	for _, key := range keys {
		ns, name := splitKey(key)
		pod, err := s.pods.Pods(ns).Get(name)
		if err != nil {
			continue
		}
		role := s.roles.def
		if s.placement.namespaces != nil {
			if n, err := s.placement.namespaces.Get(ns); err == nil {
				if role, err = namespaceRole(n, s.roles.def); err != nil {
					continue
				}
			}
		}
		d, err := podtranslate.PodDemand(pod, s.translate)
		if err != nil {
			continue
		}
		fits := func(r room) bool { return r.cpus >= d.CPUs-1e-9 && r.mem >= d.MemMB-1e-9 }
		s.mu.Lock()
		p, ok := s.pending[key]
		if !ok || p.uid != pod.UID || !p.notBefore.After(now) {
			s.mu.Unlock()
			continue
		}
		retry := false
		tooMany := strings.Contains(p.message, offerbridge.ReasonTooManyPods)
		if strings.Contains(p.message, "Insufficient") || tooMany {
			rs := byRole[role]
			if tooMany {
				rs = slottedByRole[role] // an offer from a full agent holds no pod
			}
			retry = fits(rs.best) || fits(rs.bestNew)
		}
		for _, id := range p.waits.Idle {
			if r, ok := byAgent[[2]string{role, id}]; ok && fits(r) && (!tooMany || withSlot[id]) {
				retry = true
			}
		}
		if p.waits.IdleMore && !p.waits.OfferedMore {
			for _, ar := range largest[role] {
				if p.waits.MayPlace(ar.agent) && fits(ar.room) && (!tooMany || withSlot[ar.agent]) {
					retry = true
					break
				}
			}
		}
		if retry {
			p.notBefore = now
			retried++
		}
		s.mu.Unlock()
	}
	if retried > 0 {
		s.log.WithField("pods", retried).Debug("offers that may place pods backing off: retrying them now")
	}
}

// keepLargest inserts x into xs, sorted by larger, and keeps the first n.
func keepLargest[T any](xs []T, x T, n int, larger func(a, b T) bool) []T {
	i := len(xs)
	for i > 0 && larger(x, xs[i-1]) {
		i--
	}
	if i >= n {
		return xs
	}
	xs = slices.Insert(xs, i, x)
	if len(xs) > n {
		xs = xs[:n]
	}
	return xs
}

// agentsWithPodSlots tells which offers' agents have fewer pods bound than their Node's allocatable
// pods (offerbridge's "Too many pods" rule; DefaultMaxPods for an agent without a Node yet).
func (s *sched) agentsWithPodSlots(offers []mesos.Offer) map[string]bool {
	nodes, _ := s.placementNodes()
	onNode := map[string]int{}
	for _, p := range s.boundPods() {
		onNode[p.Spec.NodeName]++
	}
	out := make(map[string]bool, len(offers))
	for i := range offers {
		o := &offers[i]
		name, maxPods := o.Hostname, offerbridge.DefaultMaxPods
		if n := nodes[o.AgentID.Value]; n != nil {
			name = n.Name
			if q, ok := n.Status.Allocatable[corev1.ResourcePods]; ok {
				maxPods = int(q.Value())
			}
		}
		out[o.AgentID.Value] = onNode[name] < maxPods
	}
	return out
}

// placeByRole places each role's pods (base.Pods by roleOf, "" left out) on the offers allocated to
// that role only (Mesos refuses resources of another role than the offer's), one offerbridge.Place per
// role, in role order. Offers of a role without pending pods are declined. A role's launches count for
// the next ones: their pods as bound (spread, anti-affinity) and their agents as running the executor
// (one executor per agent, whatever role its resources came from).
func placeByRole(base offerbridge.Input, roleOf func(*corev1.Pod) string) offerbridge.Plan {
	byRole := map[string][]*corev1.Pod{}
	for _, p := range base.Pods {
		if r := roleOf(p); r != "" {
			byRole[r] = append(byRole[r], p)
		}
	}
	var out offerbridge.Plan
	offers := map[string][]mesos.Offer{}
	for _, o := range base.Offers {
		r := offerRole(&o)
		if len(byRole[r]) == 0 {
			out.Decline = append(out.Decline, o.ID)
			continue
		}
		offers[r] = append(offers[r], o)
	}
	returning := map[string][]mesos.Offer{}
	for _, o := range base.Returning {
		returning[offerRole(&o)] = append(returning[offerRole(&o)], o)
	}
	roles := make([]string, 0, len(offers))
	for r := range offers {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	bound := slices.Clone(base.Bound)
	exec := base.Executor
	exec.RunningOn = make(map[string]bool, len(base.Executor.RunningOn))
	for k, v := range base.Executor.RunningOn {
		exec.RunningOn[k] = v
	}
	for i, r := range roles {
		in := base
		in.Offers, in.Returning, in.Pods, in.Bound, in.Executor = offers[r], returning[r], byRole[r], bound, exec
		p := offerbridge.Place(in)
		out.Launches = append(out.Launches, p.Launches...)
		out.Decline = append(out.Decline, p.Decline...)
		out.Unschedulable = append(out.Unschedulable, p.Unschedulable...)
		out.Waiting = append(out.Waiting, p.Waiting...)
		if i == len(roles)-1 {
			break // no role left to see this one's launches
		}
		for _, l := range p.Launches {
			exec.RunningOn[l.AgentID.Value] = true
			for _, pp := range l.Pods {
				cp := *pp.Pod // shared with the informer: a shallow copy with its own spec
				cp.Spec.NodeName = l.NodeName
				bound = append(bound, &cp)
			}
		}
	}
	return out
}

// offerRole is the role an offer is allocated to (Offer.allocation_info, else its resources').
func offerRole(o *mesos.Offer) string {
	if r := o.GetAllocationInfo().GetRole(); r != "" {
		return r
	}
	for i := range o.Resources {
		if r := o.Resources[i].GetAllocationInfo().GetRole(); r != "" {
			return r
		}
	}
	return ""
}
