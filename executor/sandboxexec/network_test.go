package sandboxexec_test

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

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"

	"github.com/kubemesos/kubemesos/internal/cniplugins"
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

// networkAgent is an isolating agent (as root) with a bridge + host-local + portmap network named
// kmsbx-<n> on 10.244.<n>.0/24, holding the host-wide lock of the CNI tests (they share the CNI
// state directory and portmap's table).
func networkAgent(t *testing.T, m *master, n int) (a *agent.Agent, network string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent's network/cni isolator needs root")
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kubemesos-cni-tests.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	network, bridge, confDir := fmt.Sprintf("kmsbx-%d", n), fmt.Sprintf("kmsbx%d", n), t.TempDir()
	conf := map[string]any{"cniVersion": "1.0.0", "name": network, "plugins": []map[string]any{
		{"type": "bridge", "bridge": bridge, "isGateway": true,
			"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.244.%d.0/24", n)}}},
				// The executor reaches its agent on a host address through the bridge.
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}},
		{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": "nftables"},
	}}
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(filepath.Join(confDir, network+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Not a t.TempDir: network/cni makes <runtime_dir>/isolators/network/cni a mount.
	runtimeDir, err := os.MkdirTemp("", "kmsbx-runtime")
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
	plugins := cniPlugins(t)
	// The executor's container reaches the agent from its own network namespace, where 127.0.0.1 is
	// its own: the agent listens on an address of the host, as mesos-agent on its --ip.
	host := hostAddress(t)
	a = newAgent(t, m, func(c *agent.Config) {
		c.ListenAddress = net.JoinHostPort(host, "0")
		c.Isolation = "filesystem/linux,namespaces/pid,network/cni"
		c.NetworkCNIConfigDir, c.NetworkCNIPluginsDir, c.RuntimeDir = confDir, plugins, runtimeDir
	})
	if !a.Isolating() {
		t.Fatal("an agent with network/cni as root does not isolate")
	}
	return a, network
}

func agentSender(a *agent.Agent) agentcalls.Sender {
	cli := httpcli.New(
		httpcli.Endpoint("http://"+a.Endpoint()+"/api/v1"),
		httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]),
	)
	return httpagent.NewSender(cli.Send)
}

// containers is GET_CONTAINERS with show_nested.
func containers(t *testing.T, s agentcalls.Sender) []agentapi.Response_GetContainers_Container {
	t.Helper()
	resp, err := s.Send(context.Background(), agentcalls.NonStreaming(&agentapi.Call{Type: agentapi.Call_GET_CONTAINERS,
		GetContainers: &agentapi.Call_GetContainers{ShowNested: ptr(true)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var r agentapi.Response
	if err := resp.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.GetGetContainers().Containers
}

// A pod's sandbox executor on the pod network, as the framework launches it: the agent puts its
// container on the CNI network (the pod IP in TASK_RUNNING and in GET_CONTAINERS), a container nested
// under it shares its network and hostname, port-forward through the executor's socket reaches that
// container's localhost port, and KILL ends it all: TASK_KILLED, exit 0, the nested container destroyed.
func TestSandboxExecutorOnThePodNetwork(t *testing.T) {
	m := &master{}
	a, network := networkAgent(t, m, 96)
	container := &mesos.ContainerInfo{
		Type:         mesos.ContainerInfo_MESOS.Enum(),
		Hostname:     ptr("web-0"),
		NetworkInfos: []mesos.NetworkInfo{{Name: &network}},
	}
	a.Launch(fw, sandboxExecutor(t, "u4", container), []mesos.TaskInfo{sandboxTask("u4")}, false)
	dumpOnFailure(t, a)
	waitFor(t, "TASK_RUNNING", func() bool { return len(m.states("sandbox-u4")) > 0 })
	st := m.last("sandbox-u4")
	if st.GetState() != mesos.TASK_RUNNING {
		t.Fatalf("first update %s %q", st.GetState(), st.GetMessage())
	}
	subnet := &net.IPNet{IP: net.IPv4(10, 244, 96, 0), Mask: net.CIDRMask(24, 32)}
	var podIP string
	if nis := st.GetContainerStatus().GetNetworkInfos(); len(nis) == 1 && len(nis[0].IPAddresses) == 1 {
		podIP = nis[0].IPAddresses[0].GetIPAddress()
		if nis[0].GetName() != network {
			t.Errorf("TASK_RUNNING network_infos[0].name %q", nis[0].GetName())
		}
	}
	if ip := net.ParseIP(podIP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("TASK_RUNNING network_infos %v, want one address of %s", st.GetContainerStatus().GetNetworkInfos(), subnet)
	}
	ex := executorOf(t, a, "kubemesos-pod-u4")
	s := agentSender(a)
	found := false
	for _, c := range containers(t, s) {
		if c.GetExecutorID().GetValue() == "kubemesos-pod-u4" && c.ContainerID.Value == ex.ContainerID.Value {
			nis := c.GetContainerStatus().GetNetworkInfos()
			found = len(nis) == 1 && len(nis[0].IPAddresses) == 1 && nis[0].IPAddresses[0].GetIPAddress() == podIP
		}
	}
	if !found {
		t.Errorf("GET_CONTAINERS does not list the sandbox executor's container with the pod IP %s", podIP)
	}

	// A server nested under the sandbox executor's container, on the pod's localhost only.
	self, _ := os.Executable()
	child := mesos.ContainerID{Value: "hello", Parent: &ex.ContainerID}
	resp, err := s.Send(context.Background(), agentcalls.NonStreaming(agentcalls.LaunchContainer(child,
		&mesos.CommandInfo{Shell: ptr(false), Value: &self, Arguments: []string{self, "hello", "8080"}}, nil,
		[]mesos.Resource{scalar("cpus", 0.1), scalar("mem", 32)})))
	if err != nil {
		t.Fatalf("launching the nested server: %v", err)
	}
	if resp != nil {
		resp.Close()
	}
	var got string
	waitFor(t, "port-forward to the nested server", func() bool {
		got, err = forward(t, ex.Directory, 8080)
		return err == nil
	})
	if got != "hello from web-0\n" {
		t.Errorf("port-forward to 8080 answered %q, want the pod's container (hostname web-0)", got)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(podIP, "8080"), 5*time.Second); err == nil {
		c.Close()
		t.Errorf("the server bound to the pod's 127.0.0.1 answers on the pod IP")
	}

	a.Kill(*fw.ID, mesos.TaskID{Value: "sandbox-u4"}, nil)
	waitFor(t, "the executor's exit", func() bool { return len(m.exits()) == 1 })
	if got := m.states("sandbox-u4"); strings.Join(got, ",") != "TASK_RUNNING,TASK_KILLED" {
		t.Errorf("states %v", got)
	}
	if st := m.exits()[0]; st != 0 {
		t.Errorf("exit status %d, want 0", st)
	}
	waitFor(t, "the sandbox's containers gone", func() bool {
		for _, c := range containers(t, s) {
			if c.ContainerID.Value == ex.ContainerID.Value || c.ContainerID.Value == "hello" {
				return false
			}
		}
		return true
	})
	// network/cni's DEL gave the address back to host-local.
	waitFor(t, "the pod IP released", func() bool {
		_, err := os.Stat(filepath.Join("/var/lib/cni/networks", network, podIP))
		return os.IsNotExist(err)
	})
}

// hostAddress is a global unicast IPv4 address of this host.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !(&net.IPNet{IP: net.IPv4(10, 244, 0, 0), Mask: net.CIDRMask(16, 32)}).Contains(n.IP) {
			return n.IP.String()
		}
	}
	t.Skip("no global unicast IPv4 address on this host for the agent to listen on")
	return ""
}

// dumpOnFailure logs the executors' stderr when the test failed.
func dumpOnFailure(t *testing.T, a *agent.Agent) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, e := range a.Executors() {
			b, _ := os.ReadFile(filepath.Join(e.Directory, "stderr"))
			t.Logf("%s stderr:\n%s", e.Info.ExecutorID.Value, b)
		}
	})
}
