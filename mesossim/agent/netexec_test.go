//go:build linux

package agent

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// A pod's sandbox executor as design P runs it: a custom executor whose ExecutorInfo.container names
// the pod network, so Mesos launches the executor's own (root) container on it, and the pod's
// containers are nested one level under that container by another executor of the framework.

// addLoopbackIP gives the host an address of the agent's own (local-up does the same per agent): an
// executor in a network namespace of its own reaches the agent there, through the bridge's gateway.
func addLoopbackIP(t testing.TB, ip string) {
	t.Helper()
	if out, err := exec.Command("ip", "addr", "replace", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr replace %s: %v: %s", ip, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "addr", "del", ip+"/32", "dev", "lo").Run() })
}

// podExecutorInfo is a sandbox executor: the test executor in a container on network, with hostname
// and port mappings.
func podExecutorInfo(t testing.TB, id, network, hostname string, ports ...mesos.NetworkInfo_PortMapping) *mesos.ExecutorInfo {
	info := processExecutor(id, nil)
	info.Type = mesos.ExecutorInfo_CUSTOM
	info.Resources = mustResources(t, "cpus:0.01;mem:32")
	info.Container = &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), Hostname: &hostname,
		NetworkInfos: []mesos.NetworkInfo{{Name: &network, PortMappings: ports}}}
	return info
}

func (p *podAgent) executorNamed(id string) (ExecutorState, bool) {
	for _, e := range p.a.Executors() {
		if e.Info.ExecutorID.Value == id {
			return e, true
		}
	}
	return ExecutorState{}, false
}

func memoryCgroup(t testing.TB, pid uint32) string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			return parts[2]
		}
	}
	t.Fatalf("pid %d has no memory cgroup", pid)
	return ""
}

// An executor whose ExecutorInfo.container names a CNI network runs in a network namespace of its own
// (network/cni in isolating mode, as Mesos launches an executor's container): its address of the pod
// network, its hostname, LIBPROCESS_IP=0.0.0.0 (the isolator's, above the agent's), its port mappings
// bound to the agent's PortMappingHostIP. Its tasks' updates carry its network_infos (no agent IP
// added) and GET_CONTAINERS lists its container with its executor_id and network_infos. A container
// that another executor of the framework nests under it (LAUNCH_CONTAINER, parent = its ContainerID)
// joins its network and UTS namespaces, may have resources, limits and cgroups of its own (depth 1),
// and serves the executor's host port. When the executor exits, its container's nested containers are
// destroyed and the network is released: nothing is left.
func TestExecutorContainerOnThePodNetwork(t *testing.T) {
	nw := newPodNet(t, 191, nil)
	agentIP := "10.251.181.1"
	addLoopbackIP(t, agentIP)
	p := newPodAgent(t, nw, func(c *Config) {
		c.Isolation = podIsolation + ",cgroups/mem"
		c.ListenAddress, c.PortMappingHostIP = agentIP+":0", agentIP
	})
	before := p.objects(t)
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	fw := testFramework(false)

	ports := []mesos.NetworkInfo_PortMapping{{HostPort: 18191, ContainerPort: 8080, Protocol: ptrTo("tcp")}}
	info := podExecutorInfo(t, "kubemesos-pod-u1", nw.name, "web-0", ports...)
	sandboxTask := dataTask("sandbox-u1", "wait")
	sandboxTask.Resources = mustResources(t, "cpus:0.1;mem:64")
	p.a.Launch(fw, info, []mesos.TaskInfo{sandboxTask}, false)
	waitFor(t, "the sandbox task running", func() bool { return len(p.m.states("sandbox-u1")) > 0 })
	ex, ok := p.executorNamed("kubemesos-pod-u1")
	if !ok {
		t.Fatal("the sandbox executor is not running")
	}
	execCID := mesos.ContainerID{Value: ex.ContainerID.Value}

	running := p.m.updates("sandbox-u1")[0]
	if running.GetState() != mesos.TASK_RUNNING || running.ContainerStatus == nil {
		t.Fatalf("first update %+v: want TASK_RUNNING with container_status", running)
	}
	podIP := ipOf(running.ContainerStatus.NetworkInfos)
	if !nw.subnet.Contains(net.ParseIP(podIP)) {
		t.Fatalf("TASK_RUNNING container_status %+v: no address of the pod network %s", running.ContainerStatus, nw.subnet)
	}
	wantNI := []mesos.NetworkInfo{{
		Name:         &nw.name,
		IPAddresses:  []mesos.NetworkInfo_IPAddress{{Protocol: mesos.IPv4.Enum(), IPAddress: &podIP}},
		PortMappings: ports,
	}}
	execPID := running.ContainerStatus.GetExecutorPID()
	want := &mesos.ContainerStatus{ContainerID: &execCID, ExecutorPID: &execPID, NetworkInfos: wantNI}
	if diff := cmp.Diff(want, running.ContainerStatus); diff != "" {
		t.Errorf("TASK_RUNNING container_status (-want +got):\n%s", diff)
	}

	// What the executor sees from inside: its hostname and network namespace, its environment.
	p.a.Launch(fw, info, []mesos.TaskInfo{dataTask("netns-u1", "netns")}, false)
	p.a.Launch(fw, info, []mesos.TaskInfo{dataTask("env-u1", "env")}, false)
	waitFor(t, "the probe tasks finished", func() bool { return len(p.m.states("netns-u1")) == 2 && len(p.m.states("env-u1")) == 2 })
	var ns, env map[string]string
	_ = json.Unmarshal(p.m.updates("netns-u1")[1].Data, &ns)
	_ = json.Unmarshal(p.m.updates("env-u1")[1].Data, &env)
	if ns["hostname"] != "web-0" || ns["net"] == "" || ns["net"] == hostNet {
		t.Errorf("the executor's hostname and network namespace %v: want web-0 and not the host's %s", ns, hostNet)
	}
	if env["LIBPROCESS_IP"] != "0.0.0.0" || env["MESOS_AGENT_ENDPOINT"] != p.a.Endpoint() {
		t.Errorf("executor environment LIBPROCESS_IP=%q MESOS_AGENT_ENDPOINT=%q: want 0.0.0.0 and %s",
			env["LIBPROCESS_IP"], env["MESOS_AGENT_ENDPOINT"], p.a.Endpoint())
	}

	var podEntry *agentapi.Response_GetContainers_Container
	listed := p.getContainers(t, false)
	for i := range listed {
		if listed[i].GetExecutorID().GetValue() == "kubemesos-pod-u1" {
			podEntry = &listed[i]
		}
	}
	if podEntry == nil || len(listed) != 2 {
		t.Fatalf("GET_CONTAINERS %+v: want the kubelet executor's and the sandbox executor's containers", listed)
	}
	if podEntry.ContainerID.Value != execCID.Value || podEntry.GetFrameworkID().GetValue() != "fw-1" || podEntry.ContainerStatus == nil {
		t.Fatalf("sandbox executor entry %+v", podEntry)
	}
	if diff := cmp.Diff(wantNI, podEntry.ContainerStatus.NetworkInfos); diff != "" {
		t.Errorf("GET_CONTAINERS network_infos of the sandbox executor (-want +got):\n%s", diff)
	}
	if during := p.objects(t); during.NSHandles != before.NSHandles+1 || during.IPAMFiles != before.IPAMFiles+1 ||
		during.Veths != before.Veths+1 || during.PortmapRules <= before.PortmapRules {
		t.Errorf("network objects with the sandbox executor %+v, before %+v", during, before)
	}

	// The pod's container, nested under the sandbox executor's container at depth 1 with cgroups of
	// its own (on the host's filesystem: the namespaces do not depend on an image).
	app := mesos.ContainerID{Value: "u1-app-0", Parent: &execCID}
	no := false
	own := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}
	cmd := "hostname; readlink /proc/self/ns/net; mkdir -p www && echo pod-u1 > www/index.html && echo ready && exec busybox httpd -f -p 8080 -h www"
	if code, body := postCall(t, p.a, &agentapi.Call{Type: agentapi.Call_LAUNCH_CONTAINER, LaunchContainer: &agentapi.Call_LaunchContainer{
		ContainerID: app, Command: shell(cmd), Container: own, Resources: mustResources(t, "cpus:0.1;mem:64"),
		// Room for the launch helper: in this test it is the race-instrumented test binary (two
		// instances while a pid namespace is joined), which peaked at 37 MB, so 48 MB was OOM-killed
		// under load before the command printed anything (CI's flake).
		Limits: map[string]mesos.Value_Scalar{"mem": {Value: 128}}}}); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER under the sandbox executor: %d %s", code, body)
	}
	appDir := filepath.Join(ex.Directory, "containers", app.Value)
	var out string
	// On a timeout, say what the container and the agent knew (a flake seen once under make test's load).
	t.Cleanup(func() {
		if t.Failed() {
			errb, _ := os.ReadFile(filepath.Join(appDir, "stderr"))
			t.Logf("pod container stdout %q stderr %q; %s", out, errb, p.a.describeContainer(app))
		}
	})
	waitFor(t, "the pod container's output", func() bool {
		b, _ := os.ReadFile(filepath.Join(appDir, "stdout"))
		out = string(b)
		return strings.Contains(out, "ready\n")
	})
	if want := "web-0\n" + ns["net"] + "\nready\n"; out != want {
		t.Errorf("the pod container printed %q, want the sandbox executor's hostname and network namespace %q", out, want)
	}
	if got, want := httpGetRetry(t, "http://"+agentIP+":18191/"), "pod-u1\n"; got != want {
		t.Errorf("GET %s:18191 = %q, want %q (the pod container, through the sandbox executor's port mapping)", agentIP, got, want)
	}
	var appPID uint32
	for _, c := range p.getContainers(t, true) {
		if c.ContainerID.Value == app.Value {
			appPID = c.ContainerStatus.GetExecutorPID()
			if diff := cmp.Diff(wantNI, c.ContainerStatus.NetworkInfos); diff != "" {
				t.Errorf("the pod container's network_infos, want the sandbox executor's (-want +got):\n%s", diff)
			}
		}
	}
	if !pidAlive(appPID) {
		t.Fatalf("GET_CONTAINERS show_nested: no live pod container (pid %d)", appPID)
	}
	appCg, execCg := memoryCgroup(t, appPID), memoryCgroup(t, execPID)
	if appCg == execCg || !strings.HasPrefix(appCg, execCg+"/") {
		t.Errorf("the pod container's memory cgroup %s: want one of its own under the executor's %s", appCg, execCg)
	}
	limit, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", appCg, "memory.limit_in_bytes"))
	if got := strings.TrimSpace(string(limit)); got != strconv.Itoa(128<<20) {
		t.Errorf("the pod container's memory limit %q, want its limit of 128 MB", got)
	}

	// The executor's end (SHUTDOWN): the pod's container goes first, then the network.
	p.a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "kubemesos-pod-u1"})
	waitFor(t, "the sandbox executor's end", func() bool {
		for _, c := range p.m.all("exited") {
			if c.ExecutorID == "kubemesos-pod-u1" {
				return true
			}
		}
		return false
	})
	if pidAlive(appPID) {
		t.Errorf("the pod container (pid %d) outlives its executor", appPID)
	}
	if diff := cmp.Diff([]string{"TASK_RUNNING", "TASK_KILLED"}, p.m.states("sandbox-u1")); diff != "" {
		t.Errorf("sandbox task states (-want +got):\n%s", diff)
	}
	if _, ok := p.executorNamed("kubemesos-pod-u1"); ok {
		t.Error("the sandbox executor is still listed")
	}
	if code, _ := postCall(t, p.a, agentcalls.WaitContainer(app)); code != http.StatusNotFound {
		t.Errorf("WAIT_CONTAINER of the pod container after its executor's end = %d, want 404", code)
	}
	if after := p.objects(t); after != before {
		t.Errorf("network objects before %+v, after the sandbox executor %+v", before, after)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", appCg)); !os.IsNotExist(err) {
		t.Errorf("the pod container's cgroup %s is left: %v", appCg, err)
	}
}

// An executor whose network cannot be set up (unknown network, exhausted address pool, failing
// plugin) fails to launch as Slave::executorLaunched reports it: its tasks get TASK_FAILED from the
// agent with REASON_CONTAINER_LAUNCH_FAILED and "Failed to launch container: <the isolator's text>",
// the executor is removed (the master hears of its end) and nothing of the network is left.
func TestExecutorContainerNetworkFailures(t *testing.T) {
	failing := t.TempDir()
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{\"code\":100,\"msg\":\"no luck\"}'; echo oops >&2; exit 1; fi\nexit 0\n"
	if err := os.WriteFile(filepath.Join(failing, "failing"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// One address: 10.244.192.10.
	nw := newPodNet(t, 192, map[string]string{"rangeStart": "10.244.192.10", "rangeEnd": "10.244.192.10"})
	half := newPodNet(t, 193, nil, map[string]any{"type": "failing"})
	if err := os.Rename(filepath.Join(half.confDir, half.name+".conflist"), filepath.Join(nw.confDir, half.name+".conflist")); err != nil {
		t.Fatal(err)
	}
	agentIP := "10.251.181.2"
	addLoopbackIP(t, agentIP)
	plugins := cniPlugins(t)
	p := newPodAgent(t, nw, func(c *Config) {
		c.NetworkCNIPluginsDir = plugins + ":" + failing
		c.ListenAddress, c.PortMappingHostIP = agentIP+":0", agentIP
	})
	fw := testFramework(false)
	before := p.objects(t)
	p.a.Launch(fw, podExecutorInfo(t, "kubemesos-pod-first", nw.name, "first"), []mesos.TaskInfo{dataTask("sandbox-first", "wait")}, false)
	waitFor(t, "the first sandbox running", func() bool { return len(p.m.states("sandbox-first")) > 0 })
	withFirst := p.objects(t)
	halfBefore, err := containerizerObjects(p.runtimeDir, half)
	if err != nil {
		t.Fatal(err)
	}

	uuid := `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
	for _, tc := range []struct{ name, network, want string }{
		{"unknown network", "no-such-net", regexp.QuoteMeta("Failed to launch container: Unknown CNI network 'no-such-net'")},
		{"exhausted pool", nw.name, regexp.QuoteMeta("Failed to launch container: The CNI plugin '"+filepath.Join(plugins, "bridge")+"' failed to attach container ") +
			uuid + regexp.QuoteMeta(" to CNI network '"+nw.name+"': stdout='{\n    \"code\": 999,\n    \"msg\": \"failed to allocate for range 0: "+
			"no IP addresses available in range set: 10.244.192.10-10.244.192.10\"\n}', stderr=''")},
		{"failing plugin", half.name, regexp.QuoteMeta("Failed to launch container: The CNI plugin '"+filepath.Join(failing, "failing")+"' failed to attach container ") +
			uuid + regexp.QuoteMeta(" to CNI network '"+half.name+"': stdout='{\"code\":100,\"msg\":\"no luck\"}', stderr='oops'")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "kubemesos-pod-" + strings.ReplaceAll(tc.name, " ", "-")
			task := "sandbox-" + id
			exited := len(p.m.all("exited"))
			p.a.Launch(fw, podExecutorInfo(t, id, tc.network, "pod", mesos.NetworkInfo_PortMapping{HostPort: 18192, ContainerPort: 80, Protocol: ptrTo("tcp")}),
				[]mesos.TaskInfo{dataTask(task, "wait")}, false)
			waitFor(t, "the task's update", func() bool { return len(p.m.updates(task)) > 0 })
			u := p.m.updates(task)[0]
			if u.GetState() != mesos.TASK_FAILED || u.GetSource() != mesos.SOURCE_AGENT || u.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED ||
				!regexp.MustCompile("^"+tc.want+"$").MatchString(u.GetMessage()) {
				t.Errorf("update %s %s %s %q\nwant TASK_FAILED SOURCE_AGENT REASON_CONTAINER_LAUNCH_FAILED matching %q",
					u.GetState(), u.GetSource(), u.GetReason(), u.GetMessage(), tc.want)
			}
			waitFor(t, "the master told of the executor's end", func() bool { return len(p.m.all("exited")) > exited })
			if got := p.m.all("exited")[exited]; got.ExecutorID != id {
				t.Errorf("ExecutorTerminated for %s, want %s", got.ExecutorID, id)
			}
			if _, ok := p.executorNamed(id); ok {
				t.Error("the executor is still listed")
			}
			if n := len(p.getContainers(t, true)); n != 2 {
				t.Errorf("GET_CONTAINERS lists %d containers, want the kubelet executor's and the first sandbox executor's", n)
			}
			if after := p.objects(t); after != withFirst {
				t.Errorf("network objects before %+v, after %+v", withFirst, after)
			}
			if h, err := containerizerObjects(p.runtimeDir, half); err != nil || h != halfBefore {
				t.Errorf("the failing network's objects before %+v, after %+v (%v)", halfBefore, h, err)
			}
		})
	}
	p.a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "kubemesos-pod-first"})
	waitFor(t, "the first sandbox killed", func() bool { return len(p.m.states("sandbox-first")) == 2 })
	waitFor(t, "the network released", func() bool { return p.objects(t) == before })
}

func containerizerObjects(runtimeDir string, n *podNet) (containerizer.NetworkCounts, error) {
	return containerizer.NetworkObjects(runtimeDir, n.ipamDir, n.subnet)
}

// BenchmarkSandboxExecutor is one pod's network life under design P on an isolating agent: the
// sandbox executor launched in a container on bridge + portmap with a host port (CNI ADD) up to its
// task's TASK_RUNNING, a container nested under it by LAUNCH_CONTAINER, then SHUTDOWN of the
// executor until the agent has destroyed both (CNI DEL) and told the master.
func BenchmarkSandboxExecutor(b *testing.B) {
	nw := newPodNet(b, 194, nil)
	agentIP := "10.251.181.3"
	addLoopbackIP(b, agentIP)
	p := newPodAgent(b, nw, func(c *Config) { c.ListenAddress, c.PortMappingHostIP = agentIP+":0", agentIP })
	fw := testFramework(false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := "kubemesos-pod-b" + strconv.Itoa(i)
		task := "sandbox-b" + strconv.Itoa(i)
		exited := len(p.m.all("exited"))
		p.a.Launch(fw, podExecutorInfo(b, id, nw.name, "bench",
			mesos.NetworkInfo_PortMapping{HostPort: uint32(31000 + i%1000), ContainerPort: 80, Protocol: ptrTo("tcp")}),
			[]mesos.TaskInfo{dataTask(task, "wait")}, false)
		waitFor(b, "the sandbox task running", func() bool { return len(p.m.states(task)) > 0 })
		ex, ok := p.executorNamed(id)
		if !ok {
			b.Fatalf("sandbox executor %s: %v", id, p.m.updates(task))
		}
		parent := mesos.ContainerID{Value: ex.ContainerID.Value}
		if code, body := postCall(b, p.a, agentcalls.LaunchContainer(mesos.ContainerID{Value: "app", Parent: &parent},
			shell("exec sleep 3600"), nil, nil)); code != http.StatusOK {
			b.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
		}
		p.a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: id})
		waitFor(b, "the sandbox executor's end", func() bool { return len(p.m.all("exited")) > exited })
	}
}
