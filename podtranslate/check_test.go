package podtranslate

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// typicalPod is what the API server makes of `kubectl create deployment`: the service account volume,
// probes, a security context, preferred anti-affinity, a ScheduleAnyway spread.
func typicalPod() *corev1.Pod {
	expiry := int64(3607)
	nonRoot := true
	return testPod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{
			{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &expiry}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{}},
			}}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
			{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
			{Name: "meta", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}}},
		}
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "64Mi", "ephemeral-storage", "1Gi"), Limits: rl("memory", "128Mi", "nvidia.com/gpu", "1")}
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/"}}}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: &nonRoot}
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 8080}, {ContainerPort: 9090}}
		p.Spec.InitContainers = []corev1.Container{ctr("migrate", nil, nil)}
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 1}},
		}}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{WhenUnsatisfiable: corev1.ScheduleAnyway}}
		p.Spec.OS = &corev1.PodOS{Name: corev1.Linux}
		p.Spec.Overhead = rl("cpu", "10m")
	})
}

func TestCheckSupported(t *testing.T) {
	if got := Check(typicalPod()); got != nil {
		t.Errorf("Check(typical pod) = %v, want nothing", got)
	}
	hostNet := typicalPod()
	hostNet.Spec.HostNetwork = true
	if got := Check(hostNet); got != nil {
		t.Errorf("Check(hostNetwork pod) = %v, want nothing", got)
	}
}

func TestCheckUnsupported(t *testing.T) {
	yes, no := true, false
	always := corev1.ContainerRestartPolicyAlways
	bidi := corev1.MountPropagationBidirectional
	unmasked := corev1.UnmaskedProcMount
	gvisor := "gvisor"
	vol := func(name string, vs corev1.VolumeSource) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: vs})
		}
	}
	tests := []struct {
		name string
		mut  func(*corev1.Pod)
		want []Unsupported
	}{
		{"persistent volume claim", vol("data", corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}),
			[]Unsupported{{"spec.volumes[5].persistentVolumeClaim", ReasonVolumeType}}},
		{"hostPath is a HOST_PATH volume", vol("h", corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp"}}), nil},
		{"generic ephemeral volume", vol("e", corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}),
			[]Unsupported{{"spec.volumes[5].ephemeral", ReasonVolumeType}}},
		{"csi", vol("c", corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d"}}),
			[]Unsupported{{"spec.volumes[5].csi", ReasonVolumeType}}},
		{"nfs", vol("n", corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{}}),
			[]Unsupported{{"spec.volumes[5].nfs", ReasonVolumeType}}},
		{"image volume", vol("i", corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "x"}}),
			[]Unsupported{{"spec.volumes[5].image", ReasonVolumeType}}},
		{"iscsi", vol("i", corev1.VolumeSource{ISCSI: &corev1.ISCSIVolumeSource{}}),
			[]Unsupported{{"spec.volumes[5].iscsi", ReasonVolumeType}}},
		{"fc", vol("f", corev1.VolumeSource{FC: &corev1.FCVolumeSource{}}),
			[]Unsupported{{"spec.volumes[5].fc", ReasonVolumeType}}},
		{"gitRepo", vol("g", corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{}}),
			[]Unsupported{{"spec.volumes[5].gitRepo", ReasonVolumeType}}},
		{"legacy cloud disk", vol("g", corev1.VolumeSource{GCEPersistentDisk: &corev1.GCEPersistentDiskVolumeSource{}}),
			[]Unsupported{{"spec.volumes[5].volumeSource", ReasonVolumeType}}},
		{"memory emptyDir", vol("m", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}), nil},
		{"hugepages emptyDir", vol("m", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}),
			[]Unsupported{{"spec.volumes[5].emptyDir.medium", ReasonEmptyDirMedium}}},
		{"hugepages-2Mi emptyDir", vol("m", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: "HugePages-2Mi"}}),
			[]Unsupported{{"spec.volumes[5].emptyDir.medium", ReasonEmptyDirMedium}}},
		{"cluster trust bundle projection", vol("p", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{}}, {ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{}}, {PodCertificate: &corev1.PodCertificateProjection{}},
		}}}), []Unsupported{
			{"spec.volumes[5].projected.sources[1]", ReasonProjectionSource},
			{"spec.volumes[5].projected.sources[2]", ReasonProjectionSource},
		}},
		{"sidecar (restartable init container) is honoured", func(p *corev1.Pod) { p.Spec.InitContainers[0].RestartPolicy = &always }, nil},
		{"restart rules", func(p *corev1.Pod) {
			p.Spec.Containers[0].RestartPolicyRules = []corev1.ContainerRestartRule{{Action: corev1.ContainerRestartRuleActionRestart}}
		}, []Unsupported{{"spec.containers[0].restartPolicyRules", ReasonRestartRules}}},
		{"extended resources, hugepages, each named once", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Resources = corev1.ResourceRequirements{
				Requests: rl("example.com/foo", "1", "hugepages-2Mi", "2Mi"),
				Limits:   rl("example.com/foo", "1", "hugepages-2Mi", "2Mi"),
			}
		}, []Unsupported{
			{"spec.initContainers[0].resources[example.com/foo]", ReasonResourceName},
			{"spec.initContainers[0].resources[hugepages-2Mi]", ReasonResourceName},
		}},
		{"resource claims", func(p *corev1.Pod) {
			p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu"}}
			p.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
		}, []Unsupported{
			{"spec.containers[0].resources.claims", ReasonResourceClaims},
			{"spec.resourceClaims", ReasonResourceClaims},
		}},
		{"hostPort differs from containerPort", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 80, HostPort: 8081})
		}, []Unsupported{{"spec.containers[0].ports[2].hostPort", ReasonHostPortMapping}}},
		{"volume devices", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "d", DevicePath: "/dev/x"}}
		}, []Unsupported{{"spec.containers[0].volumeDevices", ReasonVolumeDevices}}},
		{"bidirectional mount", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/a"}, {Name: "scratch", MountPath: "/b", MountPropagation: &bidi}}
		}, []Unsupported{{"spec.containers[0].volumeMounts[1].mountPropagation", ReasonMountPropagation}}},
		{"unmasked proc (privileged is the executor's)", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes, ProcMount: &unmasked}
		}, []Unsupported{
			{"spec.containers[0].securityContext.procMount", ReasonProcMount},
		}},
		{"security context the executor honours", func(p *corev1.Pod) {
			uid, gid := int64(1000), int64(1000)
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, FSGroup: &gid, SupplementalGroups: []int64{gid}}
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &no, RunAsUser: &uid,
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}}
			p.Spec.ShareProcessNamespace = &no
		}, nil},
		{"shared process namespace", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = &yes },
			[]Unsupported{{"spec.shareProcessNamespace", ReasonShareProcessNamespace}}},
		{"ephemeral containers are the executor's", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug"}}}
		}, nil},
		{"host namespaces", func(p *corev1.Pod) { p.Spec.HostIPC, p.Spec.HostPID, p.Spec.HostUsers = true, true, &no },
			[]Unsupported{{"spec.hostIPC", ReasonHostIPC}, {"spec.hostPID", ReasonHostPID}, {"spec.hostUsers", ReasonHostUsers}}},
		{"hostUsers true is fine", func(p *corev1.Pod) { p.Spec.HostUsers = &yes }, nil},
		{"safe sysctls: no Mesos field", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel/shm_rmid_forced", Value: "1"}}}
		}, []Unsupported{{"spec.securityContext.sysctls", ReasonSysctls}}},
		{"an unsafe sysctl: placed, the executor rejects it as a kubelet", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "net.core.somaxconn", Value: "1024"}}}
		}, nil},
		{"runtime class: placed, its sandbox fails", func(p *corev1.Pod) { p.Spec.RuntimeClassName = &gvisor }, nil},
		{"windows: placed, the executor's admission rejects it", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }, nil},
		{"pod-level hugepages and odd overhead", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: rl("hugepages-1Gi", "1Gi")}
			p.Spec.Overhead = rl("cpu", "1", "example.com/x", "1")
		}, []Unsupported{
			{"spec.resources[hugepages-1Gi]", ReasonResourceName},
			{"spec.overhead[example.com/x]", ReasonResourceName},
		}},
		{"required pod affinity and anti-affinity are placement rules", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{
				PodAffinity:     &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "x"}}},
				PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "x"}}},
			}
		}, nil},
		{"hard topology spread is a placement rule", func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, corev1.TopologySpreadConstraint{WhenUnsatisfiable: corev1.DoNotSchedule})
		}, nil},
		{"scheduling group", func(p *corev1.Pod) { p.Spec.SchedulingGroup = &corev1.PodSchedulingGroup{} },
			[]Unsupported{{"spec.schedulingGroup", ReasonSchedulingGroup}}},
		{"eviction responders", func(p *corev1.Pod) { p.Spec.EvictionResponders = []corev1.EvictionResponder{{Name: "acme.io/r"}} },
			[]Unsupported{{"spec.evictionResponders", ReasonEvictionResponder}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := typicalPod()
			tc.mut(pod)
			if diff := cmp.Diff(tc.want, Check(pod)); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

// A hostPort other than its containerPort needs a port mapping, which only a pod in its own network
// namespace (a CNI pod network, not hostNetwork) gets.
func TestCheckHostPortMappingByNetwork(t *testing.T) {
	mapped := func(hostNetwork bool) *corev1.Pod {
		p := typicalPod()
		p.Spec.HostNetwork = hostNetwork
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80}}
		return p
	}
	refused := []Unsupported{{"spec.containers[0].ports[0].hostPort", ReasonHostPortMapping}}
	tests := []struct {
		name        string
		o           Options
		hostNetwork bool
		want        []Unsupported
	}{
		{"host mode (zero options)", Options{}, false, refused},
		{"host mode (named)", Options{PodNetwork: PodNetworkHost}, false, refused},
		{"pod network", Options{PodNetwork: "kubemesos"}, false, nil},
		{"pod network, hostNetwork pod", Options{PodNetwork: "kubemesos"}, true, refused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.o.Check(mapped(tc.hostNetwork))); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}
