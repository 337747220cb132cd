package podtranslate

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosres "github.com/mesos/mesos-go/api/v1/lib/resources"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// rl builds a ResourceList from name/quantity pairs.
func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func ctr(name string, req, lim corev1.ResourceList, ports ...corev1.ContainerPort) corev1.Container {
	return corev1.Container{Name: name, Image: "busybox", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}, Ports: ports}
}

func testPod(mut ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1", UID: "11111111-2222-3333-4444-555555555555"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr("app", nil, nil)}},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func containers(cs ...corev1.Container) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.Containers = cs }
}

func TestPodDemand(t *testing.T) {
	tests := []struct {
		name     string
		pod      *corev1.Pod
		overhead Overhead
		network  string // --pod-network; "" is host mode
		want     Demand
	}{
		{
			name: "best effort gets MinCPUs and MinMemMB",
			pod:  testPod(),
			want: Demand{CPUs: MinCPUs, MemMB: MinMemMB},
		},
		{
			name:     "best effort with overhead uses the overhead",
			pod:      testPod(),
			overhead: Overhead{CPUs: 0.05, MemMB: 16},
			want:     Demand{CPUs: 0.05, MemMB: 16},
		},
		{
			name: "requests in Mesos units",
			pod:  testPod(containers(ctr("a", rl("cpu", "250m", "memory", "128Mi", "ephemeral-storage", "1Gi"), nil))),
			want: Demand{CPUs: 0.25, MemMB: 128, DiskMB: 1024},
		},
		{
			name: "decimal memory rounds up to whole MiB",
			pod:  testPod(containers(ctr("a", rl("cpu", "1", "memory", "1G"), nil))),
			want: Demand{CPUs: 1, MemMB: 954}, // 1e9 B = 953.67 MiB
		},
		{
			name: "one byte is one MiB",
			pod:  testPod(containers(ctr("a", rl("memory", "1"), nil))),
			want: Demand{CPUs: MinCPUs, MemMB: 1},
		},
		{
			name: "sub-millicore cpu rounds up to a millicore",
			pod:  testPod(containers(ctr("a", rl("cpu", "100u"), nil))),
			want: Demand{CPUs: 0.001, MemMB: MinMemMB},
		},
		{
			name: "limits where only limits are set, per resource",
			pod:  testPod(containers(ctr("a", rl("cpu", "500m"), rl("cpu", "2", "memory", "256Mi", "nvidia.com/gpu", "2")))),
			want: Demand{CPUs: 0.5, MemMB: 256, GPUs: 2},
		},
		{
			name: "app containers are summed",
			pod: testPod(containers(
				ctr("a", rl("cpu", "100m", "memory", "64Mi"), nil),
				ctr("b", rl("cpu", "200m", "memory", "64Mi"), nil),
				ctr("c", nil, rl("cpu", "300m")),
			)),
			want: Demand{CPUs: 0.6, MemMB: 128},
		},
		{
			name: "an init container larger than the apps sets the demand per resource",
			pod: testPod(
				containers(ctr("a", rl("cpu", "1", "memory", "64Mi"), nil), ctr("b", rl("cpu", "500m", "memory", "64Mi"), nil)),
				func(p *corev1.Pod) {
					p.Spec.InitContainers = []corev1.Container{
						ctr("init1", rl("cpu", "2", "memory", "32Mi"), nil),
						ctr("init2", rl("cpu", "100m", "memory", "100Mi"), nil),
					}
				},
			),
			want: Demand{CPUs: 2, MemMB: 128},
		},
		{
			name: "pod overhead is added",
			pod: testPod(containers(ctr("a", rl("cpu", "1", "memory", "100Mi"), nil)), func(p *corev1.Pod) {
				p.Spec.Overhead = rl("cpu", "250m", "memory", "28Mi")
			}),
			want: Demand{CPUs: 1.25, MemMB: 128},
		},
		{
			name: "pod-level resources replace the container aggregate for cpu and memory only",
			pod: testPod(containers(ctr("a", rl("cpu", "1", "memory", "100Mi", "ephemeral-storage", "10Mi"), nil)), func(p *corev1.Pod) {
				p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "3"), Limits: rl("memory", "1Gi")}
			}),
			want: Demand{CPUs: 3, MemMB: 1024, DiskMB: 10},
		},
		{
			name:     "framework overhead is added without float noise",
			pod:      testPod(containers(ctr("a", rl("cpu", "100m", "memory", "1Mi"), nil))),
			overhead: Overhead{CPUs: 0.2, MemMB: 0.5},
			want:     Demand{CPUs: 0.3, MemMB: 1.5},
		},
		{
			name:    "pod network: host ports declared, deduplicated, TCP by default, sorted; container-only ports ignored",
			network: "kubemesos",
			pod: testPod(containers(
				ctr("a", nil, nil,
					corev1.ContainerPort{ContainerPort: 9090, HostPort: 9090, Protocol: corev1.ProtocolUDP},
					corev1.ContainerPort{ContainerPort: 8080, HostPort: 8080},
					corev1.ContainerPort{ContainerPort: 80},
				),
				ctr("b", nil, nil,
					corev1.ContainerPort{ContainerPort: 8080, HostPort: 8080, Protocol: corev1.ProtocolTCP},
					corev1.ContainerPort{ContainerPort: 9090, HostPort: 9090, Protocol: corev1.ProtocolTCP},
				),
			)),
			want: Demand{CPUs: MinCPUs, MemMB: MinMemMB, HostPorts: []HostPort{
				{Port: 8080, Protocol: corev1.ProtocolTCP},
				{Port: 9090, Protocol: corev1.ProtocolTCP},
				{Port: 9090, Protocol: corev1.ProtocolUDP},
			}},
		},
		{
			name:    "pod network: a hostPort may differ from its containerPort (a port mapping)",
			network: "kubemesos",
			pod:     testPod(containers(ctr("a", nil, nil, corev1.ContainerPort{ContainerPort: 8080, HostPort: 80}))),
			want:    Demand{CPUs: MinCPUs, MemMB: MinMemMB, HostPorts: []HostPort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
		},
		{
			name: "host mode: every containerPort is a host port, deduplicated, init containers included",
			pod: testPod(
				containers(
					ctr("a", nil, nil,
						corev1.ContainerPort{ContainerPort: 8080},
						corev1.ContainerPort{ContainerPort: 9090, HostPort: 9090, Protocol: corev1.ProtocolUDP},
					),
					ctr("b", nil, nil, corev1.ContainerPort{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}),
				),
				func(p *corev1.Pod) {
					p.Spec.InitContainers = []corev1.Container{ctr("i", nil, nil, corev1.ContainerPort{ContainerPort: 7000})}
				},
			),
			want: Demand{CPUs: MinCPUs, MemMB: MinMemMB, HostPorts: []HostPort{
				{Port: 7000, Protocol: corev1.ProtocolTCP},
				{Port: 8080, Protocol: corev1.ProtocolTCP},
				{Port: 9090, Protocol: corev1.ProtocolUDP},
			}},
		},
		{
			name:    "pod network, hostNetwork: container ports are host ports, init containers included",
			network: "kubemesos",
			pod: testPod(
				containers(ctr("a", nil, nil, corev1.ContainerPort{ContainerPort: 53, Protocol: corev1.ProtocolUDP})),
				func(p *corev1.Pod) {
					p.Spec.HostNetwork = true
					p.Spec.InitContainers = []corev1.Container{ctr("i", nil, nil, corev1.ContainerPort{ContainerPort: 10000})}
				},
			),
			want: Demand{CPUs: MinCPUs, MemMB: MinMemMB, HostPorts: []HostPort{{Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 10000, Protocol: corev1.ProtocolTCP}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			got, err := PodDemand(tc.pod, Options{Overhead: tc.overhead, PodNetwork: tc.network})
			if err != nil {
				t.Fatalf("PodDemand: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PodDemand (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.pod); diff != "" {
				t.Errorf("PodDemand modified the pod:\n%s", diff)
			}
		})
	}
}

func TestPodDemandErrors(t *testing.T) {
	tests := []struct {
		name            string
		pod             *corev1.Pod
		overhead        Overhead
		wantUnsupported []Unsupported
	}{
		{name: "nil pod"},
		{name: "negative overhead", pod: testPod(), overhead: Overhead{CPUs: -1}},
		{name: "NaN overhead", pod: testPod(), overhead: Overhead{MemMB: math.NaN()}},
		{name: "infinite overhead", pod: testPod(), overhead: Overhead{CPUs: math.Inf(1)}},
		{
			name: "unsupported fields",
			pod: testPod(func(p *corev1.Pod) {
				p.Spec.HostPID = true
				p.Spec.Containers[0].Resources.Limits = rl("example.com/fpga", "1")
			}),
			wantUnsupported: []Unsupported{
				{Field: "spec.containers[0].resources[example.com/fpga]", Reason: ReasonResourceName},
				{Field: "spec.hostPID", Reason: ReasonHostPID},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PodDemand(tc.pod, Options{Overhead: tc.overhead})
			if err == nil {
				t.Fatal("PodDemand succeeded, want an error")
			}
			if got := errors.Is(err, ErrUnsupported); got != (tc.wantUnsupported != nil) {
				t.Fatalf("errors.Is(%v, ErrUnsupported) = %v", err, got)
			}
			if tc.wantUnsupported == nil {
				return
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v is not an *UnsupportedError", err)
			}
			if diff := cmp.Diff(tc.wantUnsupported, ue.Fields); diff != "" {
				t.Errorf("unsupported fields (-want +got):\n%s", diff)
			}
			want := "pod ns/web-1: unsupported: spec.containers[0].resources[example.com/fpga]: " + ReasonResourceName + "; spec.hostPID: " + ReasonHostPID
			if err.Error() != want {
				t.Errorf("error text\n got %q\nwant %q", err.Error(), want)
			}
		})
	}
}

// TestPodRequestsSidecars covers the sidecar arithmetic of Kubernetes' PodRequests: sidecars run
// beside the init containers after them and beside the app containers.
func TestPodRequestsSidecars(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := func(c corev1.Container) corev1.Container { c.RestartPolicy = &always; return c }
	pod := testPod(
		containers(ctr("app", rl("cpu", "1"), nil)),
		func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{
				ctr("init1", rl("cpu", "1500m"), nil),
				sidecar(ctr("side1", rl("cpu", "500m"), nil)),
				ctr("init2", rl("cpu", "1800m"), nil), // runs beside side1: 2.3
				sidecar(ctr("side2", rl("cpu", "200m"), nil)),
			}
		},
	)
	got := podRequests(pod)
	// max(app 1 + sidecars 0.7 = 1.7, init1 1.5, init2+side1 2.3, side1+side2 0.7) = 2.3
	if diff := cmp.Diff(amounts{corev1.ResourceCPU: 2300}, got); diff != "" {
		t.Errorf("podRequests (-want +got):\n%s", diff)
	}
}

func TestResources(t *testing.T) {
	role := "kubemesos"
	alloc := func() *mesos.Resource_AllocationInfo { r := role; return &mesos.Resource_AllocationInfo{Role: &r} }
	scalar := func(name string, v float64, a *mesos.Resource_AllocationInfo) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}, AllocationInfo: a}
	}
	tests := []struct {
		name string
		d    Demand
		role string
		want mesos.Resources
	}{
		{name: "empty demand", d: Demand{}, role: role, want: nil},
		{
			name: "all dimensions with a role, zeros omitted, ports squashed",
			d: Demand{CPUs: 0.5, MemMB: 128, GPUs: 1, HostPorts: []HostPort{
				{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 80, Protocol: corev1.ProtocolUDP},
				{Port: 81, Protocol: corev1.ProtocolTCP}, {Port: 443, Protocol: corev1.ProtocolTCP},
			}},
			role: role,
			want: mesos.Resources{
				scalar("cpus", 0.5, alloc()),
				scalar("mem", 128, alloc()),
				scalar("gpus", 1, alloc()),
				{Name: "ports", Type: mesos.RANGES.Enum(), AllocationInfo: alloc(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 80, End: 81}, {Begin: 443, End: 443}}}},
			},
		},
		{
			name: "no role, no allocation info",
			d:    Demand{CPUs: 1, DiskMB: 10},
			want: mesos.Resources{scalar("cpus", 1, nil), scalar("disk", 10, nil)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Resources(tc.d, tc.role)); diff != "" {
				t.Errorf("Resources (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResourcesContainment: what a pod demands is contained in an offer to its role that has room, and
// not in one that lacks a port or cpu (the placement code's use).
func TestResourcesContainment(t *testing.T) {
	role := "kubemesos"
	offer := func(cpus float64, ports ...uint64) mesos.Resources {
		r := role
		a := &mesos.Resource_AllocationInfo{Role: &r}
		rs := mesos.Resources{
			{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: cpus}, AllocationInfo: a},
			{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4096}, AllocationInfo: a},
		}
		if len(ports) > 0 {
			rs = append(rs, mesos.Resource{Name: "ports", Type: mesos.RANGES.Enum(), AllocationInfo: a,
				Ranges: &mesos.Value_Ranges{Range: mesos.NewRanges(ports...)}})
		}
		return rs
	}
	pod := testPod(containers(ctr("a", rl("cpu", "1500m", "memory", "1Gi"), nil,
		corev1.ContainerPort{ContainerPort: 8080, HostPort: 8080})))
	d, err := PodDemand(pod, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Resources(d, role)
	tests := []struct {
		name  string
		offer mesos.Resources
		fits  bool
	}{
		{"room", offer(2, 8000, 8080, 8081), true},
		{"port taken", offer(2, 8000, 8081), false},
		{"too little cpu", offer(1, 8080), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mesosres.ContainsAll(tc.offer, want); got != tc.fits {
				t.Errorf("ContainsAll(%v, %v) = %v, want %v", tc.offer, want, got, tc.fits)
			}
		})
	}
}

func BenchmarkPodDemand(b *testing.B) {
	pod := testPod(
		containers(
			ctr("a", rl("cpu", "250m", "memory", "128Mi"), rl("memory", "256Mi"), corev1.ContainerPort{ContainerPort: 80, HostPort: 80}),
			ctr("b", rl("cpu", "100m", "memory", "64Mi", "ephemeral-storage", "1Gi"), nil),
		),
		func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{ctr("i", rl("cpu", "1"), nil)} },
	)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PodDemand(pod, Options{Overhead: Overhead{CPUs: 0.01}}); err != nil {
			b.Fatal(err)
		}
	}
}
