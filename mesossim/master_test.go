package mesossim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	rez "github.com/mesos/mesos-go/api/v1/lib/resources"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

const agentRes = "cpus:4;mem:8192;disk:65536;ports:[31000-32000]"

func scalar(name string, v float64) map[string]any {
	return map[string]any{"name": name, "type": "SCALAR", "scalar": map[string]any{"value": v}}
}

func fwInfo(name string, extra map[string]any) map[string]any {
	fi := map[string]any{"user": "root", "name": name}
	for k, v := range extra {
		fi[k] = v
	}
	return fi
}

func commandTask(id string, agentID any, cpus, mem float64) map[string]any {
	return map[string]any{
		"name": id, "task_id": map[string]any{"value": id}, "agent_id": agentID,
		"command":   map[string]any{"value": "echo hello", "shell": true},
		"resources": []any{scalar("cpus", cpus), scalar("mem", mem)},
	}
}

func launchCall(offerIDs []any, refuse float64, tasks ...map[string]any) map[string]any {
	ts := make([]any, len(tasks))
	for i := range tasks {
		ts[i] = tasks[i]
	}
	return map[string]any{"accept": map[string]any{
		"offer_ids":  offerIDs,
		"operations": []any{map[string]any{"type": "LAUNCH", "launch": map[string]any{"task_infos": ts}}},
		"filters":    map[string]any{"refuse_seconds": refuse},
	}}
}

// eventually polls cond until it holds or the deadline passes (for effects of fake-clock timers,
// which run in their own goroutines).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) operator(call master.Call, mediaType string) master.Response {
	h.t.Helper()
	b, err := encodeAs(mediaType, &call)
	if err != nil {
		h.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", h.url+"/api/v1", bytes.NewReader(b))
	req.Header.Set("Content-Type", mediaType)
	req.Header.Set("Accept", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		h.t.Fatalf("operator %s: %d %s", call.Type, resp.StatusCode, buf.String())
	}
	var out master.Response
	if mediaType == mediaProtobuf {
		err = proto.Unmarshal(buf.Bytes(), &out)
	} else {
		err = json.Unmarshal(buf.Bytes(), &out)
	}
	if err != nil {
		h.t.Fatalf("decoding %s response: %v", call.Type, err)
	}
	return out
}

func (h *harness) taskStates() map[string]string {
	h.t.Helper()
	resp := h.operator(master.Call{Type: master.Call_GET_TASKS}, mediaJSON)
	out := map[string]string{}
	for _, t := range resp.GetTasks.Tasks {
		out[t.TaskID.Value] = t.GetState().String()
	}
	for _, t := range resp.GetTasks.CompletedTasks {
		out[t.TaskID.Value] = "completed:" + t.GetState().String()
	}
	for _, t := range resp.GetTasks.UnreachableTasks {
		out[t.TaskID.Value] = "unreachable:" + t.GetState().String()
	}
	return out
}

// TestCommandTaskJSON: a scheduler written from the docs (plain JSON over net/http) subscribes, gets an
// offer, launches a command task and acknowledges every update until TASK_FINISHED.
func TestCommandTaskJSON(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("json", map[string]any{"roles": []string{"web"}, "capabilities": []any{map[string]any{"type": "MULTI_ROLE"}}}))
	if n := h.m.Allocate(); n != 1 {
		t.Fatalf("Allocate made %d offers, want 1", n)
	}
	offers := offersOf(c.next("OFFERS"))
	if len(offers) != 1 {
		t.Fatalf("got %d offers", len(offers))
	}
	o := offers[0]
	if got := str(o, "allocation_info", "role"); got != "web" {
		t.Errorf("offer allocation role = %q, want web", got)
	}
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
	var states []string
	for _, want := range []string{"TASK_RUNNING", "TASK_FINISHED"} {
		ev := c.nextUpdate("t1")
		st := ev["update"].(map[string]any)["status"].(map[string]any)
		states = append(states, st["state"].(string))
		if st["state"] != want {
			t.Fatalf("update state %v, want %s", st["state"], want)
		}
		c.mustCall("ACKNOWLEDGE", map[string]any{"acknowledge": map[string]any{
			"agent_id": st["agent_id"], "task_id": st["task_id"], "uuid": st["uuid"]}})
	}
	eventually(t, "both acknowledgements reach the agent", func() bool { return len(h.agents[0].calls()) == 3 })
	if diff := cmp.Diff([]string{"launch t1 group=false executor=false", "ack t1 TASK_RUNNING", "ack t1 TASK_FINISHED"}, h.agents[0].calls()); diff != "" {
		t.Errorf("agent calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"t1": "completed:TASK_FINISHED"}, h.taskStates()); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
	// The task's resources are free again: the whole agent is offered.
	h.m.Allocate()
	o = offersOf(c.next("OFFERS"))[0]
	res := decodeResources(t, o["resources"])
	if cpus, _ := rez.CPUs(res...); cpus != 4 {
		t.Errorf("re-offered cpus = %v, want 4", cpus)
	}
}

func decodeResources(t *testing.T, v any) mesos.Resources {
	t.Helper()
	b, _ := json.Marshal(v)
	var rs mesos.Resources
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestCommandTaskMesosGo drives the same flow through mesos-go's httpsched client (protobuf).
func TestCommandTaskMesosGo(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	role := "kubemesos"
	c := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "mesos-go", Role: &role,
		Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_PARTITION_AWARE}}})
	h.m.Allocate()
	offers := c.next(scheduler.Event_OFFERS).Offers.Offers
	if len(offers) != 2 {
		t.Fatalf("got %d offers, want 2", len(offers))
	}
	o := offers[0]
	task := mesos.TaskInfo{Name: "t", TaskID: mesos.TaskID{Value: "go-1"}, AgentID: o.AgentID,
		Command:   &mesos.CommandInfo{Value: proto.String("true")},
		Resources: mesos.Resources{rez.NewCPUs(0.5).Resource, rez.NewMemory(64).Resource}.Allocate(role)}
	c.call(calls.Accept(calls.OfferOperations{calls.OpLaunch(task)}.WithOffers(o.ID)))
	c.call(calls.Decline(offers[1].ID))
	for _, want := range []mesos.TaskState{mesos.TASK_RUNNING, mesos.TASK_FINISHED} {
		u := c.next(scheduler.Event_UPDATE).Update.Status
		if u.GetState() != want {
			t.Fatalf("state %v, want %v", u.GetState(), want)
		}
		c.call(calls.Acknowledge(u.AgentID.Value, u.TaskID.Value, u.UUID))
	}
	eventually(t, "final ack", func() bool { return len(h.agentByID(o.AgentID.Value).calls()) == 3 })
	if diff := cmp.Diff(map[string]string{"go-1": "completed:TASK_FINISHED"}, h.taskStates()); diff != "" {
		t.Errorf("tasks (-want +got):\n%s", diff)
	}
}

func (h *harness) agentByID(id string) *fakeAgent {
	for _, a := range h.agents {
		if a.id == id {
			return a
		}
	}
	h.t.Fatalf("no agent %s", id)
	return nil
}

// offeredTo lists, per framework ID, the agents it currently holds offers for (GET_FRAMEWORKS).
func (h *harness) offeredTo() map[string][]string {
	resp := h.operator(master.Call{Type: master.Call_GET_FRAMEWORKS}, mediaProtobuf)
	out := map[string][]string{}
	for _, f := range resp.GetFrameworks.Frameworks {
		for _, o := range f.Offers {
			out[f.FrameworkInfo.ID.Value] = append(out[f.FrameworkInfo.ID.Value], o.AgentID.Value)
		}
		sort.Strings(out[f.FrameworkInfo.ID.Value])
	}
	return out
}

func TestDeclineFiltersAndSuppressRevive(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	f1 := h.jsonSubscribe(fwInfo("f1", map[string]any{"role": "a"}))
	f2 := h.jsonSubscribe(fwInfo("f2", map[string]any{"role": "b"}))
	decline := func(c *jsonClient, refuse any) {
		o := offersOf(c.next("OFFERS"))[0]
		payload := map[string]any{"offer_ids": []any{o["id"]}}
		if refuse != nil {
			payload["filters"] = map[string]any{"refuse_seconds": refuse}
		}
		c.mustCall("DECLINE", map[string]any{"decline": payload})
	}
	steps := []struct {
		name string
		do   func()
		want map[string][]string
	}{
		{"first offer goes to f1 (tie, lower role)", nil, map[string][]string{f1.fwID: {"agent-0"}}},
		{"f1 declines with the default 5s filter: f2 gets it", func() { decline(f1, nil) }, map[string][]string{f2.fwID: {"agent-0"}}},
		{"f2 declines for 0s: f1 is still filtered, f2 again", func() { decline(f2, 0.0) }, map[string][]string{f2.fwID: {"agent-0"}}},
		{"f2 declines for 60s: nobody within 5s", func() { decline(f2, 60.0) }, map[string][]string{}},
		{"after 5s f1's filter expired", func() { h.clock.Step(6 * time.Second) }, map[string][]string{f1.fwID: {"agent-0"}}},
		{"f1 declines 60s and suppresses: nobody", func() { decline(f1, 60.0); f1.mustCall("SUPPRESS", nil) }, map[string][]string{}},
		{"f2 revives: its filter is cleared", func() { f2.mustCall("REVIVE", nil) }, map[string][]string{f2.fwID: {"agent-0"}}},
		{"f2 declines 60s and suppresses, f1 revives", func() {
			decline(f2, 60.0)
			f2.mustCall("SUPPRESS", nil)
			f1.mustCall("REVIVE", map[string]any{"revive": map[string]any{"roles": []string{"a"}}})
		}, map[string][]string{f1.fwID: {"agent-0"}}},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		h.m.Allocate()
		if diff := cmp.Diff(s.want, h.offeredTo()); diff != "" {
			t.Fatalf("%s: offers (-want +got):\n%s", s.name, diff)
		}
	}
}

func TestMultiRolePerRoleSuppress(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	c := h.goSubscribe(&mesos.FrameworkInfo{User: "root", Name: "multi", Roles: []string{"r1", "r2"},
		Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_MULTI_ROLE}}})
	c.call(calls.SuppressWith([]string{"r1"}))
	h.m.Allocate()
	for _, o := range c.next(scheduler.Event_OFFERS).Offers.Offers {
		if r := o.AllocationInfo.GetRole(); r != "r2" {
			t.Errorf("offer for suppressed role %q", r)
		}
	}
}

// TestWeightedFrameworksConverge: two frameworks that use every offer fully, in roles weighted 1 and 3,
// end up with 1/4 and 3/4 of the cluster's cpus.
func TestWeightedFrameworksConverge(t *testing.T) {
	h := newHarness(t, Config{Weights: map[string]float64{"light": 1, "heavy": 3}}, 12, "cpus:4;mem:4096")
	for _, a := range h.agents {
		a.script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	}
	light := h.jsonSubscribe(fwInfo("light", map[string]any{"role": "light"}))
	heavy := h.jsonSubscribe(fwInfo("heavy", map[string]any{"role": "heavy"}))
	h.m.Allocate()
	n := 0
	for _, c := range []*jsonClient{light, heavy} {
		for _, o := range offersOf(c.next("OFFERS")) {
			n++
			var tasks []map[string]any
			for i := 0; i < 4; i++ {
				tasks = append(tasks, commandTask(fmt.Sprintf("%s-%d", o["id"].(map[string]any)["value"], i), o["agent_id"], 1, 1024))
			}
			c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, tasks...))
		}
	}
	if n != 12 {
		t.Fatalf("%d offers, want 12", n)
	}
	resp := h.operator(master.Call{Type: master.Call_GET_FRAMEWORKS}, mediaJSON)
	used := map[string]float64{}
	for _, f := range resp.GetFrameworks.Frameworks {
		cpus, _ := rez.CPUs(f.AllocatedResources...)
		used[f.FrameworkInfo.Name] = cpus
	}
	if diff := cmp.Diff(map[string]float64{"light": 12, "heavy": 36}, used); diff != "" {
		t.Errorf("cpus in use (-want +got):\n%s", diff)
	}
}

func TestFailover(t *testing.T) {
	t.Run("inside the timeout the framework resumes", func(t *testing.T) {
		h := newHarness(t, Config{}, 1, agentRes)
		h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
		info := fwInfo("fo", map[string]any{"failover_timeout": 60.0})
		c := h.jsonSubscribe(info)
		h.m.Allocate()
		o := offersOf(c.next("OFFERS"))[0]
		c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
		c.nextUpdate("t1")
		c.disconnect()
		eventually(t, "framework disconnected", func() bool {
			fws := h.operator(master.Call{Type: master.Call_GET_FRAMEWORKS}, mediaJSON).GetFrameworks.Frameworks
			return len(fws) == 1 && !fws[0].Connected
		})
		h.clock.Step(59 * time.Second)
		info["id"] = map[string]any{"value": c.fwID}
		c2 := h.jsonSubscribe(info)
		if c2.fwID != c.fwID {
			t.Fatalf("re-subscribed as %s, want %s", c2.fwID, c.fwID)
		}
		h.clock.Step(10 * time.Second) // past the original timeout: must not remove the framework
		if diff := cmp.Diff(map[string]string{"t1": "TASK_RUNNING"}, h.taskStates()); diff != "" {
			t.Errorf("tasks (-want +got):\n%s", diff)
		}
		// The unacknowledged update is redelivered when the agent retries.
		h.agents[0].sendHead("t1")
		if st := str(c2.nextUpdate("t1"), "update", "status", "state"); st != "TASK_RUNNING" {
			t.Errorf("redelivered state %s", st)
		}
	})
	t.Run("past the timeout tasks are killed and the framework removed", func(t *testing.T) {
		h := newHarness(t, Config{}, 1, agentRes)
		h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
		info := fwInfo("fo", map[string]any{"failover_timeout": 60.0})
		c := h.jsonSubscribe(info)
		h.m.Allocate()
		o := offersOf(c.next("OFFERS"))[0]
		c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
		c.nextUpdate("t1")
		c.disconnect()
		eventually(t, "failover timer armed", func() bool { return h.clock.HasWaiters() && !h.frameworkConnected(c.fwID) })
		h.clock.Step(61 * time.Second)
		eventually(t, "framework removed", func() bool {
			return len(h.operator(master.Call{Type: master.Call_GET_FRAMEWORKS}, mediaJSON).GetFrameworks.CompletedFrameworks) == 1
		})
		// The master tells the agent asynchronously (after the framework is listed as completed).
		eventually(t, "shutdown-framework at the agent", func() bool { return slices.Contains(h.agents[0].calls(), "shutdown-framework") })
		if diff := cmp.Diff(map[string]string{"t1": "completed:TASK_KILLED"}, h.taskStates()); diff != "" {
			t.Errorf("tasks (-want +got):\n%s", diff)
		}
		info["id"] = map[string]any{"value": c.fwID}
		c2 := &jsonClient{t: t, url: c.url, events: make(chan map[string]any, 100)}
		go func() {}()
		c2.subscribeExpectError(info)
	})
	t.Run("a second SUBSCRIBE takes over and closes the old stream", func(t *testing.T) {
		h := newHarness(t, Config{}, 1, agentRes)
		info := fwInfo("fo", map[string]any{"failover_timeout": 60.0})
		c := h.jsonSubscribe(info)
		info["id"] = map[string]any{"value": c.fwID}
		c2 := h.jsonSubscribe(info)
		select {
		case <-c.done:
		case <-time.After(waitTimeout):
			t.Fatal("old stream not closed")
		}
		if msg := str(c.next("ERROR"), "error", "message"); msg != "Framework failed over" {
			t.Errorf("old stream's ERROR message %q", msg)
		}
		if code, _ := c.call("REVIVE", nil); code != http.StatusBadRequest {
			t.Errorf("call on the old stream id: %d, want 400", code)
		}
		c2.mustCall("REVIVE", nil)
	})
}

func (h *harness) frameworkConnected(id string) bool {
	for _, f := range h.operator(master.Call{Type: master.Call_GET_FRAMEWORKS}, mediaJSON).GetFrameworks.Frameworks {
		if f.FrameworkInfo.ID.Value == id {
			return f.Connected
		}
	}
	return false
}

// subscribeExpectError subscribes and expects an ERROR event followed by the end of the stream.
func (c *jsonClient) subscribeExpectError(info map[string]any) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"type": "SUBSCRIBE", "framework_id": info["id"], "subscribe": map[string]any{"framework_info": info}})
	resp, err := http.Post(c.url, "application/json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body) // the master closes the stream after ERROR
	if !strings.Contains(buf.String(), `"type":"ERROR"`) || !strings.Contains(buf.String(), "Framework has been removed") {
		c.t.Errorf("re-subscribing a removed framework: got %q, want an ERROR event", buf.String())
	}
}

func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pa       bool
		wantGone string
		wantNoAg string
	}{
		{"partition aware", true, "TASK_GONE", "TASK_UNKNOWN"},
		{"not partition aware", false, "TASK_LOST", "TASK_LOST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, 1, agentRes)
			h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
			extra := map[string]any{}
			if tc.pa {
				extra["capabilities"] = []any{map[string]any{"type": "PARTITION_AWARE"}}
			}
			c := h.jsonSubscribe(fwInfo("rec", extra))
			h.m.Allocate()
			o := offersOf(c.next("OFFERS"))[0]
			c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
			c.nextUpdate("t1")
			c.mustCall("RECONCILE", map[string]any{"reconcile": map[string]any{"tasks": []any{
				map[string]any{"task_id": map[string]any{"value": "t1"}},
				map[string]any{"task_id": map[string]any{"value": "nope"}, "agent_id": map[string]any{"value": "agent-0"}},
				map[string]any{"task_id": map[string]any{"value": "nope2"}},
			}}})
			type ans struct{ State, Reason, UUID string }
			got := map[string]ans{}
			for i := 0; i < 3; i++ {
				st := c.next("UPDATE")["update"].(map[string]any)["status"].(map[string]any)
				u, _ := st["uuid"].(string)
				got[str(st, "task_id", "value")] = ans{st["state"].(string), st["reason"].(string), u}
			}
			want := map[string]ans{
				"t1":    {"TASK_RUNNING", "REASON_RECONCILIATION", ""},
				"nope":  {tc.wantGone, "REASON_RECONCILIATION", ""},
				"nope2": {tc.wantNoAg, "REASON_RECONCILIATION", ""},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("explicit reconciliation (-want +got):\n%s", diff)
			}
			c.mustCall("RECONCILE", map[string]any{"reconcile": map[string]any{}})
			if st := str(c.next("UPDATE"), "update", "status", "task_id", "value"); st != "t1" {
				t.Errorf("implicit reconciliation answered for %q, want t1", st)
			}
		})
	}
}

func TestInvalidLaunches(t *testing.T) {
	tests := []struct {
		name       string
		pa         bool
		stale      bool
		task       func(agentID any) map[string]any
		wantState  string
		wantReason string
	}{
		{"more resources than offered", false, false, func(a any) map[string]any { return commandTask("big", a, 64, 128) }, "TASK_ERROR", "REASON_TASK_INVALID"},
		{"no command and no executor", false, false, func(a any) map[string]any {
			t := commandTask("nocmd", a, 1, 128)
			delete(t, "command")
			return t
		}, "TASK_ERROR", "REASON_TASK_INVALID"},
		{"no resources", false, false, func(a any) map[string]any {
			t := commandTask("nores", a, 1, 128)
			delete(t, "resources")
			return t
		}, "TASK_ERROR", "REASON_TASK_INVALID"},
		{"wrong agent", false, false, func(any) map[string]any { return commandTask("wrongagent", map[string]any{"value": "x"}, 1, 128) }, "TASK_ERROR", "REASON_TASK_INVALID"},
		{"stale offer, not partition aware", false, true, func(a any) map[string]any { return commandTask("stale", a, 1, 128) }, "TASK_LOST", "REASON_INVALID_OFFERS"},
		{"stale offer, partition aware", true, true, func(a any) map[string]any { return commandTask("stale", a, 1, 128) }, "TASK_DROPPED", "REASON_INVALID_OFFERS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, 1, agentRes)
			extra := map[string]any{}
			if tc.pa {
				extra["capabilities"] = []any{map[string]any{"type": "PARTITION_AWARE"}}
			}
			c := h.jsonSubscribe(fwInfo("bad", extra))
			h.m.Allocate()
			o := offersOf(c.next("OFFERS"))[0]
			if tc.stale {
				c.mustCall("DECLINE", map[string]any{"decline": map[string]any{"offer_ids": []any{o["id"]}}})
			}
			task := tc.task(o["agent_id"])
			c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, task))
			st := c.nextUpdate(str(task, "task_id", "value"))["update"].(map[string]any)["status"].(map[string]any)
			got := []string{st["state"].(string), st["reason"].(string), st["source"].(string)}
			if diff := cmp.Diff([]string{tc.wantState, tc.wantReason, "SOURCE_MASTER"}, got); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			if _, has := st["uuid"]; has {
				t.Errorf("master-generated update carries a uuid")
			}
			if calls := h.agents[0].calls(); len(calls) != 0 {
				t.Errorf("agent was asked %v", calls)
			}
		})
	}
	t.Run("duplicate task ID", func(t *testing.T) {
		h := newHarness(t, Config{}, 1, agentRes)
		h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
		c := h.jsonSubscribe(fwInfo("dup", nil))
		h.m.Allocate()
		o := offersOf(c.next("OFFERS"))[0]
		c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("same", o["agent_id"], 1, 128), commandTask("same", o["agent_id"], 1, 128)))
		got := []string{str(c.nextUpdate("same"), "update", "status", "state"), str(c.nextUpdate("same"), "update", "status", "state")}
		sort.Strings(got)
		if diff := cmp.Diff([]string{"TASK_ERROR", "TASK_RUNNING"}, got); diff != "" {
			t.Errorf("updates (-want +got):\n%s", diff)
		}
	})
}

// Mesos' master answers an ACCEPT once it has sent RunTaskMessage, not when the agent took it; what it
// sends one agent arrives in the order sent (a libprocess link): a KILL sent while the agent is busy
// with the launch reaches it after the launch.
func TestAcceptDoesNotWaitForTheAgent(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	hold := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-hold:
		default:
			close(hold)
		}
	})
	h.agents[0].hold = hold
	h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	c := h.jsonSubscribe(fwInfo("busy", nil))
	h.m.Allocate()
	o := offersOf(c.next("OFFERS"))[0]
	answered := make(chan int, 1)
	go func() {
		code, _ := c.call("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
		answered <- code
	}()
	select {
	case code := <-answered:
		if code != http.StatusAccepted {
			t.Fatalf("ACCEPT: HTTP %d", code)
		}
	case <-time.After(waitTimeout):
		t.Fatal("ACCEPT answered only after the agent took the launch")
	}
	c.mustCall("KILL", map[string]any{"kill": map[string]any{"task_id": map[string]any{"value": "t1"}}})
	if calls := h.agents[0].calls(); len(calls) != 0 {
		t.Errorf("the busy agent recorded %q before it took the launch", calls)
	}
	close(hold)
	eventually(t, "launch and kill at the agent", func() bool { return len(h.agents[0].calls()) == 2 })
	if diff := cmp.Diff([]string{"launch t1 group=false executor=false", "kill t1 grace=none"}, h.agents[0].calls()); diff != "" {
		t.Errorf("agent calls (-want +got):\n%s", diff)
	}
}

func TestKillShutdownMessage(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	c := h.jsonSubscribe(fwInfo("k", nil))
	h.m.Allocate()
	o := offersOf(c.next("OFFERS"))[0]
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
	run := c.nextUpdate("t1")["update"].(map[string]any)["status"].(map[string]any)
	c.mustCall("ACKNOWLEDGE", map[string]any{"acknowledge": map[string]any{"agent_id": run["agent_id"], "task_id": run["task_id"], "uuid": run["uuid"]}})
	c.mustCall("KILL", map[string]any{"kill": map[string]any{"task_id": map[string]any{"value": "t1"},
		"kill_policy": map[string]any{"grace_period": map[string]any{"nanoseconds": 3e9}}}})
	if st := str(c.nextUpdate("t1"), "update", "status", "state"); st != "TASK_KILLED" {
		t.Errorf("after KILL: %s", st)
	}
	c.mustCall("KILL", map[string]any{"kill": map[string]any{"task_id": map[string]any{"value": "ghost"}}})
	if st := str(c.nextUpdate("ghost"), "update", "status", "state"); st != "TASK_LOST" {
		t.Errorf("KILL of an unknown task: %s, want TASK_LOST", st)
	}
	c.mustCall("SHUTDOWN", map[string]any{"shutdown": map[string]any{"executor_id": map[string]any{"value": "e1"}, "agent_id": map[string]any{"value": "agent-0"}}})
	c.mustCall("MESSAGE", map[string]any{"message": map[string]any{"executor_id": map[string]any{"value": "e1"}, "agent_id": map[string]any{"value": "agent-0"}, "data": "aGk="}})
	c.mustCall("REQUEST", map[string]any{"request": map[string]any{"requests": []any{}}})
	eventually(t, "agent calls", func() bool { return len(h.agents[0].calls()) == 5 })
	want := []string{"launch t1 group=false executor=false", "ack t1 TASK_RUNNING", "kill t1 grace=3000000000", "shutdown-executor e1", "message e1 hi"}
	if diff := cmp.Diff(want, h.agents[0].calls()); diff != "" {
		t.Errorf("agent calls (-want +got):\n%s", diff)
	}
	h.m.ExecutorMessage(mesos.AgentID{Value: "agent-0"}, mesos.FrameworkID{Value: c.fwID}, mesos.ExecutorID{Value: "e1"}, []byte("yo"))
	if d := str(c.next("MESSAGE"), "message", "data"); d != "eW8=" {
		t.Errorf("MESSAGE data %q", d)
	}
	c.mustCall("TEARDOWN", nil)
	select {
	case <-c.done:
	case <-time.After(waitTimeout):
		t.Fatal("TEARDOWN did not close the stream")
	}
}

func TestHeartbeatsAndOfferTimeout(t *testing.T) {
	h := newHarness(t, Config{OfferTimeout: 30 * time.Second, HeartbeatInterval: 15 * time.Second}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("hb", nil))
	c.next("HEARTBEAT") // right after SUBSCRIBED
	h.m.Allocate()
	o := offersOf(c.next("OFFERS"))[0]
	h.clock.Step(16 * time.Second)
	c.next("HEARTBEAT")
	h.clock.Step(16 * time.Second)
	ev := c.next("RESCIND")
	if diff := cmp.Diff(o["id"], ev["rescind"].(map[string]any)["offer_id"]); diff != "" {
		t.Errorf("rescinded offer (-want +got):\n%s", diff)
	}
	if n := h.m.Allocate(); n != 1 {
		t.Errorf("after rescind %d offers, want 1 (no filter)", n)
	}
}

func TestFaults(t *testing.T) {
	setup := func(t *testing.T, pa bool) (*harness, *jsonClient) {
		h := newHarness(t, Config{}, 2, agentRes)
		for _, a := range h.agents {
			a.script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
		}
		extra := map[string]any{}
		if pa {
			extra["capabilities"] = []any{map[string]any{"type": "PARTITION_AWARE"}}
		}
		c := h.jsonSubscribe(fwInfo("faults", extra))
		h.m.Allocate()
		for _, o := range offersOf(c.next("OFFERS")) {
			if str(o, "agent_id", "value") == "agent-0" {
				c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
			}
		}
		run := c.nextUpdate("t1")["update"].(map[string]any)["status"].(map[string]any)
		c.mustCall("ACKNOWLEDGE", map[string]any{"acknowledge": map[string]any{"agent_id": run["agent_id"], "task_id": run["task_id"], "uuid": run["uuid"]}})
		return h, c
	}
	for _, tc := range []struct {
		name      string
		pa        bool
		fault     func(h *harness) error
		wantState string
	}{
		{"partition, partition aware", true, func(h *harness) error { return h.m.PartitionAgent("agent-0") }, "TASK_UNREACHABLE"},
		{"partition, not partition aware", false, func(h *harness) error { return h.m.PartitionAgent("agent-0") }, "TASK_LOST"},
		{"remove, partition aware", true, func(h *harness) error { return h.m.RemoveAgent("agent-0") }, "TASK_GONE"},
		{"remove, not partition aware", false, func(h *harness) error { return h.m.RemoveAgent("agent-0") }, "TASK_LOST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, c := setup(t, tc.pa)
			h.m.Allocate() // agent-0 still has free resources: an outstanding offer to rescind
			held := offersOf(c.next("OFFERS"))
			if err := tc.fault(h); err != nil {
				t.Fatal(err)
			}
			if len(held) > 0 {
				c.next("RESCIND")
			}
			st := c.nextUpdate("t1")["update"].(map[string]any)["status"].(map[string]any)
			if diff := cmp.Diff([]string{tc.wantState, "REASON_AGENT_REMOVED"}, []string{st["state"].(string), st["reason"].(string)}); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			if a := str(c.next("FAILURE"), "failure", "agent_id", "value"); a != "agent-0" {
				t.Errorf("FAILURE for agent %q", a)
			}
		})
	}
	t.Run("heal: partition-aware tasks come back", func(t *testing.T) {
		h, c := setup(t, true)
		if err := h.m.PartitionAgent("agent-0"); err != nil {
			t.Fatal(err)
		}
		c.nextUpdate("t1")
		if diff := cmp.Diff(map[string]string{"t1": "unreachable:TASK_UNREACHABLE"}, h.taskStates()); diff != "" {
			t.Errorf("tasks while partitioned (-want +got):\n%s", diff)
		}
		c.mustCall("RECONCILE", map[string]any{"reconcile": map[string]any{"tasks": []any{map[string]any{"task_id": map[string]any{"value": "t1"}}}}})
		if st := str(c.nextUpdate("t1"), "update", "status", "state"); st != "TASK_UNREACHABLE" {
			t.Errorf("reconciled while partitioned: %s, want TASK_UNREACHABLE", st)
		}
		if err := h.m.HealAgent("agent-0"); err != nil {
			t.Fatal(err)
		}
		c.mustCall("RECONCILE", map[string]any{"reconcile": map[string]any{"tasks": []any{map[string]any{"task_id": map[string]any{"value": "t1"}}}}})
		if st := str(c.nextUpdate("t1"), "update", "status", "state"); st != "TASK_RUNNING" {
			t.Errorf("reconciled after heal: %s, want TASK_RUNNING", st)
		}
	})
	t.Run("heal: other frameworks' tasks are killed", func(t *testing.T) {
		h, c := setup(t, false)
		if err := h.m.PartitionAgent("agent-0"); err != nil {
			t.Fatal(err)
		}
		c.nextUpdate("t1")
		if err := h.m.HealAgent("agent-0"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "shutdown-framework on heal", func() bool { return slices.Contains(h.agents[0].calls(), "shutdown-framework") })
	})
	t.Run("kill executor", func(t *testing.T) {
		h, c := setup(t, false)
		h.m.Allocate()
		o := offersOf(c.next("OFFERS"))[0]
		task := commandTask("t2", o["agent_id"], 1, 128)
		delete(task, "command")
		task["executor"] = executorInfo("ex", "run")
		c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, task))
		c.nextUpdate("t2")
		h.m.ExecutorTerminated(mesos.AgentID{Value: "agent-0"}, mesos.FrameworkID{Value: c.fwID}, mesos.ExecutorID{Value: "t1"}, 0) // command executor: ignored
		if err := h.m.KillExecutor(str(o, "agent_id", "value"), c.fwID, "ex"); err != nil {
			t.Fatal(err)
		}
		f := c.next("FAILURE")["failure"].(map[string]any)
		if str(f, "executor_id", "value") != "ex" || f["status"] != 9.0 {
			t.Errorf("FAILURE = %v", f)
		}
	})
	t.Run("master failover", func(t *testing.T) {
		h, c := setup(t, false)
		before := h.m.Info().ID
		resp, err := http.Post(h.url+"/admin/failover", "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("admin failover: %v %v", err, resp)
		}
		resp.Body.Close()
		select {
		case <-c.done:
		case <-time.After(waitTimeout):
			t.Fatal("stream not dropped on master failover")
		}
		h.clock.Step(time.Hour) // failover_timeout is 0: only a scheduler disconnect starts it, not a master failover
		c2 := h.jsonSubscribe(fwInfo("faults", map[string]any{"id": map[string]any{"value": c.fwID}}))
		if c2.fwID != c.fwID {
			t.Errorf("re-subscribed as %s", c2.fwID)
		}
		if h.m.Info().ID == before {
			t.Errorf("master ID unchanged after failover")
		}
		if diff := cmp.Diff(map[string]string{"t1": "TASK_RUNNING"}, h.taskStates()); diff != "" {
			t.Errorf("tasks after failover (-want +got):\n%s", diff)
		}
	})
	t.Run("duplicate and delayed status updates", func(t *testing.T) {
		h, c := setup(t, false)
		h.m.SetStatusUpdateFaults(0, true)
		h.agents[0].Kill(mesos.FrameworkID{Value: c.fwID}, mesos.TaskID{Value: "t1"}, nil)
		a, b := c.nextUpdate("t1"), c.nextUpdate("t1")
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("duplicate differs:\n%s", diff)
		}
		h.m.SetStatusUpdateFaults(10*time.Second, false)
		h.m.StatusUpdate(mesos.AgentID{Value: "agent-0"}, mesos.FrameworkID{Value: c.fwID}, h.agents[0].status("t2", mesos.TASK_RUNNING))
		eventually(t, "delay timer armed", h.clock.HasWaiters)
		h.clock.Step(10 * time.Second)
		c.nextUpdate("t2")
	})
}

// TestBadCalls: malformed and misdirected calls get Mesos' status codes, and the master keeps serving.
func TestBadCalls(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("ok", nil))
	gone := h.jsonSubscribe(fwInfo("gone", map[string]any{"failover_timeout": 3600.0}))
	gone.disconnect()
	eventually(t, "disconnect noticed", func() bool { return !h.frameworkConnected(gone.fwID) })
	protoCall := func(c *scheduler.Call) []byte { b, _ := proto.Marshal(c); return b }
	js := func(v any) []byte { b, _ := json.Marshal(v); return b }
	fid := map[string]any{"value": c.fwID}
	tests := []struct {
		name     string
		method   string
		body     []byte
		headers  map[string]string
		want     int
		wantBody string
	}{
		{"GET", "GET", nil, nil, 405, "405 Method Not Allowed. Expecting one of { 'POST' }, but received 'GET'."},
		{"no content type", "POST", js(map[string]any{"type": "REVIVE"}), map[string]string{}, 400, "Expecting 'Content-Type' to be present"},
		{"unsupported content type", "POST", []byte("x"), map[string]string{"Content-Type": "text/plain"}, 415, ""},
		{"malformed JSON", "POST", []byte("{"), map[string]string{"Content-Type": mediaJSON}, 400, "Failed to parse body into JSON"},
		{"malformed protobuf", "POST", []byte{0xff, 0xff, 0xff}, map[string]string{"Content-Type": mediaProtobuf}, 400, "Failed to parse body into Call protobuf"},
		{"unknown call type", "POST", js(map[string]any{"type": "FLY", "framework_id": fid}), map[string]string{"Content-Type": mediaJSON}, 400, "Failed to validate scheduler::Call: Expecting 'type' to be present"},
		{"UNKNOWN call type", "POST", js(map[string]any{"type": "UNKNOWN", "framework_id": fid}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": c.streamID}, 501, ""},
		{"missing framework_id", "POST", js(map[string]any{"type": "REVIVE"}), map[string]string{"Content-Type": mediaJSON}, 400, "Expecting 'framework_id' to be present"},
		{"missing stream id", "POST", js(map[string]any{"type": "REVIVE", "framework_id": fid}), map[string]string{"Content-Type": mediaJSON}, 400, "Mesos-Stream-Id"},
		{"wrong stream id", "POST", js(map[string]any{"type": "REVIVE", "framework_id": fid}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": "nope"}, 400, "didn't match"},
		{"unknown framework", "POST", js(map[string]any{"type": "REVIVE", "framework_id": map[string]any{"value": "nope"}}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": c.streamID}, 400, "Framework cannot be found"},
		{"disconnected framework", "POST", js(map[string]any{"type": "REVIVE", "framework_id": map[string]any{"value": gone.fwID}}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": gone.streamID}, 403, "Framework is not subscribed"},
		{"missing call body", "POST", js(map[string]any{"type": "ACCEPT", "framework_id": fid}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": c.streamID}, 400, "Expecting 'accept' to be present"},
		{"bad ack uuid", "POST", js(map[string]any{"type": "ACKNOWLEDGE", "framework_id": fid, "acknowledge": map[string]any{"agent_id": map[string]any{"value": "a"}, "task_id": map[string]any{"value": "t"}, "uuid": "AAAA"}}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": c.streamID}, 400, "UUID"},
		{"subscribe with stream id", "POST", js(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": fwInfo("x", nil)}}), map[string]string{"Content-Type": mediaJSON, "Mesos-Stream-Id": c.streamID}, 400, "should not include"},
		{"subscribe not acceptable", "POST", js(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": fwInfo("x", nil)}}), map[string]string{"Content-Type": mediaJSON, "Accept": "text/html"}, 406, ""},
		{"subscribe without framework_info", "POST", js(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{}}), map[string]string{"Content-Type": mediaJSON}, 400, "framework_info"},
		// Master::subscribe refuses an invalid FrameworkInfo on the stream, as an ERROR event.
		{"subscribe with bad role", "POST", js(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": fwInfo("x", map[string]any{"role": "a b"})}}), map[string]string{"Content-Type": mediaJSON}, 200, `{"type":"ERROR","error":{"message":"'FrameworkInfo.role' is not a valid role: Role component 'a b' is invalid because it contains backspace or whitespace"}}`},
		{"protobuf valid call, wrong stream", "POST", protoCall(&scheduler.Call{Type: scheduler.Call_REVIVE, FrameworkID: &mesos.FrameworkID{Value: c.fwID}}), map[string]string{"Content-Type": mediaProtobuf, "Mesos-Stream-Id": "x"}, 400, "didn't match"},
		{"protobuf valid call", "POST", protoCall(&scheduler.Call{Type: scheduler.Call_REVIVE, FrameworkID: &mesos.FrameworkID{Value: c.fwID}}), map[string]string{"Content-Type": mediaProtobuf, "Mesos-Stream-Id": c.streamID}, 202, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.url+"/api/v1/scheduler", bytes.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			if resp.StatusCode != tc.want || !strings.Contains(buf.String(), tc.wantBody) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, buf.String(), tc.want, tc.wantBody)
			}
		})
	}
	resp, err := http.Get(h.url + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("master stopped serving: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestOperatorAPIAndState(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	c := h.jsonSubscribe(fwInfo("op", nil))
	h.m.Allocate()
	for _, o := range offersOf(c.next("OFFERS")) {
		if str(o, "agent_id", "value") == "agent-0" {
			c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, commandTask("t1", o["agent_id"], 1, 128)))
		}
	}
	c.nextUpdate("t1")
	for _, mt := range []string{mediaJSON, mediaProtobuf} {
		if !h.operator(master.Call{Type: master.Call_GET_HEALTH}, mt).GetHealth.Healthy {
			t.Errorf("%s GET_HEALTH not healthy", mt)
		}
		if v := h.operator(master.Call{Type: master.Call_GET_VERSION}, mt).GetVersion.VersionInfo.Version; v != Version {
			t.Errorf("%s GET_VERSION %q", mt, v)
		}
		st := h.operator(master.Call{Type: master.Call_GET_STATE}, mt).GetState
		if len(st.GetAgents.Agents) != 2 || len(st.GetFrameworks.Frameworks) != 1 || len(st.GetTasks.Tasks) != 1 {
			t.Errorf("%s GET_STATE: %d agents, %d frameworks, %d tasks", mt, len(st.GetAgents.Agents), len(st.GetFrameworks.Frameworks), len(st.GetTasks.Tasks))
		}
	}
	resp, err := http.Get(h.url + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var state struct {
		Slaves []struct {
			ID            string             `json:"id"`
			Resources     map[string]any     `json:"resources"`
			UsedResources map[string]float64 `json:"-"`
			Used          map[string]any     `json:"used_resources"`
		} `json:"slaves"`
		Frameworks []struct {
			ID    string `json:"id"`
			Tasks []struct {
				ID    string `json:"id"`
				State string `json:"state"`
			} `json:"tasks"`
		} `json:"frameworks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	if len(state.Slaves) != 2 || state.Slaves[0].Resources["cpus"] != 4.0 || state.Slaves[0].Resources["ports"] != "[31000-32000]" || state.Slaves[0].Used["cpus"] != 1.0 {
		t.Errorf("/master/state slaves = %+v", state.Slaves)
	}
	if len(state.Frameworks) != 1 || len(state.Frameworks[0].Tasks) != 1 || state.Frameworks[0].Tasks[0].State != "TASK_RUNNING" {
		t.Errorf("/master/state frameworks = %+v", state.Frameworks)
	}
}
