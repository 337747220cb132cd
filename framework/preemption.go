package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/offerbridge"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Preemption: a pending pod that no offer takes may evict pods of lower priority from one agent
// (offerbridge.Preempt decides which), the way kube-scheduler's DefaultPreemption does. Carrying it out
// is kube-scheduler's Executor.PreemptPod: a DisruptionTarget condition on each victim, a graceful
// DELETE (the victim's task gets its grace period), a "Preempted" event, and the preemptor's
// status.nominatedNodeName. The freed resources come back in the agent's offers; placement keeps them
// for the nominated pod (offerbridge.Input.Nominated) and retries it whenever its agent is offered,
// whatever its back-off.

// EventPreempted is kube-scheduler's reason on a victim.
const EventPreempted = "Preempted"

// idlePreemptDelay is how long a pod waits for offers before it preempts while the framework holds
// none (a full cluster sends none): offers may be on their way after a revive.
const idlePreemptDelay = 2 * time.Second

// preemptionState is the preemption's own bookkeeping, guarded by its mutex.
type preemptionState struct {
	mu sync.Mutex
	// waiting is when each pod was first seen pending without offers held.
	waiting map[types.UID]time.Time
	// budgets and budgetsAt cache the PodDisruptionBudgets for pdbCacheFor: the loop ticks faster.
	budgets   []*policyv1.PodDisruptionBudget
	budgetsAt time.Time
}

// pdbCacheFor is how long a list of PodDisruptionBudgets is used. A stale budget only changes which
// agent is preferred, as PDBs are weighed, not enforced, by preemption.
const pdbCacheFor = 2 * time.Second

// preempt decides preemption for the pods no offer took (in placement order) and returns the
// PostFilter message to append to each one's FailedScheduling message, and the function that carries
// the decisions out: called after the pods' PodScheduled conditions are written, whose status updates
// come from the informer's copies and must not undo the nominations.
func (s *sched) preempt(ctx context.Context, unfit []*corev1.Pod) (map[types.UID]string, func()) {
	noop := func() {}
	if len(unfit) == 0 {
		return nil, noop
	}
	nodes, _ := s.placementNodes()
	bound := s.boundPods()
	// A pod can only preempt pods of lower priority: when none runs, the dry run is skipped (the common
	// one-priority cluster, where kube-scheduler's message would only say that no victims exist).
	lowest := int32(0)
	first := true
	for _, p := range bound {
		if s.schedulerNames[p.Spec.SchedulerName] {
			if pr := podPriority(p); first || pr < lowest {
				lowest, first = pr, false
			}
		}
	}
	var pods []*corev1.Pod
	for _, p := range unfit {
		never := p.Spec.PreemptionPolicy != nil && *p.Spec.PreemptionPolicy == corev1.PreemptNever
		if never || (!first && podPriority(p) > lowest) {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return nil, noop
	}
	in := offerbridge.PreemptInput{Pods: pods, Translate: s.translate, PDBs: s.pdbs(ctx), Namespaces: s.namespaceLabels()}
	byNode := map[string]*offerbridge.PreemptAgent{}
	for id, n := range nodes {
		in.Agents = append(in.Agents, offerbridge.PreemptAgent{AgentID: id, Node: n, Allocatable: allocatable(n)})
	}
	for i := range in.Agents {
		byNode[in.Agents[i].Node.Name] = &in.Agents[i]
	}
	for _, p := range bound {
		a := byNode[p.Spec.NodeName]
		if a == nil {
			continue
		}
		if s.schedulerNames[p.Spec.SchedulerName] {
			a.Pods = append(a.Pods, p)
		} else {
			a.Others = append(a.Others, p)
		}
	}
	for id, noms := range s.nominated() {
		if a := nodes[id]; a != nil {
			byNode[a.Name].Nominated = noms
		}
	}
	plan := offerbridge.Preempt(in)
	return plan.Messages, func() {
		for i := range plan.Preemptions {
			s.actuate(ctx, &plan.Preemptions[i])
		}
		for _, p := range plan.ClearNomination {
			if err := s.setNominatedNode(ctx, p, ""); err != nil {
				s.log.WithError(err).WithField("pod", podKey(p)).Debug("clearing nominatedNodeName")
			}
		}
	}
}

// preemptIdle preempts for pods pending at least idlePreemptDelay while no offers are held.
func (s *sched) preemptIdle(ctx context.Context, pods []*corev1.Pod, now time.Time) {
	st := &s.preemption
	st.mu.Lock()
	if st.waiting == nil {
		st.waiting = map[types.UID]time.Time{}
	}
	seen := map[types.UID]bool{}
	var due []*corev1.Pod
	for _, p := range pods {
		seen[p.UID] = true
		since, ok := st.waiting[p.UID]
		if !ok {
			st.waiting[p.UID] = now
			continue
		}
		if now.Sub(since) >= idlePreemptDelay {
			due = append(due, p)
		}
	}
	for uid := range st.waiting {
		if !seen[uid] {
			delete(st.waiting, uid)
		}
	}
	st.mu.Unlock()
	msgs, act := s.preempt(ctx, due)
	act()
	for _, p := range due {
		if m := msgs[p.UID]; m != "" {
			s.log.WithField("pod", podKey(p)).Debug("pod waits for offers: " + m)
			// Preemption did not help: the next dry run after another idlePreemptDelay, not every tick.
			st.mu.Lock()
			st.waiting[p.UID] = now
			st.mu.Unlock()
		}
	}
}

// forgetIdle drops the pods' waiting times: offers were held, so Place judged them.
func (s *sched) forgetIdle() {
	s.preemption.mu.Lock()
	clear(s.preemption.waiting)
	s.preemption.mu.Unlock()
}

// allocatable is what pods may use of a Node.
func allocatable(n *corev1.Node) podtranslate.Demand {
	a := n.Status.Allocatable
	d := podtranslate.Demand{}
	if q, ok := a[corev1.ResourceCPU]; ok {
		d.CPUs = float64(q.MilliValue()) / 1000
	}
	if q, ok := a[corev1.ResourceMemory]; ok {
		d.MemMB = float64(q.Value()) / (1 << 20)
	}
	if q, ok := a[corev1.ResourceEphemeralStorage]; ok {
		d.DiskMB = float64(q.Value()) / (1 << 20)
	}
	if q, ok := a["nvidia.com/gpu"]; ok {
		d.GPUs = float64(q.Value())
	}
	return d
}

// pdbs lists every PodDisruptionBudget; none when the list fails (preemption then ignores budgets,
// as kube-scheduler's does when its lister errs).
func (s *sched) pdbs(ctx context.Context) []*policyv1.PodDisruptionBudget {
	now := s.clock.Now()
	st := &s.preemption
	st.mu.Lock()
	if !st.budgetsAt.IsZero() && now.Sub(st.budgetsAt) < pdbCacheFor {
		defer st.mu.Unlock()
		return st.budgets
	}
	st.mu.Unlock()
	l, err := s.kube.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.log.WithError(err).Warn("listing PodDisruptionBudgets for preemption")
		return nil
	}
	out := make([]*policyv1.PodDisruptionBudget, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	st.mu.Lock()
	st.budgets, st.budgetsAt = out, now
	st.mu.Unlock()
	return out
}

// nominated returns the framework's unbound pods with a nominatedNodeName, by the Node's agent ID.
func (s *sched) nominated() map[string][]*corev1.Pod {
	all, err := s.pods.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := map[string][]*corev1.Pod{}
	for _, p := range all {
		n := p.Status.NominatedNodeName
		if n == "" || p.Spec.NodeName != "" || p.DeletionTimestamp != nil || podFinished(p) || !s.schedulerNames[p.Spec.SchedulerName] {
			continue
		}
		if id := s.agentOfNode(n); id != "" {
			out[id] = append(out[id], p)
		}
	}
	return out
}

// withNominated adds to the pods to place those in back-off that are nominated to an agent whose
// offers are held now: what their victims freed is offered, and only they may take it.
func (s *sched) withNominated(pods []*corev1.Pod, offers []mesos.Offer, nominated map[string][]*corev1.Pod) []*corev1.Pod {
	have := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		have[p.UID] = true
	}
	added := false
	for i := range offers {
		for _, p := range nominated[offers[i].AgentID.Value] {
			if have[p.UID] {
				continue
			}
			s.mu.Lock()
			pp, ok := s.pending[podKey(p)]
			skip := !ok || pp.uid != p.UID || s.inflight[p.UID]
			s.mu.Unlock()
			if skip {
				continue
			}
			have[p.UID] = true
			pods = append(pods, p)
			added = true
		}
	}
	if added {
		sortPending(pods)
	}
	return pods
}

// sortPending orders pods for placement: priority, then age.
func sortPending(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		pi, pj := podPriority(pods[i]), podPriority(pods[j])
		if pi != pj {
			return pi > pj
		}
		ti, tj := pods[i].CreationTimestamp, pods[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return podKey(pods[i]) < podKey(pods[j])
	})
}

// actuate carries out one preemption as kube-scheduler's Executor does.
func (s *sched) actuate(ctx context.Context, p *offerbridge.Preemption) {
	log := s.log.WithFields(logrus.Fields{"preemptor": podKey(p.Pod), "node": p.NodeName})
	for _, v := range p.Victims {
		if err := s.preemptVictim(ctx, p, v); err != nil {
			log.WithError(err).WithField("victim", podKey(v)).Warn("preempting pod")
			return // kube-scheduler gives up the candidate on the first failure; the next cycle retries
		}
	}
	// Pods of lower priority nominated to the Node lose their nomination: the room is the preemptor's
	// (kube-scheduler's getLowerPriorityNominatedPods).
	for _, q := range s.nominated()[p.AgentID] {
		if q.UID != p.Pod.UID && podPriority(q) < podPriority(p.Pod) {
			if err := s.setNominatedNode(ctx, q, ""); err != nil {
				log.WithError(err).WithField("pod", podKey(q)).Debug("clearing nominatedNodeName")
			}
		}
	}
	if err := s.setNominatedNode(ctx, p.Pod, p.NodeName); err != nil {
		log.WithError(err).Warn("setting nominatedNodeName")
	}
	log.WithFields(logrus.Fields{"victims": len(p.Victims), "pdbViolations": p.PDBViolations}).Info("preempted pods")
}

// preemptVictim marks a victim DisruptionTarget/PreemptionByScheduler, deletes it gracefully and
// records kube-scheduler's event.
func (s *sched) preemptVictim(ctx context.Context, p *offerbridge.Preemption, v *corev1.Pod) error {
	cond := corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: corev1.PodReasonPreemptionByScheduler,
		Message:            fmt.Sprintf("%s: preempting to accommodate a higher priority pod", p.Pod.Spec.SchedulerName),
		LastTransitionTime: metav1.NewTime(s.clock.Now()),
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{cond}}})
	if err != nil {
		return err
	}
	pods := s.kube.CoreV1().Pods(v.Namespace)
	if _, err := pods.Patch(ctx, v.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // gone already
		}
		return fmt.Errorf("adding the DisruptionTarget condition: %w", err)
	}
	uid := v.UID
	if err := pods.Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("deleting: %w", err)
	}
	s.recorder.Eventf(v, corev1.EventTypeNormal, EventPreempted, "Preempted by pod %s on node %s", p.Pod.UID, p.NodeName)
	return nil
}

// setNominatedNode writes status.nominatedNodeName ("" clears it).
func (s *sched) setNominatedNode(ctx context.Context, pod *corev1.Pod, node string) error {
	var v any = node
	if node == "" {
		v = nil
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"nominatedNodeName": v}})
	if err != nil {
		return err
	}
	// A JSON merge patch: null removes the field.
	_, err = s.kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
