package offerbridge

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestStaticCheckers(t *testing.T) {
	plain := &agent{id: "a1", nodeName: "host-1", labels: map[string]string{
		LabelHostname: "host-1", "zone": "z1", "gen": "5",
	}}
	tainted := &agent{id: "a2", nodeName: "host-2", labels: map[string]string{}}
	tainted.setTaints([]corev1.Taint{
		{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule},
		{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule}, // never keeps a pod off
	})
	cordoned := &agent{id: "a3", nodeName: "host-3", cordoned: true}
	in := func(key string, op corev1.NodeSelectorOperator, vals ...string) corev1.NodeSelectorRequirement {
		return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: vals}
	}
	term := func(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: reqs}
	}
	fields := func(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchFields: reqs}
	}
	tests := []struct {
		name    string
		checker checker
		pod     *corev1.Pod
		agent   *agent
		want    string
	}{
		{"node name unset", nodeName{}, pod("p", 1, 1), plain, ""},
		{"node name matches", nodeName{}, pod("p", 1, 1, nodeNamed("host-1")), plain, ""},
		{"node name differs", nodeName{}, pod("p", 1, 1, nodeNamed("host-9")), plain, ReasonNodeName},

		{"not cordoned", nodeUnschedulable{}, pod("p", 1, 1), plain, ""},
		{"cordoned", nodeUnschedulable{}, pod("p", 1, 1), cordoned, ReasonUnschedulable},
		{"cordoned but tolerated", nodeUnschedulable{}, pod("p", 1, 1, tolerate(corev1.Toleration{
			Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
		})), cordoned, ""},

		{"no taints", taintToleration{}, pod("p", 1, 1), plain, ""},
		{"untolerated taint", taintToleration{}, pod("p", 1, 1), tainted, "node(s) had untolerated taint {dedicated: db}"},
		{"tolerated by equal", taintToleration{}, pod("p", 1, 1, tolerate(corev1.Toleration{
			Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule,
		})), tainted, ""},
		{"toleration value differs", taintToleration{}, pod("p", 1, 1, tolerate(corev1.Toleration{
			Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web",
		})), tainted, "node(s) had untolerated taint {dedicated: db}"},
		{"toleration effect differs", taintToleration{}, pod("p", 1, 1, tolerate(corev1.Toleration{
			Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
		})), tainted, "node(s) had untolerated taint {dedicated: db}"},
		{"tolerate everything", taintToleration{}, pod("p", 1, 1, tolerate(corev1.Toleration{
			Operator: corev1.TolerationOpExists,
		})), tainted, ""},

		{"selector matches", nodeAffinity{}, pod("p", 1, 1, nodeSelector("zone", "z1")), plain, ""},
		{"selector value differs", nodeAffinity{}, pod("p", 1, 1, nodeSelector("zone", "z2")), plain, ReasonNodeAffinity},
		{"selector label missing", nodeAffinity{}, pod("p", 1, 1, nodeSelector("rack", "r1")), plain, ReasonNodeAffinity},
		{"affinity In", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("zone", corev1.NodeSelectorOpIn, "z0", "z1")))), plain, ""},
		{"affinity In misses", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("zone", corev1.NodeSelectorOpIn, "z2")))), plain, ReasonNodeAffinity},
		{"affinity NotIn", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("zone", corev1.NodeSelectorOpNotIn, "z1")))), plain, ReasonNodeAffinity},
		{"affinity NotIn absent label", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("rack", corev1.NodeSelectorOpNotIn, "r1")))), plain, ""},
		{"affinity Exists", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("zone", corev1.NodeSelectorOpExists)))), plain, ""},
		{"affinity DoesNotExist", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("zone", corev1.NodeSelectorOpDoesNotExist)))), plain, ReasonNodeAffinity},
		{"affinity Gt", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("gen", corev1.NodeSelectorOpGt, "4")))), plain, ""},
		{"affinity Gt fails", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("gen", corev1.NodeSelectorOpGt, "5")))), plain, ReasonNodeAffinity},
		{"affinity Lt", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("gen", corev1.NodeSelectorOpLt, "6")))), plain, ""},
		{"affinity Lt not a number", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(in("zone", corev1.NodeSelectorOpLt, "6")))), plain, ReasonNodeAffinity},
		{"affinity expressions ANDed", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(term(
			in("zone", corev1.NodeSelectorOpIn, "z1"), in("gen", corev1.NodeSelectorOpIn, "4")))), plain, ReasonNodeAffinity},
		{"affinity terms ORed", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(
			term(in("zone", corev1.NodeSelectorOpIn, "z9")), term(in("gen", corev1.NodeSelectorOpIn, "5")))), plain, ""},
		{"affinity empty term matches nothing", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(corev1.NodeSelectorTerm{})), plain, ReasonNodeAffinity},
		{"affinity matchFields name", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(fields(in("metadata.name", corev1.NodeSelectorOpIn, "host-1")))), plain, ""},
		{"affinity matchFields other name", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(fields(in("metadata.name", corev1.NodeSelectorOpIn, "host-2")))), plain, ReasonNodeAffinity},
		{"affinity matchFields NotIn", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(fields(in("metadata.name", corev1.NodeSelectorOpNotIn, "host-1")))), plain, ReasonNodeAffinity},
		{"affinity matchFields unsupported field", nodeAffinity{}, pod("p", 1, 1, requiredAffinity(fields(in("spec.podCIDR", corev1.NodeSelectorOpNotIn, "x")))), plain, ReasonNodeAffinity},
		{"selector and affinity both needed", nodeAffinity{}, pod("p", 1, 1, nodeSelector("zone", "z2"),
			requiredAffinity(term(in("zone", corev1.NodeSelectorOpExists)))), plain, ReasonNodeAffinity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pi := podInfo{pod: tt.pod}
			if diff := cmp.Diff(tt.want, tt.checker.check(&pi, tt.agent)); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFitCheckers(t *testing.T) {
	b := &bucket{launch: -1}
	for _, r := range []res{
		{name: "cpus", value: 2}, {name: "mem", value: 1024}, {name: "disk", value: 100}, {name: "gpus", value: 1},
		{name: "ports", ports: [][2]uint64{{8000, 8010}, {9000, 9000}}},
	} {
		m := r.mesos()
		b.add(&m)
	}
	n := func(cpu, mem, disk, gpu float64, ports ...uint64) need {
		return need{scalar: [numDims]int64{milli(cpu), milli(mem), milli(disk), milli(gpu)}, ports: ports}
	}
	tests := []struct {
		name string
		need need
		want []string
	}{
		{"fits exactly", n(2, 1024, 100, 1, 8000, 8010, 9000), nil},
		{"nothing needed", n(0, 0, 0, 0), nil},
		{"cpu", n(2.001, 1, 1, 0), []string{ReasonInsufficientCPU}},
		{"memory", n(1, 1025, 1, 0), []string{ReasonInsufficientMemory}},
		{"disk", n(1, 1, 101, 0), []string{ReasonInsufficientDisk}},
		{"gpus", n(1, 1, 1, 2), []string{ReasonInsufficientGPUs}},
		{"cpu and memory both reported", n(3, 2048, 1, 0), []string{ReasonInsufficientCPU, ReasonInsufficientMemory}},
		{"port outside ranges", n(1, 1, 1, 0, 8011), []string{ReasonHostPorts}},
		{"ports stage stops before resources", n(3, 1, 1, 0, 9001), []string{ReasonHostPorts}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mask := fit(&tt.need, b)
			var got []string
			for i, c := range fitCheckers {
				if mask&(1<<i) != 0 {
					got = append(got, c.reason())
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostPortsReason(t *testing.T) {
	if _, ok := fitCheckers[hostPortsBit].(hostPorts); !ok {
		t.Fatalf("fitCheckers[hostPortsBit] is %T, want hostPorts", fitCheckers[hostPortsBit])
	}
	for ports, want := range map[string]string{
		"":       ReasonHostPorts,
		"8080":   ReasonHostPorts + " (port 8080)",
		"80,443": ReasonHostPorts + " (ports 80, 443)",
	} {
		var ps []uint64
		for _, f := range strings.FieldsFunc(ports, func(r rune) bool { return r == ',' }) {
			p, _ := strconv.ParseUint(f, 10, 64)
			ps = append(ps, p)
		}
		if got := HostPortsReason(ps); got != want {
			t.Errorf("HostPortsReason(%v) = %q, want %q", ps, got, want)
		}
	}
}

func TestMessage(t *testing.T) {
	tests := []struct {
		name    string
		agents  int
		reasons map[string]int
		want    string
	}{
		{"one reason", 3, map[string]int{ReasonInsufficientCPU: 3}, "0/3 agents are available: 3 Insufficient cpu."},
		{"sorted as kube-scheduler does", 5, map[string]int{
			ReasonInsufficientCPU: 2, ReasonNodeAffinity: 1, ReasonInsufficientMemory: 2,
		}, "0/5 agents are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu, 2 Insufficient memory."},
		{"no agents", 0, nil, "0/0 agents are available: no offers held."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Message(tt.agents, tt.reasons)); diff != "" {
				t.Errorf("Message (-want +got):\n%s", diff)
			}
		})
	}
}
