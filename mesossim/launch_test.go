package mesossim

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	mastercalls "github.com/mesos/mesos-go/api/v1/lib/master/calls"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
)

func executorInfo(id, cmd string) map[string]any {
	return map[string]any{
		"executor_id": map[string]any{"value": id}, "type": "CUSTOM",
		"command":   map[string]any{"value": cmd},
		"resources": []any{scalar("cpus", 0.5), scalar("mem", 64)},
	}
}

func TestExecutorsAndLaunchGroup(t *testing.T) {
	h := newHarness(t, Config{}, 1, "cpus:4;mem:1024")
	for _, a := range h.agents {
		a.script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	}
	c := h.jsonSubscribe(fwInfo("exec", nil))
	h.m.Allocate()
	o := offersOf(c.next("OFFERS"))[0]
	withExec := func(id string, e map[string]any) map[string]any {
		t := commandTask(id, o["agent_id"], 1, 128)
		delete(t, "command")
		t["executor"] = e
		return t
	}
	// Two tasks share one new executor: its resources are taken once (0.5 + 1 + 1 cpus).
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, withExec("e1", executorInfo("ex", "run")), withExec("e2", executorInfo("ex", "run"))))
	c.nextUpdate("e1")
	c.nextUpdate("e2")
	ex := h.operator(master.Call{Type: master.Call_GET_EXECUTORS}, mediaJSON).GetExecutors.Executors
	if len(ex) != 1 || ex[0].ExecutorInfo.ExecutorID.Value != "ex" {
		t.Fatalf("executors %v", ex)
	}
	h.m.Allocate()
	o = offersOf(c.next("OFFERS"))[0]
	if cpus, _ := rez.CPUs(decodeResources(t, o["resources"])...); cpus != 1.5 {
		t.Errorf("offered cpus %v, want 1.5", cpus)
	}
	if diff := cmp.Diff([]any{map[string]any{"value": "ex"}}, o["executor_ids"]); diff != "" {
		t.Errorf("executor_ids (-want +got):\n%s", diff)
	}
	// A different ExecutorInfo under the running executor's ID is refused.
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, withExec("e3", executorInfo("ex", "other"))))
	st := c.nextUpdate("e3")["update"].(map[string]any)["status"].(map[string]any)
	if st["state"] != "TASK_ERROR" || !strings.Contains(st["message"].(string), "not compatible") {
		t.Errorf("incompatible executor: %v %v", st["state"], st["message"])
	}

	// LAUNCH_GROUP: all or nothing.
	h.m.Allocate()
	o = offersOf(c.next("OFFERS"))[0]
	group := func(execType string, tasks ...map[string]any) map[string]any {
		e := executorInfo("grp", "")
		e["type"] = execType
		delete(e, "command")
		ts := make([]any, len(tasks))
		for i := range tasks {
			ts[i] = tasks[i]
		}
		return map[string]any{"accept": map[string]any{"offer_ids": []any{o["id"]}, "filters": map[string]any{"refuse_seconds": 0},
			"operations": []any{map[string]any{"type": "LAUNCH_GROUP", "launch_group": map[string]any{"executor": e, "task_group": map[string]any{"tasks": ts}}}}}}
	}
	c.mustCall("ACCEPT", group("CUSTOM", commandTask("g1", o["agent_id"], 0.5, 64), commandTask("g2", o["agent_id"], 0.5, 64)))
	for _, id := range []string{"g1", "g2"} {
		st := c.nextUpdate(id)["update"].(map[string]any)["status"].(map[string]any)
		if st["state"] != "TASK_ERROR" || st["reason"] != "REASON_TASK_GROUP_INVALID" {
			t.Errorf("group with a CUSTOM executor lacking a command: %s %v %v", id, st["state"], st["reason"])
		}
	}
	h.m.Allocate()
	o = offersOf(c.next("OFFERS"))[0]
	c.mustCall("ACCEPT", group("DEFAULT", commandTask("g3", o["agent_id"], 0.5, 64), commandTask("g4", o["agent_id"], 0.5, 64)))
	c.nextUpdate("g3")
	c.nextUpdate("g4")
	want := "launch g3 group=true executor=true"
	if calls := h.agents[0].calls(); !strings.Contains(strings.Join(calls, "\n"), want) {
		t.Errorf("agent calls %v lack %q", calls, want)
	}
	// A group beyond the offer fails as a whole, with Mesos' message.
	h.m.Allocate()
	o = offersOf(c.next("OFFERS"))[0]
	c.mustCall("ACCEPT", group("DEFAULT", commandTask("g5", o["agent_id"], 0.5, 64), commandTask("g6", o["agent_id"], 100, 64)))
	for _, id := range []string{"g5", "g6"} {
		st := c.nextUpdate(id)["update"].(map[string]any)["status"].(map[string]any)
		msg, _ := st["message"].(string)
		if st["state"] != "TASK_ERROR" || st["reason"] != "REASON_TASK_GROUP_INVALID" ||
			!strings.HasPrefix(msg, "Total resources cpus(allocated: ") || !strings.Contains(msg, " required by task group and its executor are more than available ") {
			t.Errorf("group beyond the offer: %s %v %v %q", id, st["state"], st["reason"], msg)
		}
	}
}

func TestAdminEndpoint(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("admin", nil))
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/admin/agents/nope/partition", 404},
		{"/admin/agents/agent-0/partition", 200},
		{"/admin/agents/agent-0/heal", 200},
		{"/admin/executors/kill?agent=agent-0", 400},
		{"/admin/executors/kill?agent=agent-0&framework=" + c.fwID + "&executor=e", 200},
		{"/admin/status-updates?delay=xyz", 400},
		{"/admin/status-updates?duplicate=true", 200},
		{"/admin/status-updates", 200},
		{"/admin/allocate", 200},
		{"/admin/agents/agent-0/remove", 200},
		{"/admin/agents/agent-0/remove", 404},
		{"/admin/nothing", 404},
	} {
		resp, err := http.Post(h.url+tc.path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
	resp, err := http.Get(h.url + "/admin/allocate")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /admin/allocate: %d, want 405", resp.StatusCode)
	}
}

func TestUpdateFrameworkChangesRoles(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	info := fwInfo("upd", map[string]any{"roles": []string{"a"}, "capabilities": []any{map[string]any{"type": "MULTI_ROLE"}}})
	c := h.jsonSubscribe(info)
	info["id"] = map[string]any{"value": c.fwID}
	info["roles"] = []string{"b"}
	if code, msg := c.call("UPDATE_FRAMEWORK", map[string]any{"update_framework": map[string]any{"framework_info": info}}); code != 200 {
		t.Fatalf("UPDATE_FRAMEWORK: %d %s", code, msg)
	}
	h.m.Allocate()
	if r := str(offersOf(c.next("OFFERS"))[0], "allocation_info", "role"); r != "b" {
		t.Errorf("offer role %q after UPDATE_FRAMEWORK, want b", r)
	}
	info["id"] = map[string]any{"value": "other"}
	if code, _ := c.call("UPDATE_FRAMEWORK", map[string]any{"update_framework": map[string]any{"framework_info": info}}); code != 400 {
		t.Errorf("UPDATE_FRAMEWORK with another framework's ID: %d, want 400", code)
	}
}

// TestOperatorAPIWithMesosGo reads GET_STATE and GET_AGENTS through mesos-go's own master API client,
// with enough agents that the response is larger than net/http's implicit Content-Length buffer.
func TestOperatorAPIWithMesosGo(t *testing.T) {
	h := newHarness(t, Config{}, 50, agentRes)
	sender := httpmaster.NewSender(httpcli.New(httpcli.Endpoint(h.url + "/api/v1")).Send)
	for _, call := range []*master.Call{mastercalls.GetState(), mastercalls.GetAgents()} {
		resp, err := sender.Send(context.Background(), mastercalls.NonStreaming(call))
		if err != nil {
			t.Fatalf("%s: %v", call.Type, err)
		}
		var r master.Response
		err = resp.Decode(&r)
		resp.Close()
		if err != nil {
			t.Fatalf("%s: decoding: %v", call.Type, err)
		}
		agents := r.GetGetAgents()
		if agents == nil {
			agents = r.GetGetState().GetGetAgents()
		}
		if len(agents.GetAgents()) != 50 {
			t.Errorf("%s: %d agents, want 50", call.Type, len(agents.GetAgents()))
		}
	}
}
