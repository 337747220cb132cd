//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	execcalls "github.com/mesos/mesos-go/api/v1/lib/executor/calls"
	"golang.org/x/sys/unix"

	"github.com/kubemesos/kubemesos/internal/cniplugins"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// The pod network on an isolating agent: an executor container (host network) → a pod's sandbox
// container (LAUNCH_CONTAINER with network_infos, on a bridge + host-local + portmap CNI network) →
// containers nested in the sandbox, which Mesos puts on the root container's (host) network.

var (
	cniPluginsOnce sync.Once
	cniPluginsDir  string
	cniPluginsErr  error
)

// cniPlugins builds (or finds cached) the reference CNI plugins once per test binary.
func cniPlugins(t testing.TB) string {
	t.Helper()
	cniPluginsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cniPluginsDir, cniPluginsErr = cniplugins.EnsureWith(ctx, cniplugins.Options{Log: io.Discard})
	})
	if cniPluginsErr != nil {
		t.Fatalf("building the CNI plugins: %v", cniPluginsErr)
	}
	return cniPluginsDir
}

var cniLockHeld atomic.Bool

// lockCNITests serializes the CNI tests of every test process on the host (the containerizer's too,
// same lock file): they count veths and nftables rules, which are host-wide.
func lockCNITests(t testing.TB) {
	t.Helper()
	if cniLockHeld.Load() {
		return
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kubemesos-cni-tests.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	cniLockHeld.Store(true)
	t.Cleanup(func() {
		cniLockHeld.Store(false)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// podNet is a pod network as local-up writes one per agent: bridge (gateway, ipMasq with nftables),
// host-local IPAM with its own dataDir, portmap (nftables). The tests use 10.244.180-199.0/24 and
// bridges kmag<n> (the containerizer's tests use lower numbers).
type podNet struct {
	name, bridge, gateway, confDir, ipamDir string
	subnet                                  *net.IPNet
}

func newPodNet(t testing.TB, n int, ipRange map[string]string, extra ...map[string]any) *podNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the pod network needs root (network namespaces, bridges)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft on this host: `make deps` installs Debian's nftables for portmap's and ipMasq's nftables backends")
	}
	lockCNITests(t)
	p := &podNet{
		name:    fmt.Sprintf("kmagent-%d", n),
		bridge:  fmt.Sprintf("kmag%d", n),
		gateway: fmt.Sprintf("10.244.%d.1", n),
		confDir: t.TempDir(),
		ipamDir: t.TempDir(),
	}
	_, p.subnet, _ = net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", n))
	r := map[string]string{"subnet": p.subnet.String()}
	for k, v := range ipRange {
		r[k] = v
	}
	plugins := []map[string]any{
		{"type": "bridge", "bridge": p.bridge, "isGateway": true, "ipMasq": true, "ipMasqBackend": "nftables",
			// Without a default route a pod cannot answer a client beyond its subnet (an agent's IP).
			"ipam": map[string]any{"type": "host-local", "ranges": [][]map[string]string{{r}}, "dataDir": p.ipamDir,
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}},
		{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "backend": "nftables"},
	}
	plugins = append(plugins, extra...)
	b, _ := json.MarshalIndent(map[string]any{"cniVersion": "1.0.0", "name": p.name, "plugins": plugins}, "", "  ")
	if err := os.WriteFile(filepath.Join(p.confDir, p.name+".conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", p.bridge).Run() })
	return p
}

const podIsolation = "filesystem/linux,docker/runtime,namespaces/pid,network/cni"

// podAgent is an isolating agent with the docker provider (busybox) and the pod network, running one
// custom executor (the test executor, a process in its own container, host network) with task t1.
type podAgent struct {
	a          *Agent
	m          *fakeMaster
	net        *podNet
	exec       ExecutorState
	runtimeDir string
}

func newPodAgent(t testing.TB, nw *podNet, mutate func(*Config)) *podAgent {
	t.Helper()
	registry := busyboxRegistry(t)
	runtimeDir := t.TempDir()
	// The isolator makes its root directory a shared bind mount of itself; it goes with the test.
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(runtimeDir, "isolators/network/cni"), unix.MNT_DETACH) })
	m := &fakeMaster{autoAck: true}
	store := t.TempDir()
	a := newTestAgent(t, m, func(c *Config) {
		c.Isolation, c.ImageProviders, c.DockerRegistry, c.DockerStoreDir = podIsolation, "docker", registry, store
		c.NetworkCNIConfigDir, c.NetworkCNIPluginsDir, c.RuntimeDir = nw.confDir, cniPlugins(t), runtimeDir
		if mutate != nil {
			mutate(c)
		}
	})
	if !a.Isolating() {
		t.Fatal("the agent does not isolate")
	}
	// Resources as the framework gives the kubelet executor (an agent with cgroups/mem needs them).
	kubelet := processExecutor("pods", nil)
	kubelet.Resources = mustResources(t, "cpus:0.1;mem:64")
	a.Launch(testFramework(false), kubelet, []mesos.TaskInfo{dataTask("t1", "wait")}, false)
	waitFor(t, "the executor's task running", func() bool { return len(m.states("t1")) > 0 })
	return &podAgent{a: a, m: m, net: nw, exec: a.Executors()[0], runtimeDir: runtimeDir}
}

func (p *podAgent) objects(t testing.TB) containerizer.NetworkCounts {
	t.Helper()
	// Only this network's veths and rules: other processes' pods may come and go meanwhile.
	n, err := containerizer.NetworkObjects(p.runtimeDir, p.net.ipamDir, p.net.subnet)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (p *podAgent) sandboxID(pod string) mesos.ContainerID {
	parent := p.exec.ContainerID
	return mesos.ContainerID{Value: pod + "-sandbox", Parent: &parent}
}

func childID(parent mesos.ContainerID, name string) mesos.ContainerID {
	return mesos.ContainerID{Value: name, Parent: &parent}
}

// launchSandbox launches a pod's sandbox as the executor does: a pause process (here `sleep`, on the
// host's filesystem) on the network, with the pod's hostname and host ports.
func (p *podAgent) launchSandbox(t testing.TB, pod, network string, ports ...mesos.NetworkInfo_PortMapping) (mesos.ContainerID, int, string) {
	t.Helper()
	return p.launchSandboxWith(t, pod, network, "exec sleep 3600", ports...)
}

// launchSandboxWith is launchSandbox with the sandbox's command (run in its sandbox directory).
func (p *podAgent) launchSandboxWith(t testing.TB, pod, network, cmd string, ports ...mesos.NetworkInfo_PortMapping) (mesos.ContainerID, int, string) {
	t.Helper()
	id := p.sandboxID(pod)
	hostname := pod
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Hostname: &hostname,
		NetworkInfos: []mesos.NetworkInfo{{Name: &network, PortMappings: ports}}}
	code, body := postCall(t, p.a, agentcalls.LaunchContainer(id, shell(cmd), ci, nil))
	return id, code, body
}

// launchChild launches a pod container in busybox's root filesystem, nested in the sandbox without
// network_infos.
func (p *podAgent) launchChild(t testing.TB, sandbox mesos.ContainerID, name, cmd string) mesos.ContainerID {
	t.Helper()
	id := childID(sandbox, name)
	if code, body := postCall(t, p.a, agentcalls.LaunchContainer(id, shell(cmd), mesosImage("busybox"), nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER %s: %d %s", containerKey(&id), code, body)
	}
	return id
}

// dir is a nested container's sandbox on the host.
func (p *podAgent) dir(id mesos.ContainerID) string {
	var parts []string
	for c := &id; c.Parent != nil; c = c.Parent {
		parts = append([]string{"containers", c.Value}, parts...)
	}
	return filepath.Join(append([]string{p.exec.Directory}, parts...)...)
}

// output waits until a container's stdout has a line "ready" and returns what came before it.
func (p *podAgent) output(t testing.TB, id mesos.ContainerID) string {
	t.Helper()
	var out string
	waitFor(t, containerKey(&id)+"'s output", func() bool {
		b, _ := os.ReadFile(filepath.Join(p.dir(id), "stdout"))
		out = string(b)
		return strings.Contains(out, "ready\n")
	})
	return strings.TrimSuffix(out[:strings.Index(out, "ready\n")], "\n")
}

func (p *podAgent) getContainers(t testing.TB, nested bool) []agentapi.Response_GetContainers_Container {
	t.Helper()
	code, body := postCall(t, p.a, &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS,
		GetContainers: &agentapi.Call_GetContainers{ShowNested: &nested}})
	if code != http.StatusOK {
		t.Fatalf("GET_CONTAINERS: %d %s", code, body)
	}
	var r agentapi.Response
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Type != agentapi.Response_GET_CONTAINERS {
		t.Fatalf("GET_CONTAINERS body %s (%v)", body, err)
	}
	return r.GetContainers.Containers
}

// kill sends KILL_CONTAINER (SIGKILL unless signal) and returns once WAIT_CONTAINER has answered.
func (p *podAgent) killAndWait(t testing.TB, id mesos.ContainerID) int32 {
	t.Helper()
	if code, body := postCall(t, p.a, agentcalls.KillContainer(id)); code != http.StatusOK {
		t.Fatalf("KILL_CONTAINER %s: %d %s", containerKey(&id), code, body)
	}
	return p.wait(t, id)
}

func (p *podAgent) wait(t testing.TB, id mesos.ContainerID) int32 {
	t.Helper()
	code, body := postCall(t, p.a, agentcalls.WaitContainer(id))
	var r agentapi.Response
	if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil {
		t.Fatalf("WAIT_CONTAINER %s: %d %s", containerKey(&id), code, body)
	}
	return r.GetWaitContainer().GetExitStatus()
}

func ipOf(ni []mesos.NetworkInfo) string {
	if len(ni) == 0 || len(ni[0].IPAddresses) == 0 {
		return ""
	}
	return ni[0].IPAddresses[0].GetIPAddress()
}

// A sandbox nested in the executor's container gets its own network namespace with an address of the
// agent's pod network, but a container nested in the sandbox without network_infos does not join it:
// Mesos gives a container that joins its parent's network the ROOT container's networks, here the
// host-network executor's, so it is in the host's network and UTS namespaces. Its status still reports
// the sandbox's network (network/cni's status(parent)), as GET_CONTAINERS shows, and a status update
// naming the sandbox carries it. Killing the sandbox destroys its container first; either way nothing
// of the network is left.
func TestNestedContainerTakesTheRootContainersNetwork(t *testing.T) {
	nw := newPodNet(t, 180, nil)
	p := newPodAgent(t, nw, nil)
	before := p.objects(t)

	ports := []mesos.NetworkInfo_PortMapping{{HostPort: 18181, ContainerPort: 8080, Protocol: ptrTo("tcp")}}
	sandbox, code, body := p.launchSandbox(t, "web-0", nw.name, ports...)
	if code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of the sandbox: %d %s", code, body)
	}
	// On the host's filesystem (readlink): the network namespace does not depend on the image.
	app := childID(sandbox, "app")
	if code, body := postCall(t, p.a, agentcalls.LaunchContainer(app,
		shell("hostname; readlink /proc/self/ns/net /proc/self/ns/uts; echo ready; exec sleep 3600"), nil, nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of the child: %d %s", code, body)
	}
	out := p.output(t, app)
	hostname, _ := os.Hostname()
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	hostUTS, _ := os.Readlink("/proc/self/ns/uts")
	if want := hostname + "\n" + hostNet + "\n" + hostUTS; out != want {
		t.Errorf("the container in the sandbox printed %q, want the host's hostname and namespaces %q", out, want)
	}

	all := p.getContainers(t, true)
	if len(all) != 3 {
		t.Fatalf("GET_CONTAINERS show_nested: %d containers, want the executor's, the sandbox and its child: %+v", len(all), all)
	}
	ex, sb, ch := all[0], all[1], all[2]
	if ex.GetExecutorID().GetValue() != "pods" || ex.GetFrameworkID().GetValue() != "fw-1" || ex.ExecutorName == nil ||
		ex.ContainerID.Value != p.exec.ContainerID.Value || len(ex.ContainerStatus.NetworkInfos) != 0 ||
		!pidAlive(ex.ContainerStatus.GetExecutorPID()) || ex.ResourceStatistics == nil || ex.ResourceStatistics.Timestamp == 0 {
		t.Errorf("executor entry %+v: want its IDs and name, its pid, no network of its own (host), statistics", ex)
	}
	ip := ipOf(sb.ContainerStatus.NetworkInfos)
	if !strings.HasPrefix(ip, "10.244.180.") {
		t.Fatalf("sandbox status %+v: no address of the pod network", sb.ContainerStatus)
	}
	wantNI := []mesos.NetworkInfo{{
		Name:         &nw.name,
		IPAddresses:  []mesos.NetworkInfo_IPAddress{{Protocol: mesos.IPv4.Enum(), IPAddress: &ip}},
		PortMappings: ports,
	}}
	if sb.ContainerID.Value != sandbox.Value || sb.ContainerID.Parent != nil || sb.FrameworkID != nil {
		t.Errorf("sandbox entry container_id %+v framework %v: want its own value only", sb.ContainerID, sb.FrameworkID)
	}
	if diff := cmp.Diff(sandbox, *sb.ContainerStatus.ContainerID); diff != "" {
		t.Errorf("sandbox container_status.container_id (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantNI, sb.ContainerStatus.NetworkInfos); diff != "" {
		t.Errorf("sandbox network_infos (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(app, *ch.ContainerStatus.ContainerID); diff != "" {
		t.Errorf("child container_status.container_id (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantNI, ch.ContainerStatus.NetworkInfos); diff != "" {
		t.Errorf("child network_infos, want the sandbox's (Mesos' status(parent)) (-want +got):\n%s", diff)
	}
	if got := p.getContainers(t, false); len(got) != 1 || got[0].ContainerID.Value != p.exec.ContainerID.Value {
		t.Errorf("GET_CONTAINERS without show_nested: %+v, want the executor's container only", got)
	}
	during := p.objects(t)
	if during.NSHandles != before.NSHandles+1 || during.ContainerDirs != before.ContainerDirs+1 || during.IPAMFiles != before.IPAMFiles+1 ||
		during.Veths != before.Veths+1 || during.PortmapRules <= before.PortmapRules || during.MasqRules <= before.MasqRules {
		t.Errorf("network objects with one sandbox %+v, before %+v", during, before)
	}

	// An update naming the sandbox carries its status; one naming nothing, the executor's container's
	// and, having no network of its own, the agent's IP.
	p.executorUpdate(t, "t1", &mesos.ContainerStatus{ContainerID: &sandbox})
	ups := p.m.updates("t1")
	got := ups[len(ups)-1].ContainerStatus
	sandboxPID := sb.ContainerStatus.GetExecutorPID()
	want := &mesos.ContainerStatus{ContainerID: &sandbox, ExecutorPID: &sandboxPID, NetworkInfos: wantNI}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TaskStatus.container_status of an update naming the sandbox (-want +got):\n%s", diff)
	}
	agentIP := "127.0.0.1"
	execPID := ex.ContainerStatus.GetExecutorPID()
	want = &mesos.ContainerStatus{ContainerID: &mesos.ContainerID{Value: p.exec.ContainerID.Value}, ExecutorPID: &execPID,
		NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &agentIP}}}}}
	if diff := cmp.Diff(want, ups[0].ContainerStatus); diff != "" {
		t.Errorf("TaskStatus.container_status of the executor's own update (-want +got):\n%s", diff)
	}

	// Killing the sandbox: its child is destroyed before WAIT_CONTAINER of the sandbox answers.
	childPID := ch.ContainerStatus.GetExecutorPID()
	if st := p.killAndWait(t, sandbox); st != int32(syscall.SIGKILL) {
		t.Errorf("sandbox exit status %d, want SIGKILL", st)
	}
	if pidAlive(childPID) {
		t.Errorf("the child (pid %d) outlives its sandbox's WAIT_CONTAINER", childPID)
	}
	if st := p.wait(t, app); st != int32(syscall.SIGKILL) {
		t.Errorf("child exit status %d, want SIGKILL", st)
	}
	if after := p.objects(t); after != before {
		t.Errorf("network objects before %+v, after the sandbox %+v", before, after)
	}

	// The executor's order: the pod's container first, then the sandbox.
	sandbox2, code, body := p.launchSandbox(t, "web-1", nw.name)
	if code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of the second sandbox: %d %s", code, body)
	}
	app2 := p.launchChild(t, sandbox2, "app", "trap 'exit 0' TERM; echo ready; while :; do sleep 1; done")
	p.output(t, app2)
	if code, body := postCall(t, p.a, &agentapi.Call{Type: agentapi.Call_KILL_CONTAINER, KillContainer: &agentapi.Call_KillContainer{
		ContainerID: app2, Signal: ptrTo(int32(syscall.SIGTERM))}}); code != http.StatusOK {
		t.Fatalf("KILL_CONTAINER of the child: %d %s", code, body)
	}
	if st := p.wait(t, app2); st != 0 {
		t.Errorf("child exit status %d, want 0 (its TERM trap)", st)
	}
	if during := p.objects(t); during.NSHandles != before.NSHandles+1 {
		t.Errorf("the sandbox lost its network with its child: %+v", during)
	}
	p.killAndWait(t, sandbox2)
	if after := p.objects(t); after != before {
		t.Errorf("network objects before %+v, after the second sandbox %+v", before, after)
	}
}

// executorUpdate sends TASK_RUNNING for a task as the executor would (UPDATE on the executor API) with
// the given container_status, and waits until the master has it.
func (p *podAgent) executorUpdate(t testing.TB, task string, cs *mesos.ContainerStatus) {
	t.Helper()
	n := len(p.m.updates(task))
	st := mesos.TaskStatus{TaskID: mesos.TaskID{Value: task}, State: mesos.TASK_RUNNING.Enum(),
		Source: mesos.SOURCE_EXECUTOR.Enum(), UUID: newUUID(), ContainerStatus: cs}
	call := execcalls.Update(st)
	call.FrameworkID, call.ExecutorID = p.exec.FrameworkID, p.exec.Info.ExecutorID
	body, err := (&jsonpb.Marshaler{OrigName: true}).MarshalToString(call)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.a.Endpoint()+"/api/v1/executor", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("UPDATE: %d %s", resp.StatusCode, b)
	}
	waitFor(t, "the update at the master", func() bool { return len(p.m.updates(task)) > n })
}

// Killing a pod's sandbox destroys its containers before the sandbox ends (Mesos' destroy order), also
// without namespaces/pid, where the sandbox's pid namespace does not take them along: WAIT_CONTAINER of
// the sandbox answers once they are gone.
func TestPodSandboxKillDestroysItsContainersFirst(t *testing.T) {
	for i, tc := range []struct{ name, isolation string }{
		{"pid-namespaces", podIsolation}, {"no-pid-namespaces", "filesystem/linux,docker/runtime,network/cni"},
	} {
		isolation := tc.isolation
		t.Run(tc.name, func(t *testing.T) {
			nw := newPodNet(t, 181+i, nil)
			p := newPodAgent(t, nw, func(c *Config) { c.Isolation = isolation })
			before := p.objects(t)
			sandbox, code, body := p.launchSandbox(t, "db-0", nw.name)
			if code != http.StatusOK {
				t.Fatalf("LAUNCH_CONTAINER of the sandbox: %d %s", code, body)
			}
			app := p.launchChild(t, sandbox, "app", "echo ready; exec sleep 3600")
			side := p.launchChild(t, sandbox, "side", "echo ready; exec sleep 3600")
			p.output(t, app)
			p.output(t, side)
			var pids []uint32
			for _, c := range p.getContainers(t, true) {
				if c.ContainerStatus.GetContainerID().GetParent().GetValue() == sandbox.Value {
					pids = append(pids, c.ContainerStatus.GetExecutorPID())
				}
			}
			if len(pids) != 2 {
				t.Fatalf("GET_CONTAINERS lists %d containers in the sandbox, want 2", len(pids))
			}
			p.killAndWait(t, sandbox)
			for _, pid := range pids {
				if pidAlive(pid) {
					t.Fatalf("a container of the sandbox (pid %d) outlives the sandbox's WAIT_CONTAINER", pid)
				}
			}
			for _, id := range []mesos.ContainerID{app, side} {
				if st := p.wait(t, id); st != int32(syscall.SIGKILL) {
					t.Errorf("%s exit status %d, want SIGKILL", id.Value, st)
				}
			}
			if after := p.objects(t); after != before {
				t.Errorf("network objects before %+v, after %+v", before, after)
			}
		})
	}
}

// Agents sharing the host's network namespace each bind their pods' host ports on their own IP
// (PortMappingHostIP): two agents map the same host port 18080 to their pods' port 8080, and each
// agent's IP answers with its own pod.
func TestPortMappingHostIPPerAgent(t *testing.T) {
	var agents []*podAgent
	for i := 1; i <= 2; i++ {
		nw := newPodNet(t, 182+i, nil)
		ip := fmt.Sprintf("10.251.180.%d", i)
		if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", ip, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run() })
		p := newPodAgent(t, nw, func(c *Config) {
			c.ID = mesos.AgentID{Value: fmt.Sprintf("agent-S%d", i)}
			c.ListenAddress, c.PortMappingHostIP = ip+":0", ip
		})
		// The server is the sandbox itself: a container nested in it would be on the host's network.
		_, code, body := p.launchSandboxWith(t, fmt.Sprintf("web-%d", i), nw.name,
			fmt.Sprintf("mkdir -p www && echo agent-%d > www/index.html && echo ready && exec busybox httpd -f -p 8080 -h www", i),
			mesos.NetworkInfo_PortMapping{HostPort: 18080, ContainerPort: 8080, Protocol: ptrTo("tcp")})
		if code != http.StatusOK {
			t.Fatalf("agent %d: LAUNCH_CONTAINER of the sandbox: %d %s", i, code, body)
		}
		agents = append(agents, p)
	}
	for i, p := range agents {
		ip := fmt.Sprintf("10.251.180.%d", i+1)
		p.output(t, p.sandboxID(fmt.Sprintf("web-%d", i+1)))
		if got, want := httpGetRetry(t, "http://"+ip+":18080/"), fmt.Sprintf("agent-%d\n", i+1); got != want {
			t.Errorf("GET %s:18080 = %q, want %q (agent %d's pod)", ip, got, want, i+1)
		}
	}
}

// httpGetRetry fetches url, retrying while the server comes up.
func httpGetRetry(t testing.TB, url string) string {
	t.Helper()
	client := http.Client{Timeout: 2 * time.Second}
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

// A pod network the agent does not have, an exhausted address pool and a failing plugin fail
// LAUNCH_CONTAINER of the sandbox with 400 and Mesos' texts (the isolator's prepare or isolate
// failure), and leave nothing: no container, no namespace handle, veth, IPAM reservation or nftables
// rule.
func TestPodSandboxNetworkErrors(t *testing.T) {
	failing := t.TempDir()
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"code\":100,\"msg\":\"no luck\"}'; echo oops >&2; exit 1; fi\nexit 0\n"
	if err := os.WriteFile(filepath.Join(failing, "failing"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// One address: 10.244.185.10.
	nw := newPodNet(t, 185, map[string]string{"rangeStart": "10.244.185.10", "rangeEnd": "10.244.185.10"})
	half := newPodNet(t, 186, nil, map[string]any{"type": "failing"})
	if err := os.Rename(filepath.Join(half.confDir, half.name+".conflist"), filepath.Join(nw.confDir, half.name+".conflist")); err != nil {
		t.Fatal(err)
	}
	plugins := cniPlugins(t)
	p := newPodAgent(t, nw, func(c *Config) { c.NetworkCNIPluginsDir = plugins + ":" + failing })
	objects := func() [2]containerizer.NetworkCounts {
		t.Helper()
		h, err := containerizer.NetworkObjects(p.runtimeDir, half.ipamDir, half.subnet)
		if err != nil {
			t.Fatal(err)
		}
		return [2]containerizer.NetworkCounts{p.objects(t), h}
	}
	before := objects()
	first, code, body := p.launchSandbox(t, "first", nw.name)
	if code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of the first sandbox: %d %s", code, body)
	}
	withFirst := objects()

	exec := p.exec.ContainerID.Value
	for _, tc := range []struct{ name, pod, network, want string }{
		{"unknown network", "unknown", "no-such-net", "Unknown CNI network 'no-such-net'"},
		{"exhausted pool", "second", nw.name, "The CNI plugin '" + filepath.Join(plugins, "bridge") + "' failed to attach container " +
			exec + ".second-sandbox to CNI network '" + nw.name + "': stdout='{\n    \"code\": 999,\n    \"msg\": \"failed to allocate for range 0: " +
			"no IP addresses available in range set: 10.244.185.10-10.244.185.10\"\n}', stderr=''"},
		{"failing plugin", "half", half.name, "The CNI plugin '" + filepath.Join(failing, "failing") + "' failed to attach container " +
			exec + ".half-sandbox to CNI network '" + half.name + "': stdout='{\"code\":100,\"msg\":\"no luck\"}', stderr='oops'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, code, body := p.launchSandbox(t, tc.pod, tc.network,
				mesos.NetworkInfo_PortMapping{HostPort: 18185, ContainerPort: 80, Protocol: ptrTo("tcp")})
			if code != http.StatusBadRequest || body != tc.want {
				t.Fatalf("LAUNCH_CONTAINER = %d %q\nwant 400 %q", code, body, tc.want)
			}
			if code, _ := postCall(t, p.a, agentcalls.WaitContainer(id)); code != http.StatusNotFound {
				t.Errorf("WAIT_CONTAINER of the failed sandbox = %d, want 404", code)
			}
			if after := objects(); after != withFirst {
				t.Errorf("network objects (network, failing network) before %+v, after %+v", withFirst, after)
			}
		})
	}
	if n := len(p.getContainers(t, true)); n != 2 {
		t.Errorf("GET_CONTAINERS lists %d containers, want the executor's and the first sandbox", n)
	}
	p.killAndWait(t, first)
	if after := objects(); after != before {
		t.Errorf("network objects before %+v, after %+v", before, after)
	}
}

// 50 pods (a sandbox with a host port and a container in busybox) launched and killed, half the
// executor's way (the container, then the sandbox), half by killing the sandbox, leave the host's
// network objects as they were.
func TestPodSandboxChurnLeavesNothing(t *testing.T) {
	nw := newPodNet(t, 187, nil)
	p := newPodAgent(t, nw, nil)
	before := p.objects(t)
	mounts := len(mountsUnder(t, p.a.cfg.WorkDir))
	for i := 0; i < 50; i++ {
		pod := fmt.Sprintf("churn-%d", i)
		sandbox, code, body := p.launchSandbox(t, pod, nw.name,
			mesos.NetworkInfo_PortMapping{HostPort: uint32(31000 + i), ContainerPort: 80, Protocol: ptrTo("tcp")})
		if code != http.StatusOK {
			t.Fatalf("pod %d: LAUNCH_CONTAINER of the sandbox: %d %s", i, code, body)
		}
		app := p.launchChild(t, sandbox, "app", "exec sleep 3600")
		if i%2 == 0 {
			p.killAndWait(t, app)
		}
		p.killAndWait(t, sandbox)
		p.wait(t, app)
		for _, id := range []mesos.ContainerID{app, sandbox} {
			if code, body := postCall(t, p.a, agentcalls.RemoveContainer(id)); code != http.StatusOK {
				t.Fatalf("REMOVE_CONTAINER %s: %d %s", id.Value, code, body)
			}
		}
	}
	if after := p.objects(t); after != before {
		t.Errorf("network objects before %+v, after 50 pods %+v", before, after)
	}
	if n := len(mountsUnder(t, p.a.cfg.WorkDir)); n != mounts {
		t.Errorf("%d mounts under the work dir before, %d after", mounts, n)
	}
}

// BenchmarkPodSandbox is one pod's network life on an isolating agent, as the executor drives it:
// LAUNCH_CONTAINER of the sandbox (own namespaces, CNI ADD on bridge + portmap with a host port),
// LAUNCH_CONTAINER of a busybox container nested in it, then KILL_CONTAINER/WAIT_CONTAINER of the
// container and of the sandbox (CNI DEL) and REMOVE_CONTAINER of both.
func BenchmarkPodSandbox(b *testing.B) {
	nw := newPodNet(b, 188, nil)
	p := newPodAgent(b, nw, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sandbox, code, body := p.launchSandbox(b, fmt.Sprintf("bench-%d", i), nw.name,
			mesos.NetworkInfo_PortMapping{HostPort: uint32(31000 + i%1000), ContainerPort: 80, Protocol: ptrTo("tcp")})
		if code != http.StatusOK {
			b.Fatalf("LAUNCH_CONTAINER of the sandbox: %d %s", code, body)
		}
		app := p.launchChild(b, sandbox, "app", "exec sleep 3600")
		p.killAndWait(b, app)
		p.killAndWait(b, sandbox)
		for _, id := range []mesos.ContainerID{app, sandbox} {
			if code, body := postCall(b, p.a, agentcalls.RemoveContainer(id)); code != http.StatusOK {
				b.Fatalf("REMOVE_CONTAINER: %d %s", code, body)
			}
		}
	}
}

// The network/cni isolator exists only when --isolation names it, as Mesos builds isolators from
// --isolation: with the CNI flags alone the agent makes nothing under its runtime dir and a container
// naming a network gets no address of it.
func TestNetworkCNIIsolatorOnlyWhenNamed(t *testing.T) {
	nw := newPodNet(t, 189, nil)
	p := newPodAgent(t, nw, func(c *Config) { c.Isolation = "filesystem/linux,docker/runtime,namespaces/pid" })
	if _, err := os.Stat(filepath.Join(p.runtimeDir, "isolators/network/cni")); !os.IsNotExist(err) {
		t.Errorf("the network/cni isolator's root directory exists without network/cni in --isolation: %v", err)
	}
	sandbox, code, body := p.launchSandbox(t, "host-0", nw.name)
	if code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
	}
	for _, c := range p.getContainers(t, true) {
		if c.ContainerID.Value == sandbox.Value && len(c.ContainerStatus.NetworkInfos) != 0 {
			t.Errorf("the sandbox has networks without the isolator: %+v", c.ContainerStatus.NetworkInfos)
		}
	}
	p.killAndWait(t, sandbox)

	q := newPodAgent(t, nw, nil)
	if _, err := os.Stat(filepath.Join(q.runtimeDir, "isolators/network/cni")); err != nil {
		t.Errorf("with network/cni in --isolation: %v", err)
	}
}

// A standalone container naming a network (the pod sandbox as kubemesos' lead planned it) is on the
// host's network, as on Mesos, whose network/cni isolator does not support standalone containers:
// the launch succeeds, no CNI object is made, GET_CONTAINERS reports no network for it or for the
// container nested in it, and both are in the host's network namespace.
func TestStandaloneContainerGetsNoCNINetwork(t *testing.T) {
	nw := newPodNet(t, 190, nil)
	p := newPodAgent(t, nw, nil)
	before := p.objects(t)
	network, hostname := nw.name, "web-0"
	sa := mesos.ContainerID{Value: "kubemesos-pod-u2"}
	ci := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Hostname: &hostname,
		NetworkInfos: []mesos.NetworkInfo{{Name: &network}}}
	if code, body := postCall(t, p.a, agentcalls.LaunchContainer(sa, shell("readlink /proc/self/ns/net; exec sleep 3600"), ci, nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
	}
	app := childID(sa, "app")
	if code, body := postCall(t, p.a, agentcalls.LaunchContainer(app, shell("readlink /proc/self/ns/net; exec sleep 3600"), nil, nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of its child: %d %s", code, body)
	}
	yes := true
	code, body := postCall(t, p.a, &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS,
		GetContainers: &agentapi.Call_GetContainers{ShowNested: &yes, ShowStandalone: &yes}})
	var r agentapi.Response
	if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil {
		t.Fatalf("GET_CONTAINERS: %d %s", code, body)
	}
	seen := 0
	for _, c := range r.GetContainers.Containers {
		if c.ContainerID.Value == sa.Value || c.ContainerID.Value == app.Value {
			seen++
			if len(c.ContainerStatus.NetworkInfos) != 0 {
				t.Errorf("%s reports networks %+v", c.ContainerID.Value, c.ContainerStatus.NetworkInfos)
			}
		}
	}
	if seen != 2 {
		t.Errorf("GET_CONTAINERS: %d of the standalone container and its child", seen)
	}
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	for _, dir := range []string{filepath.Join(p.a.cfg.WorkDir, "containers", sa.Value), filepath.Join(p.a.cfg.WorkDir, "containers", sa.Value, "containers", "app")} {
		var out []byte
		waitFor(t, dir+"/stdout", func() bool {
			out, _ = os.ReadFile(filepath.Join(dir, "stdout"))
			return strings.HasSuffix(string(out), "\n")
		})
		if string(out) != hostNet+"\n" {
			t.Errorf("%s printed %q, want the host's network namespace %s", dir, out, hostNet)
		}
	}
	if during := p.objects(t); during != before {
		t.Errorf("network objects with the standalone container %+v, before %+v", during, before)
	}
	if code, body := postCall(t, p.a, agentcalls.KillContainer(sa)); code != http.StatusOK {
		t.Fatalf("KILL_CONTAINER: %d %s", code, body)
	}
	waitFor(t, "the standalone container's end", func() bool {
		p.a.mu.Lock()
		defer p.a.mu.Unlock()
		return p.a.containers[sa.Value] == nil
	})
}
