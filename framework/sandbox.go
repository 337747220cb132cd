package framework

import (
	"context"
	"fmt"
	"strings"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/podtranslate"
)

// A pod on a CNI pod network is two tasks (docs/design.md, "One pod, two tasks"): its sandbox task
// sandbox-<uid> on the sandbox executor kubemesos-pod-<uid>, whose container holds the pod's network and
// resources, and its pod task pod-<uid> on the kubelet executor, which runs the containers under it.
// The pod's status is the pod task's; the sandbox only ever fails a pod that did not run yet, and it
// ends once the pod task is over (the agent then destroys whatever is still nested in it).

// handleSandboxUpdate acts on an update of a pod's sandbox task (its record is already updated).
func (s *sched) handleSandboxUpdate(ctx context.Context, uid types.UID, st *mesos.TaskStatus, log logrus.FieldLogger) error {
	sandboxID, podTaskID := sandboxIDPrefix+string(uid), taskIDPrefix+string(uid)
	s.mu.Lock()
	sb := s.tasks[sandboxID]
	over := !sb.live()
	ours := !sb.killedAt.IsZero()
	podLive := s.tasks[podTaskID].live()
	podAgent := ""
	if r := s.tasks[podTaskID]; r != nil {
		podAgent = r.agentID
	}
	s.mu.Unlock()

	pod := s.podByUID(uid)
	switch {
	case pod == nil && over:
		s.mu.Lock()
		delete(s.tasks, sandboxID)
		s.mu.Unlock()
		return nil
	case pod == nil:
		// An orphan (its pod is gone; reconciliation reports it): end it once its pod task is over.
		if !podLive {
			s.endSandbox(ctx, uid, log)
		}
		return nil
	case !s.ownsPod(pod):
		return nil
	}
	s.queue.Add(podKey(pod)) // syncPod ends a sandbox that outlives its pod task
	if !over || ours || sandboxLeftToPodTask(st) {
		return nil
	}

	// The sandbox ended on its own: the pod's containers lost their network and parent.
	text := sandboxText(st)
	// A pod the executor already ended without a reason (it was told to stop waiting for this sandbox)
	// still gets Mesos' account of why.
	failedSilently := pod.Status.Phase == corev1.PodFailed && pod.Status.Reason == ""
	if pod.DeletionTimestamp == nil && (!podFinished(pod) || failedSilently) && pod.Status.Phase != corev1.PodRunning {
		msg := "Failed to create pod sandbox: " + text
		if err := s.endPodWith(ctx, pod, corev1.PodFailed, PodReasonFailedCreatePodSandBox, msg, EventFailedCreatePodSandBox, true); err != nil {
			return err
		}
	} else if podLive {
		s.recorder.Eventf(pod, corev1.EventTypeWarning, EventSandboxEnded, "Pod sandbox ended: %s", text)
		log.WithField("pod", podKey(pod)).Warn("sandbox of a running pod ended: killing its pod task")
	}
	if podLive {
		if _, err := s.killTask(ctx, podTaskID, podAgent, nil); err != nil {
			return fmt.Errorf("killing pod task %s after its sandbox ended: %w", podTaskID, err)
		}
	}
	return nil
}

// sandboxLeftToPodTask reports whether a terminal sandbox update concerns the whole agent or launch
// (agent gone, removed, unreachable, the task unknown, dropped before it started): the pod task gets
// the same news in its own update, whose handling (NodeLost, relaunch) is the pod's.
func sandboxLeftToPodTask(st *mesos.TaskStatus) bool {
	switch st.GetState() {
	case mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNREACHABLE, mesos.TASK_UNKNOWN, mesos.TASK_DROPPED:
		return true
	case mesos.TASK_LOST:
		return true // only agents and masters lose tasks
	}
	if st.Reason == nil {
		return false
	}
	r := st.GetReason().String()
	return strings.HasPrefix(r, "REASON_AGENT_") || strings.HasPrefix(r, "REASON_SLAVE_") ||
		r == "REASON_MASTER_DISCONNECTED" || r == "REASON_RECONCILIATION"
}

// sandboxText is Mesos' account of a sandbox's end: its message, else its state and reason.
func sandboxText(st *mesos.TaskStatus) string {
	if m := st.GetMessage(); m != "" {
		return m
	}
	if st.Reason != nil {
		return st.GetState().String() + " (" + st.GetReason().String() + ")"
	}
	return st.GetState().String()
}

// endSandbox KILLs the pod's sandbox task if it may still run; it reports whether it is live. A sandbox
// task that Mesos dropped or lost may have left its executor running without it (a LAUNCH that never
// reached the executor is dropped at its next SUBSCRIBE: Slave::subscribe), holding the pod's network
// with no task to KILL: that executor gets a SHUTDOWN, once; while the call fails it is reported live.
func (s *sched) endSandbox(ctx context.Context, uid types.UID, log logrus.FieldLogger) bool {
	id := sandboxIDPrefix + string(uid)
	s.mu.Lock()
	rec := s.tasks[id]
	live := rec.live()
	agentID := ""
	orphaned := false
	var state mesos.TaskState
	if rec != nil {
		state = rec.state
		agentID = rec.agentID
		orphaned = (rec.state == mesos.TASK_DROPPED || rec.state == mesos.TASK_LOST) && rec.killedAt.IsZero() && agentID != ""
		if orphaned {
			rec.killedAt = s.clock.Now()
		}
	}
	s.mu.Unlock()
	if orphaned {
		executorID := podtranslate.SandboxExecutorIDPrefix + string(uid)
		if err := s.call(ctx, calls.Shutdown(executorID, agentID)); err != nil {
			s.mu.Lock()
			rec.killedAt = time.Time{}
			s.mu.Unlock()
			log.WithError(err).WithField("executor", executorID).Warn("shutting down the executor of a dropped sandbox")
			return true
		}
		log.WithFields(logrus.Fields{"executor": executorID, "state": state}).Info("shutting down the executor of a dropped sandbox: its pod task is over")
	}
	if !live {
		return false
	}
	sent, err := s.killTask(ctx, id, agentID, nil)
	switch {
	case err != nil:
		log.WithError(err).WithField("sandbox", id).Warn("killing sandbox task")
	case sent:
		log.WithField("sandbox", id).Info("killing sandbox task: its pod task is over")
	}
	return true
}

// sandboxSettled ends the sandbox of a pod whose pod task is over (ended, dropped, or unknown once
// reconciled). When a sandbox was left to end, the pod is synced again after killRepeat so the KILL is
// repeated until Mesos reports it over.
func (s *sched) sandboxSettled(ctx context.Context, pod *corev1.Pod, podTask *taskRecord, inflight, reconciled bool, log logrus.FieldLogger) {
	if podTask.live() || inflight || (podTask == nil && !reconciled) {
		return
	}
	if s.endSandbox(ctx, pod.UID, log) {
		s.queue.AddAfter(podKey(pod), killRepeat)
	}
}
