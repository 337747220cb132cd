package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/internal/cniplugins"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// newNetworkEnv is a simEnv whose agent isolates (as root) with network/cni and a bridge network
// named kmexe-<n> on 10.244.<n>.0/24, and listens on an address of the host (the sandbox executors
// reach it from their own network namespaces). It holds the host-wide lock of the CNI tests.
func newNetworkEnv(t *testing.T, n int, more ...func(*agent.Config)) (*simEnv, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent's network/cni isolator needs root")
	}
	var host string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	pods := &net.IPNet{IP: net.IPv4(10, 244, 0, 0), Mask: net.CIDRMask(16, 32)}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && host == "" && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() && !pods.Contains(ipn.IP) {
			host = ipn.IP.String()
		}
	}
	if host == "" {
		t.Skip("no global unicast IPv4 address on this host for the agent to listen on")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	plugins, err := cniplugins.EnsureWith(ctx, cniplugins.Options{Log: io.Discard})
	if err != nil {
		t.Fatalf("building the CNI plugins: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kubemesos-cni-tests.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	network, bridge, confDir := fmt.Sprintf("kmexe-%d", n), fmt.Sprintf("kmexe%d", n), t.TempDir()
	conf := map[string]any{"cniVersion": "1.0.0", "name": network, "plugins": []map[string]any{
		{"type": "bridge", "bridge": bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.244.%d.0/24", n)}}},
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}},
		{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": "nftables"},
	}}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(filepath.Join(confDir, network+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a t.TempDir: network/cni makes <runtime_dir>/isolators/network/cni a mount.
	runtimeDir, err := os.MkdirTemp("", "kmexe-runtime")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		_ = os.RemoveAll(filepath.Join("/var/lib/cni/networks", network))
		_ = syscall.Unmount(filepath.Join(runtimeDir, "isolators/network/cni"), syscall.MNT_DETACH)
		_ = os.RemoveAll(runtimeDir)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	env := newSimEnvWith(t, func(c *agent.Config) {
		c.Isolation = "filesystem/linux,docker/runtime,namespaces/pid,network/cni"
		c.ProcessMode = false
		c.DockerStoreDir = t.TempDir()
		c.NetworkCNIConfigDir, c.NetworkCNIPluginsDir, c.RuntimeDir = confDir, plugins, runtimeDir
		c.ListenAddress = net.JoinHostPort(host, "0")
		for _, m := range more {
			m(c)
		}
	}, func(c *Config) { c.ClusterDNS = "10.0.0.10" })
	if !env.agent.Isolating() {
		t.Fatal("an agent with network/cni as root does not isolate")
	}
	return env, network
}

// A pod on the CNI network as the framework launches it (design P): its sandbox executor's container
// gets the pod IP, which is the pod's status.podIP and the pod task's TASK_RUNNING network_infos; the
// pod's container, nested under that container, has the pod's hostname and the kubelet's
// resolv.conf; the framework's kills end both tasks, and the address is released.
func TestPodOnItsSandboxExecutorsNetwork(t *testing.T) {
	env, network := newNetworkEnv(t, 97)
	out := filepath.Join(env.dir, "out")
	pod := shPod("web", corev1.RestartPolicyNever, 5, `{ hostname; grep nameserver /etc/resolv.conf; basename "$(dirname "$(dirname "$MESOS_SANDBOX")")"; } > `+out+`.tmp; mv `+out+`.tmp `+out+`; sleep 600`)
	pod.Spec.Containers[0].Image = "" // the host's filesystem, where the test reads its output
	sbTask, podTask := env.launchSandboxed(pod, network)
	st := env.awaitState(podTask, "TASK_RUNNING")
	waitFor(t, "the pod's IP", func() bool { return env.pod("web").Status.PodIP != "" })
	podIP := env.pod("web").Status.PodIP
	if ip := net.ParseIP(podIP); ip == nil || !(&net.IPNet{IP: net.IPv4(10, 244, 97, 0), Mask: net.CIDRMask(24, 32)}).Contains(ip) {
		t.Fatalf("podIP %q, want an address of 10.244.97.0/24", podIP)
	}
	var sandbox agent.ExecutorState
	for _, e := range env.agent.Executors() {
		if e.Info.ExecutorID.Value == podtranslate.SandboxExecutorIDPrefix+string(pod.UID) {
			sandbox = e
		}
	}
	if id := st.GetContainerStatus().GetContainerID(); id == nil || id.Value != sandbox.ContainerID.Value {
		t.Errorf("the pod task's TASK_RUNNING names container %v, want the sandbox executor's %s", id, sandbox.ContainerID.Value)
	}
	if nis := st.GetContainerStatus().GetNetworkInfos(); len(nis) == 0 || len(nis[0].IPAddresses) == 0 || nis[0].IPAddresses[0].GetIPAddress() != podIP {
		t.Errorf("the pod task's TASK_RUNNING network_infos %v, want the pod IP %s", nis, podIP)
	}
	waitFor(t, "the container's output", func() bool { _, err := os.Stat(out); return err == nil })
	b, _ := os.ReadFile(out)
	if want := "web\nnameserver 10.0.0.10\n" + sandbox.ContainerID.Value + "\n"; string(b) != want {
		t.Errorf("the container saw %q, want its hostname, the cluster DNS and its parent, the sandbox executor's container:\n%s", b, want)
	}

	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: podTask}, nil)
	env.awaitState(podTask, "TASK_KILLED")
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: sbTask}, nil)
	env.awaitState(sbTask, "TASK_KILLED")
	waitFor(t, "the pod IP released", func() bool {
		_, err := os.Stat(filepath.Join("/var/lib/cni/networks", network, podIP))
		return os.IsNotExist(err)
	})
	if got := strings.Join(env.master.states(sbTask), ","); got != "TASK_RUNNING,TASK_KILLED" {
		t.Errorf("sandbox task states %s", got)
	}
}
