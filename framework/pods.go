package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/podtranslate"
)

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// podFinished reports whether a pod reached a terminal phase.
func podFinished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// agentOfNode returns the Mesos agent ID behind a Node name, or "" when the Node is not one of this
// framework's (another framework's, or not a Mesos agent).
func (s *sched) agentOfNode(nodeName string) string {
	if nodeName == "" {
		return ""
	}
	if n, err := s.nodeLister.Get(nodeName); err == nil {
		if id, ours := s.nodes.NodeAgent(n); ours {
			return id
		}
		return ""
	}
	return s.nodes.AgentOfHostname(nodeName) // created a moment ago, not in the cache yet
}

// ownsPod reports whether a pod is this framework's to act on: it schedules the pod's schedulerName,
// and the pod is not bound, or bound to one of the framework's Nodes.
func (s *sched) ownsPod(p *corev1.Pod) bool {
	return s.schedulerNames[p.Spec.SchedulerName] && (p.Spec.NodeName == "" || s.agentOfNode(p.Spec.NodeName) != "")
}

// runWorkers processes pod keys with n workers until ctx is cancelled.
func (s *sched) runWorkers(ctx context.Context, n int) {
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for s.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	s.queue.ShutDown()
	for i := 0; i < n; i++ {
		<-done
	}
}

func (s *sched) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	if err := s.syncPod(ctx, key); err != nil {
		s.log.WithError(err).WithField("pod", key).Warn("syncing pod; will retry")
		s.queue.AddRateLimited(key)
		return true
	}
	s.queue.Forget(key)
	return true
}

// syncPod compares one pod with its task and acts: queue it for placement, kill its task when the pod is
// deleted or finished, delete the pod object once its task ended (the kubelet's job in other clusters),
// or fail it when its task can never run. Idempotent; it reads only listers and the framework's state.
func (s *sched) syncPod(ctx context.Context, key string) error {
	if taskID, ok := strings.CutPrefix(key, orphanKeyPrefix); ok {
		return s.syncOrphan(ctx, taskID)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s.unpend(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pod %s from cache: %w", key, err)
	}
	if !s.schedulerNames[pod.Spec.SchedulerName] {
		s.unpend(key) // another scheduler's pod, bound or not: never ours to launch, fail or delete
		return nil
	}
	taskID := taskIDPrefix + string(pod.UID)
	s.mu.Lock()
	var rec *taskRecord
	if r, ok := s.tasks[taskID]; ok {
		c := *r
		rec = &c
	}
	reconciled, inflight, subscribed := s.reconciled, s.inflight[pod.UID], s.subscribed
	s.mu.Unlock()
	live := rec.live()
	agentID := s.agentOfNode(pod.Spec.NodeName)
	log := s.log.WithFields(logrus.Fields{"pod": key, "taskID": taskID, "agentID": agentID})
	if subscribed {
		s.sandboxSettled(ctx, pod, rec, inflight, reconciled, log)
	}

	switch {
	case pod.DeletionTimestamp != nil:
		s.unpend(key)
		if agentID == "" || inflight {
			return nil // unbound pods are removed by the API server; in-flight launches requeue the pod
		}
		if live {
			if !subscribed {
				return errors.New("not subscribed: cannot kill yet")
			}
			return s.kill(ctx, pod, rec.agentID, log)
		}
		if rec == nil && !reconciled {
			return nil // reconciliation will tell whether a task exists
		}
		return s.deletePod(ctx, pod, log)

	case podFinished(pod):
		s.unpend(key)
		if live && subscribed {
			// Failed by the framework (agent unreachable) but the task still runs somewhere: end it.
			return s.kill(ctx, pod, rec.agentID, log)
		}
		return nil

	case pod.Spec.NodeName == "":
		if len(pod.Spec.SchedulingGates) > 0 {
			s.unpend(key)
		}
		// live: launched by this process, the watch has not delivered the binding yet.
		// Scheduling gates hold a pod back from every scheduler until removed, as in kube-scheduler.
		if s.schedulerNames[pod.Spec.SchedulerName] && len(pod.Spec.SchedulingGates) == 0 && !live && !inflight {
			s.pend(key, pod, nil)
		}
		return nil

	case agentID == "":
		return nil // bound to a Node that is not one of this framework's agents

	case inflight || live:
		s.unpend(key)
		return nil

	case rec != nil && !rec.relaunch:
		return nil // the task ended; the executor or handleUpdate writes the pod's final status

	case rec == nil && !reconciled:
		return nil // reconciliation has not answered yet
	}

	// Bound to an agent but no task runs: the framework crashed between Binding and ACCEPT, Mesos
	// dropped the task, or someone else bound the pod. Launch it there (its TaskID comes from the pod's
	// UID, so Mesos refuses a duplicate), unless it cannot run any more.
	switch {
	case rec != nil && rec.drops >= maxDrops:
		s.unpend(key)
		return s.failPod(ctx, pod, PodReasonTaskDropped, fmt.Sprintf("Mesos dropped or could not start the pod's task %d times", rec.drops))
	case (rec == nil || rec.ifNotStarted) && podtranslate.PodStarted(pod):
		s.unpend(key)
		return s.failPod(ctx, pod, podtranslate.ReasonNodeLost, "the pod's Mesos task is unknown to Mesos after the pod started")
	case !s.nodes.Active(agentID):
		s.unpend(key)
		return s.failPod(ctx, pod, podtranslate.ReasonNodeLost, fmt.Sprintf("Mesos agent %s of node %s is not active", agentID, pod.Spec.NodeName))
	}
	if !s.hasFullPod(key, pod) {
		full, err := s.kube.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) || (err == nil && full.UID != pod.UID):
			return nil // gone: its deletion is on its way
		case err != nil:
			return fmt.Errorf("reading pod %s to launch it: %w", key, err)
		}
		log.Info("pod bound to an agent without a task: launching it there")
		s.pend(key, pod, full)
	}
	return nil
}

// hasFullPod reports whether the pending pod has its whole spec, as current as the cached pod's
// (spec changes raise metadata.generation).
func (s *sched) hasFullPod(key string, pod *corev1.Pod) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[key]
	return p != nil && p.uid == pod.UID && p.full != nil && p.full.Generation == pod.Generation
}

// orphanKeyPrefix marks queue keys naming a task whose pod object was removed ("task:pod-<uid>"; pod
// keys are namespace/name and a namespace never contains ':').
const orphanKeyPrefix = "task:"

// syncOrphan kills the task of a pod whose object is gone.
func (s *sched) syncOrphan(ctx context.Context, taskID string) error {
	uid, _ := strings.CutPrefix(taskID, taskIDPrefix)
	if s.podByUID(types.UID(uid)) != nil {
		return nil
	}
	s.mu.Lock()
	rec, ok := s.tasks[taskID]
	live := ok && rec.live()
	var agentID string
	if ok {
		agentID = rec.agentID
	}
	subscribed := s.subscribed
	if ok && !live {
		delete(s.tasks, taskID) // neither pod nor task remains
	}
	s.mu.Unlock()
	if !live {
		if subscribed {
			// The pod task is over: its sandbox, if any, goes too.
			s.endSandbox(ctx, types.UID(uid), s.log)
		}
		return nil
	}
	if !subscribed {
		return errors.New("not subscribed: cannot kill yet")
	}
	sent, err := s.killTask(ctx, taskID, agentID, nil)
	if sent {
		s.log.WithFields(logrus.Fields{"taskID": taskID, "agentID": agentID}).Info("killing task of a removed pod")
	}
	return err
}

// pend queues a pod for placement; full is a bound pod as read from the API server (pendingPod.full),
// nil for an unbound one.
func (s *sched) pend(key string, pod, full *corev1.Pod) {
	s.mu.Lock()
	p, ok := s.pending[key]
	if !ok || p.uid != pod.UID {
		p = &pendingPod{uid: pod.UID}
		s.pending[key] = p
		s.newPending = true
	}
	if full != nil {
		p.full = full
	}
	n := len(s.pending)
	s.mu.Unlock()
	s.metrics.pendingPods.Set(float64(n))
	if !ok {
		s.poke()
	}
}

func (s *sched) unpend(key string) {
	s.mu.Lock()
	delete(s.pending, key)
	n := len(s.pending)
	s.mu.Unlock()
	s.metrics.pendingPods.Set(float64(n))
}

// killCall builds KILL, with a kill policy when given.
func killCall(taskID, agentID string, policy *mesos.KillPolicy) *scheduler.Call {
	c := calls.Kill(taskID, agentID)
	c.Kill.KillPolicy = policy
	return c
}

// kill KILLs the task of a pod with the deletion's grace period (the pod's when not deleting).
func (s *sched) kill(ctx context.Context, pod *corev1.Pod, agentID string, log logrus.FieldLogger) error {
	policy := podtranslate.DeletionKillPolicy(pod)
	sent, err := s.killTask(ctx, taskIDPrefix+string(pod.UID), agentID, policy)
	if err != nil {
		return fmt.Errorf("killing task of pod %s: %w", podKey(pod), err)
	}
	if !sent {
		s.queue.AddAfter(podKey(pod), killRepeat)
		return nil
	}
	log.WithField("grace", time.Duration(policy.GetGracePeriod().GetNanoseconds())).Info("killing task")
	s.recorder.Eventf(pod, corev1.EventTypeNormal, EventKilling, "Killing Mesos task %s%s", taskIDPrefix, pod.UID)
	return nil
}

// killTask sends KILL unless one was sent less than killRepeat ago (pod updates during termination,
// repeated status updates); it reports whether it sent one.
func (s *sched) killTask(ctx context.Context, taskID, agentID string, policy *mesos.KillPolicy) (bool, error) {
	now := s.clock.Now()
	s.mu.Lock()
	rec, ok := s.tasks[taskID]
	if ok && !rec.killedAt.IsZero() && now.Sub(rec.killedAt) < killRepeat {
		s.mu.Unlock()
		return false, nil
	}
	if ok {
		rec.killedAt = now
	}
	s.mu.Unlock()
	if err := s.call(ctx, killCall(taskID, agentID, policy)); err != nil {
		s.mu.Lock()
		if ok {
			rec.killedAt = time.Time{}
		}
		s.mu.Unlock()
		return false, err
	}
	return true, nil
}

// deletePod removes the object of a deleted pod whose task ended (grace 0, only this UID).
func (s *sched) deletePod(ctx context.Context, pod *corev1.Pod, log logrus.FieldLogger) error {
	err := s.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	switch {
	case err == nil:
		log.Info("task ended: pod deleted")
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		// An update queued the pod again before the informer saw the deletion: already done.
		log.WithError(err).Debug("deleted pod already gone")
	default:
		return fmt.Errorf("deleting pod %s: %w", podKey(pod), err)
	}
	return nil
}

// podHandlers queue pod keys from the informer.
func (s *sched) podHandlers() cache.ResourceEventHandler {
	add := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			s.queue.Add(key)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				s.podUIDs.forget(p.UID)
				// The pod object is gone (force deletion): its task, if any, must end too.
				s.queue.Add(orphanKeyPrefix + taskIDPrefix + string(p.UID))
			}
			add(obj)
		},
	}
}
