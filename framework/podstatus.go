package framework

import (
	"context"
	"fmt"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// applyMesosOnlyOutcome writes what only Mesos knows into a pod's status: the end of a pod whose
// executor could not report it (lost, gone, error, failed or killed by the agent or master, or unknown
// after it started), or NotReady while its agent is unreachable. Executor-reported ends are written by
// the executor itself; relaunches are syncPod's.
func (s *sched) applyMesosOnlyOutcome(ctx context.Context, pod *corev1.Pod, state mesos.TaskState, out podtranslate.TaskOutcome) error {
	if pod.DeletionTimestamp != nil || podFinished(pod) {
		return nil
	}
	switch {
	case out.Action == podtranslate.ActionTerminate:
		return s.endPod(ctx, pod, out.Phase, out.Reason, out.Message)
	case out.Action == podtranslate.ActionMarkNotReady:
		return s.markNotReady(ctx, pod, out.Reason, out.Message)
	case state == mesos.TASK_RUNNING:
		return s.restoreReady(ctx, pod)
	}
	return nil
}

// endPod writes a terminal phase with a reason, as the kubelet does for pods it cannot run.
func (s *sched) endPod(ctx context.Context, pod *corev1.Pod, phase corev1.PodPhase, reason, message string) error {
	return s.endPodWith(ctx, pod, phase, reason, message, EventTaskEnded, false)
}

// endPodWith is endPod recording the event with the given reason. completeSilent: a pod the executor
// already ended Failed without a reason gets this reason too (the sandbox's end it was told to stop
// waiting for); otherwise an end the executor wrote stands.
func (s *sched) endPodWith(ctx context.Context, pod *corev1.Pod, phase corev1.PodPhase, reason, message, event string, completeSilent bool) error {
	now := s.clock.Now()
	current, err := s.freshPod(ctx, pod)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pod %s: %w", podKey(pod), err)
	}
	// The executor writes the same pod's status (conditions while it waits for a sandbox): on a conflict
	// the write is redone on the pod as the API server has it, so Mesos' reason is not lost.
	ended := false
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		base := current
		switch {
		case podFinished(current) && (!completeSilent || current.Status.Reason != "" || current.Status.Phase != phase):
			ended = true // the executor wrote its own end first: that one stands
			return nil
		case podFinished(current):
			// The executor ended it without a reason (told to stop waiting for its sandbox): Mesos'
			// account completes that end.
			base = current.DeepCopy()
			base.Status.Phase = ""
		}
		p := current.DeepCopy()
		// As the kubelet ends a pod: containers it cannot see any more become ContainerStatusUnknown
		// (137) and unready, and Ready/ContainersReady go False with PodFailed or PodCompleted.
		p.Status, _ = podtranslate.ApplyOutcome(base, podtranslate.TaskOutcome{Phase: phase, Reason: reason, Message: message,
			Terminal: true, Action: podtranslate.ActionTerminate}, metav1.NewTime(now))
		_, err := s.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			fresh, gerr := s.freshPod(ctx, pod)
			if gerr != nil {
				return gerr
			}
			current = fresh
		}
		return err
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("writing %s status of pod %s: %w", phase, podKey(pod), err)
	}
	if ended {
		return nil
	}
	eventType := corev1.EventTypeWarning
	if phase == corev1.PodSucceeded {
		eventType = corev1.EventTypeNormal
	}
	s.recorder.Event(pod, eventType, event, message)
	s.log.WithFields(logrus.Fields{"pod": podKey(pod), "phase": phase, "reason": reason}).Warn("pod ended by Mesos: " + message)
	return nil
}

// freshPod reads pod from the API server, NotFound if it is gone or another pod took its name: a
// status write starts from it, since the cache keeps only part of a started pod's status.
func (s *sched) freshPod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	p, err := s.kube.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err == nil && p.UID != pod.UID {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), pod.Name)
	}
	return p, err
}

// failPod ends a pod as Failed.
func (s *sched) failPod(ctx context.Context, pod *corev1.Pod, reason, message string) error {
	return s.endPod(ctx, pod, corev1.PodFailed, reason, message)
}

// markNotReady sets Ready and ContainersReady False while the pod's agent is unreachable, as the node
// lifecycle controller does for pods of an unreachable node; the phase stays. The conditions it
// replaces are kept for restoreReady.
func (s *sched) markNotReady(ctx context.Context, pod *corev1.Pod, reason, message string) error {
	p, err := s.freshPod(ctx, pod)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pod %s: %w", podKey(pod), err)
	}
	var saved []corev1.PodCondition
	for _, c := range p.Status.Conditions {
		if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Reason != reason {
			saved = append(saved, c)
		}
	}
	now := s.clock.Now()
	a := setPodCondition(&p.Status, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: reason, Message: message}, now)
	b := setPodCondition(&p.Status, corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reason, Message: message}, now)
	if !a && !b {
		return nil
	}
	if _, err := s.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("marking pod %s not ready: %w", podKey(pod), err)
	}
	s.mu.Lock()
	if rec, ok := s.tasks[taskIDPrefix+string(pod.UID)]; ok && rec.notReadySaved == nil {
		rec.notReadySaved = saved
	}
	s.mu.Unlock()
	return nil
}

// restoreReady puts back the conditions markNotReady replaced once the task runs again (the agent
// re-registered); conditions someone changed since are left alone. A framework restarted since the
// NotReady write derives them from the container statuses instead.
func (s *sched) restoreReady(ctx context.Context, pod *corev1.Pod) error {
	id := taskIDPrefix + string(pod.UID)
	s.mu.Lock()
	rec, ok := s.tasks[id]
	var saved []corev1.PodCondition
	if ok {
		saved = rec.notReadySaved
	}
	s.mu.Unlock()
	if saved == nil && !markedNodeLost(pod) {
		return nil
	}
	// Read the pod from the API server: the cache may not show the NotReady write yet.
	p, err := s.freshPod(ctx, pod)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading pod %s: %w", podKey(pod), err)
	}
	changed := false
	var fromStatuses []corev1.PodCondition
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Reason != podtranslate.ReasonNodeLost || (c.Type != corev1.PodReady && c.Type != corev1.ContainersReady) {
			continue
		}
		restored := findPodCondition(saved, c.Type)
		if restored == nil {
			// Marked by a framework process that is gone (restarted or failed over since): the
			// kubelet's rule from the container statuses, which the NotReady write left alone.
			if fromStatuses == nil {
				fromStatuses = podtranslate.KubeletConditions(p, p.Status.Phase, p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
			}
			restored = findPodCondition(fromStatuses, c.Type)
		}
		if restored == nil {
			continue
		}
		r := *restored
		r.LastTransitionTime = metav1.NewTime(s.clock.Now())
		*c = r
		changed = true
	}
	// Ready is derived, never restored on its own: the kubelet computes it from ContainersReady and the
	// readiness gates at every sync (status.GeneratePodReadyCondition), so a Ready=False written while
	// the Node was NotReady (the node lifecycle controller's MarkPodsNotReady, which sets only the
	// status) ends once the agent is back, as it does when a kubelet comes back.
	if containersReady := findPodCondition(p.Status.Conditions, corev1.ContainersReady); containersReady != nil {
		changed = setPodCondition(&p.Status, derivedReady(p, *containersReady), s.clock.Now()) || changed
	}
	if changed {
		if _, err := s.kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("restoring readiness of pod %s: %w", podKey(pod), err)
		}
	}
	if ok {
		s.mu.Lock()
		rec.notReadySaved = nil
		s.mu.Unlock()
	}
	return nil
}

// markedNodeLost reports whether the framework marked pod NotReady for an unreachable agent.
func markedNodeLost(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Reason == podtranslate.ReasonNodeLost {
			return true
		}
	}
	return false
}

func findPodCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// derivedReady is the kubelet's GeneratePodReadyCondition (pkg/kubelet/status/generate.go): "If the
// status of ContainersReady is not True, return the same status, reason and message as
// ContainersReady"; else False while a readiness gate's condition is missing or not True.
func derivedReady(p *corev1.Pod, containersReady corev1.PodCondition) corev1.PodCondition {
	ready := corev1.PodCondition{Type: corev1.PodReady, Status: containersReady.Status, Reason: containersReady.Reason, Message: containersReady.Message}
	if containersReady.Status != corev1.ConditionTrue {
		return ready
	}
	var unready []string
	for _, rg := range p.Spec.ReadinessGates {
		switch c := findPodCondition(p.Status.Conditions, rg.ConditionType); {
		case c == nil:
			unready = append(unready, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		case c.Status != corev1.ConditionTrue:
			unready = append(unready, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), c.Status))
		}
	}
	if len(unready) > 0 {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, podtranslate.CondReasonReadinessGatesNotReady, strings.Join(unready, ", ")
	}
	return ready
}
