package agent

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	agentapi "github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
)

// LAUNCH_CONTAINER (and LAUNCH_NESTED_CONTAINER[_SESSION]) are validated as validation.cpp does, with
// its texts and 400: a container nested at the second level or deeper may not have resources, limits
// or cgroups of its own; a standalone one may not ask to share cgroups, nor use reserved, persistent
// or revocable resources; container IDs follow validateContainerId.
func TestLaunchContainerValidation(t *testing.T) {
	a := newTestAgent(t, &fakeMaster{autoAck: true}, nil)
	root := mesos.ContainerID{Value: "root"}
	child := mesos.ContainerID{Value: "child", Parent: &root}
	grandchild := mesos.ContainerID{Value: "grandchild", Parent: &child}
	yes, no := true, false
	linux := func(share *bool) *mesos.ContainerInfo {
		return &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{ShareCgroups: share}}
	}
	cpus := mustResources(t, "cpus:0.1")
	launch := func(id mesos.ContainerID, ci *mesos.ContainerInfo, res []mesos.Resource, limits map[string]mesos.Value_Scalar) *agentapi.Call {
		return &agentapi.Call{Type: agentapi.Call_LAUNCH_CONTAINER, LaunchContainer: &agentapi.Call_LaunchContainer{
			ContainerID: id, Command: shell("true"), Container: ci, Resources: res, Limits: limits}}
	}
	reserved := cpus[0]
	reserved.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: ptrTo("r")}}
	revocable := cpus[0]
	revocable.Revocable = &mesos.Resource_RevocableInfo{}
	const prefix = "Failed to validate agent::Call: "
	for _, tc := range []struct {
		name string
		call *agentapi.Call
		want string
	}{
		{"twice nested with resources", launch(grandchild, nil, cpus, nil),
			"'launch_container' is invalid: containers nested at the second level or greater cannot specify resources"},
		{"twice nested with limits", launch(grandchild, nil, nil, map[string]mesos.Value_Scalar{"cpus": {Value: 1}}),
			"'launch_container' is invalid: containers nested at the second level or greater cannot specify resource limits"},
		{"twice nested with own cgroups", launch(grandchild, linux(&no), nil, nil),
			"'launch_container' is invalid: containers nested at the second level or greater cannot set 'share_cgroups' to 'false'"},
		{"standalone sharing cgroups", launch(root, linux(&yes), nil, nil),
			"'launch_container' is invalid: containers without a parent cannot set 'share_cgroups' to 'true'"},
		{"standalone with reserved resources", launch(root, nil, []mesos.Resource{reserved}, nil),
			"'launch_container.resources' must be unreserved"},
		{"standalone with revocable resources", launch(root, nil, []mesos.Resource{revocable}, nil),
			"'launch_container.resources' must be non-revocable"},
		{"nested twice with own cgroups (LAUNCH_NESTED_CONTAINER)", agentcalls.LaunchNestedContainer(grandchild, shell("true"), linux(&no)),
			"'launch_nested_container' is invalid: containers nested at the second level or greater cannot set 'share_cgroups' to 'false'"},
		{"session with own cgroups", &agentapi.Call{Type: agentapi.Call_LAUNCH_NESTED_CONTAINER_SESSION,
			LaunchNestedContainerSession: &agentapi.Call_LaunchNestedContainerSession{ContainerID: child, Command: shell("true"), Container: linux(&no)}},
			"'launch_nested_container_session.container.linux_info' is invalid: 'share_cgroups' cannot be set to 'false' for nested container sessions"},
		{"space in the ID", launch(mesos.ContainerID{Value: "a b"}, nil, nil, nil),
			"'launch_container.container_id' is invalid: 'ContainerID.value' 'a b' contains invalid characters"},
		{"period in the ID", launch(mesos.ContainerID{Value: "u1.sandbox"}, nil, nil, nil),
			"'launch_container.container_id' is invalid: 'ContainerID.value' 'u1.sandbox' contains invalid characters"},
		{"period in the parent", launch(mesos.ContainerID{Value: "app", Parent: &mesos.ContainerID{Value: "u1.sandbox"}}, nil, nil, nil),
			"'launch_container.container_id' is invalid: 'ContainerID.parent' is invalid: 'ContainerID.value' 'u1.sandbox' contains invalid characters"},
		{"period in a KILL_CONTAINER ID", agentcalls.KillContainer(mesos.ContainerID{Value: "a.b"}),
			"'kill_container.container_id' is invalid: 'ContainerID.value' 'a.b' contains invalid characters"},
		{"empty parent", launch(mesos.ContainerID{Value: "x", Parent: &mesos.ContainerID{}}, nil, nil, nil),
			"'launch_container.container_id' is invalid: 'ContainerID.parent' is invalid: ID must not be empty"},
		{"slash in a WAIT_CONTAINER ID", agentcalls.WaitContainer(mesos.ContainerID{Value: "a/b"}),
			"'wait_container.container_id' is invalid: 'a/b' contains invalid characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := postCall(t, a, tc.call); code != http.StatusBadRequest || body != prefix+tc.want {
				t.Errorf("= %d %q\nwant 400 %q", code, body, prefix+tc.want)
			}
		})
	}
}

// A standalone container (LAUNCH_CONTAINER without parent) as Mesos' agent runs one: its sandbox is
// <work_dir>/containers/<id>; a second launch of a live ID is 202; GET_CONTAINERS lists it only with
// show_standalone; containers nested in it may have resources, limits and cgroups of their own (depth
// 1); it is not an executor's, so it outlives the executor that launched it; KILL_CONTAINER destroys
// its nested containers before WAIT_CONTAINER answers; once destroyed the agent forgets it (WAIT and
// KILL are 404 with Mesos' texts, the ID may be launched again) but keeps its sandbox;
// REMOVE_CONTAINER of it, on which a Mesos agent aborts, is refused; Stop destroys what is left.
func TestStandaloneContainers(t *testing.T) {
	f := newNestedFixture(t)
	a := f.a
	sa := mesos.ContainerID{Value: "kubemesos-pod-u1"}
	if code, body := postCall(t, a, agentcalls.LaunchContainer(sa, shell("exec sleep 3600"), nil, nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER: %d %s", code, body)
	}
	dir := filepath.Join(a.cfg.WorkDir, "containers", sa.Value)
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the sandbox is not at <work_dir>/containers/<id>: %v", err)
	}
	if code, body := postCall(t, a, agentcalls.LaunchContainer(sa, shell("exec sleep 3600"), nil, nil)); code != http.StatusAccepted || body != "" {
		t.Errorf("second LAUNCH_CONTAINER of the live ID = %d %q, want 202 and no body", code, body)
	}
	listed := func(standalone bool) map[string]uint32 {
		t.Helper()
		nested := true
		code, body := postCall(t, a, &agentapi.Call{Type: agentapi.Call_GET_CONTAINERS,
			GetContainers: &agentapi.Call_GetContainers{ShowNested: &nested, ShowStandalone: &standalone}})
		var r agentapi.Response
		if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil {
			t.Fatalf("GET_CONTAINERS: %d %s", code, body)
		}
		out := map[string]uint32{}
		for _, c := range r.GetContainers.Containers {
			out[c.ContainerID.Value] = c.ContainerStatus.GetExecutorPID()
		}
		return out
	}

	no := false
	app := mesos.ContainerID{Value: "app", Parent: &sa}
	own := &mesos.ContainerInfo{Type: mesos.ContainerInfo_MESOS.Enum(), LinuxInfo: &mesos.LinuxInfo{ShareCgroups: &no}}
	if code, body := postCall(t, a, &agentapi.Call{Type: agentapi.Call_LAUNCH_CONTAINER, LaunchContainer: &agentapi.Call_LaunchContainer{
		ContainerID: app, Command: shell("exec sleep 3600"), Container: own, Resources: mustResources(t, "cpus:0.1;mem:32"),
		Limits: map[string]mesos.Value_Scalar{"mem": {Value: 64}}}}); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of a container in the standalone one, with resources, limits, own cgroups: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "containers", "app")); err != nil {
		t.Errorf("the nested container's sandbox: %v", err)
	}
	// Http::__containers skips only the standalone container itself: the ones nested in it are not
	// marked standalone and show with show_nested.
	if got := listed(false); len(got) != 2 || !hasKey(got, f.parent.Value) || !hasKey(got, app.Value) {
		t.Errorf("GET_CONTAINERS without show_standalone lists %v, want the executor's container and app", got)
	}
	got := listed(true)
	saPID, appPID := got[sa.Value], got[app.Value]
	if len(got) != 3 || !pidAlive(saPID) || !pidAlive(appPID) {
		t.Fatalf("GET_CONTAINERS with show_standalone lists %v, want the executor's, the standalone one and its child", got)
	}

	// Mesos prints a nested container's ID with its parents, joined by '.'.
	if code, body := postCall(t, a, agentcalls.WaitContainer(mesos.ContainerID{Value: "nope", Parent: &sa})); code != http.StatusNotFound ||
		body != "Container kubemesos-pod-u1.nope cannot be found" {
		t.Errorf("WAIT_CONTAINER of an unknown nested container = %d %q", code, body)
	}

	// The executor that launched it ends: the standalone container lives on.
	a.ShutdownExecutor(mesos.FrameworkID{Value: "fw-1"}, mesos.ExecutorID{Value: "e"})
	waitFor(t, "the executor's end", func() bool { return len(f.m.all("exited")) == 1 })
	if !pidAlive(saPID) || !pidAlive(appPID) {
		t.Fatalf("the standalone container or its child died with the executor")
	}

	// WAIT_CONTAINER must reach the agent before the container's end, after which it is 404 (as in
	// Mesos): it is sent first, and the kill follows a moment later.
	type answer struct {
		code int
		body string
	}
	waited := make(chan answer, 1)
	go func() {
		code, body := postCall(t, a, agentcalls.WaitContainer(sa))
		waited <- answer{code, body}
	}()
	time.Sleep(300 * time.Millisecond)
	if code, body := postCall(t, a, agentcalls.KillContainer(sa)); code != http.StatusOK {
		t.Fatalf("KILL_CONTAINER: %d %s", code, body)
	}
	w := <-waited
	var r agentapi.Response
	if err := json.Unmarshal([]byte(w.body), &r); w.code != http.StatusOK || err != nil || r.GetWaitContainer().GetExitStatus() != int32(syscall.SIGKILL) {
		t.Fatalf("WAIT_CONTAINER: %d %s, want the SIGKILL status", w.code, w.body)
	}
	if pidAlive(appPID) {
		t.Errorf("the nested container (pid %d) outlives the standalone container's WAIT_CONTAINER", appPID)
	}
	if code, body := postCall(t, a, agentcalls.WaitContainer(sa)); code != http.StatusNotFound || body != "Container kubemesos-pod-u1 cannot be found" {
		t.Errorf("WAIT_CONTAINER after the end = %d %q", code, body)
	}
	if code, body := postCall(t, a, agentcalls.KillContainer(sa)); code != http.StatusNotFound ||
		body != "Container 'kubemesos-pod-u1' cannot be found (or is already killed)" {
		t.Errorf("KILL_CONTAINER after the end = %d %q", code, body)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the standalone sandbox is gone after the container's end (Mesos keeps it): %v", err)
	}
	if code, body := postCall(t, a, agentcalls.RemoveContainer(sa)); code != http.StatusInternalServerError ||
		body != "The simulated agent refuses REMOVE_CONTAINER of a container without parent: a Mesos agent aborts on it "+
			"(MesosContainerizerProcess::remove: CHECK(containerId.has_parent()))" {
		t.Errorf("REMOVE_CONTAINER of a standalone container = %d %q", code, body)
	}

	// The ID may be used again; Stop destroys the container.
	if code, body := postCall(t, a, agentcalls.LaunchContainer(sa, shell("exec sleep 3600"), nil, nil)); code != http.StatusOK {
		t.Fatalf("LAUNCH_CONTAINER of the ended ID again: %d %s", code, body)
	}
	pid := listed(true)[sa.Value]
	if !pidAlive(pid) {
		t.Fatalf("the relaunched standalone container is not running")
	}
	a.Stop()
	if pidAlive(pid) {
		t.Errorf("the standalone container (pid %d) outlives the agent's Stop", pid)
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}
