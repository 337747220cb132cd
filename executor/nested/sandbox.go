package nested

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
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

// The pod sandbox. Every pod runs as a tree of nested containers, as a CRI runtime runs it in a
// sandbox: the executor's container → the pod's sandbox container (`<executor binary> pod-sandbox`,
// a pause process) → the pod's containers (and their exec sessions). Only the sandbox names the pod
// network (ContainerInfo.network_infos with the hostPorts as port_mappings, and the pod's hostname):
// Mesos' network/cni gives it its own network and UTS namespaces, and its children, which name no
// network, share them and report its IP. Without a pod network the sandbox is on the host's.
//
// The sandbox's directory (<executor sandbox>/containers/<sandbox ID>) is the PARENT of the pod's
// containers' SANDBOX_PATH volumes: the pod's volumes are materialized under its volumes/, and the
// kubelet's resolv.conf and hosts files next to them, mounted read-write at /etc/resolv.conf and
// /etc/hosts of every container (as the kubelet and containerd mount theirs). Killing the sandbox
// after its children makes the agent detach it from the network (CNI DEL); removing it deletes the
// directory.

// SandboxSuffix ends the sandbox container's ID: <pod UID>.sandbox (the pod's containers are
// <pod UID>-<name>-<attempt>, so they never collide).
const SandboxSuffix = ".sandbox"

// SandboxID is the container ID value of a pod's sandbox.
func SandboxID(uid types.UID) string { return string(uid) + SandboxSuffix }

// SandboxDir is the host directory of a pod's sandbox container.
func SandboxDir(executorSandbox string, uid types.UID) string {
	return filepath.Join(executorSandbox, "containers", SandboxID(uid))
}

// ContainerDir is the host directory (the Mesos sandbox, with its stdout and stderr) of a pod
// container's nested container id.
func ContainerDir(executorSandbox string, uid types.UID, id string) string {
	return filepath.Join(SandboxDir(executorSandbox, uid), "containers", id)
}

// Files of the sandbox directory.
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

// podSandbox is a started sandbox.
type podSandbox struct {
	id    mesos.ContainerID
	dir   string
	podIP string // "" on the host's network
	// ended is closed when the sandbox container ended, with reason its Mesos reason.
	ended  chan struct{}
	reason mesos.TaskStatus_Reason
}

// sandboxWaitForLimit is how long a container SIGKILLed by the agent waits for its sandbox's end to
// learn whether the pod's memory limit did it.
const sandboxWaitForLimit = 2 * time.Second

// sandboxLimited makes a container that the agent (not the executor) SIGKILLed OOMKilled when its
// sandbox hit the pod's memory limit: the cgroups are the sandbox's, so Mesos' cgroups/mem destroys
// the sandbox with REASON_CONTAINER_LIMITATION_MEMORY and its children without a reason.
func (r *Runtime) sandboxLimited(ctx context.Context, h podworker.Handle, st podworker.ExitStatus) podworker.ExitStatus {
	if st.Reason != "" || st.Signal != int32(syscall.SIGKILL) {
		return st
	}
	r.mu.Lock()
	sb, ours := r.sandboxes[h.PodUID], r.sigkilled[h.ID]
	r.mu.Unlock()
	if sb == nil || ours {
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

// watch waits for the sandbox's end (retrying while the agent is unreachable).
func (r *Runtime) watch(sb *podSandbox) {
	defer close(sb.ended)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WaitRecovery)
	defer cancel()
	delay := r.cfg.RetryInitial
	for {
		w, err := WaitContainer(ctx, r.waiter, sb.id)
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

// SandboxFor returns the directory of a pod's running sandbox and whether it has its own network.
func (r *Runtime) SandboxFor(uid types.UID) (dir string, ownNetwork bool, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb := r.sandboxes[uid]
	if sb == nil {
		return "", false, false
	}
	return sb.dir, sb.podIP != "", true
}

// DialPod connects to port on a pod's localhost (kubectl port-forward): through the sandbox process
// into the pod's network namespace, or directly for a pod on the host's network.
func (r *Runtime) DialPod(ctx context.Context, uid types.UID, port int32) (net.Conn, error) {
	dir, own, ok := r.SandboxFor(uid)
	switch {
	case !ok:
		return nil, fmt.Errorf("pod %s has no running sandbox", uid)
	case own:
		return podsandbox.Dial(ctx, dir, port)
	}
	return podsandbox.DialLocalhost(int(port), SandboxID(uid))
}

// PortMappings are the pod's hostPorts as Mesos port mappings (protocol in lower case; hostIP has
// no Mesos field).
func PortMappings(pod *corev1.Pod) []mesos.NetworkInfo_PortMapping {
	var out []mesos.NetworkInfo_PortMapping
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				proto := strings.ToLower(string(p.Protocol))
				if proto == "" {
					proto = "tcp"
				}
				out = append(out, mesos.NetworkInfo_PortMapping{HostPort: uint32(p.HostPort), ContainerPort: uint32(p.ContainerPort), Protocol: &proto})
			}
		}
	}
	return out
}

// SandboxContainerInfo is the sandbox's ContainerInfo: its own cgroups (the pod's), and on a pod
// network its network_infos and hostname.
func SandboxContainerInfo(pod *corev1.Pod, network, hostname string) *mesos.ContainerInfo {
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: SandboxLinuxInfo()}
	if network != "" {
		name := network
		ci.NetworkInfos = []mesos.NetworkInfo{{Name: &name, PortMappings: PortMappings(pod)}}
		ci.Hostname = &hostname
	}
	return ci
}

// RunPodSandbox implements podworker.SandboxRuntime: it launches the sandbox container, reads its IP
// on a pod network (GET_CONTAINERS), and writes the pod's resolv.conf and hosts. A launch the agent
// refuses is an error with Mesos' text (an unknown network, a failed CNI ADD); nothing is left then.
func (r *Runtime) RunPodSandbox(ctx context.Context, pod *corev1.Pod, network string) (podworker.Sandbox, error) {
	if len(r.cfg.SandboxCommand) == 0 {
		return podworker.Sandbox{}, errors.New("no pod sandbox command configured")
	}
	id, err := r.podParent(pod.UID)
	if err != nil {
		return podworker.Sandbox{}, err
	}
	hostname, domain, err := poddns.HostnameAndDomain(pod, r.cfg.DNS.ClusterDomain)
	if err != nil {
		return podworker.Sandbox{}, err
	}
	shell := false
	argv := append([]string{}, r.cfg.SandboxCommand...)
	cmd := &mesos.CommandInfo{Shell: &shell, Value: &argv[0], Arguments: argv}
	call := agentcalls.LaunchContainer(id, cmd, SandboxContainerInfo(pod, network, hostname), nil)
	call.LaunchContainer.Resources, call.LaunchContainer.Limits = PodResources(pod)
	if err := r.call(ctx, call); err != nil {
		return podworker.Sandbox{}, agentText(err)
	}
	sb := &podSandbox{id: id, dir: SandboxDir(r.cfg.Sandbox, pod.UID), ended: make(chan struct{})}
	fail := func(err error) (podworker.Sandbox, error) {
		r.destroy(id)
		return podworker.Sandbox{}, err
	}
	if network != "" {
		if sb.podIP, err = r.sandboxIP(ctx, id); err != nil {
			return fail(err)
		}
	}
	if err := r.writeNetworkFiles(pod, sb, hostname, domain); err != nil {
		return fail(err)
	}
	r.mu.Lock()
	r.sandboxes[pod.UID] = sb
	r.mu.Unlock()
	go r.watch(sb)
	return podworker.Sandbox{PodIP: sb.podIP}, nil
}

// agentText is the agent's answer to a refused call: Mesos' own text.
func agentText(err error) error {
	var apiErr *apierrors.Error
	if errors.As(err, &apiErr) && apierrors.CodeMalformedRequest.Matches(apiErr) {
		return errors.New(strings.TrimSpace(strings.TrimPrefix(apiErr.Error(), apierrors.MsgMalformed+": ")))
	}
	return err
}

// sandboxIP reads the sandbox's first IP from GET_CONTAINERS (show_nested).
func (r *Runtime) sandboxIP(ctx context.Context, id mesos.ContainerID) (string, error) {
	yes := true
	call := agentcalls.GetContainers()
	call.GetContainers = &agent.Call_GetContainers{ShowNested: &yes}
	// The agent reports the address once its launch (CNI ADD included) is over, which LAUNCH_CONTAINER
	// awaited; a short retry covers an agent that answers before its status caught up.
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		resp, err := r.sender.Send(ctx, agentcalls.NonStreaming(call))
		if err != nil {
			if resp != nil {
				resp.Close()
			}
			last = err
			continue
		}
		var out agent.Response
		err = resp.Decode(&out)
		resp.Close()
		if err != nil {
			last = fmt.Errorf("decoding GET_CONTAINERS: %w", err)
			continue
		}
		for _, c := range out.GetGetContainers().GetContainers() {
			// Mesos names a nested container by its own value; its parents are in the status.
			if !sameContainer(c.GetContainerStatus().GetContainerID(), &id) && !sameContainer(&c.ContainerID, &id) {
				continue
			}
			for _, ni := range c.GetContainerStatus().GetNetworkInfos() {
				for _, a := range ni.GetIPAddresses() {
					if ip := a.GetIPAddress(); ip != "" {
						return ip, nil
					}
				}
			}
		}
		last = errors.New(podworker.MsgNoIPAddress)
	}
	return "", last
}

func sameContainer(a, b *mesos.ContainerID) bool {
	for a != nil && b != nil {
		if a.Value != b.Value {
			return false
		}
		a, b = a.Parent, b.Parent
	}
	return a == nil && b == nil
}

// writeNetworkFiles writes the kubelet's resolv.conf and hosts into the sandbox directory.
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
	hostNetwork := sb.podIP == ""
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
	if err := os.WriteFile(filepath.Join(sb.dir, resolvConfFile), poddns.ResolvConf(dc, cfg.HostResolvConf), 0o644); err != nil {
		return err
	}
	// containerd's /etc/hostname: the pod's hostname, the node's on the host network.
	if hostNetwork {
		if hostname, err = os.Hostname(); err != nil {
			return fmt.Errorf("reading the node's hostname: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(sb.dir, hostnameFile), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(sb.dir, hostsFile), poddns.Hosts(ips, hostname, domain, pod.Spec.HostAliases, hostNetwork, nodeHosts), 0o644)
}

// networkVolumes mounts the sandbox's resolv.conf, hosts and hostname into a container that does not
// mount something there itself (the kubelet's rule for /etc/hosts, containerd's for the others).
func networkVolumes(c *corev1.Container) []mesos.Volume {
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
				SandboxPath: &mesos.Volume_Source_SandboxPath{Type: mesos.Volume_Source_SandboxPath_PARENT, Path: f.name},
			},
		})
	}
	return out
}

// StopPodSandbox implements podworker.SandboxRuntime: kill, wait and remove the sandbox container
// (also one a failed or interrupted RunPodSandbox may have left).
func (r *Runtime) StopPodSandbox(ctx context.Context, pod *corev1.Pod) error {
	id, err := r.podParent(pod.UID)
	if err != nil {
		return err
	}
	err = r.call(ctx, agentcalls.KillContainer(id))
	if err != nil && !apierrors.CodeNotFound.Matches(err) {
		return fmt.Errorf("killing the pod sandbox: %w", err)
	}
	if err == nil {
		if _, err := WaitContainer(ctx, r.waiter, id); err != nil && !apierrors.CodeNotFound.Matches(err) {
			return fmt.Errorf("waiting for the pod sandbox: %w", err)
		}
	}
	if err := r.call(ctx, agentcalls.RemoveContainer(id)); err != nil && !apierrors.CodeNotFound.Matches(err) {
		return fmt.Errorf("removing the pod sandbox: %w", err)
	}
	return nil
}

// destroy kills and removes a sandbox whose set-up failed, with a fresh context (ctx may be over).
func (r *Runtime) destroy(id mesos.ContainerID) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	if err := r.call(ctx, agentcalls.KillContainer(id)); err == nil {
		_, _ = WaitContainer(ctx, r.waiter, id)
	}
	_ = r.call(ctx, agentcalls.RemoveContainer(id))
}

// podParent is the sandbox's ContainerID: the parent of the pod's containers.
func (r *Runtime) podParent(uid types.UID) (mesos.ContainerID, error) {
	return r.containerID(SandboxID(uid))
}
