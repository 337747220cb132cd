package framework

import (
	"context"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"k8s.io/apimachinery/pkg/labels"
)

// startReconciliation asks Mesos about every task the framework knows of and every pod it schedules
// bound to one of its Nodes (explicit), and about every task Mesos knows (implicit). Until every explicit question is
// answered, no bound pod is (re)launched: its task may exist.
func (s *sched) startReconciliation(ctx context.Context) {
	ask := map[string]string{}
	s.mu.Lock()
	for id, rec := range s.tasks {
		if rec.live() {
			ask[id] = rec.agentID
		}
	}
	s.mu.Unlock()
	if pods, err := s.pods.List(labels.Everything()); err == nil {
		for _, p := range pods {
			// Only pods it schedules, on its own Nodes: this master answers TASK_UNKNOWN about the
			// pods of another framework, which must not be failed for it.
			if p.Spec.NodeName == "" || podFinished(p) || !s.schedulerNames[p.Spec.SchedulerName] {
				continue
			}
			if agentID := s.agentOfNode(p.Spec.NodeName); agentID != "" {
				ask[taskIDPrefix+string(p.UID)] = agentID
				if s.translate.Sandboxed(p) {
					// A live sandbox would refuse the relaunch of its pod (same TaskID).
					ask[sandboxIDPrefix+string(p.UID)] = agentID
				}
			}
		}
	}
	now := s.clock.Now()
	s.mu.Lock()
	s.awaiting = ask
	s.reconciled = len(ask) == 0
	s.reconcileAttempt = 0
	s.nextReconcile = now.Add(minReconcileBackoff)
	s.nextImplicit = now.Add(s.reconcileEvery)
	s.mu.Unlock()
	s.log.WithField("tasks", len(ask)).Info("reconciling tasks")
	if len(ask) > 0 {
		if err := s.call(ctx, calls.Reconcile(calls.ReconcileTasks(ask))); err != nil {
			s.log.WithError(err).Warn("explicit reconciliation")
		}
	} else {
		s.requeueAllPods()
	}
	if err := s.call(ctx, calls.Reconcile()); err != nil {
		s.log.WithError(err).Warn("implicit reconciliation")
	}
}

// reconcileTick repeats explicit reconciliation with back-off until answered, and implicit
// reconciliation every reconcileEvery.
func (s *sched) reconcileTick(ctx context.Context, now time.Time) {
	s.mu.Lock()
	if !s.subscribed {
		s.mu.Unlock()
		return
	}
	var ask map[string]string
	if !s.reconciled && len(s.awaiting) > 0 && !now.Before(s.nextReconcile) {
		ask = make(map[string]string, len(s.awaiting))
		for k, v := range s.awaiting {
			ask[k] = v
		}
		s.reconcileAttempt++
		s.nextReconcile = now.Add(min(minReconcileBackoff<<min(s.reconcileAttempt, 10), maxReconcileBackoff))
	}
	implicit := !now.Before(s.nextImplicit)
	if implicit {
		s.nextImplicit = now.Add(s.reconcileEvery)
	}
	s.mu.Unlock()
	if ask != nil {
		s.log.WithField("tasks", len(ask)).Info("repeating explicit reconciliation")
		if err := s.call(ctx, calls.Reconcile(calls.ReconcileTasks(ask))); err != nil {
			s.log.WithError(err).Warn("explicit reconciliation")
		}
	}
	if implicit {
		if err := s.call(ctx, calls.Reconcile()); err != nil {
			s.log.WithError(err).Warn("implicit reconciliation")
		}
	}
}
