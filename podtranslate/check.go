package podtranslate

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Fixed reasons for fields kubemesos cannot honour. They are stable strings: tests, Events and users
// match on them.
const (
	ReasonVolumeType        = "volume type not supported (only emptyDir, configMap, secret, downwardAPI, projected, hostPath)"
	ReasonProjectionSource  = "projected volume source not supported (only configMap, secret, downwardAPI, serviceAccountToken)"
	ReasonEmptyDirMedium    = "emptyDir medium not supported (only the default and Memory; no hugepages mounts in nested containers)"
	ReasonHostIPC           = "hostIPC not supported"
	ReasonHostPID           = "hostPID not supported"
	ReasonHostUsers         = "user namespaces (hostUsers: false) not supported"
	ReasonResourceClaims    = "dynamic resource allocation (resource claims) not supported"
	ReasonResourceName      = "resource has no Mesos equivalent (only cpu, memory, ephemeral-storage, nvidia.com/gpu)"
	ReasonRestartRules      = "container restart rules not supported"
	ReasonOS                = "only Linux pods are supported"
	ReasonRuntimeClass      = "runtimeClassName not supported: the Mesos agent chooses the containerizer"
	ReasonProcMount         = "procMount Unmasked not supported"
	ReasonSysctls           = "sysctls not supported"
	ReasonHostPortMapping   = "hostPort must equal containerPort: containers share the agent's network, there is no port mapping"
	ReasonVolumeDevices     = "raw block volume devices not supported"
	ReasonMountPropagation  = "bidirectional mount propagation not supported"
	ReasonSchedulingGroup   = "scheduling groups (gang scheduling) not supported"
	ReasonEvictionResponder = "eviction responders not supported"
)

// A nested container can only share its parent's pid namespace (LinuxInfo.share_pid_namespace),
// and the parent of every pod's containers is the one executor of the agent: the pods that share
// would see and, as the same user, signal each other's and the executor's processes, where
// Kubernetes scopes the namespace to the pod (with its pause process as pid 1).
const ReasonShareProcessNamespace = "shareProcessNamespace not supported: nested containers can only share the pid namespace of their parent, the executor that hosts every pod of the agent"

// Unsupported names one pod field kubemesos cannot honour and why. Field is a JSON path such as
// `spec.volumes[1].persistentVolumeClaim`; Reason is one of the Reason* constants.
type Unsupported struct {
	Field  string
	Reason string
}

func (u Unsupported) String() string { return u.Field + ": " + u.Reason }

// ErrUnsupported is what an *UnsupportedError matches with errors.Is.
var ErrUnsupported = errors.New("pod uses fields kubemesos cannot honour")

// UnsupportedError lists every unsupported field of a pod.
type UnsupportedError struct {
	Fields []Unsupported
}

func (e *UnsupportedError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, u := range e.Fields {
		parts[i] = u.String()
	}
	return "unsupported: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Check returns every field of pod that kubemesos cannot honour in host mode, in spec order, or nil.
func Check(pod *corev1.Pod) []Unsupported { return Options{}.Check(pod) }

// Check returns every field of pod that kubemesos cannot honour with these options, in spec order, or
// nil.
func (o Options) Check(pod *corev1.Pod) []Unsupported {
	var out []Unsupported
	add := func(reason, format string, args ...any) {
		out = append(out, Unsupported{Field: fmt.Sprintf(format, args...), Reason: reason})
	}
	s := &pod.Spec
	// A pod in its own network namespace gets its hostPorts as NetworkInfo.port_mappings, which map
	// any host port to its container port.
	mapping := !o.sharesAgentNetwork(pod)

	for i := range s.Volumes {
		checkVolume(&s.Volumes[i], fmt.Sprintf("spec.volumes[%d]", i), add)
	}
	for i := range s.InitContainers {
		c := &s.InitContainers[i]
		// Restartable init containers (sidecars) are the executor's pod worker's, as in the kubelet.
		checkContainer(c, fmt.Sprintf("spec.initContainers[%d]", i), mapping, add)
	}
	for i := range s.Containers {
		checkContainer(&s.Containers[i], fmt.Sprintf("spec.containers[%d]", i), mapping, add)
	}
	// Ephemeral containers (spec.ephemeralContainers, added to a running pod) are the executor's: it
	// starts them as nested containers of the pod, as the kubelet starts them in the pod's sandbox.
	if s.HostIPC {
		add(ReasonHostIPC, "spec.hostIPC")
	}
	if s.HostPID {
		add(ReasonHostPID, "spec.hostPID")
	}
	if s.ShareProcessNamespace != nil && *s.ShareProcessNamespace {
		add(ReasonShareProcessNamespace, "spec.shareProcessNamespace")
	}
	if s.HostUsers != nil && !*s.HostUsers {
		add(ReasonHostUsers, "spec.hostUsers")
	}
	// Safe sysctls cannot be set (Mesos has no field for them); a pod with an unsafe one is placed and
	// rejected by the executor as a kubelet rejects it (ForbiddenSysctl).
	if s.SecurityContext != nil && len(s.SecurityContext.Sysctls) > 0 && ForbiddenSysctl(pod) == "" {
		add(ReasonSysctls, "spec.securityContext.sysctls")
	}
	// runtimeClassName is not refused here: as on a node whose container runtime lacks the handler,
	// the pod is placed and its sandbox fails (the executor's ReasonRuntimeClass), and the
	// RuntimeClass' overhead and scheduling constraints are in the pod's spec by then (admission).
	// spec.os is not refused here either: kube-scheduler places such a pod (the OS is matched only
	// through nodeSelectors), and the kubelet's admission rejects it (the executor's
	// PodOSNotSupported, AdmitOS).
	if len(s.ResourceClaims) > 0 {
		add(ReasonResourceClaims, "spec.resourceClaims")
	}
	if s.Resources != nil {
		checkResourceNames(s.Resources, "spec.resources", add)
	}
	for _, name := range sortedNames(s.Overhead) {
		if !knownResource(name) {
			add(ReasonResourceName, "spec.overhead[%s]", name)
		}
	}
	// Pod affinity, anti-affinity and topology spread constraints of both kinds are placement rules
	// (offerbridge/rules.go).
	if s.SchedulingGroup != nil {
		add(ReasonSchedulingGroup, "spec.schedulingGroup")
	}
	if len(s.EvictionResponders) > 0 {
		add(ReasonEvictionResponder, "spec.evictionResponders")
	}
	return out
}

func checkVolume(v *corev1.Volume, path string, add func(reason, format string, args ...any)) {
	vs := &v.VolumeSource
	switch {
	case vs.EmptyDir != nil:
		// Memory: a tmpfs the executor's helper container mounts for the agent's mount namespace
		// (executor/nested/tmpfs.go); hugepages have no such way.
		if m := vs.EmptyDir.Medium; m != corev1.StorageMediumDefault && m != corev1.StorageMediumMemory {
			add(ReasonEmptyDirMedium, "%s.emptyDir.medium", path)
		}
	// hostPath is a Mesos HOST_PATH volume (the agent's volume/host_path isolator).
	case vs.ConfigMap != nil, vs.Secret != nil, vs.DownwardAPI != nil, vs.HostPath != nil:
	case vs.Projected != nil:
		for j, src := range vs.Projected.Sources {
			if src.ClusterTrustBundle != nil || src.PodCertificate != nil {
				add(ReasonProjectionSource, "%s.projected.sources[%d]", path, j)
			}
		}
	default:
		add(ReasonVolumeType, "%s.%s", path, volumeType(vs))
	}
}

// volumeType names the set member of a VolumeSource for messages ("persistentVolumeClaim").
func volumeType(vs *corev1.VolumeSource) string {
	switch {
	case vs.HostPath != nil:
		return "hostPath"
	case vs.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim"
	case vs.Ephemeral != nil:
		return "ephemeral"
	case vs.CSI != nil:
		return "csi"
	case vs.NFS != nil:
		return "nfs"
	case vs.Image != nil:
		return "image"
	case vs.ISCSI != nil:
		return "iscsi"
	case vs.FC != nil:
		return "fc"
	case vs.GitRepo != nil:
		return "gitRepo"
	}
	// Legacy in-tree cloud and cluster file systems: none has a Mesos nested-container equivalent.
	return "volumeSource"
}

func checkContainer(c *corev1.Container, path string, portMapping bool, add func(reason, format string, args ...any)) {
	if len(c.RestartPolicyRules) > 0 {
		add(ReasonRestartRules, "%s.restartPolicyRules", path)
	}
	checkResourceNames(&c.Resources, path+".resources", add)
	if len(c.Resources.Claims) > 0 {
		add(ReasonResourceClaims, "%s.resources.claims", path)
	}
	for j, p := range c.Ports {
		if p.HostPort != 0 && p.HostPort != p.ContainerPort && !portMapping {
			add(ReasonHostPortMapping, "%s.ports[%d].hostPort", path, j)
		}
	}
	if len(c.VolumeDevices) > 0 {
		add(ReasonVolumeDevices, "%s.volumeDevices", path)
	}
	for j, m := range c.VolumeMounts {
		if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
			add(ReasonMountPropagation, "%s.volumeMounts[%d].mountPropagation", path, j)
		}
	}
	// privileged, capabilities, runAsUser, runAsGroup are the executor's (nested.LinuxInfo, RunAs): the
	// agent may refuse capabilities outside its --bounding_capabilities, and whether the groups Mesos
	// gives (the agent host user's) match runAsGroup, supplementalGroups and fsGroup is known only on
	// the agent host, so those refusals are the container's CreateContainer(Config)Error, not here.
	if sc := c.SecurityContext; sc != nil {
		if sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
			add(ReasonProcMount, "%s.securityContext.procMount", path)
		}
	}
}

func checkResourceNames(r *corev1.ResourceRequirements, path string, add func(reason, format string, args ...any)) {
	seen := map[corev1.ResourceName]bool{}
	for _, list := range []corev1.ResourceList{r.Requests, r.Limits} {
		for _, name := range sortedNames(list) {
			if knownResource(name) || seen[name] {
				continue
			}
			seen[name] = true
			add(ReasonResourceName, "%s[%s]", path, name)
		}
	}
}

// ResourceGPU is the extended resource mapped onto Mesos' gpus.
const ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

func knownResource(name corev1.ResourceName) bool {
	switch name {
	case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage, ResourceGPU:
		return true
	}
	return false
}
