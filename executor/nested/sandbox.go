package nested

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/apierrors"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/poddns"
	"github.com/kubemesos/kubemesos/executor/podsandbox"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// The pod sandbox (design P, docs/design.md "The pod network"). Mesos gives a CNI network namespace
// only to a ROOT container, and a nested container that names no network joins its root container's
// networks (cni.cpp prepare: `infos[protobuf::getRootContainerId(containerId)]->containerNetworks`);
// network/cni does not apply to standalone containers at all. So a pod on a CNI pod network is held by
// the container of its own **sandbox executor** (ExecutorID kubemesos-pod-<pod UID>, `kubemesos
// pod-sandbox`, package sandboxexec), which the framework launches with the pod's network_infos beside
// the pod task; the kubelet executor finds that container in GET_CONTAINERS and nests the pod's
// containers one level under it (executor container -> container), each with its own resources,
// limits and cgroups (Mesos refuses them from the second level on, validation.cpp), as Mesos' default
// executor nests a task group under its own container. A hostNetwork pod, or every pod with
// --pod-network host, has its containers nested one level under the kubelet executor's own container.
//
// The pod's directory, where its volumes are materialized under volumes/ and the kubelet's resolv.conf,
// hosts and hostname files lie (mounted at /etc/ of every container), is the PARENT of its containers:
// their SANDBOX_PATH volumes (type PARENT) are relative to it. With a sandbox executor that is the
// executor's sandbox, <work_dir>/.../executors/kubemesos-pod-<uid>/runs/<container ID>, which the kubelet
// executor reaches on the host's filesystem as a sibling of its own sandbox and where the sandbox
// executor serves port-forward; on the host's network it is pods/<uid> in the kubelet executor's own
// sandbox. Nothing of a sandbox executor is stopped here: the framework kills its task once the pod
// task is over, the agent then destroys its container with anything still nested in it and network/cni
// releases the address.

// SandboxTimeout is how long RunPodSandbox waits by default for the sandbox executor's container
// (fetching the executor's binary included), as the kubelet's runtime request timeout (2 min).
const SandboxTimeout = 2 * time.Minute

// PodsDir, in the kubelet executor's sandbox, holds the directories of the pods on the host's network.
const PodsDir = "pods"

// Files of the pod's directory.
const (
	resolvConfFile = "resolv.conf"
	hostsFile      = "hosts"
	hostnameFile   = "hostname"
)

// DNS is the kubelet's DNS settings (--cluster-dns, --cluster-domain, --resolv-conf) and the node's
// hosts file that hostNetwork pods get.
type DNS struct {
	ClusterDNS    []string
	ClusterDomain string
	// ResolvConf is the host's resolver configuration ("" as the kubelet's empty --resolv-conf).
	ResolvConf string
	// HostsFile is the node's hosts file (default /etc/hosts).
	HostsFile string
}

// podSandbox is a pod's ready sandbox.
type podSandbox struct {
	// parent is the container the pod's containers are nested under.
	parent mesos.ContainerID
	// dir is the parent's sandbox directory on the host, prefix the pod's directory relative to it
	// (its files, volumes/): "" with a sandbox executor, pods/<uid> on the host's network.
	dir, prefix string
	// executor is the sandbox executor's ID ("" on the host's network).
	executor string
	podIP    string // "" on the host's network
	// ended is closed when the sandbox executor's container ended (never on the host's network), with
	// reason its Mesos reason.
	ended  chan struct{}
	reason mesos.TaskStatus_Reason
}

// filesDir is the pod's directory on the host.
func (sb *podSandbox) filesDir() string { return filepath.Join(sb.dir, sb.prefix) }

// sandboxWaitForLimit is how long a container SIGKILLed by the agent waits for its sandbox's end to
// learn whether the pod's memory limit did it.
const sandboxWaitForLimit = 2 * time.Second

// sandboxLimited makes a container that the agent (not the executor) SIGKILLed OOMKilled when its
// sandbox executor's container hit the pod's memory limit (its cgroup holds the pod's containers'):
// Mesos' cgroups/mem destroys it with REASON_CONTAINER_LIMITATION_MEMORY and its children without a
// reason. A container past its own limit gets the reason from its own WAIT_CONTAINER.
func (r *Runtime) sandboxLimited(ctx context.Context, h podworker.Handle, st podworker.ExitStatus) podworker.ExitStatus {
	if st.Reason != "" || st.Signal != int32(syscall.SIGKILL) {
		return st
	}
	r.mu.Lock()
	sb, ours := r.sandboxes[h.PodUID], r.sigkilled[h.ID]
	r.mu.Unlock()
	if sb == nil || ours || sb.executor == "" {
		return st
	}
	select {
	case <-sb.ended:
		if sb.reason == mesos.REASON_CONTAINER_LIMITATION_MEMORY {
			st.Reason = podtranslate.ReasonOOMKilled
		}
	case <-time.After(sandboxWaitForLimit):
	case <-ctx.Done():
	}
	return st
}

// watch waits for the sandbox executor container's end (retrying while the agent is unreachable).
func (r *Runtime) watch(sb *podSandbox) {
	defer close(sb.ended)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WaitRecovery)
	defer cancel()
	delay := r.cfg.RetryInitial
	for {
		w, err := WaitContainer(ctx, r.waiter, sb.parent)
		if err == nil {
			sb.reason = w.GetReason()
			return
		}
		if !retriable(err) {
			return
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(2*delay, r.cfg.RetryMax)
	}
}

// sandboxOf is the pod's ready sandbox, or nil.
func (r *Runtime) sandboxOf(uid types.UID) *podSandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sandboxes[uid]
}

// SandboxFor returns the sandbox directory of a pod's ready sandbox (its sandbox executor's, where it
// serves port-forward, or the kubelet executor's) and whether it has its own network.
func (r *Runtime) SandboxFor(uid types.UID) (dir string, ownNetwork bool, ok bool) {
	sb := r.sandboxOf(uid)
	if sb == nil {
		return "", false, false
	}
	return sb.dir, sb.executor != "", true
}

// PodParent is the container a pod's containers are nested under, once its sandbox is ready.
func (r *Runtime) PodParent(uid types.UID) (mesos.ContainerID, bool) {
	sb := r.sandboxOf(uid)
	if sb == nil {
		return mesos.ContainerID{}, false
	}
	return sb.parent, true
}

// SandboxExecutorContainer is the container of the pod's sandbox executor (false on the host's
// network): a pod task's TASK_RUNNING names it, so the agent adds its status (the pod IP).
func (r *Runtime) SandboxExecutorContainer(uid types.UID) (mesos.ContainerID, bool) {
	sb := r.sandboxOf(uid)
	if sb == nil || sb.executor == "" {
		return mesos.ContainerID{}, false
	}
	return sb.parent, true
}

// ContainerDir is the host directory (the Mesos sandbox, with its stdout and stderr) of a pod
// container's nested container id: <parent's sandbox>/containers/<id> (Mesos' getSandboxPath of a
// nested container). "" before the pod's sandbox is ready.
func (r *Runtime) ContainerDir(uid types.UID, id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := r.dirs[uid]
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "containers", id)
}

// DialPod connects to port on a pod's localhost (kubectl port-forward): through the sandbox
// executor into the pod's network namespace, or directly for a pod on the host's network.
func (r *Runtime) DialPod(ctx context.Context, uid types.UID, port int32) (net.Conn, error) {
	sb := r.sandboxOf(uid)
	switch {
	case sb == nil:
		return nil, fmt.Errorf("pod %s has no running sandbox", uid)
	case sb.executor != "":
		return podsandbox.Dial(ctx, sb.dir, port)
	}
	return podsandbox.DialLocalhost(int(port), r.parentValue())
}

func (r *Runtime) parentValue() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parent == nil {
		return ""
	}
	return r.parent.Value
}

// RunPodSandbox implements podworker.SandboxRuntime. With a sandbox executor it waits (for at most
// Config.SandboxTimeout) for that executor's container in GET_CONTAINERS and takes the pod IP from its
// status; on the host's network the kubelet executor's own container is the parent. Then it writes the
// pod's resolv.conf, hosts and hostname into the pod's directory.
func (r *Runtime) RunPodSandbox(ctx context.Context, pod *corev1.Pod, spec podworker.SandboxSpec) (podworker.Sandbox, error) {
	if rc := pod.Spec.RuntimeClassName; rc != nil && *rc != "" {
		// containerd's CRI answer for a handler it lacks; Mesos has no runtime handlers.
		return podworker.Sandbox{}, fmt.Errorf("failed to get sandbox runtime: no runtime for %q is configured (%s)", *rc, podtranslate.ReasonRuntimeClass)
	}
	hostname, domain, err := poddns.HostnameAndDomain(pod, r.cfg.DNS.ClusterDomain)
	if err != nil {
		return podworker.Sandbox{}, err
	}
	sb := &podSandbox{executor: spec.Executor, ended: make(chan struct{})}
	switch {
	case spec.Executor != "":
		c, err := r.awaitSandboxExecutor(ctx, spec)
		if err != nil {
			return podworker.Sandbox{}, err
		}
		sb.parent = mesos.ContainerID{Value: c.ContainerID.Value}
		sb.podIP = firstIP(c.GetContainerStatus())
		// Its sandbox is a sibling of ours: executors/<id>/runs/<container ID> (paths.cpp).
		sb.dir = filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(r.cfg.Sandbox))), spec.Executor, "runs", c.ContainerID.Value)
		if spec.Network != "" && sb.podIP == "" {
			return podworker.Sandbox{}, errors.New(podworker.MsgNoIPAddress)
		}
	case spec.Network != "":
		return podworker.Sandbox{}, fmt.Errorf("the pod task names the pod network %q but no sandbox executor (label %s)", spec.Network, podtranslate.LabelSandboxExecutor)
	default:
		r.mu.Lock()
		parent := r.parent
		r.mu.Unlock()
		if parent == nil {
			return podworker.Sandbox{}, errors.New("the executor's container is not known yet (no SUBSCRIBED)")
		}
		sb.parent, sb.dir, sb.prefix = *parent, r.cfg.Sandbox, path.Join(PodsDir, string(pod.UID))
		close(sb.ended)
	}
	if err := os.MkdirAll(sb.filesDir(), 0o755); err != nil {
		return podworker.Sandbox{}, fmt.Errorf("creating the pod's directory: %w", err)
	}
	if err := r.writeNetworkFiles(pod, sb, hostname, domain); err != nil {
		return podworker.Sandbox{}, err
	}
	r.mu.Lock()
	r.sandboxes[pod.UID] = sb
	r.dirs[pod.UID] = sb.dir
	r.parents[pod.UID] = sb.parent
	r.podDirs[pod.UID] = sb.filesDir()
	r.mu.Unlock()
	if sb.executor != "" {
		go r.watch(sb)
	}
	return podworker.Sandbox{PodIP: sb.podIP}, nil
}

// awaitSandboxExecutor polls GET_CONTAINERS until the sandbox executor's container (of this
// framework) is listed, with its address when it is on a network.
func (r *Runtime) awaitSandboxExecutor(ctx context.Context, spec podworker.SandboxSpec) (agent.Response_GetContainers_Container, error) {
	timeout := r.cfg.SandboxTimeout
	if timeout <= 0 {
		timeout = SandboxTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	call := agentcalls.GetContainers()
	var last error
	delay := 50 * time.Millisecond
	for {
		resp, err := r.sender.Send(ctx, agentcalls.NonStreaming(call))
		var out agent.Response
		if err == nil {
			err = resp.Decode(&out)
		}
		if resp != nil {
			resp.Close()
		}
		if err != nil {
			last = fmt.Errorf("listing the agent's containers: %w", err)
		}
		for _, c := range out.GetGetContainers().GetContainers() {
			if c.ExecutorID.Value != spec.Executor || (r.cfg.FrameworkID != "" && c.FrameworkID.Value != r.cfg.FrameworkID) {
				continue
			}
			if spec.Network == "" || firstIP(c.GetContainerStatus()) != "" {
				return c, nil
			}
			last = errors.New(podworker.MsgNoIPAddress)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				msg := fmt.Sprintf("the pod's sandbox executor %s did not start within %s", spec.Executor, timeout)
				if last != nil {
					msg += " (" + last.Error() + ")"
				}
				return agent.Response_GetContainers_Container{}, errors.New(msg)
			}
			return agent.Response_GetContainers_Container{}, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// firstIP is a container status's first address (network_infos[0].ip_addresses[0], as the pod IP).
func firstIP(cs *mesos.ContainerStatus) string {
	for _, ni := range cs.GetNetworkInfos() {
		for _, a := range ni.GetIPAddresses() {
			if ip := a.GetIPAddress(); ip != "" {
				return ip
			}
		}
	}
	return ""
}

// agentText is the agent's answer to a refused call: Mesos' own text.
func agentText(err error) error {
	var apiErr *apierrors.Error
	if errors.As(err, &apiErr) && apierrors.CodeMalformedRequest.Matches(apiErr) {
		return errors.New(strings.TrimSpace(strings.TrimPrefix(apiErr.Error(), apierrors.MsgMalformed+": ")))
	}
	return err
}

// writeNetworkFiles writes the kubelet's resolv.conf, hosts and hostname into the pod's directory.
func (r *Runtime) writeNetworkFiles(pod *corev1.Pod, sb *podSandbox, hostname, domain string) error {
	d := r.cfg.DNS
	cfg := poddns.Config{ClusterDNS: d.ClusterDNS, ClusterDomain: d.ClusterDomain}
	if d.ResolvConf != "" {
		b, err := os.ReadFile(d.ResolvConf)
		if err != nil {
			return fmt.Errorf("reading the resolver configuration: %w", err)
		}
		cfg.HostResolvConf = b
	}
	dc, events, err := poddns.PodDNS(pod, cfg)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if r.cfg.Event != nil && !ev.OnNode {
			r.cfg.Event(pod, corev1.EventTypeWarning, ev.Reason, ev.Message)
		}
	}
	hostNetwork := sb.executor == ""
	var nodeHosts []byte
	ips := []string{sb.podIP}
	if hostNetwork {
		hosts := d.HostsFile
		if hosts == "" {
			hosts = "/etc/hosts"
		}
		if nodeHosts, err = os.ReadFile(hosts); err != nil {
			return fmt.Errorf("reading the node's hosts file: %w", err)
		}
		ips = []string{r.cfg.Env.HostIP}
	}
	if err := os.WriteFile(filepath.Join(sb.filesDir(), resolvConfFile), poddns.ResolvConf(dc, cfg.HostResolvConf), 0o644); err != nil {
		return err
	}
	// containerd's /etc/hostname: the pod's hostname, the node's on the host network.
	if hostNetwork {
		if hostname, err = os.Hostname(); err != nil {
			return fmt.Errorf("reading the node's hostname: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(sb.filesDir(), hostnameFile), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(sb.filesDir(), hostsFile), poddns.Hosts(ips, hostname, domain, pod.Spec.HostAliases, hostNetwork, nodeHosts), 0o644)
}

// networkVolumes mounts the pod's resolv.conf, hosts and hostname (prefix: the pod's directory
// relative to the parent's sandbox) into a container that does not mount something there itself (the
// kubelet's rule for /etc/hosts, containerd's for the others).
func networkVolumes(c *corev1.Container, prefix string) []mesos.Volume {
	var out []mesos.Volume
	for _, f := range []struct{ name, at string }{{resolvConfFile, "/etc/resolv.conf"}, {hostsFile, "/etc/hosts"}, {hostnameFile, "/etc/hostname"}} {
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || filepath.Clean(m.MountPath) == f.at
		}
		if mounted {
			continue
		}
		out = append(out, mesos.Volume{
			ContainerPath: f.at,
			Mode:          mesos.RW.Enum(),
			Source: &mesos.Volume_Source{
				Type:        mesos.Volume_Source_SANDBOX_PATH,
				SandboxPath: &mesos.Volume_Source_SandboxPath{Type: mesos.Volume_Source_SandboxPath_PARENT, Path: path.Join(prefix, f.name)},
			},
		})
	}
	return out
}

// StopPodSandbox implements podworker.SandboxRuntime once the pod's containers are removed: the pod
// is no longer ready. A sandbox executor is the framework's to kill (it then takes its directory with
// it); on the host's network the pod's directory is removed by CleanupPod.
func (r *Runtime) StopPodSandbox(_ context.Context, pod *corev1.Pod) error {
	r.mu.Lock()
	delete(r.sandboxes, pod.UID)
	r.mu.Unlock()
	return nil
}
