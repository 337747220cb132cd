package framework

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func newTestNodeController(t *testing.T) (*nodeController, *fake.Clientset, *clocktesting.FakeClock) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	kube := fake.NewClientset()
	clk := clocktesting.NewFakeClock(t0)
	c := newNodeController(kube, clk, 40*time.Second, 0.1, 64, log)
	c.SetOwner("fw-1", nil)
	return c, kube, clk
}

func readyOf(t *testing.T, kube *fake.Clientset, name string) (corev1.ConditionStatus, string) {
	t.Helper()
	n, err := kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Node %s: %v", name, err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

func leaseRenewTime(t *testing.T, kube *fake.Clientset, name string) time.Time {
	t.Helper()
	l, err := kube.CoordinationV1().Leases(NodeLeaseNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Lease %s: %v", name, err)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != name {
		t.Errorf("Lease holder = %v, want %s", l.Spec.HolderIdentity, name)
	}
	return l.Spec.RenewTime.Time
}

func TestNodeFromOfferThenAgents(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	o := offer("o1", "a1", "h1", 2, 1024)
	zone := "z1"
	o.Attributes = []mesos.Attribute{
		{Name: "zone", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: zone}},
		{Name: "level", Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: 2}},
		{Name: "racks", Type: mesos.RANGES, Ranges: &mesos.Value_Ranges{}},
	}
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)

	n, err := kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"kubernetes.io/hostname": "h1", "kubemesos.io/agent-id": "a1",
		"kubemesos.io/attr-zone": "z1", "kubemesos.io/attr-level": "2",
		"kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH}
	if diff := cmp.Diff(wantLabels, n.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := n.Status.Capacity[corev1.ResourceCPU]; got.Cmp(resource.MustParse("2")) != 0 {
		t.Errorf("capacity cpu from offer = %s, want 2", got.String())
	}
	if st, _ := readyOf(t, kube, "h1"); st != corev1.ConditionTrue {
		t.Errorf("Ready = %s, want True", st)
	}
	if len(n.Status.Addresses) == 0 || n.Status.Addresses[0].Type != corev1.NodeInternalIP || n.Status.Addresses[0].Address != "h1" {
		t.Errorf("addresses = %v", n.Status.Addresses)
	}
	leaseRenewTime(t, kube, "h1")

	// GET_AGENTS gives the total: capacity follows, allocatable leaves the executor's share out.
	c.SetAgents([]agentObservation{{ID: "a1", Hostname: "h1", Attributes: o.Attributes,
		Total: mesos.Resources{scalar("cpus", 4), scalar("mem", 8192), scalar("disk", 1000), scalar("gpus", 1)}}},
		map[string]bool{"a1": true})
	c.SyncAll(ctx, false)
	n, _ = kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
	got := map[string]string{}
	for k, v := range n.Status.Allocatable {
		got["alloc "+string(k)] = v.String()
	}
	for k, v := range n.Status.Capacity {
		got["cap "+string(k)] = v.String()
	}
	want := map[string]string{
		"cap cpu": "4", "cap memory": "8Gi", "cap ephemeral-storage": "1000Mi", "cap pods": "110", "cap nvidia.com/gpu": "1",
		"alloc cpu": "3900m", "alloc memory": "8128Mi", "alloc ephemeral-storage": "1000Mi", "alloc pods": "110", "alloc nvidia.com/gpu": "1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("capacity/allocatable (-want +got):\n%s", diff)
	}
}

func TestNodeReadinessFollowsAgent(t *testing.T) {
	tests := []struct {
		name       string
		lose       func(c *nodeController)
		wantReason string
	}{
		{name: "unreachable", lose: func(c *nodeController) { c.MarkInactive("a1", ReasonAgentUnreachable, "m") }, wantReason: ReasonAgentUnreachable},
		{name: "missing from GET_AGENTS", lose: func(c *nodeController) { c.SetAgents(nil, nil) }, wantReason: ReasonAgentRemoved},
		{name: "inactive in GET_AGENTS", lose: func(c *nodeController) {
			c.SetAgents([]agentObservation{{ID: "a1", Hostname: "h1"}}, map[string]bool{"a1": false})
		}, wantReason: ReasonAgentInactive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c, kube, clk := newTestNodeController(t)
			o := offer("o1", "a1", "h1", 2, 1024)
			c.ObserveOffer(&o)
			c.SyncAll(ctx, true)
			first := leaseRenewTime(t, kube, "h1")

			clk.Step(10 * time.Second)
			c.SyncAll(ctx, true)
			if renewed := leaseRenewTime(t, kube, "h1"); !renewed.After(first) {
				t.Errorf("active agent's lease not renewed: %v", renewed)
			}

			tt.lose(c)
			clk.Step(10 * time.Second)
			c.SyncAll(ctx, true)
			last := leaseRenewTime(t, kube, "h1")
			if st, reason := readyOf(t, kube, "h1"); st != corev1.ConditionFalse || reason != tt.wantReason {
				t.Errorf("Ready = %s/%s, want False/%s", st, reason, tt.wantReason)
			}
			clk.Step(10 * time.Second)
			c.SyncAll(ctx, true)
			if got := leaseRenewTime(t, kube, "h1"); !got.Equal(last) {
				t.Errorf("lease of a lost agent renewed: %v -> %v", last, got)
			}

			// Offers again: Ready again, lease renewed.
			o2 := offer("o2", "a1", "h1", 2, 1024)
			c.ObserveOffer(&o2)
			c.SyncAll(ctx, true)
			if st, _ := readyOf(t, kube, "h1"); st != corev1.ConditionTrue {
				t.Errorf("Ready after the agent came back = %s, want True", st)
			}
			if got := leaseRenewTime(t, kube, "h1"); !got.After(last) {
				t.Errorf("lease not renewed after the agent came back")
			}
		})
	}
}

func TestAgentsFromResponse(t *testing.T) {
	// GET_AGENTS decoding: IDs, hostnames, totals and the active flag (deactivated counts as inactive).
	deactivated := true
	resp := getAgentsResponse([]agentFixture{
		{id: "a1", host: "h1", active: true},
		{id: "a2", host: "h2", active: true, deactivated: &deactivated},
		{id: "a3", host: "h3", active: false},
	})
	agents, active, err := agentsFromResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range agents {
		ids = append(ids, a.ID+"@"+a.Hostname)
	}
	if diff := cmp.Diff([]string{"a1@h1", "a2@h2", "a3@h3"}, ids); diff != "" {
		t.Errorf("agents (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"a1": true, "a2": false, "a3": false}, active); diff != "" {
		t.Errorf("active (-want +got):\n%s", diff)
	}
	if _, _, err := agentsFromResponse(nil); err == nil {
		t.Error("nil GET_AGENTS accepted")
	}
}

func TestFindExecutor(t *testing.T) {
	mk := func(fw, agent, id string) master.Response_GetExecutors_Executor {
		return master.Response_GetExecutors_Executor{AgentID: mesos.AgentID{Value: agent},
			ExecutorInfo: mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: id}, FrameworkID: &mesos.FrameworkID{Value: fw}}}
	}
	ge := &master.Response_GetExecutors{Executors: []master.Response_GetExecutors_Executor{
		mk("other-fw", "a1", ExecutorID), mk("fw-1", "a2", ExecutorID), mk("fw-1", "a1", "something-else"), mk("fw-1", "a1", ExecutorID),
	}}
	tests := []struct {
		agent     string
		framework string
		want      bool
	}{
		{agent: "a1", framework: "fw-1", want: true},
		{agent: "a3", framework: "fw-1", want: false},
		{agent: "a1", framework: "fw-2", want: false},
	}
	for _, tt := range tests {
		got := findExecutor(ge, tt.framework, tt.agent, ExecutorID)
		if (got != nil) != tt.want {
			t.Errorf("findExecutor(%s, %s) = %v, want found=%v", tt.framework, tt.agent, got, tt.want)
			continue
		}
		if got != nil && (got.GetFrameworkID().GetValue() != tt.framework || got.ExecutorID.Value != ExecutorID) {
			t.Errorf("findExecutor(%s, %s) = %v", tt.framework, tt.agent, got)
		}
	}
	if findExecutor(nil, "fw-1", "a1", ExecutorID) != nil {
		t.Error("nil answer yields an executor")
	}
}

// Between status reports a synced Node costs one request per renewal (the Lease update); a Node deleted
// by someone comes back.
func TestNodeHeartbeatCostAndRecreation(t *testing.T) {
	ctx := context.Background()
	c, kube, clk := newTestNodeController(t)
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	c.SyncAll(ctx, true)
	clk.Step(10 * time.Second)
	c.SyncAll(ctx, true) // first renewal may still be a full sync
	kube.ClearActions()

	clk.Step(10 * time.Second)
	c.SyncAll(ctx, true)
	var got []string
	for _, a := range kube.Actions() {
		got = append(got, a.GetVerb()+" "+a.GetResource().Resource)
	}
	if diff := cmp.Diff([]string{"update leases"}, got); diff != "" {
		t.Errorf("requests of one renewal (-want +got):\n%s", diff)
	}

	// Someone deletes the Node; the garbage collector deletes its Lease.
	if err := kube.CoreV1().Nodes().Delete(ctx, "h1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.CoordinationV1().Leases(NodeLeaseNamespace).Delete(ctx, "h1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Step(10 * time.Second)
	c.SyncAll(ctx, true)
	c.SyncAll(ctx, false)
	if st, _ := readyOf(t, kube, "h1"); st != corev1.ConditionTrue {
		t.Errorf("recreated Node Ready = %q, want True", st)
	}
}

func TestNodeAddresses(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	addrs := func() []corev1.NodeAddress {
		n, err := kube.CoreV1().Nodes().Get(ctx, "h1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Status.Addresses
	}
	want := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "h1"}, {Type: corev1.NodeHostName, Address: "h1"}}
	if diff := cmp.Diff(want, addrs()); diff != "" {
		t.Errorf("addresses without an IP (-want +got):\n%s", diff)
	}
	ip := "10.0.0.7"
	o2 := offer("o2", "a1", "h1", 2, 1024)
	o2.URL = &mesos.URL{Scheme: "http", Address: mesos.Address{Hostname: &o2.Hostname, IP: &ip, Port: 5051}}
	c.ObserveOffer(&o2)
	c.SyncAll(ctx, false)
	want[0].Address = ip
	if diff := cmp.Diff(want, addrs()); diff != "" {
		t.Errorf("addresses with the offer's IP (-want +got):\n%s", diff)
	}
}

func TestIPOfPID(t *testing.T) {
	for pid, want := range map[string]string{
		"slave(1)@10.0.0.5:5051": "10.0.0.5",
		"slave(1)@[::1]:5051":    "::1",
		"slave(1)@agent-1:5051":  "",
		"":                       "",
		"garbage":                "",
	} {
		if got := ipOfPID(pid); got != want {
			t.Errorf("ipOfPID(%q) = %q, want %q", pid, got, want)
		}
	}
}

// The API server ignores a new Node's status on create; the framework then patches it in, as the
// kubelet does, with no resourceVersion to conflict with the controller-manager's first write.
func TestNewNodeStatusIsPatchedIn(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	kube.PrependReactor("create", "nodes", func(a k8stesting.Action) (bool, kruntime.Object, error) {
		n := a.(k8stesting.CreateAction).GetObject().(*corev1.Node).DeepCopy()
		n.Status = corev1.NodeStatus{}
		n.ResourceVersion = "1"
		return true, n, kube.Tracker().Create(corev1.SchemeGroupVersion.WithResource("nodes"), n, "")
	})
	o := offer("o1", "a1", "h1", 2, 1024)
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	if st, _ := readyOf(t, kube, "h1"); st != corev1.ConditionTrue {
		t.Fatalf("new Node's Ready = %q, want True", st)
	}
	var verbs []string
	for _, a := range kube.Actions() {
		if a.GetResource().Resource == "nodes" && a.GetSubresource() == "status" {
			verbs = append(verbs, a.GetVerb())
		}
	}
	if diff := cmp.Diff([]string{"patch"}, verbs); diff != "" {
		t.Errorf("writes of the new Node's status (-want +got):\n%s", diff)
	}
}
