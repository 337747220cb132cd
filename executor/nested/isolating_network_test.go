package nested_test

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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/executor/poddns"
	"github.com/kubemesos/kubemesos/internal/cniplugins"
	"github.com/kubemesos/kubemesos/internal/imagebuild"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

var (
	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
)

func cniPlugins(t testing.TB) string {
	t.Helper()
	pluginsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		pluginsDir, pluginsErr = cniplugins.EnsureWith(ctx, cniplugins.Options{Log: io.Discard})
	})
	if pluginsErr != nil {
		t.Fatalf("building the CNI plugins: %v", pluginsErr)
	}
	return pluginsDir
}

// podNetwork writes a bridge + host-local + portmap network named name with subnet 10.244.<n>.0/24
// into a new --network_cni_config_dir, holding the host-wide lock of the CNI tests (they share the
// CNI root directory and portmap's table).
func podNetwork(t testing.TB, n int) (name, confDir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kubemesos-cni-tests.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	name, bridge, confDir := fmt.Sprintf("kmexec-%d", n), fmt.Sprintf("kmexec%d", n), t.TempDir()
	conf := map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": []map[string]any{
		{"type": "bridge", "bridge": bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.244.%d.0/24", n)}}},
				// The sandbox executor reaches its agent on a host address through the bridge.
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}},
		{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": "nftables"},
	}}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(filepath.Join(confDir, name+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		_ = os.RemoveAll(filepath.Join("/var/lib/cni/networks", name))
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	return name, confDir
}

// networkRuntime is an isolating runtime whose agent has the pod network.
func networkRuntime(t testing.TB, confDir string) *nested.Runtime {
	t.Helper()
	plugins := cniPlugins(t)
	// Not a t.TempDir: network/cni makes <runtime_dir>/isolators/network/cni a mount, which outlives
	// the agent as on Mesos.
	runtimeDir, err := os.MkdirTemp("", "kmexec-runtime")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(filepath.Join(runtimeDir, "isolators/network/cni"), syscall.MNT_DETACH)
		_ = os.RemoveAll(runtimeDir)
	})
	host := hostAddress(t)
	return isolatingRuntime(t, "filesystem/linux,namespaces/pid,network/cni", func(c *agent.Config) {
		c.NetworkCNIConfigDir, c.NetworkCNIPluginsDir, c.RuntimeDir = confDir, plugins, runtimeDir
		// The sandbox executor's container reaches the agent from its own network namespace, where
		// 127.0.0.1 is its own: the agent listens on an address of the host, as mesos-agent on its --ip.
		c.ListenAddress = net.JoinHostPort(host, "0")
	})
}

// hostAddress is a global unicast IPv4 address of this host outside the tests' pod networks.
func hostAddress(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	pods := &net.IPNet{IP: net.IPv4(10, 244, 0, 0), Mask: net.CIDRMask(16, 32)}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !pods.Contains(n.IP) {
			return n.IP.String()
		}
	}
	t.Skip("no global unicast IPv4 address on this host for the agent to listen on")
	return ""
}

const networkScript = `cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname; cat /etc/hostname; echo ---; echo "$POD_IP"`

func networkPod(name string) *corev1.Pod {
	pod := shPod(name, networkScript, nil, nil, corev1.ResourceRequirements{})
	pod.Spec.Hostname, pod.Spec.Subdomain = name+"-0", "headless"
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "192.0.2.10", Hostnames: []string{"alias.example"}}}
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}
	return pod
}

// clusterResolvConf is what the kubelet writes for a ClusterFirst pod in namespace default with the
// runtime's --cluster-dns 10.0.0.10: the cluster's searches, then the host's.
func clusterResolvConf(t *testing.T) string {
	t.Helper()
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	_, searches, _, err := poddns.ParseResolvConf(host)
	if err != nil {
		t.Fatal(err)
	}
	search := []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"}
	for _, s := range searches {
		if !strings.Contains(strings.Join(search, " "), s) {
			search = append(search, s)
		}
	}
	return "search " + strings.Join(search, " ") + "\nnameserver 10.0.0.10\noptions ndots:5\n"
}

const managedHosts = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"

// A pod on a CNI network: its sandbox executor's container gets an address of the network, the pod's
// container, nested under it, shares its network and UTS namespaces and sees the kubelet's resolv.conf
// and hosts (pod IP with its FQDN, hostAliases) at /etc/, its hostname and status.podIP; killing the
// sandbox task gives the address back.
func TestIsolatedPodNetwork(t *testing.T) {
	name, confDir := podNetwork(t, 91)
	r := networkRuntime(t, confDir)
	pod := networkPod("web")
	sb := withSandbox(t, r, pod, name)
	if ip := net.ParseIP(sb.PodIP); ip == nil || !(&net.IPNet{IP: net.IPv4(10, 244, 91, 0), Mask: net.CIDRMask(24, 32)}).Contains(ip) {
		t.Fatalf("pod IP %q, want an address of 10.244.91.0/24", sb.PodIP)
	}
	parent, ok := r.SandboxExecutorContainer(pod.UID)
	if !ok || parent.Parent != nil || !executorRunning(agentOf(t, r).agent, "kubemesos-pod-"+string(pod.UID)) {
		t.Fatalf("the pod's parent %v (%v), want its sandbox executor's container", parent, ok)
	}
	st, out := run(t, r, pod)
	want := clusterResolvConf(t) + "---\n" + managedHosts +
		sb.PodIP + "\tweb-0.headless.default.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n192.0.2.10\talias.example\n" +
		"---\nweb-0\nweb-0\n---\n" + sb.PodIP + "\n"
	if st.ExitCode != 0 {
		t.Fatalf("container exited %+v", st)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("the container's resolv.conf, hosts, hostname and pod IP (-want +got):\n%s", diff)
	}
	killSandboxExecutor(t, r, pod)
	if _, err := os.Stat(filepath.Join("/var/lib/cni/networks", name, sb.PodIP)); !os.IsNotExist(err) {
		t.Errorf("the address %s is still allocated after the sandbox executor ended (%v)", sb.PodIP, err)
	}
}

// A network the agent does not know fails the sandbox executor's launch with Mesos' text (which the
// framework turns into the pod's FailedCreatePodSandBox); the kubelet executor's wait for it ends at
// its deadline, or when the pod is killed, and records no sandbox.
func TestIsolatedUnknownPodNetwork(t *testing.T) {
	_, confDir := podNetwork(t, 92)
	r := networkRuntime(t, confDir)
	pod := networkPod("lost")
	sa := agentOf(t, r)
	spec := launchSandboxExecutor(t, r, pod, "no-such-network")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := r.RunPodSandbox(ctx, pod, spec)
	if err == nil {
		t.Fatal("RunPodSandbox on an unknown network succeeded")
	}
	if _, _, ok := r.SandboxFor(pod.UID); ok {
		t.Error("a failed sandbox is recorded")
	}
	st, ok := sa.master.last("sandbox-" + string(pod.UID))
	if !ok || st.GetState() != mesos.TASK_FAILED || !strings.Contains(st.GetMessage(), "Unknown CNI network 'no-such-network'") {
		t.Errorf("the sandbox task: %s %q, want TASK_FAILED with Mesos' Unknown CNI network text", st.GetState(), st.GetMessage())
	}
}

// A pod on the host's network: the sandbox has no address of its own, the container gets the host's
// hostname and the kubelet's host-network hosts file (the node's, with hostAliases).
func TestIsolatedHostNetworkPodFiles(t *testing.T) {
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid", nil)
	pod := networkPod("hostnet")
	pod.Spec.HostNetwork = true
	pod.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	pod.ObjectMeta = metav1.ObjectMeta{Namespace: "default", Name: "hostnet", UID: "uid-hostnet"}
	sb := withSandbox(t, r, pod, "")
	if sb.PodIP != "" {
		t.Fatalf("pod IP %q on the host network", sb.PodIP)
	}
	st, out := run(t, r, pod)
	nodeHosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := clusterResolvConf(t) + "---\n# Kubernetes-managed hosts file (host network).\n" + string(nodeHosts) +
		"\n# Entries added by HostAliases.\n192.0.2.10\talias.example\n---\n" + host + "\n" + host + "\n---\n\n"
	if st.ExitCode != 0 {
		t.Fatalf("container exited %+v", st)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("the container's resolv.conf, hosts and hostname (-want +got):\n%s", diff)
	}
}

var (
	busyboxOnce sync.Once
	busyboxImg  v1.Image
	busyboxErr  error
)

// busyboxRegistry is a registry directory holding the busybox image (Debian's busybox-static).
func busyboxRegistry(t testing.TB) string {
	t.Helper()
	busyboxOnce.Do(func() {
		ctx := context.Background()
		var bb imagebuild.Busybox
		if bb, busyboxErr = imagebuild.FindBusybox(ctx, imagebuild.BusyboxOptions{}); busyboxErr == nil {
			busyboxImg, busyboxErr = imagebuild.BusyboxImage(ctx, bb)
		}
	})
	if busyboxErr != nil {
		t.Skipf("no busybox image: %v", busyboxErr)
	}
	dir := t.TempDir()
	if _, err := imagebuild.WriteArchives(dir, busyboxImg, "busybox"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A container with an image (its own root filesystem) on the pod network sees the kubelet's files
// too: the sandbox's resolv.conf and hosts volumes are mounted over what network/cni puts into its
// rootfs (the root container's files).
func TestIsolatedPodNetworkImageContainer(t *testing.T) {
	host := hostAddress(t)
	name, confDir := podNetwork(t, 94)
	plugins := cniPlugins(t)
	registry := busyboxRegistry(t)
	runtimeDir, err := os.MkdirTemp("", "kmexec-runtime")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(filepath.Join(runtimeDir, "isolators/network/cni"), syscall.MNT_DETACH)
		_ = os.RemoveAll(runtimeDir)
	})
	r := isolatingRuntime(t, "filesystem/linux,docker/runtime,namespaces/pid,network/cni", func(c *agent.Config) {
		c.NetworkCNIConfigDir, c.NetworkCNIPluginsDir, c.RuntimeDir = confDir, plugins, runtimeDir
		c.ImageProviders, c.DockerRegistry, c.DockerStoreDir = "docker", registry, t.TempDir()
		c.ListenAddress = net.JoinHostPort(host, "0")
	})
	pod := networkPod("img")
	pod.Spec.Containers[0].Image = "busybox"
	sb := withSandbox(t, r, pod, name)
	st, out := run(t, r, pod)
	if st.ExitCode != 0 {
		t.Fatalf("container exited %+v", st)
	}
	want := clusterResolvConf(t) + "---\n" + managedHosts +
		sb.PodIP + "\timg-0.headless.default.svc.cluster.local\timg-0\n\n# Entries added by HostAliases.\n192.0.2.10\talias.example\n" +
		"---\nimg-0\nimg-0\n---\n" + sb.PodIP + "\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("the image container's resolv.conf, hosts, hostname and pod IP (-want +got):\n%s", diff)
	}
}
