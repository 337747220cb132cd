package podworker

import (
	"testing"
	"time"

	"github.com/kubemesos/kubemesos/podtranslate"
	corev1 "k8s.io/api/core/v1"
)

// The API server's copy of a running pod says Ready=False (the node lifecycle controller's
// MarkPodsNotReady after its Node was NotReady): the worker reports its unchanged status again, so
// that it is written back, as the kubelet's status manager reconciles; an update that agrees with
// it reports nothing. (make chaos found Deployments short for good after an API-server outage.)
func TestWorkerReconcilesReadinessTheAPIServerContradicts(t *testing.T) {
	rt := newFakeRuntime()
	pod := testPod(corev1.RestartPolicyAlways, nil, "main")
	h := startWorker(t, pod, rt)
	conds := func(s Status) map[corev1.PodConditionType]corev1.ConditionStatus {
		out := map[corev1.PodConditionType]corev1.ConditionStatus{}
		for _, c := range s.PodStatus.Conditions {
			out[c.Type] = c.Status
		}
		return out
	}
	ready := h.await("Ready", func(s Status) bool { return conds(s)[corev1.PodReady] == corev1.ConditionTrue })

	agreeing := pod.DeepCopy()
	agreeing.Status = *ready.PodStatus.DeepCopy()
	h.worker.Update(agreeing)
	select {
	case s := <-h.statuses:
		t.Fatalf("status %d reported after an update that agrees with it", s.Seq)
	case <-time.After(200 * time.Millisecond):
	}

	// The framework's NodeLost marking (its agent unreachable from the master) is the framework's to
	// undo: nothing is reported.
	lost := pod.DeepCopy()
	lost.Status = *ready.PodStatus.DeepCopy()
	for i := range lost.Status.Conditions {
		if c := &lost.Status.Conditions[i]; c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			c.Status, c.Reason = corev1.ConditionFalse, podtranslate.ReasonNodeLost
		}
	}
	h.worker.Update(lost)
	select {
	case s := <-h.statuses:
		t.Fatalf("status %d reported after the framework's NodeLost marking", s.Seq)
	case <-time.After(200 * time.Millisecond):
	}

	marked := pod.DeepCopy()
	marked.Status = *ready.PodStatus.DeepCopy()
	for i := range marked.Status.Conditions {
		if marked.Status.Conditions[i].Type == corev1.PodReady {
			marked.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	h.worker.Update(marked)
	again := h.await("the status reported again", func(Status) bool { return true })
	if conds(again)[corev1.PodReady] != corev1.ConditionTrue || again.Seq <= ready.Seq {
		t.Errorf("status %d after the contradicting update: %v, want Ready True again", again.Seq, conds(again))
	}
}
