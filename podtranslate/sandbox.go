package podtranslate

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// A pod on a CNI pod network is two Mesos tasks (docs/design.md, "One pod, two tasks"): Mesos gives a
// CNI network namespace only to a root container, and nested containers that name no network join
// their ROOT container's networks. So the pod's network namespace is the container of a per-pod
// sandbox executor, launched with the pod's network_infos, and the pod's containers are nested under
// it by the per-agent kubelet executor, which runs the pod task.
const (
	// SandboxTaskIDPrefix starts the TaskID of a pod's sandbox task: sandbox-<uid>.
	SandboxTaskIDPrefix = "sandbox-"
	// SandboxExecutorIDPrefix starts the ExecutorID of a pod's sandbox executor: kubemesos-pod-<uid>.
	SandboxExecutorIDPrefix = "kubemesos-pod-"
	// LabelRole on the sandbox task is RoleSandbox.
	LabelRole   = "kubemesos.io/role"
	RoleSandbox = "sandbox"
	// LabelSandboxExecutor on a pod task names the sandbox executor whose container the kubelet
	// executor nests the pod's containers under.
	LabelSandboxExecutor = "kubemesos.io/sandbox-executor"
	// SandboxCommand runs the sandbox executor from the fetched kubemesos binary.
	SandboxCommand = "./kubemesos pod-sandbox"
)

// SandboxExecutorDemand is what the sandbox executor's own process gets (ExecutorInfo.resources).
// PodTaskDemand is the pod task's token share on a pod network: the pod's resources are the sandbox
// task's (the pod's containers' cgroups nest under the sandbox executor's container), but Mesos
// refuses a task without resources ("Task uses no resources").
var (
	SandboxExecutorDemand = Demand{CPUs: 0.01, MemMB: 32}
	PodTaskDemand         = Demand{CPUs: MinCPUs}
)

// Sandboxed reports whether the pod runs as two tasks: a sandbox task on its own executor holding the
// pod's network and resources, and a pod task on the kubelet executor.
func (o Options) Sandboxed(pod *corev1.Pod) bool { return o.NetworkOf(pod) != "" }

// SandboxTaskID is the TaskID of the pod's sandbox task: sandbox-<uid>.
func SandboxTaskID(pod *corev1.Pod) mesos.TaskID {
	return mesos.TaskID{Value: SandboxTaskIDPrefix + string(pod.UID)}
}

// SandboxExecutorID is the ExecutorID of the pod's sandbox executor: kubemesos-pod-<uid>.
func SandboxExecutorID(uid types.UID) mesos.ExecutorID {
	return mesos.ExecutorID{Value: SandboxExecutorIDPrefix + string(uid)}
}

// SandboxPodUID recovers the pod UID from a sandbox TaskID.
func SandboxPodUID(id mesos.TaskID) (types.UID, error) {
	uid, ok := strings.CutPrefix(id.Value, SandboxTaskIDPrefix)
	if !ok || uid == "" {
		return "", fmt.Errorf("task %q is not a kubemesos sandbox task", id.Value)
	}
	return types.UID(uid), nil
}

// SandboxExecutorOf reads LabelSandboxExecutor from a pod task's labels: "" when the pod has no
// sandbox executor.
func SandboxExecutorOf(l *mesos.Labels) string {
	for _, lb := range l.GetLabels() {
		if lb.Key == LabelSandboxExecutor {
			return lb.GetValue()
		}
	}
	return ""
}

// hostnameMaxLen is the kubelet's limit on a pod's hostname.
const hostnameMaxLen = 63

// PodHostname is the pod's hostname as the kubelet computes it (GeneratePodHostNameAndDomain):
// hostnameOverride ("If HostnameOverride is set, use it directly as the hostname"), else
// spec.hostname, else the pod's name, cut to 63 characters without a trailing '-' or '.'. It must
// agree with the executor's /etc/hosts line for the pod (executor/poddns), or glibc's hostname -f
// cannot resolve the kernel's hostname.
func PodHostname(pod *corev1.Pod) string {
	h := pod.Name
	switch {
	case pod.Spec.HostnameOverride != nil && *pod.Spec.HostnameOverride != "":
		h = *pod.Spec.HostnameOverride
	case pod.Spec.Hostname != "":
		h = pod.Spec.Hostname
	}
	if len(h) > hostnameMaxLen {
		h = strings.TrimRight(h[:hostnameMaxLen], "-.")
	}
	return h
}

// PortMappings are the pod's hostPorts as CNI port mappings, sorted by host port, container port and
// protocol ("tcp" or "udp", as Mesos' NetworkInfo.PortMapping spells them), without duplicates.
func PortMappings(pod *corev1.Pod) []mesos.NetworkInfo_PortMapping {
	type key struct {
		host, ctr uint32
		proto     string
	}
	seen := map[key]bool{}
	var out []mesos.NetworkInfo_PortMapping
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, p := range cs[i].Ports {
				if p.HostPort <= 0 || p.ContainerPort <= 0 {
					continue
				}
				proto := strings.ToLower(string(p.Protocol))
				if proto == "" {
					proto = "tcp"
				}
				k := key{uint32(p.HostPort), uint32(p.ContainerPort), proto}
				if seen[k] {
					continue
				}
				seen[k] = true
				out = append(out, mesos.NetworkInfo_PortMapping{HostPort: k.host, ContainerPort: k.ctr, Protocol: &k.proto})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.HostPort != b.HostPort {
			return a.HostPort < b.HostPort
		}
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort < b.ContainerPort
		}
		return *a.Protocol < *b.Protocol
	})
	return out
}

// SandboxExecutorInfo builds the pod's sandbox executor from the kubelet executor's ExecutorInfo
// (same URIs, fetch settings and environment, so the same binary runs as `kubemesos pod-sandbox`):
// CUSTOM, ExecutorID kubemesos-pod-<uid>, name "kubemesos pod sandbox <ns>/<name>", resources res
// (SandboxExecutorDemand, carved by the placement code), and a MESOS container on the pod's network
// with its hostPorts as port mappings and the pod's hostname. Nothing given is modified.
func (o Options) SandboxExecutorInfo(pod *corev1.Pod, kubelet mesos.ExecutorInfo, res mesos.Resources) (mesos.ExecutorInfo, error) {
	if err := checkPod(pod); err != nil {
		return mesos.ExecutorInfo{}, err
	}
	network := o.NetworkOf(pod)
	if network == "" {
		return mesos.ExecutorInfo{}, fmt.Errorf("pod %s/%s: no sandbox on the agent's network", pod.Namespace, pod.Name)
	}
	if kubelet.Command == nil {
		return mesos.ExecutorInfo{}, fmt.Errorf("pod %s/%s: executor without command", pod.Namespace, pod.Name)
	}
	if len(res) == 0 {
		return mesos.ExecutorInfo{}, fmt.Errorf("pod %s/%s: no resources for the sandbox executor", pod.Namespace, pod.Name)
	}
	cmd := proto.Clone(kubelet.Command).(*mesos.CommandInfo)
	shell, value := true, SandboxCommand
	cmd.Shell, cmd.Value, cmd.Arguments = &shell, &value, nil
	name := "kubemesos pod sandbox " + RefOf(pod).String()
	hostname := PodHostname(pod)
	info := mesos.ExecutorInfo{
		Type:       mesos.ExecutorInfo_CUSTOM,
		ExecutorID: SandboxExecutorID(pod.UID),
		Name:       &name,
		Command:    cmd,
		Resources:  res.Clone(),
		Container: &mesos.ContainerInfo{
			Type: mesos.ContainerInfo_MESOS.Enum(),
			NetworkInfos: []mesos.NetworkInfo{{
				Name:         &network,
				PortMappings: PortMappings(pod),
			}},
			Hostname: &hostname,
		},
	}
	if g := kubelet.ShutdownGracePeriod; g != nil {
		info.ShutdownGracePeriod = &mesos.DurationInfo{Nanoseconds: g.Nanoseconds}
	}
	return info, nil
}

// SandboxTaskInfo builds the pod's sandbox task on its sandbox executor: TaskID sandbox-<uid>, name
// "<ns>/<name> sandbox", labels namespace, name, uid and role=sandbox, and res: the pod's own resources
// (its demand, host ports included), carved by the placement code, with the pod's TaskLimits. It has no
// data and no kill policy: the sandbox ends as soon as it is killed.
func (o Options) SandboxTaskInfo(pod *corev1.Pod, agentID mesos.AgentID, sandbox mesos.ExecutorInfo, res mesos.Resources) (mesos.TaskInfo, error) {
	if err := checkPod(pod); err != nil {
		return mesos.TaskInfo{}, err
	}
	if agentID.Value == "" {
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: empty agent ID", pod.Namespace, pod.Name)
	}
	if len(res) == 0 {
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: no resources", pod.Namespace, pod.Name)
	}
	if sandbox.ExecutorID != SandboxExecutorID(pod.UID) {
		return mesos.TaskInfo{}, fmt.Errorf("pod %s/%s: sandbox executor %q is not the pod's", pod.Namespace, pod.Name, sandbox.ExecutorID.Value)
	}
	ref := RefOf(pod)
	return mesos.TaskInfo{
		Name:      ref.String() + " sandbox",
		TaskID:    SandboxTaskID(pod),
		AgentID:   mesos.AgentID{Value: agentID.Value},
		Resources: res.Clone(),
		Limits:    o.TaskLimits(pod, res),
		Executor:  proto.Clone(&sandbox).(*mesos.ExecutorInfo),
		Labels: &mesos.Labels{Labels: []mesos.Label{
			label(LabelNamespace, ref.Namespace),
			label(LabelName, ref.Name),
			label(LabelUID, string(ref.UID)),
			label(LabelRole, RoleSandbox),
		}},
	}, nil
}

func checkPod(pod *corev1.Pod) error {
	if pod == nil {
		return errors.New("nil pod")
	}
	if pod.Namespace == "" || pod.Name == "" || pod.UID == "" {
		return fmt.Errorf("pod %s/%s: namespace, name and uid are required", pod.Namespace, pod.Name)
	}
	return nil
}
