package kubemesos

import (
	"context"
	"fmt"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Must show 6: losing an agent. docs/design.md decides what each Mesos signal means:
//
//   - RemoveAgent (the machine is gone for good): Mesos reports TASK_GONE for its tasks, which ends
//     their pods (the framework writes them Failed); the Node goes NotReady and the Deployment's
//     ReplicaSet replaces the pods on the other agents. No eviction is involved.
//   - PartitionAgent (unreachable): TASK_UNREACHABLE is not terminal. The pods turn not Ready, the
//     Node NotReady, and as in any cluster the node lifecycle controller's NoExecute taint evicts the
//     pods once their tolerations for node.kubernetes.io/not-ready and unreachable run out (2 s
//     here, instead of the 300 s the API server adds by default). The evicted pods stay Terminating
//     while the agent is unreachable; their replacements run elsewhere. When the agent comes back,
//     the framework kills the evicted pods' tasks (still running there) and the objects go away.
func TestAgentLoss(t *testing.T) {
	t.Run("removed", func(t *testing.T) { testAgentLoss(t, false) })
	t.Run("partitioned", func(t *testing.T) { testAgentLoss(t, true) })
}

func testAgentLoss(t *testing.T, partition bool) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	spec := podSpec(sleeper)
	if partition {
		// Only the partition relies on eviction. A removed agent's pods end Failed on their own; with
		// these tolerations the eviction controller would also delete them, racing the checks of their
		// phase below (the pods were "not found" on a loaded machine).
		spec.Tolerations = []corev1.Toleration{
			{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](2)},
			{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](2)},
		}
	}
	e.createDeployment(deployment("survivor", 6, spec))
	sel := selector(map[string]string{"app": "survivor"})
	before := e.waitRunningPods(sel, 6, 2*time.Minute)

	// Lose the agent that runs the most pods.
	perNode := map[string][]corev1.Pod{}
	for _, p := range before {
		perNode[p.Spec.NodeName] = append(perNode[p.Spec.NodeName], p)
	}
	lostNode := ""
	for n, ps := range perNode {
		if lostNode == "" || len(ps) > len(perNode[lostNode]) {
			lostNode = n
		}
	}
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lostAgent := ""
	for id, h := range agentHostnames(st) {
		if h == lostNode {
			lostAgent = id
		}
	}
	lostPods := perNode[lostNode]
	t.Logf("losing agent %s (%s) with %d of the 6 pods (partition=%v)", lostAgent, lostNode, len(lostPods), partition)
	if partition {
		err = e.sim.PartitionAgent(lostAgent)
	} else {
		err = e.sim.RemoveAgent(lostAgent)
	}
	if err != nil {
		t.Fatal(err)
	}

	e.eventually("the lost agent's Node NotReady", time.Minute, func(ctx context.Context) (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, lostNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReadyStatus(n) == corev1.ConditionFalse, nil
	})
	after := e.waitLivePods(sel, 6, 2*time.Minute)
	for _, p := range after {
		if p.Spec.NodeName == lostNode {
			t.Errorf("live pod %s is on the lost Node %s", p.Name, lostNode)
		}
	}
	e.waitDeploymentReady("survivor", 6, time.Minute)

	// What became of the lost pods, on both sides.
	st, err = e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := tasksOf(st, frameworkName)
	taskState := map[string]mesos.TaskState{}
	for _, group := range [][]mesos.Task{ts.Active, ts.Completed} {
		for _, task := range group {
			taskState[taskPodUID(task)] = task.GetState()
		}
	}
	unreachable := map[string]bool{}
	for _, task := range ts.Unreachable {
		unreachable[taskPodUID(task)] = true
	}
	for _, p := range lostPods {
		cur, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("lost pod %s: %v", p.Name, err)
			continue
		}
		if partition {
			if cur.DeletionTimestamp == nil || podReady(cur) {
				t.Errorf("lost pod %s: deleting=%v ready=%v, want evicted and not Ready", p.Name, cur.DeletionTimestamp != nil, podReady(cur))
			}
			// GET_TASKS lists it among the unreachable tasks (mesossim keeps the last state it saw).
			if !unreachable[string(p.UID)] {
				t.Errorf("lost pod %s: task not among Mesos' unreachable tasks (state %v)", p.Name, taskState[string(p.UID)])
			}
		} else {
			if cur.Status.Phase != corev1.PodFailed {
				t.Errorf("lost pod %s: phase %s (%s), want Failed", p.Name, cur.Status.Phase, cur.Status.Reason)
			}
			if s := taskState[string(p.UID)]; s != mesos.TASK_GONE {
				t.Errorf("lost pod %s: task %v, want TASK_GONE", p.Name, s)
			}
		}
	}
	if !partition {
		return
	}

	// The agent comes back: its tasks are known again (PARTITION_AWARE), and since their pods were
	// evicted the framework kills them; the pods' objects then go away.
	healed := time.Now()
	if err := e.sim.HealAgent(lostAgent); err != nil {
		t.Fatal(err)
	}
	for _, p := range lostPods {
		e.eventually(fmt.Sprintf("evicted pod %s gone after the agent came back", p.Name), time.Minute, func(ctx context.Context) (bool, error) {
			_, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, p.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
	}
	t.Logf("evicted pods gone %v after the agent came back", time.Since(healed).Round(100*time.Millisecond))
	e.waitRunningPods(sel, 6, time.Minute)
	e.eventually("the lost agent's Node Ready again", time.Minute, func(ctx context.Context) (bool, error) {
		n, err := e.kube.CoreV1().Nodes().Get(ctx, lostNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReadyStatus(n) == corev1.ConditionTrue, nil
	})
}
