package podtranslate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ts builds a TaskStatus; source and reason are optional (nil when negative).
func ts(state mesos.TaskState, source mesos.TaskStatus_Source, reason mesos.TaskStatus_Reason, msg string) mesos.TaskStatus {
	s := mesos.TaskStatus{TaskID: mesos.TaskID{Value: "pod-u1"}, State: state.Enum(), UUID: []byte("uuid")}
	if source >= 0 {
		s.Source = source.Enum()
	}
	if reason >= 0 {
		s.Reason = reason.Enum()
	}
	if msg != "" {
		s.Message = &msg
	}
	return s
}

const (
	noSource mesos.TaskStatus_Source = -1
	noReason mesos.TaskStatus_Reason = -1
	master                           = mesos.SOURCE_MASTER
	agent                            = mesos.SOURCE_AGENT
	executor                         = mesos.SOURCE_EXECUTOR
)

func TestPodStatusForTask(t *testing.T) {
	succeededLabel := func(s mesos.TaskStatus) mesos.TaskStatus {
		s.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: LabelPodPhase, Value: strp("Succeeded")}}}
		return s
	}
	reconciliation := func(s mesos.TaskStatus) mesos.TaskStatus { s.UUID = nil; return s }
	tests := []struct {
		name   string
		status mesos.TaskStatus
		want   TaskOutcome
	}{
		{"staging", ts(mesos.TASK_STAGING, master, noReason, ""),
			TaskOutcome{Phase: corev1.PodPending, Message: "Mesos TASK_STAGING from SOURCE_MASTER"}},
		{"starting", ts(mesos.TASK_STARTING, executor, noReason, ""),
			TaskOutcome{Phase: corev1.PodPending, ExecutorReported: true, Message: "Mesos TASK_STARTING from SOURCE_EXECUTOR"}},
		{"running", ts(mesos.TASK_RUNNING, executor, noReason, "pod running"),
			TaskOutcome{Phase: corev1.PodRunning, ExecutorReported: true, Message: "Mesos TASK_RUNNING from SOURCE_EXECUTOR: pod running"}},
		{"running, reconciled by the master", reconciliation(ts(mesos.TASK_RUNNING, master, mesos.REASON_RECONCILIATION, "")),
			TaskOutcome{Phase: corev1.PodRunning, Message: "Mesos TASK_RUNNING (REASON_RECONCILIATION) from SOURCE_MASTER"}},
		{"killing keeps the phase", ts(mesos.TASK_KILLING, executor, noReason, ""),
			TaskOutcome{ExecutorReported: true, Message: "Mesos TASK_KILLING from SOURCE_EXECUTOR"}},

		{"finished by the executor: it writes the status", ts(mesos.TASK_FINISHED, executor, noReason, ""),
			TaskOutcome{Phase: corev1.PodSucceeded, Terminal: true, ExecutorReported: true, Message: "Mesos TASK_FINISHED from SOURCE_EXECUTOR"}},
		{"finished, reconciled by the master: the framework writes it", reconciliation(ts(mesos.TASK_FINISHED, master, mesos.REASON_RECONCILIATION, "")),
			TaskOutcome{Phase: corev1.PodSucceeded, Terminal: true, Action: ActionTerminate, Message: "Mesos TASK_FINISHED (REASON_RECONCILIATION) from SOURCE_MASTER"}},
		{"failed by the executor", ts(mesos.TASK_FAILED, executor, noReason, "container app exited 1"),
			TaskOutcome{Phase: corev1.PodFailed, Terminal: true, ExecutorReported: true, Message: "Mesos TASK_FAILED from SOURCE_EXECUTOR: container app exited 1"}},
		{"failed: executor terminated", ts(mesos.TASK_FAILED, agent, mesos.REASON_EXECUTOR_TERMINATED, "Executor terminated"),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonExecutorTerminated, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_FAILED (REASON_EXECUTOR_TERMINATED) from SOURCE_AGENT: Executor terminated"}},
		{"failed: executor never registered, so it never had the task", ts(mesos.TASK_FAILED, agent, mesos.REASON_EXECUTOR_REGISTRATION_TIMEOUT, ""),
			TaskOutcome{Reason: ReasonExecutorTerminated, Action: ActionRelaunchIfNotStarted,
				Message: "Mesos TASK_FAILED (REASON_EXECUTOR_REGISTRATION_TIMEOUT) from SOURCE_AGENT"}},
		{"failed: out of memory", ts(mesos.TASK_FAILED, agent, mesos.REASON_CONTAINER_LIMITATION_MEMORY, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonOOMKilled, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_FAILED (REASON_CONTAINER_LIMITATION_MEMORY) from SOURCE_AGENT"}},
		{"failed: disk limit, reported through the executor", ts(mesos.TASK_FAILED, executor, mesos.REASON_CONTAINER_LIMITATION_DISK, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonEvicted, Terminal: true, ExecutorReported: true,
				Message: "Mesos TASK_FAILED (REASON_CONTAINER_LIMITATION_DISK) from SOURCE_EXECUTOR"}},
		{"failed: launch failed, the executor never had the task", ts(mesos.TASK_FAILED, agent, mesos.REASON_CONTAINER_LAUNCH_FAILED, "fetch failed"),
			TaskOutcome{Reason: ReasonLaunchFailed, Action: ActionRelaunchIfNotStarted,
				Message: "Mesos TASK_FAILED (REASON_CONTAINER_LAUNCH_FAILED) from SOURCE_AGENT: fetch failed"}},
		{"failed: launch failed as the executor reports it ends the pod", ts(mesos.TASK_FAILED, executor, mesos.REASON_CONTAINER_LAUNCH_FAILED, "image"),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonLaunchFailed, Terminal: true, ExecutorReported: true,
				Message: "Mesos TASK_FAILED (REASON_CONTAINER_LAUNCH_FAILED) from SOURCE_EXECUTOR: image"}},
		{"gone as a reconciliation answer: unknown to the agent", reconciliation(ts(mesos.TASK_GONE, master, mesos.REASON_RECONCILIATION, "Reconciliation: Task is unknown to the agent")),
			TaskOutcome{Reason: ReasonNodeLost, Action: ActionRelaunchIfNotStarted,
				Message: "Mesos TASK_GONE (REASON_RECONCILIATION) from SOURCE_MASTER: Reconciliation: Task is unknown to the agent"}},
		{"failed: deadline", ts(mesos.TASK_FAILED, agent, mesos.REASON_MAX_COMPLETION_TIME_REACHED, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonDeadlineExceeded, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_FAILED (REASON_MAX_COMPLETION_TIME_REACHED) from SOURCE_AGENT"}},
		{"failed with no reason from the agent", ts(mesos.TASK_FAILED, agent, noReason, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonTaskFailed, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_FAILED from SOURCE_AGENT"}},
		{"failed with no source counts as Mesos' own", ts(mesos.TASK_FAILED, noSource, noReason, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonTaskFailed, Terminal: true, Action: ActionTerminate, Message: "Mesos TASK_FAILED"}},

		{"killed by the executor (pod deleted)", ts(mesos.TASK_KILLED, executor, noReason, ""),
			TaskOutcome{Phase: corev1.PodFailed, Terminal: true, ExecutorReported: true, Message: "Mesos TASK_KILLED from SOURCE_EXECUTOR"}},
		{"killed, every container exited 0", succeededLabel(ts(mesos.TASK_KILLED, executor, noReason, "")),
			TaskOutcome{Phase: corev1.PodSucceeded, Terminal: true, ExecutorReported: true, Message: "Mesos TASK_KILLED from SOURCE_EXECUTOR"}},
		{"killed by the master during launch", ts(mesos.TASK_KILLED, master, mesos.REASON_TASK_KILLED_DURING_LAUNCH, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonTaskKilled, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_KILLED (REASON_TASK_KILLED_DURING_LAUNCH) from SOURCE_MASTER"}},
		{"killed: framework removed", ts(mesos.TASK_KILLED, master, mesos.REASON_FRAMEWORK_REMOVED, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonFrameworkRemoved, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_KILLED (REASON_FRAMEWORK_REMOVED) from SOURCE_MASTER"}},
		{"killed: agent draining", ts(mesos.TASK_KILLED, agent, mesos.REASON_AGENT_DRAINING, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonEvicted, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_KILLED (REASON_AGENT_DRAINING) from SOURCE_AGENT"}},

		{"error: invalid task", ts(mesos.TASK_ERROR, master, mesos.REASON_TASK_INVALID, "Task uses no resources"),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonTaskInvalid, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_ERROR (REASON_TASK_INVALID) from SOURCE_MASTER: Task uses no resources"}},
		{"error: beyond the offer with an executor that had just terminated: relaunch",
			ts(mesos.TASK_ERROR, master, mesos.REASON_TASK_INVALID, "Total resources cpus(allocated: k):0.11; mem(allocated: k):104 required by task and its executor is more than available cpus(allocated: k):0.01; mem(allocated: k):8"),
			TaskOutcome{Phase: corev1.PodPending, Action: ActionRelaunch,
				Message: "Mesos TASK_ERROR (REASON_TASK_INVALID) from SOURCE_MASTER: Total resources cpus(allocated: k):0.11; mem(allocated: k):104 required by task and its executor is more than available cpus(allocated: k):0.01; mem(allocated: k):8"}},
		{"error: unauthorized", ts(mesos.TASK_ERROR, master, mesos.REASON_TASK_UNAUTHORIZED, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonTaskUnauthorized, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_ERROR (REASON_TASK_UNAUTHORIZED) from SOURCE_MASTER"}},
		{"error without reason", ts(mesos.TASK_ERROR, master, noReason, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonTaskInvalid, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_ERROR from SOURCE_MASTER"}},

		{"dropped: relaunch", ts(mesos.TASK_DROPPED, master, mesos.REASON_AGENT_DISCONNECTED, ""),
			TaskOutcome{Phase: corev1.PodPending, Action: ActionRelaunch, Message: "Mesos TASK_DROPPED (REASON_AGENT_DISCONNECTED) from SOURCE_MASTER"}},
		{"lost at launch (invalid offers): relaunch", ts(mesos.TASK_LOST, master, mesos.REASON_INVALID_OFFERS, ""),
			TaskOutcome{Phase: corev1.PodPending, Action: ActionRelaunch, Message: "Mesos TASK_LOST (REASON_INVALID_OFFERS) from SOURCE_MASTER"}},
		{"lost at launch (master disconnected): relaunch", ts(mesos.TASK_LOST, agent, mesos.REASON_MASTER_DISCONNECTED, ""),
			TaskOutcome{Phase: corev1.PodPending, Action: ActionRelaunch, Message: "Mesos TASK_LOST (REASON_MASTER_DISCONNECTED) from SOURCE_AGENT"}},
		{"lost with its agent", ts(mesos.TASK_LOST, master, mesos.REASON_AGENT_REMOVED, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonNodeLost, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_LOST (REASON_AGENT_REMOVED) from SOURCE_MASTER"}},
		{"lost without reason", ts(mesos.TASK_LOST, master, noReason, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonNodeLost, Terminal: true, Action: ActionTerminate, Message: "Mesos TASK_LOST from SOURCE_MASTER"}},
		{"lost as a reconciliation answer: the task is unknown", reconciliation(ts(mesos.TASK_LOST, master, mesos.REASON_RECONCILIATION, "")),
			TaskOutcome{Reason: ReasonNodeLost, Action: ActionRelaunchIfNotStarted, Message: "Mesos TASK_LOST (REASON_RECONCILIATION) from SOURCE_MASTER"}},
		{"unreachable: not ready, not over", ts(mesos.TASK_UNREACHABLE, master, mesos.REASON_AGENT_REMOVED, "agent partitioned"),
			TaskOutcome{Reason: ReasonNodeLost, Action: ActionMarkNotReady, Message: "Mesos TASK_UNREACHABLE (REASON_AGENT_REMOVED) from SOURCE_MASTER: agent partitioned"}},
		{"gone", ts(mesos.TASK_GONE, master, mesos.REASON_AGENT_REMOVED, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonNodeLost, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_GONE (REASON_AGENT_REMOVED) from SOURCE_MASTER"}},
		{"gone: preempted", ts(mesos.TASK_GONE, agent, mesos.REASON_CONTAINER_PREEMPTED, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonEvicted, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_GONE (REASON_CONTAINER_PREEMPTED) from SOURCE_AGENT"}},
		{"gone by operator", ts(mesos.TASK_GONE_BY_OPERATOR, master, mesos.REASON_AGENT_REMOVED_BY_OPERATOR, ""),
			TaskOutcome{Phase: corev1.PodFailed, Reason: ReasonNodeLost, Terminal: true, Action: ActionTerminate,
				Message: "Mesos TASK_GONE_BY_OPERATOR (REASON_AGENT_REMOVED_BY_OPERATOR) from SOURCE_MASTER"}},
		{"unknown", reconciliation(ts(mesos.TASK_UNKNOWN, master, mesos.REASON_RECONCILIATION, "")),
			TaskOutcome{Reason: ReasonNodeLost, Action: ActionRelaunchIfNotStarted, Message: "Mesos TASK_UNKNOWN (REASON_RECONCILIATION) from SOURCE_MASTER"}},
		{"a state this binding does not know", ts(mesos.TaskState(99), master, noReason, ""),
			TaskOutcome{Reason: "UnknownTaskState", Message: "Mesos 99 from SOURCE_MASTER"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, PodStatusForTask(tc.status)); diff != "" {
				t.Errorf("PodStatusForTask (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPodStatusForEveryTaskState: every state Mesos defines has a deliberate mapping, from every
// source, and the outcome is consistent (terminal outcomes have a terminal phase, only they do).
func TestPodStatusForEveryTaskState(t *testing.T) {
	for v, name := range mesos.TaskState_name {
		for _, src := range []mesos.TaskStatus_Source{master, agent, executor} {
			o := PodStatusForTask(ts(mesos.TaskState(v), src, noReason, ""))
			if o.Reason == "UnknownTaskState" {
				t.Errorf("%s from %s: no mapping", name, src)
			}
			if o.Terminal != isTerminalPhase(o.Phase) {
				t.Errorf("%s from %s: Terminal=%v but phase %q", name, src, o.Terminal, o.Phase)
			}
			if o.Terminal && src == executor && o.Action != ActionNone {
				t.Errorf("%s from the executor: action %v, want None (the executor writes the status)", name, o.Action)
			}
			if o.Terminal && src != executor && o.Action != ActionTerminate {
				t.Errorf("%s from %s: action %v, want Terminate", name, src, o.Action)
			}
		}
	}
}

func TestForPod(t *testing.T) {
	unknown := PodStatusForTask(ts(mesos.TASK_UNKNOWN, master, mesos.REASON_RECONCILIATION, ""))
	running := corev1.ContainerStatus{Name: "app", State: RunningState(metav1.Unix(1, 0))}
	waitingAfterCrash := corev1.ContainerStatus{Name: "app", State: WaitingState(ReasonCrashLoopBackOff, ""), RestartCount: 1}
	tests := []struct {
		name       string
		status     corev1.PodStatus
		wantAction Action
		wantPhase  corev1.PodPhase
	}{
		{"never started: relaunch", corev1.PodStatus{Phase: corev1.PodPending}, ActionRelaunch, corev1.PodPending},
		{"no status at all: relaunch", corev1.PodStatus{}, ActionRelaunch, corev1.PodPending},
		{"creating containers: relaunch", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", State: WaitingState(ReasonContainerCreating, "")}}}, ActionRelaunch, corev1.PodPending},
		{"running: lost", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{running}}, ActionTerminate, corev1.PodFailed},
		{"pending but an init container ran: lost", corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
			{Name: "init", State: TerminatedState(Termination{ExitCode: 0})}}}, ActionTerminate, corev1.PodFailed},
		{"pending after a restart: lost", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waitingAfterCrash}}, ActionTerminate, corev1.PodFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := unknown.ForPod(&corev1.Pod{Status: tc.status})
			if got.Action != tc.wantAction || got.Phase != tc.wantPhase || got.Terminal != (tc.wantAction == ActionTerminate) {
				t.Errorf("ForPod = %v %q terminal=%v, want %v %q", got.Action, got.Phase, got.Terminal, tc.wantAction, tc.wantPhase)
			}
			if got.Reason != ReasonNodeLost {
				t.Errorf("ForPod reason = %q, want %q", got.Reason, ReasonNodeLost)
			}
		})
	}
	// Other outcomes pass through.
	gone := PodStatusForTask(ts(mesos.TASK_GONE, master, noReason, ""))
	if diff := cmp.Diff(gone, gone.ForPod(&corev1.Pod{})); diff != "" {
		t.Errorf("ForPod changed a resolved outcome:\n%s", diff)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{ActionNone: "None", ActionTerminate: "Terminate", ActionRelaunchIfNotStarted: "RelaunchIfNotStarted", Action(42): "Action(42)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestApplyOutcome(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	now := metav1.NewTime(t0.Add(time.Minute))
	readyTrue := []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: t0},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: t0},
	}
	runningPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: readyTrue,
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", Ready: true,
				State: TerminatedState(Termination{ExitCode: 0, StartedAt: t0, FinishedAt: t0})}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true, Started: boolp(true), RestartCount: 2,
				State:                RunningState(t0),
				LastTerminationState: TerminatedState(Termination{ExitCode: 1})}},
		},
	}
	gone := PodStatusForTask(ts(mesos.TASK_GONE, master, mesos.REASON_AGENT_REMOVED, "agent removed"))
	unreachable := PodStatusForTask(ts(mesos.TASK_UNREACHABLE, master, noReason, ""))

	wantTerminated := corev1.PodStatus{
		Phase:   corev1.PodFailed,
		Reason:  ReasonNodeLost,
		Message: gone.Message,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: CondReasonPodFailed, LastTransitionTime: now, ObservedGeneration: 3},
			{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: CondReasonPodFailed, LastTransitionTime: now, ObservedGeneration: 3},
		},
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", Started: boolp(false),
			State: TerminatedState(Termination{ExitCode: 0, StartedAt: t0, FinishedAt: t0})}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Started: boolp(false), RestartCount: 2,
			State: TerminatedState(Termination{ExitCode: 137, Reason: ReasonContainerStatusUnknown,
				Message: MessageContainerStatusUnknown, StartedAt: t0, FinishedAt: now}),
			LastTerminationState: TerminatedState(Termination{ExitCode: 1})}},
	}
	wantNotReady := *runningPod.Status.DeepCopy()
	wantNotReady.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: t0},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: ReasonNodeLost, Message: unreachable.Message, LastTransitionTime: now, ObservedGeneration: 3},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: ReasonNodeLost, Message: unreachable.Message, LastTransitionTime: now, ObservedGeneration: 3},
	}
	wantNotReady.InitContainerStatuses[0].Ready = false
	wantNotReady.ContainerStatuses[0].Ready = false

	succeededPod := runningPod.DeepCopy()
	succeededPod.Status.Phase = corev1.PodSucceeded

	tests := []struct {
		name        string
		pod         *corev1.Pod
		outcome     TaskOutcome
		want        corev1.PodStatus
		wantChanged bool
	}{
		{"terminate a running pod", runningPod, gone, wantTerminated, true},
		{"mark a running pod not ready", runningPod, unreachable, wantNotReady, true},
		{"a terminal pod never changes", succeededPod, gone, succeededPod.Status, false},
		{"executor-owned outcome: no change", runningPod, PodStatusForTask(ts(mesos.TASK_FAILED, executor, noReason, "")), runningPod.Status, false},
		{"relaunch: no change", runningPod, PodStatusForTask(ts(mesos.TASK_DROPPED, master, noReason, "")), runningPod.Status, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			got, changed := ApplyOutcome(tc.pod, tc.outcome, now)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ApplyOutcome (-want +got):\n%s", diff)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if diff := cmp.Diff(before, tc.pod); diff != "" {
				t.Errorf("ApplyOutcome modified the pod:\n%s", diff)
			}
		})
	}

	// Applying the same outcome twice changes nothing the second time.
	once, _ := ApplyOutcome(runningPod, unreachable, now)
	p := runningPod.DeepCopy()
	p.Status = once
	if _, changed := ApplyOutcome(p, unreachable, metav1.NewTime(now.Add(time.Hour))); changed {
		t.Error("re-applying MarkNotReady reported a change")
	}
}

func boolp(b bool) *bool { return &b }

func BenchmarkPodStatusForTask(b *testing.B) {
	s := ts(mesos.TASK_FAILED, agent, mesos.REASON_EXECUTOR_TERMINATED, "Executor terminated")
	b.ReportAllocs()
	for b.Loop() {
		_ = PodStatusForTask(s)
	}
}

// A launch the agent could not start is relaunched only for a pod that never ran; a pod that did run
// ends Failed with the launch's reason.
func TestForPodLaunchFailed(t *testing.T) {
	failed := PodStatusForTask(ts(mesos.TASK_FAILED, agent, mesos.REASON_CONTAINER_LAUNCH_FAILED, "fetching the executor: unexpected EOF"))
	if got := failed.ForPod(&corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}); got.Action != ActionRelaunch || got.Phase != corev1.PodPending || got.Terminal {
		t.Errorf("never started: ForPod = %v %q terminal=%v, want Relaunch Pending", got.Action, got.Phase, got.Terminal)
	}
	ran := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if got := failed.ForPod(ran); got.Action != ActionTerminate || got.Phase != corev1.PodFailed || !got.Terminal || got.Reason != ReasonLaunchFailed {
		t.Errorf("started: ForPod = %v %q terminal=%v reason %q, want Terminate Failed %s", got.Action, got.Phase, got.Terminal, got.Reason, ReasonLaunchFailed)
	}
}
