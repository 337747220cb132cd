package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubemesos/kubemesos/e2e/cluster"
)

// TestKubeScheduler: the real kube-scheduler, started next to a control plane of its own (the
// baseline for side-by-side benchmarks), reports a pod unschedulable while there is no node, and
// binds it once a Ready node with room exists.
func TestKubeScheduler(t *testing.T) {
	cp := cluster.StartT(t, cluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cp.StartScheduler(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := cp.PIDs()["kube-scheduler"]; !ok {
		t.Errorf("PIDs() = %v, want kube-scheduler in it", cp.PIDs())
	}
	ns := cp.Namespace(t)

	pod, err := cp.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "nginx",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	type scheduled struct {
		Status   corev1.ConditionStatus
		Reason   string
		NodeName string
	}
	waitFor := func(want scheduled) {
		t.Helper()
		var got scheduled
		err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got = scheduled{NodeName: p.Spec.NodeName}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled {
					got.Status, got.Reason = c.Status, c.Reason
				}
			}
			return cmp.Equal(want, got), nil
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("pod scheduling (-want +got) (wait: %v):\n%s", err, diff)
		}
	}
	waitFor(scheduled{Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable})

	node, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "agent-1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	room := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node.Status = corev1.NodeStatus{
		Capacity:    room,
		Allocatable: room,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}
	if _, err := cp.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The not-ready taint the API server put on the new node goes once the node lifecycle
	// controller sees it Ready; then the scheduler binds the pod there.
	waitFor(scheduled{Status: corev1.ConditionTrue, NodeName: "agent-1"})

	// StopScheduler ends it, and another (other flags: the scheduling benchmark's limits) can start.
	cp.StopScheduler()
	if _, ok := cp.PIDs()["kube-scheduler"]; ok {
		t.Errorf("PIDs() = %v after StopScheduler", cp.PIDs())
	}
	if err := cp.StartScheduler(ctx, "--kube-api-qps=5000", "--kube-api-burst=5000"); err != nil {
		t.Fatalf("second StartScheduler: %v", err)
	}
	if _, ok := cp.PIDs()["kube-scheduler"]; !ok {
		t.Errorf("PIDs() = %v, want kube-scheduler in it again", cp.PIDs())
	}
}
