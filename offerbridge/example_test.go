package offerbridge_test

import (
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/offerbridge"
)

func scalar(name string, v float64) mesos.Resource {
	role := "kubemesos"
	return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v},
		AllocationInfo: &mesos.Resource_AllocationInfo{Role: &role}}
}

func webPod(name, cpu string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("128Mi")},
		}}}},
	}
}

func ExamplePlace() {
	role := "kubemesos"
	offer := func(id, agent string, cpus float64) mesos.Offer {
		return mesos.Offer{
			ID: mesos.OfferID{Value: id}, AgentID: mesos.AgentID{Value: agent}, Hostname: agent + ".example",
			AllocationInfo: &mesos.Resource_AllocationInfo{Role: &role},
			Resources:      []mesos.Resource{scalar("cpus", cpus), scalar("mem", 4096)},
		}
	}
	plan := offerbridge.Place(offerbridge.Input{
		Offers:   []mesos.Offer{offer("o1", "agent-1", 2), offer("o2", "agent-2", 2), offer("o3", "agent-3", 0.5)},
		Pods:     []*corev1.Pod{webPod("web-1", "1"), webPod("web-2", "1"), webPod("huge", "8")},
		Executor: offerbridge.ExecutorCost{CPUs: 0.1, MemMB: 32},
	})
	for _, l := range plan.Launches {
		fmt.Printf("ACCEPT %v on %s, executor %s\n", l.OfferIDs, l.NodeName, l.Executor)
		for _, p := range l.Pods {
			fmt.Printf("  %s: %s\n", p.Pod.Name, p.Resources)
		}
	}
	fmt.Println("DECLINE", plan.Decline)
	for _, u := range plan.Unschedulable {
		fmt.Printf("FailedScheduling %s: %s\n", u.Pod.Name, u.Message)
	}
	// Output:
	// ACCEPT [{o1}] on agent-1.example, executor cpus:0.1;mem:32
	//   web-1: cpus:1;mem:128
	// ACCEPT [{o2}] on agent-2.example, executor cpus:0.1;mem:32
	//   web-2: cpus:1;mem:128
	// DECLINE [{o3}]
	// FailedScheduling huge: 0/3 agents are available: 3 Insufficient cpu.
}
