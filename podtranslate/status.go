package podtranslate

import (
	"fmt"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// Pod status reasons set from Mesos task states (pod.status.reason, shown by kubectl).
const (
	// ReasonNodeLost is the Kubernetes reason for pods whose node stopped answering
	// (k8s.io/kubernetes/pkg/util/node.NodeUnreachablePodReason).
	ReasonNodeLost = "NodeLost"
	// ReasonTaskInvalid: Mesos refused the task (TASK_ERROR).
	ReasonTaskInvalid = "TaskInvalid"
	// ReasonTaskUnauthorized: Mesos refused the task for authorization.
	ReasonTaskUnauthorized = "TaskUnauthorized"
	// ReasonEvicted: the agent ended the pod for a resource limit, QoS preemption or draining, like
	// kubelet evictions.
	ReasonEvicted = "Evicted"
	// ReasonOOMKilled: the task's container exceeded its memory.
	ReasonOOMKilled = "OOMKilled"
	// ReasonDeadlineExceeded: Mesos' max completion time, Kubernetes' activeDeadlineSeconds reason.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonExecutorTerminated: the executor hosting the pod exited or never registered; the pod's
	// containers, nested under it, went with it.
	ReasonExecutorTerminated = "ExecutorTerminated"
	// ReasonLaunchFailed: the agent could not launch the executor's container (fetch, image, isolation).
	ReasonLaunchFailed = "LaunchFailed"
	// ReasonFrameworkRemoved: Mesos tore the framework down.
	ReasonFrameworkRemoved = "FrameworkRemoved"
	// ReasonTaskFailed and ReasonTaskKilled are the defaults when Mesos gives no more specific reason.
	ReasonTaskFailed = "TaskFailed"
	ReasonTaskKilled = "TaskKilled"
)

// Action is what the framework does with a task status update.
type Action int

const (
	// ActionNone: nothing to write. The state is progress the pod status already shows, or our
	// executor reported it and writes the pod status itself (retrying until stored).
	ActionNone Action = iota
	// ActionMarkNotReady: the task may still run but nobody can vouch for it (agent unreachable):
	// Ready and ContainersReady become False, the phase stays. What the node lifecycle controller does
	// for pods of an unreachable node.
	ActionMarkNotReady
	// ActionTerminate: the pod is over and only Mesos knows it (the executor could not report): write
	// the terminal phase, reason and message (ApplyOutcome).
	ActionTerminate
	// ActionRelaunch: the task never started the pod (TASK_DROPPED, or a launch-time TASK_LOST): the pod
	// stays Pending on its node and the framework launches the same task again.
	ActionRelaunch
	// ActionRelaunchIfNotStarted: Mesos has no record of the task (TASK_UNKNOWN): relaunch if the pod
	// never started, else it is lost. TaskOutcome.ForPod resolves this.
	ActionRelaunchIfNotStarted
)

var actionNames = [...]string{"None", "MarkNotReady", "Terminate", "Relaunch", "RelaunchIfNotStarted"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// TaskOutcome is what a Mesos task status means for its pod.
type TaskOutcome struct {
	// Phase is the pod phase the state implies; empty means "unchanged" (KILLING, UNREACHABLE,
	// UNKNOWN).
	Phase corev1.PodPhase
	// Reason and Message are for pod.status.reason/message (Reason is empty for normal progress and
	// for executor-reported ends: the container statuses carry those).
	Reason  string
	Message string
	// Terminal: the pod has ended for good (Phase is Succeeded or Failed).
	Terminal bool
	// ExecutorReported: the update came from our executor (source SOURCE_EXECUTOR).
	ExecutorReported bool
	Action           Action
}

// PodStatusForTask maps a Mesos task status to its pod outcome. The table, and why:
//
//	TASK_STAGING, TASK_STARTING    Pending, None      accepted by Mesos / delivered to the executor
//	TASK_RUNNING                   Running, None      the executor sends it when the pod runs and writes the status
//	TASK_KILLING                   (same), None       graceful termination in progress; Kubernetes keeps the phase
//	TASK_FINISHED                  Succeeded          terminal
//	TASK_FAILED                    Failed             terminal; reason from the Mesos reason (OOMKilled, Evicted, ExecutorTerminated, ...);
//	                                                  RelaunchIfNotStarted when the agent never got the executor running
//	                                                  (LaunchFailed, executor registration timeout)
//	TASK_KILLED                    Failed             terminal; Succeeded when the executor labels the update kubemesos.io/phase=Succeeded
//	                                                  (all containers exited 0 on SIGTERM, as the kubelet decides)
//	TASK_ERROR                     Failed TaskInvalid terminal; the task description was refused and retrying cannot help;
//	                                                  Pending, Relaunch when it did not fit only because its executor
//	                                                  had just terminated (executorRaced)
//	TASK_DROPPED                   Pending, Relaunch  launch failed transiently, the executor never saw the task
//	TASK_LOST                      Failed NodeLost    terminal; or Relaunch for launch-time reasons (invalid offers, master or
//	                                                  resources unknown), or like TASK_UNKNOWN for a reconciliation answer
//	TASK_UNREACHABLE               (same), MarkNotReady NodeLost: the agent is partitioned and the pod may still run; Kubernetes
//	                                                  keeps such pods (Ready=False) until the node is declared gone, so must we
//	                                                  (a StatefulSet pod must never run twice)
//	TASK_GONE, TASK_GONE_BY_OPERATOR Failed NodeLost  terminal; the agent is gone (Evicted for QoS preemption); as a
//	                                                  reconciliation answer ("unknown to the agent") like TASK_UNKNOWN
//	TASK_UNKNOWN                   (same), RelaunchIfNotStarted; Failed NodeLost when the pod had started
//
// Terminal and final states reported by our executor (source SOURCE_EXECUTOR) get ActionNone: the
// executor writes the pod status (with container statuses) itself. The same states from the agent or
// master (the executor died, or a reconciliation answer) get ActionTerminate, so a pod status the
// executor never stored is still written.
func PodStatusForTask(status mesos.TaskStatus) TaskOutcome {
	state := status.GetState()
	o := TaskOutcome{ExecutorReported: status.Source != nil && status.GetSource() == mesos.SOURCE_EXECUTOR}
	terminate := func(phase corev1.PodPhase, defaultReason string) {
		o.Phase, o.Terminal = phase, true
		o.Action = ActionTerminate
		if o.ExecutorReported {
			o.Action = ActionNone
		}
		if r := reasonFor(status); r != "" {
			o.Reason = r
		} else if !o.ExecutorReported {
			o.Reason = defaultReason
		}
	}
	switch state {
	case mesos.TASK_STAGING, mesos.TASK_STARTING:
		o.Phase = corev1.PodPending
	case mesos.TASK_RUNNING:
		o.Phase = corev1.PodRunning
	case mesos.TASK_KILLING:
	case mesos.TASK_FINISHED:
		terminate(corev1.PodSucceeded, "")
	case mesos.TASK_FAILED:
		terminate(corev1.PodFailed, ReasonTaskFailed)
		if neverReachedExecutor(status) {
			// The agent could not start the executor (its fetch failed, e.g. because the framework serving
			// it was restarting) or it never subscribed: the executor never had the task, so the pod ran
			// nowhere and may be relaunched, unless its status says otherwise.
			o.Phase, o.Terminal, o.Action = "", false, ActionRelaunchIfNotStarted
		}
	case mesos.TASK_KILLED:
		phase := corev1.PodFailed
		if labelValue(status.Labels, LabelPodPhase) == string(corev1.PodSucceeded) {
			phase = corev1.PodSucceeded
		}
		terminate(phase, ReasonTaskKilled)
		if phase == corev1.PodSucceeded && o.Reason == ReasonTaskKilled {
			o.Reason = ""
		}
	case mesos.TASK_ERROR:
		terminate(corev1.PodFailed, ReasonTaskInvalid)
		if executorRaced(status) {
			o.Phase, o.Terminal, o.Action, o.Reason = corev1.PodPending, false, ActionRelaunch, ""
		}
	case mesos.TASK_DROPPED:
		o.Phase, o.Action = corev1.PodPending, ActionRelaunch
	case mesos.TASK_LOST:
		switch {
		case isReconciliationAnswer(status):
			o.Action, o.Reason = ActionRelaunchIfNotStarted, ReasonNodeLost
		case launchTimeReason(status):
			o.Phase, o.Action = corev1.PodPending, ActionRelaunch
		default:
			terminate(corev1.PodFailed, ReasonNodeLost)
		}
	case mesos.TASK_UNREACHABLE:
		o.Action, o.Reason = ActionMarkNotReady, ReasonNodeLost
	case mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		if isReconciliationAnswer(status) {
			// Mesos 1.x answers explicit reconciliation of a task its registered agent does not know
			// with TASK_GONE: what a crash between Binding and ACCEPT leaves behind.
			o.Action, o.Reason = ActionRelaunchIfNotStarted, ReasonNodeLost
			break
		}
		terminate(corev1.PodFailed, ReasonNodeLost)
	case mesos.TASK_UNKNOWN:
		o.Action, o.Reason = ActionRelaunchIfNotStarted, ReasonNodeLost
	default:
		// A state this Mesos binding does not know: say so, change nothing.
		o.Reason = "UnknownTaskState"
	}
	o.Message = message(status)
	return o
}

// ForPod resolves ActionRelaunchIfNotStarted for pod: Relaunch (phase Pending) when the pod never
// started (phase Pending and no container ever ran), else Terminate as Failed with the outcome's
// reason. Other outcomes are returned unchanged.
func (o TaskOutcome) ForPod(pod *corev1.Pod) TaskOutcome {
	if o.Action != ActionRelaunchIfNotStarted {
		return o
	}
	if !PodStarted(pod) {
		o.Phase, o.Action = corev1.PodPending, ActionRelaunch
		return o
	}
	o.Phase, o.Terminal, o.Action = corev1.PodFailed, true, ActionTerminate
	return o
}

// PodStarted reports whether a pod's containers may have run: its phase is past Pending or a
// container status shows a started, running or terminated container (now or before).
func PodStarted(pod *corev1.Pod) bool {
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
		return true
	}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for i := range list {
			cs := &list[i]
			if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil || cs.RestartCount > 0 {
				return true
			}
		}
	}
	return false
}

// reasonFor maps the Mesos reasons that say more than the state to a pod reason.
func reasonFor(status mesos.TaskStatus) string {
	if status.Reason == nil {
		return ""
	}
	switch status.GetReason() {
	case mesos.REASON_CONTAINER_LIMITATION_MEMORY:
		return ReasonOOMKilled
	case mesos.REASON_CONTAINER_LIMITATION, mesos.REASON_CONTAINER_LIMITATION_DISK,
		mesos.REASON_CONTAINER_PREEMPTED, mesos.REASON_AGENT_DRAINING:
		return ReasonEvicted
	case mesos.REASON_CONTAINER_LAUNCH_FAILED:
		return ReasonLaunchFailed
	case mesos.REASON_EXECUTOR_TERMINATED, mesos.REASON_EXECUTOR_UNREGISTERED,
		mesos.REASON_EXECUTOR_REGISTRATION_TIMEOUT, mesos.REASON_EXECUTOR_REREGISTRATION_TIMEOUT,
		mesos.REASON_IO_SWITCHBOARD_EXITED:
		return ReasonExecutorTerminated
	case mesos.REASON_MAX_COMPLETION_TIME_REACHED:
		return ReasonDeadlineExceeded
	case mesos.REASON_TASK_INVALID, mesos.REASON_TASK_GROUP_INVALID:
		return ReasonTaskInvalid
	case mesos.REASON_TASK_UNAUTHORIZED, mesos.REASON_TASK_GROUP_UNAUTHORIZED:
		return ReasonTaskUnauthorized
	case mesos.REASON_FRAMEWORK_REMOVED:
		return ReasonFrameworkRemoved
	case mesos.REASON_AGENT_DISCONNECTED, mesos.REASON_AGENT_REMOVED, mesos.REASON_AGENT_REMOVED_BY_OPERATOR,
		mesos.REASON_AGENT_RESTARTED, mesos.REASON_AGENT_UNKNOWN, mesos.REASON_AGENT_REREGISTERED:
		return ReasonNodeLost
	}
	return ""
}

// neverReachedExecutor: a TASK_FAILED from the agent for an executor that could not be launched or
// never subscribed, so it never received the task.
func neverReachedExecutor(status mesos.TaskStatus) bool {
	if status.GetSource() != mesos.SOURCE_AGENT {
		return false
	}
	switch status.GetReason() {
	case mesos.REASON_CONTAINER_LAUNCH_FAILED, mesos.REASON_EXECUTOR_REGISTRATION_TIMEOUT:
		return true
	}
	return false
}

// executorRaced: the master refused the task because it and its executor's resources exceed the
// offer. A framework that launches onto its running executor sends no executor resources, and the
// master adds them only when the executor is no longer there (validation.cpp: "if
// (!slave->hasExecutor(...)) total += executorResources"): the executor terminated between offer
// and ACCEPT (issue 13's run: an executor that failed to start, its pods relaunched onto it). The
// task never reached the agent; relaunched, it carries the executor's resources.
func executorRaced(status mesos.TaskStatus) bool {
	return status.GetSource() == mesos.SOURCE_MASTER && status.GetReason() == mesos.REASON_TASK_INVALID &&
		strings.Contains(status.GetMessage(), " required by task and its executor is more than available ")
}

// launchTimeReason: TASK_LOST reasons a master without partition awareness gives for a launch that
// never reached an agent (a partition-aware master says TASK_DROPPED).
func launchTimeReason(status mesos.TaskStatus) bool {
	if status.Reason == nil {
		return false
	}
	switch status.GetReason() {
	case mesos.REASON_INVALID_OFFERS, mesos.REASON_MASTER_DISCONNECTED, mesos.REASON_RESOURCES_UNKNOWN:
		return true
	}
	return false
}

// isReconciliationAnswer: an unreliable (no uuid) reconciliation update; TASK_LOST then means "the
// master does not know this task" from a master without partition awareness.
func isReconciliationAnswer(status mesos.TaskStatus) bool {
	return status.UUID == nil && status.Reason != nil && status.GetReason() == mesos.REASON_RECONCILIATION
}

func message(status mesos.TaskStatus) string {
	m := "Mesos " + status.GetState().String()
	if status.Reason != nil {
		m += " (" + status.GetReason().String() + ")"
	}
	if status.Source != nil {
		m += " from " + status.GetSource().String()
	}
	if s := status.GetMessage(); s != "" {
		m += ": " + s
	}
	return m
}

func labelValue(l *mesos.Labels, key string) string {
	for _, lb := range l.GetLabels() {
		if lb.Key == key {
			return lb.GetValue()
		}
	}
	return ""
}
