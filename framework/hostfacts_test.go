package framework

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubemesos/kubemesos/internal/hostfacts"
)

var armFacts = hostfacts.Facts{Kind: hostfacts.Kind, KernelVersion: "6.12.0-arm", OSImage: "Debian GNU/Linux 13 (trixie)",
	OperatingSystem: "linux", Architecture: "arm64", MachineID: "m-1", BootID: "b-1"}

func nodeInfoAndArch(t *testing.T, kube *fake.Clientset, name string) (string, string, string, string, string) {
	t.Helper()
	n, err := kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ni := n.Status.NodeInfo
	return ni.KernelVersion, ni.OSImage, ni.Architecture, ni.MachineID, n.Labels["kubernetes.io/arch"]
}

// The executor's host facts reach the Node as the kubelet reports its machine (nodeInfo and the
// os/arch labels); a new leader reads them back from the Node instead of blanking them.
func TestNodeTakesTheExecutorsHostFacts(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	if k, _, _, m, _ := nodeInfoAndArch(t, kube, "h1"); k != "" || m != "a1" {
		t.Fatalf("before any facts: kernel %q machine %q, want none and the agent ID", k, m)
	}

	c.SetHostFacts("a1", armFacts)
	c.SyncAll(ctx, false)
	k, img, arch, machine, label := nodeInfoAndArch(t, kube, "h1")
	if diff := cmp.Diff([]string{"6.12.0-arm", "Debian GNU/Linux 13 (trixie)", "arm64", "m-1", "arm64"},
		[]string{k, img, arch, machine, label}); diff != "" {
		t.Errorf("kernel, OS image, nodeInfo arch, machine ID, arch label (-want +got):\n%s", diff)
	}
	n, _ := kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
	if n.Status.NodeInfo.BootID != "b-1" || n.Status.NodeInfo.KubeletVersion != KubeletVersion() {
		t.Errorf("nodeInfo %+v: want boot ID b-1 and the kubelet version kept", n.Status.NodeInfo)
	}

	// A failover: a new controller without facts keeps what the Node shows.
	c2 := newNodeController(kube, c.clock, c.leaseDuration, 0.1, 64, c.log)
	c2.SetOwner("fw-1", nil)
	c2.ObserveOffer(&o)
	c2.SyncAll(ctx, false)
	if k, _, _, machine, label := nodeInfoAndArch(t, kube, "h1"); k != "6.12.0-arm" || label != "arm64" || machine != "m-1" {
		t.Errorf("after a failover: kernel %q arch label %q machine %q, want the facts kept", k, label, machine)
	}

	// Facts of an agent that is not known are dropped (sent again on the executor's next subscription).
	c.SetHostFacts("nobody", armFacts)
	if _, ok := c.agents["nobody"]; ok {
		t.Error("facts created an agent record")
	}
}

// A MESSAGE that is not host facts, or malformed facts, changes nothing; valid facts reach the Node.
func TestSchedulerHandlesExecutorMessages(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	s := &sched{nodes: c, log: c.log}
	bad := armFacts
	bad.Architecture = "arm 64!"
	for _, data := range [][]byte{[]byte("\x00garbage"), []byte(`{"kind":"other"}`), []byte(`{"kind":"` + hostfacts.Kind + `"}`), bad.Encode()} {
		s.handleMessage(messageEvent("a1", data))
	}
	c.SyncAll(ctx, false)
	if k, _, _, _, _ := nodeInfoAndArch(t, kube, "h1"); k != "" {
		t.Fatalf("kernel %q after messages that are not valid facts", k)
	}
	s.handleMessage(messageEvent("a1", armFacts.Encode()))
	c.SyncAll(ctx, false)
	if k, _, _, _, label := nodeInfoAndArch(t, kube, "h1"); k != armFacts.KernelVersion || label != "arm64" {
		t.Errorf("kernel %q arch %q after the facts", k, label)
	}
}

func messageEvent(agentID string, data []byte) *scheduler.Event_Message {
	return &scheduler.Event_Message{AgentID: mesos.AgentID{Value: agentID}, ExecutorID: mesos.ExecutorID{Value: ExecutorID}, Data: data}
}
