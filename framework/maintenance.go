package framework

import (
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"
)

// Mesos maintenance as a Kubernetes drain. When an agent is scheduled for maintenance (an inverse offer,
// or offers carrying an unavailability) its Node is cordoned (spec.unschedulable and the
// node.kubernetes.io/unschedulable taint, as kubectl drain and the node lifecycle controller leave it),
// its pods are evicted through the Eviction API so that PodDisruptionBudgets hold (a 429 is retried,
// as kubectl drain does), and once no pod is left on it the inverse offers are accepted. Placement
// skips the cordoned Node for the whole window; when the window ends, or offers of the agent come
// without an unavailability (the operator took it out of the schedule), the Node is uncordoned. The
// window is kept in an annotation, so a restarted framework still uncordons it in time.

// Node annotations and events of maintenance.
const (
	// AnnotationMaintenance marks a Node cordoned for a Mesos maintenance window; its value is the
	// window, "<start>/<end>" in RFC 3339 ("<start>/" when it has no duration). Only Nodes with it are
	// uncordoned by the framework.
	AnnotationMaintenance = "kubemesos.io/maintenance-window"
	// EventMaintenanceCordon and EventMaintenanceUncordon are recorded on the Node; EventEvicted on pods.
	EventMaintenanceCordon   = "MaintenanceCordon"
	EventMaintenanceUncordon = "MaintenanceUncordon"
	EventMaintenanceDrained  = "MaintenanceDrained"
	// EventMaintenanceNotDrained: the window began before the Node was drained.
	EventMaintenanceNotDrained = "MaintenanceNotDrained"
	EventEvicted               = "Evicted"
)

// evictRetry is how long a pod whose eviction a PDB refused (429) waits before the next try:
// kubectl drain's 5 seconds.
const evictRetry = 5 * time.Second

// window is an agent's unavailability: from start to end (zero end: no duration, until further notice).
type window struct {
	start, end time.Time
}

func (w window) active(now time.Time) bool { return w.end.IsZero() || now.Before(w.end) }

func (w window) String() string {
	s := w.start.UTC().Format(time.RFC3339) + "/"
	if !w.end.IsZero() {
		s += w.end.UTC().Format(time.RFC3339)
	}
	return s
}

func parseWindow(s string) (window, bool) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return window{}, false
	}
	start, err := time.Parse(time.RFC3339, a)
	if err != nil {
		return window{}, false
	}
	w := window{start: start}
	if b != "" {
		if w.end, err = time.Parse(time.RFC3339, b); err != nil {
			return window{}, false
		}
	}
	return w, true
}

func windowOf(u *mesos.Unavailability) window {
	w := window{start: time.Unix(0, u.Start.Nanoseconds)}
	if u.Duration != nil {
		w.end = w.start.Add(time.Duration(u.Duration.Nanoseconds))
	}
	return w
}

// maintenanceState is the framework's view of Mesos maintenance, guarded by its mutex.
type maintenanceState struct {
	mu sync.Mutex
	// windows are the agents' known unavailabilities, by agent ID; inverse their outstanding inverse
	// offers.
	windows map[string]window
	inverse map[string][]mesos.OfferID
	// evictAfter holds back pods whose eviction a PDB refused, by pod UID.
	evictAfter map[string]time.Time
	// up are the agents whose offers came without an unavailability: out of the schedule, whatever
	// their Node's annotation says.
	up map[string]bool
	// drained is the window each agent was last reported drained for.
	drained map[string]window
	running atomic.Bool
	// lastPass is when a cycle last started a pass (UnixNano of the scheduler's clock).
	lastPass atomic.Int64
}

// maintenancePassEvery bounds how often cycles start a maintenance pass. Cycles run on every offer
// and pod event, hundreds a second in a burst, a pass walks every Node, and windows are minutes long:
// unbounded, the passes took a quarter of the framework's CPU at 1,000 agents (issue 13, run 10).
const maintenancePassEvery = time.Second

func (m *maintenanceState) init() {
	if m.windows == nil {
		m.windows, m.inverse, m.evictAfter = map[string]window{}, map[string][]mesos.OfferID{}, map[string]time.Time{}
		m.up, m.drained = map[string]bool{}, map[string]window{}
	}
}

// handleInverseOffers records Mesos' requests to give agents back.
func (s *sched) handleInverseOffers(ios []mesos.InverseOffer) {
	st := &s.maintenance
	st.mu.Lock()
	st.init()
	for _, io := range ios {
		id := io.GetAgentID().GetValue()
		if id == "" {
			continue
		}
		st.windows[id] = windowOf(&io.Unavailability)
		delete(st.up, id)
		st.inverse[id] = append(st.inverse[id], io.OfferID)
		s.log.WithFields(logrus.Fields{"agentID": id, "inverseOffer": io.OfferID.Value, "window": st.windows[id].String()}).Info("inverse offer: agent scheduled for maintenance")
	}
	st.mu.Unlock()
	s.poke()
}

// rescindInverseOffer forgets a rescinded inverse offer.
func (s *sched) rescindInverseOffer(id mesos.OfferID) {
	st := &s.maintenance
	st.mu.Lock()
	defer st.mu.Unlock()
	for agent, ids := range st.inverse {
		for i := range ids {
			if ids[i].Value == id.Value {
				st.inverse[agent] = append(ids[:i:i], ids[i+1:]...)
				return
			}
		}
	}
}

// observeUnavailability learns from offers: one with an unavailability schedules its agent, one
// without takes the agent out of maintenance (Mesos puts the machine's unavailability on every offer).
func (s *sched) observeUnavailability(offers []mesos.Offer) {
	st := &s.maintenance
	st.mu.Lock()
	st.init()
	changed := false
	for i := range offers {
		o := &offers[i]
		id := o.AgentID.Value
		cur, had := st.windows[id]
		if o.Unavailability != nil {
			w := windowOf(o.Unavailability)
			changed = changed || !had || w != cur
			st.windows[id] = w
			delete(st.up, id)
			continue
		}
		if had {
			delete(st.windows, id)
			changed = true
		}
		st.up[id] = true
	}
	st.mu.Unlock()
	if changed {
		s.poke()
	}
}

// maintainAsync runs one maintenance pass in the background unless one is still running: evictions
// must not hold up placement.
func (s *sched) maintainAsync(ctx context.Context) {
	now := s.clock.Now()
	if last := s.maintenance.lastPass.Load(); last != 0 && now.Sub(time.Unix(0, last)) < maintenancePassEvery {
		return
	}
	if !s.maintenance.running.CompareAndSwap(false, true) {
		return
	}
	s.maintenance.lastPass.Store(now.UnixNano())
	go func() {
		defer s.maintenance.running.Store(false)
		s.maintain(ctx)
	}()
}

// maintain cordons and drains the Nodes of agents in a maintenance window, accepts their inverse
// offers once drained, and uncordons the Nodes whose window is over.
func (s *sched) maintain(ctx context.Context) {
	now := s.clock.Now()
	nodes, _ := s.placementNodes()
	st := &s.maintenance
	st.mu.Lock()
	st.init()
	windows := make(map[string]window, len(st.windows))
	for id, w := range st.windows {
		windows[id] = w
	}
	up := make(map[string]bool, len(st.up))
	for id := range st.up {
		up[id] = true
	}
	st.mu.Unlock()
	// Most Nodes, every pass, have nothing to do: only the others are sorted and looked at (5,000 agents).
	var ids []string
	for id, node := range nodes {
		_, scheduled := windows[id]
		if _, marked := node.Annotations[AnnotationMaintenance]; scheduled || marked {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		node := nodes[id]
		w, scheduled := windows[id]
		mark, marked := node.Annotations[AnnotationMaintenance]
		if !scheduled && marked && !up[id] {
			// A restarted framework knows the window from the Node until Mesos says otherwise.
			w, scheduled = parseWindow(mark)
		}
		inWindow := scheduled && w.active(now)
		if !inWindow && !marked {
			continue
		}
		log := s.log.WithFields(logrus.Fields{"agentID": id, "node": node.Name})
		switch {
		case inWindow:
			if !marked || !node.Spec.Unschedulable {
				if err := s.cordon(ctx, node.Name, w); err != nil {
					log.WithError(err).Warn("cordoning Node for maintenance")
					continue
				}
				log.WithField("window", w.String()).Info("cordoned Node for a Mesos maintenance window")
				s.recorder.Eventf(node, corev1.EventTypeNormal, EventMaintenanceCordon,
					"Mesos maintenance window %s: Node cordoned, its pods are evicted", w)
			}
			switch {
			case s.drain(ctx, node, now, log):
				s.acceptInverseOffers(ctx, id, node, log)
			case !now.Before(w.start):
				// The window began with pods still there (a PDB holds them): Mesos' way to say the
				// framework cannot comply is to decline; draining goes on.
				s.declineInverseOffers(ctx, id, node, log)
			}
		case marked:
			if err := s.uncordon(ctx, node.Name); err != nil {
				log.WithError(err).Warn("uncordoning Node after maintenance")
				continue
			}
			st.mu.Lock()
			if cur, ok := st.windows[id]; ok && cur == w {
				delete(st.windows, id) // over
			}
			st.mu.Unlock()
			log.Info("uncordoned Node: its maintenance window is over")
			s.recorder.Eventf(node, corev1.EventTypeNormal, EventMaintenanceUncordon, "Mesos maintenance window %s is over: Node uncordoned", w)
		}
	}
}

// cordon marks the Node unschedulable with the unschedulable taint and the window annotation.
func (s *sched) cordon(ctx context.Context, name string, w window) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := s.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n = n.DeepCopy()
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[AnnotationMaintenance] = w.String()
		n.Spec.Unschedulable = true
		has := false
		for _, t := range n.Spec.Taints {
			has = has || t.Key == corev1.TaintNodeUnschedulable && t.Effect == corev1.TaintEffectNoSchedule
		}
		if !has {
			now := metav1.NewTime(s.clock.Now())
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule, TimeAdded: &now})
		}
		_, err = s.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// uncordon undoes cordon.
func (s *sched) uncordon(ctx context.Context, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := s.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n = n.DeepCopy()
		delete(n.Annotations, AnnotationMaintenance)
		n.Spec.Unschedulable = false
		taints := n.Spec.Taints[:0]
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeUnschedulable {
				taints = append(taints, t)
			}
		}
		n.Spec.Taints = taints
		_, err = s.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// drain evicts the framework's pods from the Node and reports whether none is left. DaemonSet pods
// stay, as kubectl drain --ignore-daemonsets leaves them.
func (s *sched) drain(ctx context.Context, node *corev1.Node, now time.Time, log logrus.FieldLogger) bool {
	all, err := s.pods.List(labels.Everything())
	if err != nil {
		return false
	}
	left := 0
	st := &s.maintenance
	for _, p := range all {
		if p.Spec.NodeName != node.Name || podFinished(p) || !s.schedulerNames[p.Spec.SchedulerName] || daemonSetPod(p) {
			continue
		}
		left++
		if p.DeletionTimestamp != nil {
			continue // evicted, terminating
		}
		st.mu.Lock()
		after, wait := st.evictAfter[string(p.UID)]
		st.mu.Unlock()
		if wait && now.Before(after) {
			continue
		}
		uid := p.UID
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
			DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}}
		err := s.kube.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev)
		switch {
		case err == nil:
			st.mu.Lock()
			delete(st.evictAfter, string(p.UID))
			st.mu.Unlock()
			log.WithField("pod", podKey(p)).Info("evicted pod for maintenance")
			s.recorder.Eventf(p, corev1.EventTypeNormal, EventEvicted, "Evicted from Node %s for a Mesos maintenance window", node.Name)
		case apierrors.IsNotFound(err):
			left--
		case apierrors.IsTooManyRequests(err):
			// A PodDisruptionBudget holds the pod: retry later, as kubectl drain does.
			st.mu.Lock()
			st.evictAfter[string(p.UID)] = now.Add(evictRetry)
			st.mu.Unlock()
			log.WithField("pod", podKey(p)).WithError(err).Info("eviction refused; retrying")
		default:
			log.WithField("pod", podKey(p)).WithError(err).Warn("evicting pod for maintenance")
		}
	}
	return left == 0
}

// daemonSetPod reports whether a DaemonSet controls the pod.
func daemonSetPod(p *corev1.Pod) bool {
	c := metav1.GetControllerOf(p)
	return c != nil && c.Kind == "DaemonSet"
}

// answerInverseOffers sends answer (ACCEPT_ or DECLINE_INVERSE_OFFERS) for the agent's outstanding
// inverse offers and returns them; none when there were none or the call failed, in which case they
// stay outstanding for the next try.
func (s *sched) answerInverseOffers(ctx context.Context, agentID string, answer func(...mesos.OfferID) *scheduler.Call, doing string, log logrus.FieldLogger) []mesos.OfferID {
	st := &s.maintenance
	st.mu.Lock()
	ids := st.inverse[agentID]
	delete(st.inverse, agentID)
	st.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	if err := s.call(ctx, answer(ids...)); err != nil {
		log.WithError(err).Warn(doing + " inverse offers")
		st.mu.Lock()
		st.inverse[agentID] = append(st.inverse[agentID], ids...)
		st.mu.Unlock()
		return nil
	}
	return ids
}

// acceptInverseOffers accepts the agent's outstanding inverse offers: its Node is drained.
func (s *sched) acceptInverseOffers(ctx context.Context, agentID string, node *corev1.Node, log logrus.FieldLogger) {
	ids := s.answerInverseOffers(ctx, agentID, calls.AcceptInverseOffers, "accepting", log)
	if len(ids) == 0 {
		return
	}
	st := &s.maintenance
	// Mesos offers the agent back as long as the framework holds resources there (its executor), and
	// each is accepted: the Node's event and log say it once per window.
	st.mu.Lock()
	w := st.windows[agentID]
	first := st.drained[agentID] != w
	st.drained[agentID] = w
	st.mu.Unlock()
	if !first {
		log.WithField("inverseOffers", len(ids)).Debug("accepted inverse offers")
		return
	}
	log.WithField("inverseOffers", len(ids)).Info("accepted inverse offers: the Node is drained")
	s.recorder.Eventf(node, corev1.EventTypeNormal, EventMaintenanceDrained, "Node drained: accepted %d Mesos inverse offer(s)", len(ids))
}

// declineInverseOffers declines the agent's outstanding inverse offers: its window began before its
// Node was drained.
func (s *sched) declineInverseOffers(ctx context.Context, agentID string, node *corev1.Node, log logrus.FieldLogger) {
	ids := s.answerInverseOffers(ctx, agentID, calls.DeclineInverseOffers, "declining", log)
	if len(ids) == 0 {
		return
	}
	log.WithField("inverseOffers", len(ids)).Warn("declined inverse offers: the maintenance window began before the Node was drained")
	s.recorder.Eventf(node, corev1.EventTypeWarning, EventMaintenanceNotDrained,
		"Mesos maintenance window began with pods still on the Node: declined %d inverse offer(s), still draining", len(ids))
}

// endedUnavailability drops an offer's unavailability once its window is over: Mesos keeps it on the
// machine's offers until the operator changes the schedule, and placement would still avoid the agent.
func endedUnavailability(o mesos.Offer, now time.Time) mesos.Offer {
	if o.Unavailability != nil && !windowOf(o.Unavailability).active(now) {
		o.Unavailability = nil
	}
	return o
}
