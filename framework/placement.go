package framework

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/kubemesos/kubemesos/offerbridge"
)

// runLoop runs placement cycles when offers or pods arrive and on every tick (offer expiry, back-offs,
// reconciliation), until ctx is cancelled.
func (s *sched) runLoop(ctx context.Context, tick time.Duration) error {
	t := s.clock.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.launches.Wait()
			return nil
		case <-s.kick:
		case <-t.C():
		}
		s.cycle(ctx)
	}
}

// cycle is one round of the loop: reconciliation retries, expired offers declined, suppress/revive,
// then placement of the pending pods onto every held offer.
func (s *sched) cycle(ctx context.Context) {
	now := s.clock.Now()
	s.maintainAsync(ctx)
	s.reconcileTick(ctx, now)
	s.mu.Lock()
	subscribed := s.subscribed
	s.mu.Unlock()
	if !subscribed {
		return
	}
	if expired := s.book.Expired(now); len(expired) > 0 {
		ids := make([]mesos.OfferID, len(expired))
		for i := range expired {
			ids[i] = expired[i].ID
		}
		s.log.WithField("offers", len(ids)).Debug("declining offers held past --offer-hold")
		s.decline(ctx, ids, s.refuse)
	}

	// Each namespace's pods go on offers of its Mesos role only, suppressed per role (roles.go).
	pods, roleOf := s.rolesCycle(ctx, s.pendingPods(now), now)
	if len(pods) == 0 || s.book.Len() == 0 {
		if len(pods) > 0 {
			s.quotaUnschedulable(ctx, pods, roleOf, nil, now) // a role at its quota limit gets no offers
			s.preemptIdle(ctx, pods, now)                     // a full cluster sends no offers
		}
		return
	}
	s.forgetIdle()

	nodes, foreign := s.placementNodes()
	var offers []mesos.Offer
	var unusable []mesos.OfferID
	for _, o := range s.book.Take() {
		// An agent whose hostname names a Node of another owner: binding there would hand the pod
		// to that Node's framework.
		if s.nodes.Conflicted(o.AgentID.Value) || (nodes[o.AgentID.Value] == nil && foreign[o.Hostname]) {
			unusable = append(unusable, o.ID)
			continue
		}
		offers = append(offers, endedUnavailability(o, now))
	}
	var returning []mesos.Offer
	for _, o := range s.book.Returning(now) {
		if !s.nodes.Conflicted(o.AgentID.Value) && (nodes[o.AgentID.Value] != nil || !foreign[o.Hostname]) {
			returning = append(returning, endedUnavailability(o, now))
		}
	}
	nominated := s.nominated()
	pods = s.withNominated(pods, offers, nominated)
	plan := placeByRole(offerbridge.Input{
		Offers:     offers,
		Returning:  returning,
		Nodes:      nodes,
		Pods:       pods,
		Bound:      s.boundPods(),
		Namespaces: s.namespaceLabels(),
		Translate:  s.translate,
		Executor:   s.executorCost(),
		Strategy:   s.placement.strategy,
		Seed:       s.seed,
		Nominated:  nominated,
	}, roleOf)
	// Nothing unschedulable: the offers left are held again for the pods that come next, until
	// --offer-hold, as they are while nothing is pending. Declined at once with the refuse filter, they
	// kept their agents from a burst's next pods: pods created a few per cycle got a few agents per
	// allocation interval, one or two pods per ACCEPT (issue 13's profile). Holding them is safe for
	// placement quality only because the agents whose offers were accepted are ranked too, with the
	// room their ACCEPTs left (Book.Returning): a pod whose best agent is one of them waits for its
	// offer (plan.Waiting) rather than taking whatever offer is still held.
	if len(plan.Unschedulable) == 0 {
		plan.Decline = s.keepForRoles(plan.Decline, offers, pods, roleOf)
	}
	if len(plan.Waiting) > 0 {
		s.log.WithField("pods", len(plan.Waiting)).Debug("pods wait for the room their best agents will offer again")
	}
	plan.Decline = append(plan.Decline, unusable...)
	unmentioned := s.book.Settle(offerbridge.Plan{Launches: plan.Launches, Decline: plan.Decline})
	s.decline(ctx, append(plan.Decline, unmentioned...), s.refuse)
	s.startLaunches(ctx, plan.Launches)
	s.log.WithFields(logrus.Fields{"pods": len(pods), "offers": len(offers), "returning": len(returning),
		"launches": len(plan.Launches), "waiting": len(plan.Waiting), "unschedulable": len(plan.Unschedulable),
		"declined": len(plan.Decline) + len(unmentioned), "took": s.clock.Since(now)}).Debug("placement cycle")
	var unfit []*corev1.Pod
	for i := range plan.Unschedulable {
		if !plan.Unschedulable[i].Unresolvable {
			unfit = append(unfit, plan.Unschedulable[i].Pod)
		}
	}
	s.quotaUnschedulable(ctx, pods, roleOf, &plan, now)
	post, preempt := s.preempt(ctx, unfit)
	for i := range plan.Unschedulable {
		if m := post[plan.Unschedulable[i].Pod.UID]; m != "" {
			plan.Unschedulable[i].Message += " " + m // kube-scheduler's FitError with its PostFilter message
		}
		s.unschedulable(ctx, &plan.Unschedulable[i], now)
	}
	preempt()
}

// keepForRoles holds again the unused offers of the roles whose pods this cycle placed and returns
// the others (a role with nothing pending has no use for them), to be declined.
func (s *sched) keepForRoles(unused []mesos.OfferID, offers []mesos.Offer, pods []*corev1.Pod, roleOf func(*corev1.Pod) string) []mesos.OfferID {
	wanted := map[string]bool{}
	for _, p := range pods {
		wanted[roleOf(p)] = true
	}
	roles := make(map[string]string, len(offers))
	for i := range offers {
		roles[offers[i].ID.Value] = offerRole(&offers[i])
	}
	var keep, rest []mesos.OfferID
	for _, id := range unused {
		if r, ok := roles[id.Value]; ok && wanted[r] {
			keep = append(keep, id)
		} else {
			rest = append(rest, id)
		}
	}
	s.book.Keep(keep)
	return rest
}

// decline declines offers with a refuse filter.
func (s *sched) decline(ctx context.Context, ids []mesos.OfferID, refuse time.Duration) {
	if len(ids) == 0 {
		return
	}
	if err := s.call(ctx, calls.Decline(ids...).With(calls.RefuseSeconds(refuse))); err != nil {
		s.log.WithError(err).WithField("offers", len(ids)).Warn("declining offers")
	}
	s.metrics.offersDeclined.Add(float64(len(ids)))
	if refuse > 0 {
		s.mu.Lock()
		s.filtered = true
		s.mu.Unlock()
	}
}

// pendingPods returns the pods to place now (back-off over), by priority, then age.
func (s *sched) pendingPods(now time.Time) []*corev1.Pod {
	s.mu.Lock()
	keys := make([]string, 0, len(s.pending))
	for key, p := range s.pending {
		if !now.Before(p.notBefore) {
			keys = append(keys, key)
		}
	}
	s.mu.Unlock()
	var pods []*corev1.Pod
	for _, key := range keys {
		ns, name := splitKey(key)
		pod, err := s.pods.Pods(ns).Get(name)
		if err != nil || pod.DeletionTimestamp != nil || podFinished(pod) {
			s.unpend(key)
			continue
		}
		s.mu.Lock()
		p, ok := s.pending[key]
		// A sandbox still live (its pod task ended, its KILL under way) keeps the pod back: the
		// relaunch would reuse its TaskID and ExecutorID.
		skip := !ok || p.uid != pod.UID || s.inflight[pod.UID] || s.tasks[taskIDPrefix+string(pod.UID)].live() ||
			s.tasks[sandboxIDPrefix+string(pod.UID)].live()
		var full *corev1.Pod
		if ok {
			full = p.full
		}
		s.mu.Unlock()
		if skip {
			continue
		}
		if pod.Spec.NodeName != "" {
			// The cache keeps a bound pod without what its task carries: launch it with the spec read
			// for it, once syncPod has read it (again, if it changed since).
			if full == nil || full.UID != pod.UID || full.Generation != pod.Generation {
				s.queue.Add(key)
				continue
			}
			whole := *pod
			whole.Spec = full.Spec
			pod = &whole
		}
		pods = append(pods, pod)
	}
	sortPending(pods)
	return pods
}

func podPriority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

func splitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

// placementSettings are what placement looks at besides offers, pending pods and Nodes.
type placementSettings struct {
	strategy   offerbridge.Strategy
	namespaces corelisters.NamespaceLister // nil: namespaces have no labels
	// assumed are the pods launched whose binding the pod informer does not show yet, as bound to their
	// Node: like kube-scheduler's assumed pods, the next cycle sees them bound (pod anti-affinity,
	// topology spread and pod counts would miss them otherwise). Each is a shallow copy of the informer's
	// pod made once, at launch: copied at every cycle instead, thousands of pods whose Bindings queued
	// behind a busy API server held 25 MB of the framework's heap (30,000 pods on 5,000 agents).
	// Guarded by sched.mu.
	assumed map[types.UID]*corev1.Pod
}

func newPlacementSettings(cfg Config, namespaces corelisters.NamespaceLister) placementSettings {
	strategy, _ := offerbridge.ParseStrategy(cfg.PlacementStrategy) // Validate refused a bad one
	return placementSettings{strategy: strategy, namespaces: namespaces, assumed: map[types.UID]*corev1.Pod{}}
}

// boundPods returns the pods on Nodes that have not finished (kube-scheduler's informer leaves out
// Succeeded and Failed pods), the assumed ones with their Node, and forgets assumptions the informer
// has caught up with.
func (s *sched) boundPods() []*corev1.Pod {
	all, err := s.pods.List(labels.Everything())
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	assumed := s.placement.assumed
	seen := make(map[types.UID]bool, len(assumed))
	out := make([]*corev1.Pod, 0, len(all))
	for _, p := range all {
		if podFinished(p) {
			continue
		}
		if p.Spec.NodeName != "" {
			out = append(out, p)
			continue
		}
		if a, ok := assumed[p.UID]; ok {
			seen[p.UID] = true
			out = append(out, a)
		}
	}
	for uid := range assumed {
		if !seen[uid] {
			delete(assumed, uid) // bound in the informer, finished or gone
		}
	}
	return out
}

// namespaceLabels returns every namespace's labels, for pod affinity's namespaceSelector.
func (s *sched) namespaceLabels() map[string]map[string]string {
	if s.placement.namespaces == nil {
		return nil
	}
	nss, err := s.placement.namespaces.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make(map[string]map[string]string, len(nss))
	for _, ns := range nss {
		out[ns.Name] = ns.Labels
	}
	return out
}

// placementNodes returns the framework's own Nodes by agent ID, and the names of every other Node
// (another framework's, or not a Mesos agent's), which placement must never bind to.
func (s *sched) placementNodes() (ours map[string]*corev1.Node, foreign map[string]bool) {
	ours, foreign = map[string]*corev1.Node{}, map[string]bool{}
	nodes, err := s.nodeLister.List(labels.Everything())
	if err != nil {
		return ours, foreign
	}
	for _, n := range nodes {
		if id, mine := s.nodes.NodeAgent(n); mine {
			ours[id] = n
		} else {
			foreign[n.Name] = true
		}
	}
	return ours, foreign
}

// executorCost tells placement what a new executor needs and where one runs: on agents where the
// framework has a live pod task (offers also list running executors in executor_ids). Sandbox tasks
// run on their own executors.
func (s *sched) executorCost() offerbridge.ExecutorCost {
	running := map[string]bool{}
	s.mu.Lock()
	for id, rec := range s.tasks {
		if rec.live() && rec.agentID != "" && strings.HasPrefix(id, taskIDPrefix) {
			running[rec.agentID] = true
		}
	}
	s.mu.Unlock()
	return offerbridge.ExecutorCost{CPUs: s.executor.CPUs, MemMB: s.executor.MemMB, ID: ExecutorID, RunningOn: running}
}

// executorFor returns the ExecutorInfo to launch with on an agent: the one already in use there when the
// executor runs (so changed flags never make it incompatible), else a new one with the current
// settings and the resources placement carved for it. persist says it must be stored before the
// ACCEPT. When the executor runs but the state does not know its info, the master's GET_EXECUTORS does.
func (s *sched) executorFor(ctx context.Context, l *offerbridge.Launch) (info mesos.ExecutorInfo, persist bool, err error) {
	s.mu.Lock()
	cur, ok := s.state.Executors[l.AgentID.Value]
	frameworkID := s.state.FrameworkID
	s.mu.Unlock()
	switch {
	case l.Executor != nil:
		info = NewExecutorInfo(s.executor)
		info.Resources = l.Executor
		return info, true, nil
	case ok:
		return cur, false, nil
	case s.operator == nil:
		return mesos.ExecutorInfo{}, false, fmt.Errorf("executor runs on agent %s but its ExecutorInfo is unknown", l.AgentID.Value)
	}
	running, err := s.operator.RunningExecutor(ctx, frameworkID, l.AgentID.Value, ExecutorID)
	if err != nil {
		return mesos.ExecutorInfo{}, false, fmt.Errorf("looking up the executor running on agent %s: %w", l.AgentID.Value, err)
	}
	if running == nil {
		return mesos.ExecutorInfo{}, false, fmt.Errorf("executor runs on agent %s but the master does not list it", l.AgentID.Value)
	}
	s.log.WithField("agentID", l.AgentID.Value).Info("adopting the ExecutorInfo of the executor running on the agent")
	return *running, true, nil
}

// startLaunches carries out a cycle's Launches in the background and returns at once, as
// kube-scheduler binds after its scheduling cycle: waiting for every Binding and ACCEPT kept the next
// cycle, and the offers Mesos sent meanwhile, waiting too (issue 13's profile: at high client limits
// a cycle's Bindings took 0.2-0.5 s each on a loaded API server, its launches 1-2 s). Its pods are
// in flight and assumed on their Nodes from now on, so later cycles neither place them again nor
// miss them in pod counts, affinity and spread; its offers are settled already.
func (s *sched) startLaunches(ctx context.Context, launches []offerbridge.Launch) {
	for i := range launches {
		l := &launches[i]
		agent := l.AgentID.Value
		done := make(chan struct{})
		s.mu.Lock()
		prev := s.agentLaunch[agent]
		s.agentLaunch[agent] = done
		for _, pp := range l.Pods {
			s.inflight[pp.Pod.UID] = true
			if pp.Pod.Spec.NodeName == "" {
				s.assumeLocked(pp.Pod, l.NodeName)
			}
		}
		s.mu.Unlock()
		s.launches.Add(1)
		go func() {
			defer s.launches.Done()
			defer func() {
				s.mu.Lock()
				if s.agentLaunch[agent] == done {
					delete(s.agentLaunch, agent)
				}
				s.mu.Unlock()
				close(done)
			}()
			if prev != nil {
				<-prev
			}
			s.launchSlots <- struct{}{}
			defer func() { <-s.launchSlots }()
			if !s.launch(ctx, l) {
				s.book.Unaccepted(l)
			}
		}()
	}
}

// launch carries out one Launch: Binding of every pod first, then one ACCEPT with their tasks. It
// reports whether the offers were used by an ACCEPT; otherwise it declined them.
func (s *sched) launch(ctx context.Context, l *offerbridge.Launch) bool {
	log := s.log.WithFields(logrus.Fields{"agentID": l.AgentID.Value, "node": l.NodeName, "offers": len(l.OfferIDs)})
	info, persist, err := s.executorFor(ctx, l)
	if err != nil {
		log.WithError(err).Warn("no ExecutorInfo for the agent; declining its offers")
		s.decline(ctx, l.OfferIDs, s.refuse)
		s.endAllInflight(l)
		return false
	}
	if persist {
		if err := s.saveState(ctx, func(st *State) bool { st.Executors[l.AgentID.Value] = info; return true }); err != nil {
			log.WithError(err).Warn("persisting ExecutorInfo; declining the offers")
			s.decline(ctx, l.OfferIDs, 0)
			s.endAllInflight(l)
			return false
		}
	}

	// Build every task first (a pod whose task cannot be built is not bound), then bind in parallel.
	type outcome struct {
		task    mesos.TaskInfo
		sandbox *mesos.TaskInfo // on a CNI pod network: launched with the pod task, in the same LAUNCH
		ok      bool
	}
	results := make([]outcome, len(l.Pods))
	started := s.clock.Now()
	sem := make(chan struct{}, bindParallelism)
	var wg sync.WaitGroup
	for i := range l.Pods {
		pod := l.Pods[i].Pod
		bound := pod.DeepCopy()
		bound.Spec.NodeName = l.NodeName
		ti, sandbox, err := s.buildTasks(bound, l.AgentID, info, &l.Pods[i])
		if err != nil {
			log.WithError(err).WithField("pod", podKey(pod)).Error("building TaskInfo")
			s.recorder.Eventf(pod, corev1.EventTypeWarning, EventFailedLaunch, "Cannot build the Mesos task: %v", err)
			s.endInflight(pod)
			continue
		}
		if pod.Spec.NodeName != "" {
			results[i] = outcome{task: ti, sandbox: sandbox, ok: true} // bound before (crash window, relaunch)
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.bind(ctx, pod, l.NodeName); err != nil {
				log.WithError(err).WithField("pod", podKey(pod)).Warn("binding pod")
				s.recorder.Eventf(pod, corev1.EventTypeWarning, EventFailedBinding, "Binding to %s failed: %v", l.NodeName, err)
				s.endInflight(pod)
				return
			}
			s.recorder.Eventf(pod, corev1.EventTypeNormal, EventScheduled, "Successfully assigned %s to %s", podKey(pod), l.NodeName)
			results[i] = outcome{task: ti, sandbox: sandbox, ok: true}
		}()
	}
	wg.Wait()
	var tasks []mesos.TaskInfo
	var launched []*corev1.Pod
	var sandboxes []string // task IDs of the sandbox tasks, besides tasks[i] of launched[i]
	for i, r := range results {
		if r.ok {
			tasks = append(tasks, r.task)
			launched = append(launched, l.Pods[i].Pod)
		}
	}
	// Sandbox tasks after every pod task: tasks[i] stays launched[i]'s pod task. Mesos launches the
	// operation's tasks in any order; the kubelet executor waits for the sandbox.
	for _, r := range results {
		if r.ok && r.sandbox != nil {
			tasks = append(tasks, *r.sandbox)
			sandboxes = append(sandboxes, r.sandbox.TaskID.Value)
		}
	}
	if len(tasks) == 0 {
		s.decline(ctx, l.OfferIDs, 0)
		return false
	}

	bindsDone := s.clock.Now()
	accept := calls.Accept(calls.OfferOperations{calls.OpLaunch(tasks...)}.WithOffers(l.OfferIDs...)).
		With(calls.RefuseSeconds(acceptRefuse))
	err = s.call(ctx, accept)
	now := s.clock.Now()
	s.mu.Lock()
	for _, id := range sandboxes {
		s.tasks[id] = &taskRecord{agentID: l.AgentID.Value, state: mesos.TASK_STAGING}
		if err != nil {
			s.awaiting[id] = l.AgentID.Value
		}
	}
	for i, pod := range launched {
		id := tasks[i].TaskID.Value
		drops := 0
		if prev, ok := s.tasks[id]; ok {
			drops = prev.drops
		}
		s.tasks[id] = &taskRecord{agentID: l.AgentID.Value, state: mesos.TASK_STAGING, drops: drops}
		if err != nil {
			// Whether the master got the ACCEPT is unknown: ask it before anything else happens.
			s.awaiting[id] = l.AgentID.Value
			s.reconciled = false
		}
		delete(s.inflight, pod.UID)
		delete(s.pending, podKey(pod))
	}
	n := len(s.pending)
	s.mu.Unlock()
	s.metrics.pendingPods.Set(float64(n))
	if err != nil {
		log.WithError(err).Warn("ACCEPT failed; reconciling its tasks")
		return true // the offers were used (or are gone); never declined twice
	}
	s.metrics.offersAccepted.Add(float64(len(l.OfferIDs)))
	s.metrics.podsLaunched.Add(float64(len(launched)))
	for _, pod := range launched {
		s.metrics.schedulingLatency.Observe(now.Sub(pod.CreationTimestamp.Time).Seconds())
		s.queue.Add(podKey(pod))
	}
	log.WithFields(logrus.Fields{"pods": len(launched), "binding": bindsDone.Sub(started), "accepting": now.Sub(bindsDone)}).Info("launched pods")
	return true
}

// buildTasks builds a placed pod's task and, for a pod on a CNI pod network, its sandbox task on its
// own sandbox executor (docs/design.md, "One pod, two tasks").
func (s *sched) buildTasks(pod *corev1.Pod, agentID mesos.AgentID, kubelet mesos.ExecutorInfo, pp *offerbridge.PodPlacement) (mesos.TaskInfo, *mesos.TaskInfo, error) {
	ti, err := s.translate.TaskInfo(pod, agentID, kubelet, pp.Resources)
	if err != nil || pp.Sandbox == nil {
		return ti, nil, err
	}
	exec, err := s.translate.SandboxExecutorInfo(pod, kubelet, pp.Sandbox.Executor)
	if err != nil {
		return mesos.TaskInfo{}, nil, err
	}
	if u := s.executor.SandboxURI; u != nil {
		exec.Command.URIs = []mesos.CommandInfo_URI{*u} // a copy of the kubelet's: ours to change
	}
	sb, err := s.translate.SandboxTaskInfo(pod, agentID, exec, pp.Sandbox.Task)
	if err != nil {
		return mesos.TaskInfo{}, nil, err
	}
	return ti, &sb, nil
}

// assumeLocked records pod, launched, as bound to node until the informer shows its Binding.
func (s *sched) assumeLocked(pod *corev1.Pod, node string) {
	a := *pod // the informer's object is shared: a shallow copy with its own spec
	a.Spec.NodeName = node
	s.placement.assumed[pod.UID] = &a
}

// endInflight gives back a placed pod that was not launched: pending again, no longer assumed.
func (s *sched) endInflight(pod *corev1.Pod) {
	s.mu.Lock()
	delete(s.inflight, pod.UID)
	delete(s.placement.assumed, pod.UID)
	s.mu.Unlock()
	s.queue.Add(podKey(pod))
}

func (s *sched) endAllInflight(l *offerbridge.Launch) {
	for _, pp := range l.Pods {
		s.endInflight(pp.Pod)
	}
}

// bind binds a pod to a Node through the binding subresource (with the pod's UID as precondition).
func (s *sched) bind(ctx context.Context, pod *corev1.Pod, nodeName string) error {
	if err := s.fence.allow(fencedBinding, podKey(pod)); err != nil {
		return fmt.Errorf("binding pod %s to %s not sent: %w", podKey(pod), nodeName, err)
	}
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: nodeName},
	}
	if err := s.kube.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("binding pod %s to %s: %w", podKey(pod), nodeName, err)
	}
	return nil
}

// unschedulable records a FailedScheduling event and backs the pod off.
func (s *sched) unschedulable(ctx context.Context, u *offerbridge.Unfit, now time.Time) {
	pod := u.Pod
	key := podKey(pod)
	s.metrics.podsUnschedulable.Inc()
	s.mu.Lock()
	p, ok := s.pending[key]
	changed := false
	if ok && p.uid == pod.UID {
		p.attempts++
		d := min(minPodBackoff<<min(p.attempts-1, 10), maxPodBackoff)
		if u.Unresolvable {
			d = maxPodBackoff
		}
		p.notBefore = now.Add(d)
		changed = p.message != u.Message
		p.message, p.waits = u.Message, u.Waits
	}
	s.mu.Unlock()
	s.recorder.Event(pod, corev1.EventTypeWarning, EventFailedScheduling, u.Message)
	s.log.WithFields(logrus.Fields{"pod": key, "reasons": u.Reasons}).Info("pod unschedulable: " + u.Message)
	if changed {
		s.setUnschedulableCondition(ctx, pod, u.Message)
	}
}

// setUnschedulableCondition writes PodScheduled=False/Unschedulable as kube-scheduler does.
func (s *sched) setUnschedulableCondition(ctx context.Context, pod *corev1.Pod, message string) {
	p := pod.DeepCopy()
	if !setPodCondition(&p.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: message}, s.clock.Now()) {
		return
	}
	if _, err := s.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		s.log.WithError(err).WithField("pod", podKey(pod)).Debug("writing PodScheduled condition")
	}
}

// setPodCondition sets a condition, keeping the transition time when the status is unchanged; it
// reports whether anything changed.
func setPodCondition(st *corev1.PodStatus, c corev1.PodCondition, now time.Time) bool {
	c.LastTransitionTime = metav1.NewTime(now)
	for i := range st.Conditions {
		cur := &st.Conditions[i]
		if cur.Type != c.Type {
			continue
		}
		if cur.Status == c.Status && cur.Reason == c.Reason && cur.Message == c.Message {
			return false
		}
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
		}
		*cur = c
		return true
	}
	st.Conditions = append(st.Conditions, c)
	return true
}
