package framework

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/kubemesos/kubemesos/offerbridge"
)

func textAttr(name, v string) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}}
}

func getNode(t *testing.T, kube *fake.Clientset, name string) *corev1.Node {
	t.Helper()
	n, err := kube.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Node %s: %v", name, err)
	}
	return n
}

// offerWith is an offer of agent a1 (hostname h1) with the given attributes.
func offerWith(attrs ...mesos.Attribute) mesos.Offer {
	o := offer("o1", "a1", "h1", 2, 1024)
	o.Attributes = attrs
	return o
}

func TestNodePodCIDRsFromAttribute(t *testing.T) {
	tests := []struct {
		name      string
		value     string
		want      []string
		wantEvent string
	}{
		{name: "one CIDR", value: "10.244.3.0/24", want: []string{"10.244.3.0/24"}},
		{name: "dual stack, canonical form", value: "10.244.3.7/24, fd00:10:244:3::/64", want: []string{"10.244.3.0/24", "fd00:10:244:3::/64"}},
		{name: "not a CIDR", value: "banana", wantEvent: "Warning " + EventInvalidPodCIDR + ` agent attribute pod_cidr=banana: netip.ParsePrefix("banana"): no '/': the Node gets no pod CIDRs`},
		{name: "two of one family", value: "10.244.3.0/24,10.244.4.0/24", wantEvent: "Warning " + EventInvalidPodCIDR + " agent attribute pod_cidr=10.244.3.0/24,10.244.4.0/24: at most one IPv4 and one IPv6 CIDR: the Node gets no pod CIDRs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c, kube, _ := newTestNodeController(t)
			rec := record.NewFakeRecorder(10)
			c.recorder, c.podCIDRAttribute = rec, "pod_cidr"
			o := offerWith(textAttr("pod_cidr", tc.value), textAttr("zone", "z1"))
			c.ObserveOffer(&o)
			c.SyncAll(ctx, false)
			n := getNode(t, kube, "h1")
			if diff := cmp.Diff(tc.want, n.Spec.PodCIDRs); diff != "" {
				t.Errorf("podCIDRs (-want +got):\n%s", diff)
			}
			wantFirst := ""
			if len(tc.want) > 0 {
				wantFirst = tc.want[0]
			}
			if n.Spec.PodCIDR != wantFirst {
				t.Errorf("podCIDR = %q, want %q", n.Spec.PodCIDR, wantFirst)
			}
			// The CIDR is no label value: skipped, and the Node is written anyway.
			if _, ok := n.Labels[offerbridge.LabelAttrPrefix+"pod_cidr"]; ok && strings.Contains(tc.value, "/") {
				t.Errorf("labels = %v, want no pod_cidr label", n.Labels)
			}
			// What the API server would check (the fake clientset does not).
			if errs := metav1validation.ValidateLabels(n.Labels, field.NewPath("metadata", "labels")); len(errs) > 0 {
				t.Errorf("Node labels the API server refuses: %v", errs.ToAggregate())
			}
			if n.Labels[offerbridge.LabelAttrPrefix+"zone"] != "z1" {
				t.Errorf("labels = %v, want the zone label", n.Labels)
			}
			var want []string
			if tc.wantEvent != "" {
				want = []string{tc.wantEvent}
			}
			// Warned once, however often the Node is synced.
			c.SyncAll(ctx, true)
			c.SyncAll(ctx, true)
			if diff := cmp.Diff(want, drainEvents(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodePodCIDRsNeverRewritten(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	rec := record.NewFakeRecorder(10)
	c.recorder, c.podCIDRAttribute = rec, "pod_cidr"

	// A Node written before the agent had the attribute gets the CIDR once it has.
	o := offerWith()
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	if n := getNode(t, kube, "h1"); n.Spec.PodCIDR != "" {
		t.Fatalf("podCIDR without attribute = %q", n.Spec.PodCIDR)
	}
	o = offerWith(textAttr("pod_cidr", "10.244.3.0/24"))
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	if n := getNode(t, kube, "h1"); n.Spec.PodCIDR != "10.244.3.0/24" || !cmp.Equal(n.Spec.PodCIDRs, []string{"10.244.3.0/24"}) {
		t.Fatalf("podCIDR(s) after the attribute appeared = %q %q", n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}

	// A new value is not written (the API server refuses changes): one Warning Event.
	o = offerWith(textAttr("pod_cidr", "10.244.9.0/24"))
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	c.SyncAll(ctx, true)
	if n := getNode(t, kube, "h1"); n.Spec.PodCIDR != "10.244.3.0/24" || !cmp.Equal(n.Spec.PodCIDRs, []string{"10.244.3.0/24"}) {
		t.Errorf("podCIDR(s) after the attribute changed = %q %q, want the first kept", n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}
	events := drainEvents(rec)
	if len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+EventPodCIDRMismatch+" Mesos agent a1 has pod CIDRs 10.244.9.0/24 (attribute pod_cidr), Node h1 has 10.244.3.0/24") {
		t.Errorf("events = %q, want one %s", events, EventPodCIDRMismatch)
	}
}

func TestNodeInfoAndOSLabels(t *testing.T) {
	ctx := context.Background()
	c, kube, _ := newTestNodeController(t)
	c.SetMasterVersion("1.11.0")
	o := offerWith()
	c.ObserveOffer(&o)
	c.SyncAll(ctx, false)
	n := getNode(t, kube, "h1")
	want := corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: runtime.GOARCH, KubeletVersion: KubeletVersion(),
		ContainerRuntimeVersion: "mesos://1.11.0", MachineID: "a1", SystemUUID: "a1"}
	if diff := cmp.Diff(want, n.Status.NodeInfo); diff != "" {
		t.Errorf("nodeInfo from an offer (-want +got):\n%s", diff)
	}
	if n.Labels[corev1.LabelOSStable] != "linux" || n.Labels[corev1.LabelArchStable] != runtime.GOARCH {
		t.Errorf("labels = %v, want kubernetes.io/os and arch", n.Labels)
	}
	if !strings.HasPrefix(KubeletVersion(), "kubemesos-") {
		t.Errorf("KubeletVersion() = %q", KubeletVersion())
	}

	// GET_AGENTS tells the agent's own version (the container runtime is the agent's) and its arch.
	c.SetAgents([]agentObservation{{ID: "a1", Hostname: "h1", Version: "1.12.0", Attributes: []mesos.Attribute{textAttr("arch", "arm64")},
		Total: mesos.Resources{scalar("cpus", 4), scalar("mem", 8192)}}}, map[string]bool{"a1": true})
	c.SyncAll(ctx, false)
	n = getNode(t, kube, "h1")
	want.ContainerRuntimeVersion, want.Architecture = "mesos://1.12.0", "arm64"
	if diff := cmp.Diff(want, n.Status.NodeInfo); diff != "" {
		t.Errorf("nodeInfo from GET_AGENTS (-want +got):\n%s", diff)
	}
	if n.Labels[corev1.LabelArchStable] != "arm64" {
		t.Errorf("arch label = %q, want arm64", n.Labels[corev1.LabelArchStable])
	}
}
