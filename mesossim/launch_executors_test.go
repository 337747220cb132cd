package mesossim

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
)

// Design P's ACCEPT: one LAUNCH carrying two TaskInfos for two executors on one agent, the pod's
// sandbox task on a new per-pod executor (whose resources come out of the offer with the task's) and
// the pod task on the agent's running kubelet executor (only the task's resources). Each task is
// validated on its own (master/validation.cpp): a new executor's resources must fit in what is left
// of the offer, and an ExecutorInfo under a running executor's ID must equal it as Mesos' operator==
// does (resources count, labels do not), else TASK_ERROR with validateCompatibleExecutorInfo's text.
func TestLaunchTasksForANewAndARunningExecutor(t *testing.T) {
	h := newHarness(t, Config{}, 1, "cpus:4;mem:1024;ports:[31000-32000]")
	h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	c := h.jsonSubscribe(fwInfo("pods", nil))
	task := func(id string, agentID any, exec map[string]any, res ...any) map[string]any {
		return map[string]any{"name": id, "task_id": map[string]any{"value": id}, "agent_id": agentID,
			"executor": exec, "resources": res}
	}
	kubelet := func() map[string]any { return executorInfo("kubelet", "./kubemesos executor") }
	sandbox := func(uid string, cpus float64) map[string]any {
		return map[string]any{
			"executor_id": map[string]any{"value": "kubemesos-pod-" + uid}, "type": "CUSTOM",
			"name":      "kubemesos pod sandbox default/web-" + uid,
			"command":   map[string]any{"value": "./kubemesos pod-sandbox"},
			"resources": []any{scalar("cpus", cpus), scalar("mem", 32)},
			"container": map[string]any{"type": "MESOS", "hostname": "web-" + uid, "network_infos": []any{map[string]any{
				"name": "kubemesos", "port_mappings": []any{map[string]any{"host_port": 31080, "container_port": 8080, "protocol": "tcp"}}}}},
		}
	}
	ports := map[string]any{"name": "ports", "type": "RANGES", "ranges": map[string]any{"range": []any{map[string]any{"begin": 31080, "end": 31080}}}}
	offer := func() map[string]any {
		h.m.Allocate()
		return offersOf(c.next("OFFERS"))[0]
	}
	// The first update of each task, whichever order they come in.
	seen := map[string]map[string]any{}
	status := func(id string) map[string]any {
		t.Helper()
		for seen[id] == nil {
			st := c.next("UPDATE")["update"].(map[string]any)["status"].(map[string]any)
			if tid := str(st, "task_id", "value"); seen[tid] == nil {
				seen[tid] = st
			}
		}
		return seen[id]
	}

	o := offer()
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, task("pod-first", o["agent_id"], kubelet(), scalar("cpus", 0.01))))
	if st := status("pod-first"); st["state"] != "TASK_RUNNING" {
		t.Fatalf("the kubelet executor's first task: %v %v", st["state"], st["message"])
	}

	o = offer()
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0,
		task("sandbox-u1", o["agent_id"], sandbox("u1", 0.01), scalar("cpus", 0.5), scalar("mem", 128), ports),
		task("pod-u1", o["agent_id"], kubelet(), scalar("cpus", 0.01))))
	for _, id := range []string{"sandbox-u1", "pod-u1"} {
		if st := status(id); st["state"] != "TASK_RUNNING" {
			t.Errorf("%s: %v %v, want it launched", id, st["state"], st["message"])
		}
	}
	ex := h.operator(master.Call{Type: master.Call_GET_EXECUTORS}, mediaJSON).GetExecutors.Executors
	var ids []string
	for _, e := range ex {
		ids = append(ids, e.ExecutorInfo.ExecutorID.Value)
	}
	sort.Strings(ids)
	if diff := cmp.Diff([]string{"kubelet", "kubemesos-pod-u1"}, ids); diff != "" {
		t.Errorf("executors (-want +got):\n%s", diff)
	}
	tasks := h.operator(master.Call{Type: master.Call_GET_TASKS}, mediaJSON).GetTasks.Tasks
	execOf := map[string]string{}
	for _, tk := range tasks {
		execOf[tk.TaskID.Value] = tk.GetExecutorID().GetValue()
	}
	if execOf["sandbox-u1"] != "kubemesos-pod-u1" || execOf["pod-u1"] != "kubelet" {
		t.Errorf("tasks' executors %v", execOf)
	}
	// Taken: the kubelet executor (0.5 cpus, 64 MB) and its first task (0.01) before; now the new
	// executor (0.01, 32 MB), the sandbox task (0.5, 128 MB, port 31080) and the pod task (0.01).
	o = offer()
	res := decodeResources(t, o["resources"])
	cpus, _ := rez.CPUs(res...)
	mem, _ := rez.Memory(res...)
	if math.Abs(cpus-2.97) > 1e-9 || mem != 1024-64-32-128 {
		t.Errorf("offered after the launch: cpus %v mem %v, want 2.97 and %d", cpus, mem, 1024-64-32-128)
	}
	for _, r := range res {
		if r.Name == "ports" && rez.Contains(mesos.Resources{r}, mustPorts(t, 31080)) {
			t.Errorf("port 31080 is offered again: %v", r)
		}
	}

	// A new executor too big for what is left, next to a task for the running one: only the first fails.
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0,
		task("sandbox-u2", o["agent_id"], sandbox("u2", 3), scalar("cpus", 0.5)),
		task("pod-u2", o["agent_id"], kubelet(), scalar("cpus", 0.01))))
	st := status("sandbox-u2")
	if st["state"] != "TASK_ERROR" || st["reason"] != "REASON_TASK_INVALID" || !strings.Contains(st["message"].(string), " required by task and its executor is more than available ") {
		t.Errorf("a new executor beyond the offer: %v %v %v", st["state"], st["reason"], st["message"])
	}
	if st := status("pod-u2"); st["state"] != "TASK_RUNNING" {
		t.Errorf("pod-u2: %v %v, want it launched", st["state"], st["message"])
	}

	// Labels are not part of Mesos' comparison; resources are.
	o = offer()
	labelled := kubelet()
	labelled["labels"] = map[string]any{"labels": []any{map[string]any{"key": "k", "value": "v"}}}
	bigger := kubelet()
	bigger["resources"] = []any{scalar("cpus", 1), scalar("mem", 64)}
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0,
		task("pod-labelled", o["agent_id"], labelled, scalar("cpus", 0.01)),
		task("pod-bigger", o["agent_id"], bigger, scalar("cpus", 0.01))))
	if st := status("pod-labelled"); st["state"] != "TASK_RUNNING" {
		t.Errorf("the running executor's info with labels added: %v %v, want it launched", st["state"], st["message"])
	}
	st = status("pod-bigger")
	fid := c.fwID
	want := `ExecutorInfo is not compatible with existing ExecutorInfo with same ExecutorID.
------------------------------------------------------------
Existing ExecutorInfo:
executor_id {
  value: "kubelet"
}
resources {
  name: "cpus"
  type: SCALAR
  scalar {
    value: 0.5
  }
  allocation_info {
    role: "*"
  }
}
resources {
  name: "mem"
  type: SCALAR
  scalar {
    value: 64
  }
  allocation_info {
    role: "*"
  }
}
command {
  value: "./kubemesos executor"
}
framework_id {
  value: "` + fid + `"
}
type: CUSTOM

------------------------------------------------------------
ExecutorInfo:
executor_id {
  value: "kubelet"
}
resources {
  name: "cpus"
  type: SCALAR
  scalar {
    value: 1
  }
  allocation_info {
    role: "*"
  }
}
resources {
  name: "mem"
  type: SCALAR
  scalar {
    value: 64
  }
  allocation_info {
    role: "*"
  }
}
command {
  value: "./kubemesos executor"
}
framework_id {
  value: "` + fid + `"
}
type: CUSTOM

------------------------------------------------------------
`
	if st["state"] != "TASK_ERROR" || st["reason"] != "REASON_TASK_INVALID" || st["message"] != want {
		t.Errorf("the running executor's ID with other resources: %v %v\n%v\nwant TASK_ERROR REASON_TASK_INVALID\n%s", st["state"], st["reason"], st["message"], want)
	}
}

func mustPorts(t *testing.T, port uint64) mesos.Resource {
	t.Helper()
	rs, err := ParseResources(fmt.Sprintf("ports:[%d-%d]", port, port))
	if err != nil || len(rs) != 1 {
		t.Fatalf("ports resource: %v %v", rs, err)
	}
	return rs[0]
}
