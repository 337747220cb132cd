package nested

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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

// The pod sandbox. Every pod runs as a CRI runtime runs it in a sandbox: a **standalone** container
// (agent API LAUNCH_CONTAINER without a parent, Mesos ≥ 1.5) `kubemesos-pod-<pod UID>` running
// `<executor binary> pod-sandbox` (a pause process), and the pod's containers nested under it (one
// level: sandbox → container, then their exec sessions). Only the sandbox names the pod network
// (ContainerInfo.network_infos with the hostPorts as port_mappings, and the pod's hostname): Mesos'
// network/cni gives it its own network and UTS namespaces, and its children, which name no network,
// join the networks of their ROOT container (cni.cpp prepare: `infos[protobuf::getRootContainerId(
// containerId)]->containerNetworks`). Nested under the executor's container (executor → sandbox →
// container) the root would be the executor, on the host's network; standalone, the root is the
// sandbox. Being nested one level, the pod's containers may again have their own resources, limits and
// cgroups (Mesos refuses them from the second level on, validation.cpp).
//
// A standalone container does not end with the executor: the executor kills its sandboxes when their
// pods end and when it exits, and reaps at start those a killed executor left (StopAllSandboxes,
// reapOrphans). Its directory is <agent work_dir>/containers/<sandbox ID> (Mesos'
// slave::paths::getContainerPath, owned by CommandInfo.user, the executor's user): the PARENT of the
// pod's containers' SANDBOX_PATH volumes, where the pod's volumes are materialized under volumes/,
// the kubelet's resolv.conf, hosts and hostname files lie (mounted read-write at /etc/ of every
// container), and the sandbox process serves port-forward. KILL_CONTAINER of the sandbox destroys
// its children first, then detaches it from the network (CNI DEL); the executor deletes the
// directory (see stopSandbox).

// SandboxPrefix starts every sandbox's container ID: the executor recognizes its own standalone
// containers by it (orphans of a killed executor).
const SandboxPrefix = "kubemesos-pod-"

// SandboxID is the container ID value of a pod's sandbox: kubemesos-pod-<pod UID> (unique on the
// agent; the pod's containers are <pod UID>-<name>-<attempt> under it). No '.': Mesos refuses it in
// a ContainerID (validation.cpp validateContainerId, "contains invalid characters"), since it joins
// a nested container's chain with periods.
func SandboxID(uid types.UID) string { return SandboxPrefix + string(uid) }

// SandboxContainerID is the ContainerID of a pod's sandbox: standalone, without a parent.
func SandboxContainerID(uid types.UID) mesos.ContainerID {
	return mesos.ContainerID{Value: SandboxID(uid)}
}

// SandboxDir is the host directory of a pod's sandbox container on an agent whose --work_dir is
// workDir (Mesos' getContainerPath).
func SandboxDir(workDir string, uid types.UID) string {
	return filepath.Join(workDir, "containers", SandboxID(uid))
}

// ContainerDir is the host directory (the Mesos sandbox, with its stdout and stderr) of a pod
// container's nested container id.
func ContainerDir(workDir string, uid types.UID, id string) string {
	return filepath.Join(SandboxDir(workDir, uid), "containers", id)
}

// ownerFile, in a sandbox's directory, names the framework whose executor launched it: the orphan
// reaper leaves other frameworks' sandboxes alone (several kubemesos frameworks may share an agent).
const ownerFile = "kubemesos-framework"

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
// sandbox hit the pod's memory limit (the pod's cgroup, which holds its containers' cgroups): Mesos'
// cgroups/mem destroys the sandbox with REASON_CONTAINER_LIMITATION_MEMORY and its children without
// a reason. A container past its own limit gets the reason from its own WAIT_CONTAINER.
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

// SandboxContainerInfo is the sandbox's ContainerInfo: on a pod network its network_infos and
// hostname. No LinuxInfo: a standalone container has its own cgroups (Mesos refuses share_cgroups
// true for a container without a parent).
func SandboxContainerInfo(pod *corev1.Pod, network, hostname string) *mesos.ContainerInfo {
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum()}
	if network != "" {
		name := network
		ci.NetworkInfos = []mesos.NetworkInfo{{Name: &name, PortMappings: PortMappings(pod)}}
		ci.Hostname = &hostname
	}
	return ci
}

// RunPodSandbox implements podworker.SandboxRuntime: it launches the sandbox as a standalone
// container (after the orphans of a previous executor are reaped), reads its IP on a pod network
// (GET_CONTAINERS), and writes the pod's resolv.conf, hosts and hostname. A launch the agent refuses is
// an error with Mesos' text (an unknown network, a failed CNI ADD); nothing is left then.
func (r *Runtime) RunPodSandbox(ctx context.Context, pod *corev1.Pod, network string) (podworker.Sandbox, error) {
	if len(r.cfg.SandboxCommand) == 0 {
		return podworker.Sandbox{}, errors.New("no pod sandbox command configured")
	}
	if r.cfg.WorkDir == "" {
		return podworker.Sandbox{}, errors.New("the agent's work_dir is not known: pod sandboxes cannot be placed")
	}
	r.reapOnce.Do(func() { r.reapOrphans(ctx) })
	id := SandboxContainerID(pod.UID)
	hostname, domain, err := poddns.HostnameAndDomain(pod, r.cfg.DNS.ClusterDomain)
	if err != nil {
		return podworker.Sandbox{}, err
	}
	shell := false
	argv := append([]string{}, r.cfg.SandboxCommand...)
	cmd := &mesos.CommandInfo{Shell: &shell, Value: &argv[0], Arguments: argv}
	// A standalone container without a user runs as the agent's (root): its directory, where the
	// executor writes the pod's files, would not be the executor's.
	if u, err := r.cfg.Users.Current(); err == nil && u.Name != "" {
		cmd.User = &u.Name
	}
	call := agentcalls.LaunchContainer(id, cmd, SandboxContainerInfo(pod, network, hostname), nil)
	call.LaunchContainer.Resources, call.LaunchContainer.Limits = PodResources(pod)
	r.mu.Lock()
	r.owned[id.Value] = true
	r.mu.Unlock()
	if err := r.call(ctx, call); err != nil {
		return podworker.Sandbox{}, agentText(err)
	}
	sb := &podSandbox{id: id, dir: SandboxDir(r.cfg.WorkDir, pod.UID), ended: make(chan struct{})}
	fail := func(err error) (podworker.Sandbox, error) {
		r.destroy(id)
		return podworker.Sandbox{}, err
	}
	if err := os.WriteFile(filepath.Join(sb.dir, ownerFile), []byte(r.cfg.FrameworkID), 0o644); err != nil {
		return fail(fmt.Errorf("writing into the pod sandbox's directory: %w", err))
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

// noNetworkHint explains a standalone sandbox without an address: Mesos' network/cni isolator has no
// supportsStandalone, so the containerizer skips it for standalone containers and their children
// (containerizer.cpp isSupportedByIsolator): the network_infos are ignored and the sandbox is on the
// host's network.
const noNetworkHint = ": the agent attached the standalone pod sandbox to no network (Mesos' network/cni isolator does not apply to standalone containers)"

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
		last = errors.New(podworker.MsgNoIPAddress + noNetworkHint)
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
	return r.stopSandbox(ctx, SandboxContainerID(pod.UID))
}

// stopSandbox kills a sandbox (the agent destroys its nested containers first), waits for its end
// and deletes its directory; a sandbox the agent does not know is gone. No REMOVE_CONTAINER: a Mesos
// agent aborts on one for a container without a parent (MesosContainerizerProcess::remove:
// CHECK(containerId.has_parent())); it forgets a destroyed standalone container by itself, but
// garbage-collects its directory only with --gc_non_executor_container_sandboxes.
func (r *Runtime) stopSandbox(ctx context.Context, id mesos.ContainerID) error {
	err := r.call(ctx, agentcalls.KillContainer(id))
	if err != nil && !apierrors.CodeNotFound.Matches(err) {
		return fmt.Errorf("killing the pod sandbox %s: %w", id.Value, err)
	}
	if err == nil {
		if _, err := WaitContainer(ctx, r.waiter, id); err != nil && !apierrors.CodeNotFound.Matches(err) {
			return fmt.Errorf("waiting for the pod sandbox %s: %w", id.Value, err)
		}
	}
	r.mu.Lock()
	delete(r.owned, id.Value)
	r.mu.Unlock()
	if r.cfg.WorkDir != "" {
		// Its directory is the executor's user's; <work_dir>/containers is the agent's, so an
		// executor that is not root may only empty it.
		dir := filepath.Join(r.cfg.WorkDir, "containers", id.Value)
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("removing the directory of pod sandbox %s: %w", id.Value, err)
		}
	}
	return nil
}

// StopAllSandboxes stops every sandbox this runtime launched and has not stopped yet: standalone
// containers outlive the executor, so it calls this before it exits (pods cut short by the end of the
// shutdown grace period or of its context). It returns how many it stopped.
func (r *Runtime) StopAllSandboxes(ctx context.Context) (int, error) {
	r.mu.Lock()
	ids := make([]string, 0, len(r.owned))
	for id := range r.owned {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := r.stopSandbox(ctx, mesos.ContainerID{Value: id}); err != nil {
			errs = append(errs, err)
		}
	}
	return len(ids) - len(errs), errors.Join(errs...)
}

// reapOrphans stops the sandboxes an executor of this framework left on the agent when it was killed
// (GET_CONTAINERS show_standalone: standalone containers named kubemesos-pod-*, not launched by this
// runtime, whose directory does not name another framework). RunPodSandbox runs it once before the
// first sandbox; SetParent (SUBSCRIBED) starts it at the executor's start.
func (r *Runtime) reapOrphans(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*r.cfg.CallTimeout)
	defer cancel()
	yes, no := true, false
	call := agentcalls.GetContainers()
	call.GetContainers = &agent.Call_GetContainers{ShowNested: &no, ShowStandalone: &yes}
	resp, err := r.sender.Send(ctx, agentcalls.NonStreaming(call))
	if resp != nil {
		defer resp.Close()
	}
	var out agent.Response
	if err == nil {
		err = resp.Decode(&out)
	}
	if err != nil {
		r.log().WithError(err).Warn("listing the agent's standalone containers (GET_CONTAINERS) failed: sandboxes a previous executor left are not reaped")
		return
	}
	for _, c := range out.GetGetContainers().GetContainers() {
		id := c.ContainerID
		if id.Parent != nil || !strings.HasPrefix(id.Value, SandboxPrefix) {
			continue
		}
		r.mu.Lock()
		mine := r.owned[id.Value]
		r.mu.Unlock()
		if mine {
			continue
		}
		if r.cfg.WorkDir != "" && r.cfg.FrameworkID != "" {
			if b, err := os.ReadFile(filepath.Join(r.cfg.WorkDir, "containers", id.Value, ownerFile)); err == nil && string(b) != r.cfg.FrameworkID {
				continue
			}
		}
		if err := r.stopSandbox(ctx, id); err != nil {
			r.log().WithError(err).WithField("containerID", id.Value).Warn("reaping an orphaned pod sandbox failed")
			continue
		}
		r.log().WithField("containerID", id.Value).Info("reaped a pod sandbox a previous executor left")
	}
}

// destroy kills and removes a sandbox whose set-up failed, with a fresh context (ctx may be over).
func (r *Runtime) destroy(id mesos.ContainerID) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	_ = r.stopSandbox(ctx, id)
}
