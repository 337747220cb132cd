package offerbridge

import (
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func text(name, v string) mesos.Attribute {
	return mesos.Attribute{Name: name, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: v}}
}

func TestAgentLabels(t *testing.T) {
	o := &mesos.Offer{AgentID: mesos.AgentID{Value: "S1"}, Hostname: "h1", Attributes: []mesos.Attribute{
		text("zone", "z1"),
		{Name: "level", Type: mesos.SCALAR, Scalar: &mesos.Value_Scalar{Value: 2.5}},
		{Name: "racks", Type: mesos.RANGES, Ranges: &mesos.Value_Ranges{}},
		text("pod_cidr", "10.244.3.0/24"),
		text("bad name!", "x"),
	}}
	want := map[string]string{
		"kubernetes.io/hostname": "h1", "kubemesos.io/agent-id": "S1",
		"kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH,
		"kubemesos.io/attr-zone": "z1", "kubemesos.io/attr-level": "2.5",
	}
	if diff := cmp.Diff(want, AgentLabels(o)); diff != "" {
		t.Errorf("AgentLabels (-want +got):\n%s", diff)
	}
	skipped := SkippedAttributes(o.Attributes)
	if len(skipped) != 2 || !strings.Contains(skipped["pod_cidr"], `label value "10.244.3.0/24"`) ||
		!strings.Contains(skipped["bad name!"], `label key "kubemesos.io/attr-bad name!"`) {
		t.Errorf("SkippedAttributes = %q", skipped)
	}

	// The agent's arch attribute wins over the framework's GOARCH, when it is a valid label value.
	o.Attributes = []mesos.Attribute{text(AttributeArch, "arm64")}
	if got := AgentLabels(o)[corev1.LabelArchStable]; got != "arm64" {
		t.Errorf("arch with attribute = %q, want arm64", got)
	}
	o.Attributes = []mesos.Attribute{text(AttributeArch, "arm/v7")}
	if got := AgentArch(o.Attributes); got != runtime.GOARCH {
		t.Errorf("arch with an invalid attribute = %q, want %s", got, runtime.GOARCH)
	}
}

// A nodeSelector of public charts (kubernetes.io/os: linux) fits agents that have no Node yet.
func TestPlaceOSNodeSelectorWithoutNode(t *testing.T) {
	in := Input{Offers: []mesos.Offer{basic("o1", "a1", 4, 4096)},
		Pods: []*corev1.Pod{pod("p", 1, 256, nodeSelector(corev1.LabelOSStable, "linux", corev1.LabelArchStable, runtime.GOARCH))}}
	plan := Place(in)
	checkPlan(t, in, plan)
	if diff := cmp.Diff([]string{"p@a1"}, placed(plan)); diff != "" {
		t.Errorf("placed (-want +got):\n%s", diff)
	}
}

// labelName agrees with apimachinery's validation on values and on label key name parts.
func TestLabelNameMatchesValidation(t *testing.T) {
	for _, s := range []string{"a", "z1", "10.244.3.0", "10.244.3.0/24", "-a", "a-", "a_b.c-d", "A", "a b", "é", "",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "a..b", "_a", "a.", "x86_64", "arm64"} {
		want := s != "" && len(validation.IsValidLabelValue(s)) == 0
		if got := labelName(s); got != want {
			t.Errorf("labelName(%q) = %v, validation says %v", s, got, want)
		}
		wantKey := len(validation.IsQualifiedName("kubemesos.io/"+s)) == 0
		if got := labelName(s); got != wantKey {
			t.Errorf("labelName(%q) = %v as a key name part, validation says %v", s, got, wantKey)
		}
	}
}
