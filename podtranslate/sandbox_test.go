package podtranslate

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

func TestSandboxIDs(t *testing.T) {
	pod := testPod()
	if got := SandboxTaskID(pod).Value; got != "sandbox-11111111-2222-3333-4444-555555555555" {
		t.Errorf("SandboxTaskID = %q", got)
	}
	if got := SandboxExecutorID(pod.UID).Value; got != "kubemesos-pod-11111111-2222-3333-4444-555555555555" {
		t.Errorf("SandboxExecutorID = %q", got)
	}
	uid, err := SandboxPodUID(SandboxTaskID(pod))
	if err != nil || uid != pod.UID {
		t.Errorf("SandboxPodUID = %q, %v", uid, err)
	}
	for _, bad := range []string{"", "sandbox-", "pod-1", "kubemesos-pod-1"} {
		if uid, err := SandboxPodUID(mesos.TaskID{Value: bad}); err == nil {
			t.Errorf("SandboxPodUID(%q) = %q, want an error", bad, uid)
		}
	}
	// The pod task's ID is not a sandbox's, and the other way round.
	if _, err := PodUID(SandboxTaskID(pod)); err == nil {
		t.Error("PodUID accepted a sandbox task ID")
	}
	// IDs Mesos accepts anywhere (task, executor and container IDs refuse '.', '/' and spaces).
	for _, id := range []string{SandboxTaskID(pod).Value, SandboxExecutorID(pod.UID).Value} {
		if strings.ContainsAny(id, "./ ") {
			t.Errorf("%q has a character Mesos refuses", id)
		}
	}
}

func TestPodHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b"
	tests := []struct {
		name, podName, hostname, want string
	}{
		{"pod name", "web-1", "", "web-1"},
		{"spec.hostname wins", "web-1", "front", "front"},
		{"cut to 63", strings.Repeat("x", 70), "", strings.Repeat("x", 63)},
		{"cut without trailing dash", long, "", strings.Repeat("a", 62)},
		{"cut without trailing dot", strings.Repeat("a", 62) + ".b", "", strings.Repeat("a", 62)},
	}
	for _, tc := range tests {
		pod := testPod(func(p *corev1.Pod) { p.Name, p.Spec.Hostname = tc.podName, tc.hostname })
		if got := PodHostname(pod); got != tc.want {
			t.Errorf("%s: PodHostname = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// hostnameOverride is the kernel's hostname, over spec.hostname and the pod's name ("Override
// hostname of Pod" specs: hostname and hostname -f both answer it).
func TestPodHostnameOverride(t *testing.T) {
	override := "override.example.host"
	pod := testPod(func(p *corev1.Pod) { p.Name, p.Spec.Hostname, p.Spec.HostnameOverride = "web-1", "front", &override })
	if got := PodHostname(pod); got != override {
		t.Errorf("PodHostname = %q, want the override %q", got, override)
	}
	info, err := Options{PodNetwork: "pods"}.SandboxExecutorInfo(pod, execInfo(), Resources(SandboxExecutorDemand, "kubemesos"))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.GetContainer().GetHostname(); got != override {
		t.Errorf("sandbox ContainerInfo.hostname = %q, want %q", got, override)
	}
}

func TestPortMappings(t *testing.T) {
	udp := corev1.ProtocolUDP
	pod := testPod(func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{ctr("init", nil, nil, corev1.ContainerPort{ContainerPort: 53, HostPort: 5353, Protocol: udp})}
		p.Spec.Containers = []corev1.Container{
			ctr("a", nil, nil,
				corev1.ContainerPort{ContainerPort: 8080, HostPort: 80},
				corev1.ContainerPort{ContainerPort: 9090}, // no hostPort: reached at the pod IP only
				corev1.ContainerPort{ContainerPort: 53, HostPort: 5353, Protocol: corev1.ProtocolTCP}),
			ctr("b", nil, nil,
				corev1.ContainerPort{ContainerPort: 8080, HostPort: 80, Protocol: corev1.ProtocolTCP}), // duplicate
		}
	})
	want := []mesos.NetworkInfo_PortMapping{
		{HostPort: 80, ContainerPort: 8080, Protocol: strp("tcp")},
		{HostPort: 5353, ContainerPort: 53, Protocol: strp("tcp")},
		{HostPort: 5353, ContainerPort: 53, Protocol: strp("udp")},
	}
	if diff := cmp.Diff(want, PortMappings(pod)); diff != "" {
		t.Errorf("PortMappings (-want +got):\n%s", diff)
	}
	if got := PortMappings(testPod()); got != nil {
		t.Errorf("PortMappings of a pod without hostPorts = %v", got)
	}
}

func TestSandboxExecutorInfo(t *testing.T) {
	o := Options{PodNetwork: "kubemesos"}
	pod := testPod(containers(ctr("app", nil, nil, corev1.ContainerPort{ContainerPort: 8080, HostPort: 31080})),
		func(p *corev1.Pod) { p.Spec.Hostname = "front" })
	kubelet := execInfo()
	kubelet.Name = strp("kubemesos executor")
	kubelet.Command.Environment = &mesos.Environment{Variables: []mesos.Environment_Variable{{Name: "KUBEMESOS_LOG_LEVEL", Value: strp("debug")}}}
	kubelet.ShutdownGracePeriod = &mesos.DurationInfo{Nanoseconds: int64(2 * time.Minute)}
	before := kubelet
	before.Command = proto.Clone(kubelet.Command).(*mesos.CommandInfo)
	res := Resources(SandboxExecutorDemand, "kubemesos")

	got, err := o.SandboxExecutorInfo(pod, kubelet, res)
	if err != nil {
		t.Fatal(err)
	}
	want := mesos.ExecutorInfo{
		Type:       mesos.ExecutorInfo_CUSTOM,
		ExecutorID: mesos.ExecutorID{Value: "kubemesos-pod-11111111-2222-3333-4444-555555555555"},
		Name:       strp("kubemesos pod sandbox ns/web-1"),
		Command: &mesos.CommandInfo{
			URIs:        kubelet.Command.URIs,
			Shell:       func() *bool { b := true; return &b }(),
			Value:       strp("./kubemesos pod-sandbox"),
			Environment: kubelet.Command.Environment,
		},
		Resources: Resources(Demand{CPUs: 0.01, MemMB: 32}, "kubemesos"),
		Container: &mesos.ContainerInfo{
			Type: mesos.ContainerInfo_MESOS.Enum(),
			NetworkInfos: []mesos.NetworkInfo{{
				Name:         strp("kubemesos"),
				PortMappings: []mesos.NetworkInfo_PortMapping{{HostPort: 31080, ContainerPort: 8080, Protocol: strp("tcp")}},
			}},
			Hostname: strp("front"),
		},
		ShutdownGracePeriod: &mesos.DurationInfo{Nanoseconds: int64(2 * time.Minute)},
	}
	if !got.Equal(&want) {
		t.Errorf("SandboxExecutorInfo:\n got %v\nwant %v", got.String(), want.String())
	}
	if !kubelet.Equal(&before) {
		t.Error("the kubelet executor's ExecutorInfo was modified")
	}
	// The result shares nothing with the arguments.
	got.Command.URIs[0].Value = "changed"
	got.Resources[0].Scalar.Value = 99
	if kubelet.Command.URIs[0].Value == "changed" || res[0].Scalar.Value == 99 {
		t.Error("the result shares memory with its arguments")
	}

	for name, tc := range map[string]struct {
		o   Options
		pod *corev1.Pod
		res mesos.Resources
	}{
		"host mode":           {Options{}, testPod(), res},
		"hostNetwork pod":     {o, testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), res},
		"no resources":        {o, testPod(), nil},
		"pod without its UID": {o, testPod(func(p *corev1.Pod) { p.UID = "" }), res},
	} {
		if _, err := tc.o.SandboxExecutorInfo(tc.pod, execInfo(), tc.res); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSandboxTaskInfo(t *testing.T) {
	o := Options{PodNetwork: "kubemesos"}
	pod := testPod()
	sandbox, err := o.SandboxExecutorInfo(pod, execInfo(), Resources(SandboxExecutorDemand, ""))
	if err != nil {
		t.Fatal(err)
	}
	res := Resources(Demand{CPUs: 1, MemMB: 128, HostPorts: []HostPort{{Port: 31080, Protocol: corev1.ProtocolTCP}}}, "")
	got, err := o.SandboxTaskInfo(pod, mesos.AgentID{Value: "S1"}, sandbox, res)
	if err != nil {
		t.Fatal(err)
	}
	want := mesos.TaskInfo{
		Name:      "ns/web-1 sandbox",
		TaskID:    mesos.TaskID{Value: "sandbox-11111111-2222-3333-4444-555555555555"},
		AgentID:   mesos.AgentID{Value: "S1"},
		Resources: res,
		// The pod's container declares no limits: none on the pod's cgroup.
		Limits:   map[string]mesos.Value_Scalar{"cpus": {Value: math.Inf(1)}, "mem": {Value: math.Inf(1)}},
		Executor: &sandbox,
		Labels: &mesos.Labels{Labels: []mesos.Label{
			{Key: LabelNamespace, Value: strp("ns")},
			{Key: LabelName, Value: strp("web-1")},
			{Key: LabelUID, Value: strp(string(pod.UID))},
			{Key: LabelRole, Value: strp("sandbox")},
		}},
	}
	if !got.Equal(&want) {
		t.Errorf("SandboxTaskInfo:\n got %v\nwant %v", got.String(), want.String())
	}
	if ref, err := PodRefFromLabels(got.Labels); err != nil || !equality.Semantic.DeepEqual(ref, RefOf(pod)) {
		t.Errorf("PodRefFromLabels = %v, %v", ref, err)
	}
	other := sandbox
	other.ExecutorID = mesos.ExecutorID{Value: "kubemesos-executor"}
	if _, err := o.SandboxTaskInfo(pod, mesos.AgentID{Value: "S1"}, other, res); err == nil {
		t.Error("a sandbox task on another executor was built")
	}
	if _, err := o.SandboxTaskInfo(pod, mesos.AgentID{Value: "S1"}, sandbox, nil); err == nil {
		t.Error("a sandbox task without resources was built")
	}
	if _, err := o.SandboxTaskInfo(pod, mesos.AgentID{}, sandbox, res); err == nil {
		t.Error("a sandbox task without agent was built")
	}
}
