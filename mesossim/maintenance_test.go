package mesossim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

// operatorJSON posts a JSON operator call and returns the status and body.
func (h *harness) operatorJSON(path, body string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// window is a one-window schedule of the machines (hostname/ip pairs) as JSON.
func scheduleJSON(start time.Time, duration time.Duration, machines ...[2]string) string {
	var ids []map[string]string
	for _, m := range machines {
		id := map[string]string{}
		if m[0] != "" {
			id["hostname"] = m[0]
		}
		if m[1] != "" {
			id["ip"] = m[1]
		}
		ids = append(ids, id)
	}
	w := map[string]any{"machine_ids": ids, "unavailability": map[string]any{
		"start": map[string]any{"nanoseconds": start.UnixNano()}, "duration": map[string]any{"nanoseconds": duration.Nanoseconds()}}}
	b, _ := json.Marshal(map[string]any{"type": "UPDATE_MAINTENANCE_SCHEDULE",
		"update_maintenance_schedule": map[string]any{"schedule": map[string]any{"windows": []any{w}}}})
	return string(b)
}

var host0 = [2]string{"host-0", "127.0.0.1"}

// The operator API's maintenance calls answer with Mesos' validation texts.
func TestMaintenanceValidation(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	start := t0.Add(time.Hour)
	machines := func(typ string, ms ...[2]string) string {
		var ids []map[string]string
		for _, m := range ms {
			ids = append(ids, map[string]string{"hostname": m[0], "ip": m[1]})
		}
		field := strings.ToLower(typ)
		b, _ := json.Marshal(map[string]any{"type": typ, field: map[string]any{"machines": ids}})
		return string(b)
	}
	cases := []struct{ name, body, want string }{
		{"empty window", `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{"windows":[{"machine_ids":[],"unavailability":{"start":{"nanoseconds":1}}}]}}}`,
			"List of machines in the maintenance window is empty"},
		{"no hostname nor ip", scheduleJSON(start, time.Hour, [2]string{"", ""}), "Both 'hostname' and 'ip' for a machine are empty"},
		{"bad ip", scheduleJSON(start, time.Hour, [2]string{"h", "300.1.1.1"}), "Failed to parse IPv4: 300.1.1.1"},
		{"negative duration", scheduleJSON(start, -time.Second, host0), "Unavailability 'duration' is negative"},
		{"duplicate", scheduleJSON(start, time.Hour, host0, host0), `Machine '{"hostname":"host-0","ip":"127.0.0.1"}' appears more than once in the schedule`},
		{"missing field", `{"type":"START_MAINTENANCE"}`, "Failed to validate master::Call: Expecting 'start_maintenance' to be present"},
		{"start: unknown machine", machines("START_MAINTENANCE", [2]string{"nowhere", "10.0.0.1"}), `Machine '{"hostname":"nowhere","ip":"10.0.0.1"}' is not part of a maintenance schedule`},
		{"start: an UP machine", machines("START_MAINTENANCE", host0), `Machine '{"hostname":"host-0","ip":"127.0.0.1"}' is not in DRAINING mode and cannot be brought down`},
		{"start: no machines", machines("START_MAINTENANCE"), "List of machines is empty"},
		{"stop: an UP machine", machines("STOP_MAINTENANCE", host0), `Machine '{"hostname":"host-0","ip":"127.0.0.1"}' is not in DOWN mode and cannot be brought up`},
	}
	for _, c := range cases {
		code, body := h.operatorJSON("/api/v1", c.body)
		if code != http.StatusBadRequest || strings.TrimSpace(body) != c.want {
			t.Errorf("%s: %d %q, want 400 %q", c.name, code, body, c.want)
		}
	}
	// A DOWN machine cannot leave the schedule.
	if code, body := h.operatorJSON("/api/v1", scheduleJSON(start, time.Hour, host0)); code != 200 {
		t.Fatalf("scheduling: %d %s", code, body)
	}
	if code, body := h.operatorJSON("/api/v1", machines("STOP_MAINTENANCE", host0)); code != 400 || !strings.Contains(body, "is not in DOWN mode") {
		t.Errorf("stopping a DRAINING machine: %d %s", code, body)
	}
	if code, body := h.operatorJSON("/api/v1", machines("START_MAINTENANCE", host0)); code != 200 {
		t.Fatalf("machine down: %d %s", code, body)
	}
	code, body := h.operatorJSON("/api/v1", `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{}}}`)
	if want := `Machine '{"hostname":"host-0","ip":"127.0.0.1"}' is deactivated and cannot be removed from the schedule`; code != 400 || strings.TrimSpace(body) != want {
		t.Errorf("removing a DOWN machine: %d %q, want 400 %q", code, body, want)
	}
}

// A framework with a task on a scheduled agent gets an inverse offer with the unavailability; offers
// of the agent carry it; its answer shows in GET_MAINTENANCE_STATUS, and the inverse offer comes again
// once its refuse filter expires; clearing the schedule rescinds what is outstanding.
func TestMaintenanceInverseOffers(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	f := h.jsonSubscribe(fwInfo("f1", nil))
	other := h.jsonSubscribe(fwInfo("f2", map[string]any{"role": "other"}))
	h.m.Allocate()
	var onAgent0 map[string]any
	for onAgent0 == nil {
		for _, o := range offersOf(f.next("OFFERS")) {
			if str(o, "agent_id", "value") == "agent-0" {
				onAgent0 = o
			}
		}
	}
	f.mustCall("ACCEPT", launchCall([]any{onAgent0["id"]}, 0, commandTask("t1", onAgent0["agent_id"], 1, 128)))
	f.nextUpdate("t1")

	start := t0.Add(time.Hour)
	if code, body := h.operatorJSON("/api/v1", scheduleJSON(start, 30*time.Minute, host0)); code != 200 {
		t.Fatalf("scheduling: %d %s", code, body)
	}
	h.m.Allocate()
	ev := f.next("INVERSE_OFFERS")
	ios := ev["inverse_offers"].(map[string]any)["inverse_offers"].([]any)
	if len(ios) != 1 {
		t.Fatalf("inverse offers %v, want one", ios)
	}
	io := ios[0].(map[string]any)
	if str(io, "agent_id", "value") != "agent-0" || str(io, "framework_id", "value") != f.fwID {
		t.Errorf("inverse offer %v", io)
	}
	if got := io["unavailability"].(map[string]any)["start"].(map[string]any)["nanoseconds"]; got != float64(start.UnixNano()) {
		t.Errorf("unavailability start %v, want %d", got, start.UnixNano())
	}
	// The other framework has nothing on agent-0: no inverse offer. Offers of agent-0 carry the
	// unavailability, those of agent-1 none.
	sawUnavailable := false
	for _, fw := range h.operator(master.Call{Type: master.Call_GET_FRAMEWORKS}, mediaProtobuf).GetFrameworks.Frameworks {
		for _, o := range fw.Offers {
			has := o.Unavailability != nil && o.Unavailability.Start.Nanoseconds == start.UnixNano()
			if o.AgentID.Value == "agent-0" {
				sawUnavailable = has
			} else if o.Unavailability != nil {
				t.Errorf("offer of %s carries an unavailability", o.AgentID.Value)
			}
		}
	}
	if !sawUnavailable {
		t.Errorf("no offer of agent-0 with its unavailability")
	}
drained:
	for {
		select {
		case ev := <-other.events:
			if ev["type"] == "INVERSE_OFFERS" {
				t.Errorf("f2 got an inverse offer without resources on agent-0")
			}
		default:
			break drained
		}
	}

	f.mustCall("ACCEPT_INVERSE_OFFERS", map[string]any{"accept_inverse_offers": map[string]any{"inverse_offer_ids": []any{io["id"]}}})
	st := h.operator(master.Call{Type: master.Call_GET_MAINTENANCE_STATUS}, mediaJSON).GetMaintenanceStatus.Status
	if len(st.DrainingMachines) != 1 || len(st.DrainingMachines[0].Statuses) != 1 ||
		st.DrainingMachines[0].Statuses[0].GetStatus().String() != "ACCEPT" || st.DrainingMachines[0].Statuses[0].FrameworkID.Value != f.fwID {
		t.Fatalf("maintenance status %+v, want host-0 draining with f1's ACCEPT", st)
	}
	sched := h.operator(master.Call{Type: master.Call_GET_MAINTENANCE_SCHEDULE}, mediaProtobuf).GetMaintenanceSchedule.Schedule
	if len(sched.Windows) != 1 || sched.Windows[0].MachineIDs[0].GetHostname() != "host-0" {
		t.Errorf("schedule %+v", sched)
	}

	// Within the default 5s refuse filter no new inverse offer; after it, one again.
	h.m.Allocate()
	h.clock.Step(6 * time.Second)
	h.m.Allocate()
	ev = f.next("INVERSE_OFFERS")
	io2 := ev["inverse_offers"].(map[string]any)["inverse_offers"].([]any)[0].(map[string]any)
	if str(io2, "id", "value") == str(io, "id", "value") {
		t.Errorf("the inverse offer was not renewed")
	}

	// Clearing the schedule rescinds the outstanding inverse offer.
	if code, body := h.operatorJSON("/api/v1", `{"type":"UPDATE_MAINTENANCE_SCHEDULE","update_maintenance_schedule":{"schedule":{}}}`); code != 200 {
		t.Fatalf("clearing the schedule: %d %s", code, body)
	}
	ev = f.next("RESCIND_INVERSE_OFFER")
	if got := str(ev, "rescind_inverse_offer", "inverse_offer_id", "value"); got != str(io2, "id", "value") {
		t.Errorf("rescinded %q, want %q", got, str(io2, "id", "value"))
	}
	st = h.operator(master.Call{Type: master.Call_GET_MAINTENANCE_STATUS}, mediaJSON).GetMaintenanceStatus.Status
	if len(st.DrainingMachines)+len(st.DownMachines) != 0 {
		t.Errorf("status after clearing %+v", st)
	}
}

// START_MAINTENANCE removes and stops a DRAINING machine's agents, which may not register while the
// machine is DOWN; STOP_MAINTENANCE brings it UP and out of the schedule (/machine/down, /machine/up).
func TestMaintenanceDownAndUp(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	h.agents[0].script = func(mesos.TaskInfo) []mesos.TaskState { return []mesos.TaskState{mesos.TASK_RUNNING} }
	f := h.jsonSubscribe(fwInfo("f1", map[string]any{"capabilities": []any{map[string]any{"type": "PARTITION_AWARE"}}}))
	h.m.Allocate()
	var onAgent0 map[string]any
	for onAgent0 == nil {
		for _, o := range offersOf(f.next("OFFERS")) {
			if str(o, "agent_id", "value") == "agent-0" {
				onAgent0 = o
			}
		}
	}
	f.mustCall("ACCEPT", launchCall([]any{onAgent0["id"]}, 0, commandTask("t1", onAgent0["agent_id"], 1, 128)))
	f.nextUpdate("t1")
	if code, body := h.operatorJSON("/maintenance/schedule", `{"windows":[{"machine_ids":[{"hostname":"host-0","ip":"127.0.0.1"}],"unavailability":{"start":{"nanoseconds":1}}}]}`); code != 200 {
		t.Fatalf("POST /maintenance/schedule: %d %s", code, body)
	}
	if code, body := h.operatorJSON("/machine/down", `[{"hostname":"host-0","ip":"127.0.0.1"}]`); code != 200 {
		t.Fatalf("POST /machine/down: %d %s", code, body)
	}
	up := f.nextUpdate("t1")
	if got := str(up, "update", "status", "state"); got != "TASK_GONE_BY_OPERATOR" {
		t.Errorf("t1 %s, want TASK_GONE_BY_OPERATOR", got)
	}
	if msg := str(up, "update", "status", "message"); msg != "Operator initiated 'Machine DOWN'" {
		t.Errorf("t1's message %q", msg)
	}
	if r := str(up, "update", "status", "reason"); r != "REASON_AGENT_REMOVED_BY_OPERATOR" {
		t.Errorf("t1's reason %q", r)
	}
	eventually(t, "agent-0 stopped", func() bool {
		calls := h.agents[0].calls()
		return len(calls) > 0 && calls[len(calls)-1] == "stop"
	})
	st := h.operator(master.Call{Type: master.Call_GET_MAINTENANCE_STATUS}, mediaJSON).GetMaintenanceStatus.Status
	if len(st.DownMachines) != 1 || st.DownMachines[0].GetHostname() != "host-0" {
		t.Errorf("status %+v, want host-0 down", st)
	}
	resp, err := http.Get(h.url + "/master/maintenance/status")
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"down_machines":[{"hostname":"host-0","ip":"127.0.0.1"}]}`; strings.TrimSpace(string(status)) != want {
		t.Errorf("GET /master/maintenance/status %s, want %s", status, want)
	}
	rs, _ := ParseResources(agentRes)
	again := mesos.AgentInfo{ID: &mesos.AgentID{Value: "agent-0b"}, Hostname: "host-0", Resources: rs}
	if err := h.m.AddAgent(again, newFakeAgent("agent-0b", h.m)); err == nil || !strings.Contains(err.Error(), "`DOWN`") {
		t.Errorf("registering on a DOWN machine: %v", err)
	}
	if code, body := h.operatorJSON("/machine/up", `[{"hostname":"host-0","ip":"127.0.0.1"}]`); code != 200 {
		t.Fatalf("POST /machine/up: %d %s", code, body)
	}
	var sched bytes.Buffer
	resp, err = http.Get(h.url + "/maintenance/schedule")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sched.ReadFrom(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(sched.String()) != "{}" {
		t.Errorf("schedule after machine up %q, want {}", sched.String())
	}
	if err := h.m.AddAgent(again, newFakeAgent("agent-0b", h.m)); err != nil {
		t.Errorf("registering after machine up: %v", err)
	}
}

// DECLINE_INVERSE_OFFERS records the framework's refusal for the operator to see.
func TestMaintenanceDeclineInverseOffer(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	f := h.jsonSubscribe(fwInfo("f1", nil))
	h.m.Allocate()
	f.next("OFFERS") // held: the framework has resources offered on agent-0
	if code, body := h.operatorJSON("/api/v1", scheduleJSON(t0.Add(time.Hour), time.Hour, host0)); code != 200 {
		t.Fatalf("scheduling: %d %s", code, body)
	}
	h.m.Allocate()
	io := f.next("INVERSE_OFFERS")["inverse_offers"].(map[string]any)["inverse_offers"].([]any)[0].(map[string]any)
	f.mustCall("DECLINE_INVERSE_OFFERS", map[string]any{"decline_inverse_offers": map[string]any{"inverse_offer_ids": []any{io["id"]}}})
	st := h.operator(master.Call{Type: master.Call_GET_MAINTENANCE_STATUS}, mediaProtobuf).GetMaintenanceStatus.Status
	if len(st.DrainingMachines) != 1 || len(st.DrainingMachines[0].Statuses) != 1 || st.DrainingMachines[0].Statuses[0].GetStatus().String() != "DECLINE" {
		t.Errorf("status %+v, want f1's DECLINE", st)
	}
}
