package agent

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
)

// GET_FLAGS reports network/cni's flags (an optional one only when set) and --runtime_dir, which has
// Mesos' default.
func TestGetFlagsNetwork(t *testing.T) {
	flags := func(a *Agent) map[string]string {
		t.Helper()
		code, body := postCall(t, a, &agentapi.Call{Type: agentapi.Call_GET_FLAGS})
		var r agentapi.Response
		if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil {
			t.Fatalf("GET_FLAGS: %d %s", code, body)
		}
		return flagMap(r.GetFlags.Flags)
	}
	got := flags(newTestAgent(t, &fakeMaster{}, nil))
	if got["runtime_dir"] != DefaultRuntimeDir() {
		t.Errorf("runtime_dir = %q, want Mesos' default %q", got["runtime_dir"], DefaultRuntimeDir())
	}
	for _, f := range []string{"network_cni_config_dir", "network_cni_plugins_dir"} {
		if _, ok := got[f]; ok {
			t.Errorf("unset %s reported", f)
		}
	}
	got = flags(newTestAgent(t, &fakeMaster{}, func(c *Config) {
		c.NetworkCNIConfigDir, c.NetworkCNIPluginsDir, c.RuntimeDir = "/etc/cni/net.d", "/opt/cni/bin", "/run/agent-1"
		c.PortMappingHostIP = "10.251.0.1"
	}))
	want := map[string]string{"network_cni_config_dir": "/etc/cni/net.d", "network_cni_plugins_dir": "/opt/cni/bin", "runtime_dir": "/run/agent-1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if k == "port_mapping_host_ip" || k == "PortMappingHostIP" {
			t.Errorf("the simulator's PortMappingHostIP is reported as a Mesos flag")
		}
	}
}

// Mesos' default --runtime_dir: /var/run/mesos for root, else below the temporary directory.
func TestDefaultRuntimeDir(t *testing.T) {
	want := filepath.Join(os.TempDir(), "mesos", "runtime")
	if os.Geteuid() == 0 {
		want = "/var/run/mesos"
	}
	if got := DefaultRuntimeDir(); got != want {
		t.Errorf("DefaultRuntimeDir() = %q, want %q", got, want)
	}
}

func TestPortMappingHostIPMustBeAnIP(t *testing.T) {
	_, err := New(Config{ID: mustID("a"), WorkDir: t.TempDir(), Master: &fakeMaster{}, PortMappingHostIP: "agent-1"})
	if err == nil || err.Error() != `agent a: PortMappingHostIP "agent-1" is not an IP address` {
		t.Errorf("New: %v", err)
	}
}

// In process mode (no isolators) GET_CONTAINERS has Mesos' shape too: the executors' containers with
// their framework, executor ID and name, nested ones only with show_nested (their own value as
// container_id, the chain in container_status), each with its pid and resource statistics whose limits
// are the LAUNCH_CONTAINER resources; a task's update carries the container's status with the agent's
// IP, as no isolator gave it a network.
func TestGetContainersAndTaskContainerStatusInProcessMode(t *testing.T) {
	f := newNestedFixture(t)
	c1 := f.child("c1")
	res := mustResources(t, "cpus:0.5;mem:64")
	limits := map[string]mesos.Value_Scalar{"mem": {Value: 128}}
	call := agentcalls.LaunchContainer(c1, shell("exec sleep 3600"), nil, res)
	call.LaunchContainer.Limits = limits
	if code, body := postCall(t, f.a, call); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
	}
	get := func(nested bool) []agentapi.Response_GetContainers_Container {
		t.Helper()
		code, body := postCall(t, f.a, &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS, GetContainers: &agentapi.Call_GetContainers{ShowNested: &nested}})
		var r agentapi.Response
		if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil || r.Type != agentapi.Response_GET_CONTAINERS {
			t.Fatalf("GET_CONTAINERS: %d %s", code, body)
		}
		return r.GetContainers.Containers
	}
	if got := get(false); len(got) != 1 || got[0].ContainerID.Value != f.parent.Value || got[0].GetExecutorID().GetValue() != "e" ||
		got[0].GetFrameworkID().GetValue() != "fw-1" || got[0].ExecutorName == nil {
		t.Fatalf("GET_CONTAINERS = %+v, want the executor's container only", got)
	}
	all := get(true)
	if len(all) != 2 {
		t.Fatalf("GET_CONTAINERS show_nested = %+v", all)
	}
	nested := all[1]
	if nested.ContainerID.Value != "c1" || nested.ContainerID.Parent != nil || nested.FrameworkID != nil || nested.ExecutorID != nil {
		t.Errorf("nested entry %+v", nested)
	}
	if diff := cmp.Diff(c1, *nested.ContainerStatus.ContainerID); diff != "" {
		t.Errorf("container_status.container_id (-want +got):\n%s", diff)
	}
	if !pidAlive(nested.ContainerStatus.GetExecutorPID()) || len(nested.ContainerStatus.NetworkInfos) != 0 {
		t.Errorf("nested container_status %+v: want its live pid and no network_infos", nested.ContainerStatus)
	}
	st := nested.ResourceStatistics
	if st == nil || st.Timestamp == 0 || st.GetCPUsSoftLimit() != 0.5 || st.CPUsLimit != nil ||
		st.GetMemSoftLimitBytes() != 64<<20 || st.GetMemLimitBytes() != 128<<20 {
		t.Errorf("resource_statistics %+v: want the requests as soft limits, the mem limit as hard limit", st)
	}

	// The hook executor's update of t1 (TASK_RUNNING): its container's status and the agent's IP.
	ups := f.m.updates("t1")
	ip := "127.0.0.1"
	want := &mesos.ContainerStatus{ContainerID: &mesos.ContainerID{Value: f.parent.Value},
		NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}}}}}
	if diff := cmp.Diff(want, ups[0].ContainerStatus); diff != "" {
		t.Errorf("TASK_RUNNING's container_status (-want +got):\n%s", diff)
	}
	postCall(t, f.a, agentcalls.KillContainer(c1))
	postCall(t, f.a, agentcalls.WaitContainer(c1))
	if got := get(true); len(got) != 1 {
		t.Errorf("GET_CONTAINERS lists a terminated container: %+v", got)
	}
}

func pidAlive(pid uint32) bool {
	return pid > 0 && syscall.Kill(int(pid), 0) == nil
}

// An agent's own update for a task that never reached its executor has no container_status.
func TestAgentUpdateOfAQueuedTaskHasNoContainerStatus(t *testing.T) {
	m := &fakeMaster{autoAck: true}
	a := newTestAgent(t, m, nil)
	never := "sleep 1000" // never subscribes
	a.Launch(testFramework(false), &mesos.ExecutorInfo{ExecutorID: mesos.ExecutorID{Value: "slow"}, Command: &mesos.CommandInfo{Value: &never}},
		[]mesos.TaskInfo{dataTask("q", "wait")}, false)
	a.Kill(mesos.FrameworkID{Value: "fw-1"}, mesos.TaskID{Value: "q"}, nil)
	waitFor(t, "the kill's update", func() bool { return len(m.updates("q")) > 0 })
	if cs := m.updates("q")[0].ContainerStatus; cs != nil {
		t.Errorf("container_status %+v of an update for a task that never reached its executor", cs)
	}
}

// In process mode too, a nested container's end destroys the containers nested in it before its
// WAIT_CONTAINER answers (they are separate process groups there).
func TestNestedContainersEndWithTheirParentInProcessMode(t *testing.T) {
	f := newNestedFixture(t)
	parent := f.child("sandbox")
	child := mesos.ContainerID{Value: "app", Parent: &parent}
	for _, id := range []mesos.ContainerID{parent, child} {
		if code, body := postCall(t, f.a, agentcalls.LaunchContainer(id, shell("exec sleep 3600"), nil, nil)); code != http.StatusOK {
			t.Fatalf("LAUNCH_CONTAINER %s: %d %s", id.Value, code, body)
		}
	}
	var pid uint32
	code, body := postCall(t, f.a, &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS, GetContainers: &agentapi.Call_GetContainers{ShowNested: ptrTo(true)}})
	var r agentapi.Response
	if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil {
		t.Fatalf("GET_CONTAINERS: %d %s", code, body)
	}
	for _, c := range r.GetContainers.Containers {
		if c.ContainerID.Value == "app" {
			pid = c.ContainerStatus.GetExecutorPID()
		}
	}
	if !pidAlive(pid) {
		t.Fatalf("no live pid for the child: %+v", r.GetContainers.Containers)
	}
	postCall(t, f.a, agentcalls.KillContainer(parent))
	if code, body := postCall(t, f.a, agentcalls.WaitContainer(parent)); code != http.StatusOK {
		t.Fatalf("WAIT_CONTAINER: %d %s", code, body)
	}
	if pidAlive(pid) {
		t.Fatalf("the child (pid %d) outlives its parent's WAIT_CONTAINER", pid)
	}
	code, body = postCall(t, f.a, agentcalls.WaitContainer(child))
	if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil || r.GetWaitContainer().GetExitStatus() != int32(syscall.SIGKILL) {
		t.Errorf("WAIT_CONTAINER of the child: %d %s, want SIGKILL", code, body)
	}
}
