package podtranslate

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons, as the kubelet writes them (k8s.io/kubernetes/pkg/kubelet/status).
const (
	CondReasonUnknownContainerStatuses = "UnknownContainerStatuses"
	CondReasonPodCompleted             = "PodCompleted"
	CondReasonPodFailed                = "PodFailed"
	CondReasonContainersNotReady       = "ContainersNotReady"
	CondReasonContainersNotInitialized = "ContainersNotInitialized"
	CondReasonReadinessGatesNotReady   = "ReadinessGatesNotReady"
)

// KubeletConditions computes the Initialized, Ready and ContainersReady conditions of a pod in phase
// from its container statuses (init and app, in any order), as the kubelet does, with
// ObservedGeneration = pod.Generation and without times (SetCondition sets those). Existing conditions
// of the pod are consulted for readiness gates.
func KubeletConditions(pod *corev1.Pod, phase corev1.PodPhase, initStatuses, statuses []corev1.ContainerStatus) []corev1.PodCondition {
	var all []corev1.ContainerStatus
	if initStatuses != nil || statuses != nil {
		all = make([]corev1.ContainerStatus, 0, len(initStatuses)+len(statuses))
		all = append(append(all, initStatuses...), statuses...)
	}
	gen := pod.Generation
	initialized := initializedCondition(pod, all, phase)
	containersReady := containersReadyCondition(pod, all, phase)
	ready := readyCondition(pod, containersReady)
	for _, c := range []*corev1.PodCondition{&initialized, &ready, &containersReady} {
		c.ObservedGeneration = gen
	}
	return []corev1.PodCondition{initialized, ready, containersReady}
}

func restartable(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func statusOf(statuses []corev1.ContainerStatus, name string) (corev1.ContainerStatus, bool) {
	for i := range statuses {
		if statuses[i].Name == name {
			return statuses[i], true
		}
	}
	return corev1.ContainerStatus{}, false
}

func containersReadyCondition(pod *corev1.Pod, all []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	cond := corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse}
	if all == nil {
		cond.Reason = CondReasonUnknownContainerStatuses
		return cond
	}
	var unknown, unready []string
	check := func(c *corev1.Container) {
		if cs, ok := statusOf(all, c.Name); !ok {
			unknown = append(unknown, c.Name)
		} else if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	for i := range pod.Spec.InitContainers {
		if restartable(&pod.Spec.InitContainers[i]) {
			check(&pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	if (phase == corev1.PodSucceeded && len(unknown) == 0) || phase == corev1.PodFailed {
		cond.Reason = CondReasonPodCompleted
		if phase == corev1.PodFailed {
			cond.Reason = CondReasonPodFailed
		}
		return cond
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(unready) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unready status: %s", unready))
	}
	if len(msgs) > 0 {
		cond.Reason, cond.Message = CondReasonContainersNotReady, strings.Join(msgs, ", ")
		return cond
	}
	cond.Status = corev1.ConditionTrue
	return cond
}

func readyCondition(pod *corev1.Pod, containersReady corev1.PodCondition) corev1.PodCondition {
	cond := corev1.PodCondition{Type: corev1.PodReady, Status: containersReady.Status, Reason: containersReady.Reason, Message: containersReady.Message}
	if containersReady.Status != corev1.ConditionTrue {
		return cond
	}
	var msgs []string
	for _, rg := range pod.Spec.ReadinessGates {
		c := findCondition(pod.Status.Conditions, rg.ConditionType)
		switch {
		case c == nil:
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		case c.Status != corev1.ConditionTrue:
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), c.Status))
		}
	}
	if len(msgs) > 0 {
		cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, CondReasonReadinessGatesNotReady, strings.Join(msgs, ", ")
	}
	return cond
}

func initializedCondition(pod *corev1.Pod, all []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	cond := corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionFalse}
	if all == nil && len(pod.Spec.InitContainers) > 0 {
		cond.Reason = CondReasonUnknownContainerStatuses
		return cond
	}
	var unknown, incomplete []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs, ok := statusOf(all, c.Name)
		if !ok {
			unknown = append(unknown, c.Name)
			continue
		}
		if !initContainerDone(c, &cs) {
			incomplete = append(incomplete, c.Name)
		}
	}
	if phase == corev1.PodSucceeded && len(unknown) == 0 {
		cond.Status, cond.Reason = corev1.ConditionTrue, CondReasonPodCompleted
		return cond
	}
	if anyAppContainerStarted(pod, all) {
		cond.Status = corev1.ConditionTrue
		return cond
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(incomplete) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with incomplete status: %s", incomplete))
	}
	if len(msgs) > 0 {
		cond.Reason, cond.Message = CondReasonContainersNotInitialized, strings.Join(msgs, ", ")
		return cond
	}
	cond.Status = corev1.ConditionTrue
	return cond
}

// initContainerDone: a sidecar has started; a regular init container is Ready (the kubelet marks it so
// when it exits 0), or terminated with exit code 0 for executors that do not set Ready on it.
func initContainerDone(c *corev1.Container, cs *corev1.ContainerStatus) bool {
	if restartable(c) {
		return cs.Started != nil && *cs.Started
	}
	return cs.Ready || (cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0)
}

func anyAppContainerStarted(pod *corev1.Pod, all []corev1.ContainerStatus) bool {
	for i := range pod.Spec.Containers {
		if cs, ok := statusOf(all, pod.Spec.Containers[i].Name); ok && (cs.State.Running != nil || cs.State.Terminated != nil) {
			return true
		}
	}
	return false
}

func findCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// SetCondition returns conds with c set (replacing the condition of the same type, else appended).
// LastTransitionTime is now when the status changes and kept otherwise; LastProbeTime is kept.
// conds is not modified.
func SetCondition(conds []corev1.PodCondition, c corev1.PodCondition, now metav1.Time) []corev1.PodCondition {
	out := make([]corev1.PodCondition, 0, len(conds)+1)
	out = append(out, conds...)
	old := findCondition(out, c.Type)
	if old == nil {
		c.LastTransitionTime = now
		return append(out, c)
	}
	if old.Status == c.Status {
		c.LastTransitionTime = old.LastTransitionTime
	} else {
		c.LastTransitionTime = now
	}
	if c.LastProbeTime.IsZero() {
		c.LastProbeTime = old.LastProbeTime
	}
	*old = c
	return out
}

// UpdateKubeletConditions sets the kubelet-owned conditions (Initialized, Ready, ContainersReady) of
// status from its phase and container statuses, keeping every other condition.
func UpdateKubeletConditions(pod *corev1.Pod, status *corev1.PodStatus, now metav1.Time) {
	view := pod.DeepCopy()
	view.Status.Conditions = status.Conditions
	for _, c := range KubeletConditions(view, status.Phase, status.InitContainerStatuses, status.ContainerStatuses) {
		status.Conditions = SetCondition(status.Conditions, c, now)
	}
}

// PodReadyToStartContainersCondition is the kubelet's sandbox condition: true once the executor has
// the pod's task and can start its containers.
func PodReadyToStartContainersCondition(pod *corev1.Pod, ready bool) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionFalse, ObservedGeneration: pod.Generation}
	if ready {
		c.Status = corev1.ConditionTrue
	}
	return c
}

// UnschedulableCondition is PodScheduled=False with the scheduler's reason Unschedulable and message
// (e.g. "0/3 agents are available: 3 Insufficient cpu.").
func UnschedulableCondition(pod *corev1.Pod, message string) corev1.PodCondition {
	return corev1.PodCondition{
		Type:               corev1.PodScheduled,
		Status:             corev1.ConditionFalse,
		Reason:             corev1.PodReasonUnschedulable,
		Message:            message,
		ObservedGeneration: pod.Generation,
	}
}

// PodPhase is the kubelet's pod phase for container statuses (init and app, any order). podIsTerminal
// says the pod will not run containers again (deleted, or past its deadline); podHasInitialized says
// the app containers have been started before. Container restart rules are not supported (Check).
func PodPhase(pod *corev1.Pod, initStatuses, statuses []corev1.ContainerStatus, podIsTerminal, podHasInitialized bool) corev1.PodPhase {
	all := append(append([]corev1.ContainerStatus{}, initStatuses...), statuses...)
	spec := &pod.Spec
	pendingInit, pendingSidecars, failedInit := 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if restartable(c) {
			continue
		}
		cs, ok := statusOf(all, c.Name)
		switch {
		case !ok:
			pendingInit++
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			if cs.LastTerminationState.Terminated.ExitCode != 0 {
				failedInit++
			}
		default: // running, waiting for the first time, or no state
			pendingInit++
		}
	}
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if !restartable(c) {
			continue
		}
		cs, ok := statusOf(all, c.Name)
		switch {
		case !ok:
			unknown++
		case cs.State.Running != nil:
			if cs.Started == nil || !*cs.Started {
				pendingSidecars++
			}
			running++
		case cs.State.Terminated != nil:
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated == nil {
				pendingSidecars++
				waiting++
			}
		default:
			pendingSidecars++
			unknown++
		}
	}
	for i := range spec.Containers {
		cs, ok := statusOf(all, spec.Containers[i].Name)
		switch {
		case !ok:
			unknown++
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecars > 0 && !podHasInitialized), waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if podIsTerminal {
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
		if spec.RestartPolicy == corev1.RestartPolicyAlways {
			return corev1.PodRunning
		}
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		if spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		return corev1.PodRunning
	default:
		return corev1.PodPending
	}
}

// ApplyOutcome returns pod's status with outcome o applied, and whether it changed. A pod already in a
// terminal phase is never changed (Kubernetes forbids leaving Succeeded/Failed).
//   - ActionTerminate: phase, reason and message; every container not terminated becomes terminated
//     with ContainerStatusUnknown/137 as the kubelet reports containers it cannot find; Ready and
//     ContainersReady False (PodFailed/PodCompleted).
//   - ActionMarkNotReady: Ready and ContainersReady False with the outcome's reason and message.
//   - other actions: unchanged.
func ApplyOutcome(pod *corev1.Pod, o TaskOutcome, now metav1.Time) (corev1.PodStatus, bool) {
	st := *pod.Status.DeepCopy()
	if isTerminalPhase(st.Phase) {
		return st, false
	}
	before := pod.Status.DeepCopy()
	switch o.Action {
	case ActionTerminate:
		st.Phase, st.Reason, st.Message = o.Phase, o.Reason, o.Message
		markUnknown(st.InitContainerStatuses, now)
		markUnknown(st.ContainerStatuses, now)
		reason := CondReasonPodFailed
		if o.Phase == corev1.PodSucceeded {
			reason = CondReasonPodCompleted
		}
		for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			st.Conditions = SetCondition(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, ObservedGeneration: pod.Generation}, now)
		}
	case ActionMarkNotReady:
		for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			st.Conditions = SetCondition(st.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: o.Reason, Message: o.Message, ObservedGeneration: pod.Generation}, now)
		}
		for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
			for i := range list {
				list[i].Ready = false
			}
		}
	default:
		return st, false
	}
	return st, !equality.Semantic.DeepEqual(*before, st)
}

func isTerminalPhase(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

func markUnknown(list []corev1.ContainerStatus, now metav1.Time) {
	for i := range list {
		cs := &list[i]
		cs.Ready = false
		started := false
		cs.Started = &started
		if cs.State.Terminated != nil {
			continue
		}
		t := Termination{
			ExitCode:   137,
			Reason:     ReasonContainerStatusUnknown,
			Message:    MessageContainerStatusUnknown,
			FinishedAt: now,
		}
		if cs.State.Running != nil {
			t.StartedAt = cs.State.Running.StartedAt
		}
		cs.State = TerminatedState(t)
	}
}
