package executor

import (
	"context"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
)

// Holding a pod's terminal update while the kernel forgets its containers' CFS quotas.
//
// A container with a CPU limit gets a CFS quota of its own (executor/nested: own cgroups, nested
// under the executor's container: the kubelet executor's in host mode, the pod's sandbox executor's
// on a pod network). The task's terminal update makes Mesos shrink that executor's container to what
// its other tasks leave (Slave::_statusUpdate: containerizer->update before the update goes on), and
// cgroup v1 refuses a parent quota below any child's (EINVAL). The pod's containers are gone by then
// (the agent answers WAIT once their cgroups are removed), but the kernel keeps a removed cgroup's
// quota in its parent's hierarchy until the cgroup is released, an RCU grace period and a workqueue
// later: 13-46 ms measured on this host (rmdir of a child with a 1.25-cpu quota, then the parent
// lowered to 0.01 cpu: refused every time at once, accepted after that). An update within that window
// fails, and Mesos then destroys the executor's container: every pod of the kubelet executor lost
// (Slave::__statusUpdate, REASON_CONTAINER_UPDATE_FAILED). So the update of a pod that had such a
// container waits CFSQuotaSettle after the pod's end (on a pod network the framework kills the
// sandbox task, the update that shrinks the sandbox executor, only after this one). The pod's own
// status is written to the API server at once; only Mesos hears of the end later.

// heldFinish is a terminal update waiting for the quotas to settle.
type heldFinish struct {
	state  mesos.TaskState
	reason *mesos.TaskStatus_Reason
	msg    string
	data   []byte
	phase  corev1.PodPhase
}

// hasCPUQuota reports whether one of the pod's containers has a CPU limit, so a CFS quota of its own
// (nested.Resources).
func hasCPUQuota(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if !cs[i].Resources.Limits.Cpu().IsZero() {
				return true
			}
		}
	}
	return false
}

// finishSettled is finish for the end of a pod worker: held for CFSQuotaSettle when the pod had a
// CPU quota (no longer than the shutdown deadline, when the agent kills the executor anyway).
func (e *executorLoop) finishSettled(ctx context.Context, t *task, h heldFinish) {
	d := e.cfg.CFSQuotaSettle
	if e.shuttingDown {
		d = min(d, e.shutdownDeadline.Sub(e.clock.Now()))
	}
	if d <= 0 || !hasCPUQuota(t.pod) {
		e.finish(ctx, t, h.state, h.reason, h.msg, h.data, h.phase)
		return
	}
	t.terminal = true // over: a KILL now is moot
	t.held = &h
	t.log.WithField("delay", d).Debug("terminal update held while the containers' CPU quotas settle")
	id := t.info.TaskID.Value
	timer := e.clock.NewTimer(d)
	go func() {
		defer timer.Stop()
		select {
		case <-timer.C():
			select {
			case e.settled <- id:
			case <-e.loopDone:
			}
		case <-e.loopDone:
		}
	}()
}

// releaseHeld sends a held terminal update.
func (e *executorLoop) releaseHeld(ctx context.Context, id string) {
	t := e.tasks[id]
	if t == nil || t.held == nil {
		return
	}
	h := *t.held
	t.held = nil
	e.finish(ctx, t, h.state, h.reason, h.msg, h.data, h.phase)
}

// releaseAllHeld sends every held terminal update (the shutdown deadline).
func (e *executorLoop) releaseAllHeld(ctx context.Context) {
	for id := range e.tasks {
		e.releaseHeld(ctx, id)
	}
}

// DefaultCFSQuotaSettle is --cfs-quota-settle's default: 20 times the longest release measured.
const DefaultCFSQuotaSettle = time.Second
