package framework

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Found by make chaos (seed 20261206): the node lifecycle controller set Ready=False (MarkPodsNotReady
// changes only the status) on the pods of a Node the framework had marked NotReady for an
// unreachable agent, before the framework's own NotReady write; that Ready=False was then "restored"
// when the agent came back, and the pods stayed unready for good (their Deployments short). Ready is
// derived from ContainersReady and the readiness gates, as the kubelet does.
func TestReadinessBackAfterNodeLifecycleMarkedPodsNotReady(t *testing.T) {
	for _, gated := range []bool{false, true} {
		name := "no readiness gates"
		if gated {
			name = "a readiness gate not True"
		}
		t.Run(name, func(t *testing.T) {
			p := pod("p", "uid-p", bound("h1"), running, func(p *corev1.Pod) {
				p.Status.Conditions = []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionFalse}, // MarkPodsNotReady: no reason
					{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
				}
				if gated {
					p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
					p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionFalse})
				}
			})
			f := newFixture(t, State{FrameworkID: "fw-1"}, p)
			f.addNode(agentNode("h1", "a1"))
			f.subscribe("fw-1")
			f.update(status("pod-uid-p", "a1", mesos.TASK_UNREACHABLE, mesos.SOURCE_MASTER, mesos.REASON_AGENT_DISCONNECTED.Enum(), []byte("u1")))
			f.refreshCache("default", "p")
			f.update(status("pod-uid-p", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
			conds := podConditions(t, f, "p")
			want := map[corev1.PodConditionType]string{corev1.PodReady: "True/", corev1.ContainersReady: "True/"}
			if gated {
				want = map[corev1.PodConditionType]string{corev1.PodReady: "False/ReadinessGatesNotReady", corev1.ContainersReady: "True/", "example.com/lb": "False/"}
			}
			if diff := cmp.Diff(want, conds); diff != "" {
				t.Errorf("conditions after the agent came back (-want +got):\n%s", diff)
			}
		})
	}
}

// Found by make chaos (seed 20261207): pods marked NotReady (NodeLost) for an unreachable agent by a
// framework process that was then killed stayed unready for good once the agent came back: the
// conditions to restore lived only in the dead process. The new one derives them from the container
// statuses, as a kubelet's next status sync would.
func TestReadinessBackAfterTheFrameworkThatMarkedItRestarted(t *testing.T) {
	for _, tt := range []struct {
		name      string
		ready     bool
		wantConds map[corev1.PodConditionType]string
	}{
		{"containers ready", true, map[corev1.PodConditionType]string{corev1.PodReady: "True/", corev1.ContainersReady: "True/"}},
		{"a container unready", false, map[corev1.PodConditionType]string{corev1.PodReady: "False/ContainersNotReady", corev1.ContainersReady: "False/ContainersNotReady"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pod("p", "uid-p", bound("h1"), running, func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Ready: tt.ready,
					State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
				p.Status.Conditions = []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "NodeLost"},
					{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "NodeLost"},
				}
			})
			// A fresh framework: it never marked the pod itself.
			f := newFixture(t, State{FrameworkID: "fw-1"}, p)
			f.addNode(agentNode("h1", "a1"))
			f.subscribe("fw-1")
			f.update(status("pod-uid-p", "a1", mesos.TASK_RUNNING, mesos.SOURCE_MASTER, mesos.REASON_RECONCILIATION.Enum(), nil))
			conds := podConditions(t, f, "p")
			if diff := cmp.Diff(tt.wantConds, conds); diff != "" {
				t.Errorf("conditions after the agent came back (-want +got):\n%s", diff)
			}
		})
	}
}

// podConditions is the API server's conditions of pod name, as "Status/Reason" by type.
func podConditions(t *testing.T, f *fixture, name string) map[corev1.PodConditionType]string {
	t.Helper()
	got, err := f.kube.CoreV1().Pods("default").Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[corev1.PodConditionType]string{}
	for _, c := range got.Status.Conditions {
		conds[c.Type] = string(c.Status) + "/" + c.Reason
	}
	return conds
}
