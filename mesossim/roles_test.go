package mesossim

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	mastercalls "github.com/mesos/mesos-go/api/v1/lib/master/calls"
)

func multiRole(roles ...string) map[string]any {
	return map[string]any{"roles": roles, "capabilities": []any{map[string]any{"type": "MULTI_ROLE"}, map[string]any{"type": "PARTITION_AWARE"}}}
}

// TestAcceptOffersOfTwoRoles: validation::offer::validateAllocationRole refuses an ACCEPT whose offers
// are allocated to different roles, with Mesos' text (checked before the agents').
func TestAcceptOffersOfTwoRoles(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	c := h.jsonSubscribe(fwInfo("two", multiRole("a", "b")))
	h.m.Allocate()
	offers := offersOf(c.next("OFFERS"))
	if len(offers) != 2 {
		t.Fatalf("%d offers, want one per agent", len(offers))
	}
	byRole := map[string]map[string]any{}
	for _, o := range offers {
		byRole[str(o, "allocation_info", "role")] = o
	}
	if byRole["a"] == nil || byRole["b"] == nil {
		t.Fatalf("offers of roles %v, want a and b (DRF gives the second agent to the role with nothing)", byRole)
	}
	task := commandTask("t", byRole["b"]["agent_id"], 1, 128)
	c.mustCall("ACCEPT", launchCall([]any{byRole["a"]["id"], byRole["b"]["id"]}, 0, task))
	st := c.nextUpdate("t")["update"].(map[string]any)["status"].(map[string]any)
	want := "Task launched with invalid offers: Aggregated offers must be allocated to the same role. Offer " +
		str(byRole["b"], "id", "value") + " uses role 'b but another is using role 'a"
	if diff := cmp.Diff([]string{"TASK_DROPPED", "REASON_INVALID_OFFERS", want}, []string{st["state"].(string), st["reason"].(string), st["message"].(string)}); diff != "" {
		t.Errorf("update (-want +got):\n%s", diff)
	}
}

// TestTaskResourcesOfAnotherRole: resources carrying another role's allocation_info are not in the
// offer; Mesos refuses the task (TASK_ERROR), never launches it in the offer's role.
func TestTaskResourcesOfAnotherRole(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("other", multiRole("a", "b")))
	h.m.Allocate()
	o := offersOf(c.next("OFFERS"))[0]
	task := commandTask("t", o["agent_id"], 1, 128)
	other := "b"
	if str(o, "allocation_info", "role") == "b" {
		other = "a"
	}
	for _, r := range task["resources"].([]any) {
		r.(map[string]any)["allocation_info"] = map[string]any{"role": other}
	}
	c.mustCall("ACCEPT", launchCall([]any{o["id"]}, 0, task))
	st := c.nextUpdate("t")["update"].(map[string]any)["status"].(map[string]any)
	if st["state"] != "TASK_ERROR" || st["reason"] != "REASON_TASK_INVALID" {
		t.Errorf("update %v, want TASK_ERROR REASON_TASK_INVALID", st)
	}
	if calls := h.agents[0].calls(); len(calls) != 0 {
		t.Errorf("agent was asked %v", calls)
	}
}

// TestUpdateFrameworkAsMesos: Master::updateFramework's validation texts, offers of roles left are
// rescinded, the suppressed roles are exactly the call's.
func TestUpdateFrameworkAsMesos(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	info := fwInfo("upd", multiRole("a"))
	c := h.jsonSubscribe(info)
	info["id"] = map[string]any{"value": c.fwID}
	h.m.Allocate()
	held := offersOf(c.next("OFFERS"))[0]

	update := func(fi map[string]any, suppressed ...string) (int, string) {
		u := map[string]any{"framework_info": fi}
		if suppressed != nil {
			u["suppressed_roles"] = suppressed
		}
		return c.call("UPDATE_FRAMEWORK", map[string]any{"update_framework": u})
	}
	with := func(k string, v any) map[string]any {
		fi := map[string]any{}
		for k, v := range info {
			fi[k] = v
		}
		fi[k] = v
		return fi
	}
	for _, tc := range []struct {
		name       string
		fi         map[string]any
		suppressed []string
		want       string
	}{
		{"invalid role", with("roles", []string{"a", "-x"}), nil, "Supplied FrameworkInfo is not valid: 'FrameworkInfo.roles' contains invalid role: Role component '-x' is invalid because it starts with a dash"},
		{"duplicate roles", with("roles", []string{"b", "a", "b"}), nil, "Supplied FrameworkInfo is not valid: 'FrameworkInfo.roles' contains duplicate items: { b }"},
		{"user changed", with("user", "nobody"), nil, "FrameworkInfo update is not valid: Updating 'FrameworkInfo.user' is unsupported; attempted to update from 'root' to 'nobody'"},
		{"principal added", with("principal", "p"), nil, "FrameworkInfo update is not valid: Changing framework's principal is not allowed."},
		{"suppressed role not subscribed", with("roles", []string{"a"}), []string{"z"}, "'UpdateFramework' call is not valid: Suppressed roles { z } are not contained in the set of roles"},
	} {
		if code, msg := update(tc.fi, tc.suppressed...); code != 400 || msg != tc.want {
			t.Errorf("%s: %d %q, want 400 %q", tc.name, code, msg, tc.want)
		}
	}

	// Leaving role a rescinds its offer; b is suppressed from the start, c gets the agent.
	if code, msg := update(with("roles", []string{"b", "c"}), "b"); code != 200 {
		t.Fatalf("UPDATE_FRAMEWORK: %d %s", code, msg)
	}
	if got := str(c.next("RESCIND"), "rescind", "offer_id", "value"); got != str(held, "id", "value") {
		t.Errorf("rescinded %q, want the offer of role a %q", got, str(held, "id", "value"))
	}
	h.m.Allocate()
	if r := str(offersOf(c.next("OFFERS"))[0], "allocation_info", "role"); r != "c" {
		t.Errorf("offer role %q, want c (b suppressed)", r)
	}
}

// TestReviveOfARoleNotSubscribed: Master::revive drops the whole call when one role is not the
// framework's, so the framework's suppressed roles stay suppressed.
func TestReviveOfARoleNotSubscribed(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("rev", multiRole("a")))
	c.mustCall("SUPPRESS", map[string]any{"suppress": map[string]any{"roles": []string{"a"}}})
	c.mustCall("REVIVE", map[string]any{"revive": map[string]any{"roles": []string{"a", "nope"}}})
	if n := h.m.Allocate(); n != 0 {
		t.Errorf("%d offers after a dropped REVIVE, want 0", n)
	}
	c.mustCall("REVIVE", map[string]any{"revive": map[string]any{"roles": []string{"a"}}})
	if n := h.m.Allocate(); n != 1 {
		t.Errorf("%d offers after REVIVE of a, want 1", n)
	}
}

// TestGetRoles: GET_ROLES lists the known roles (subscribed, holding resources, weighted, and their
// ancestors) with weight, frameworks and what each holds, offers included.
func TestGetRoles(t *testing.T) {
	h := newHarness(t, Config{Weights: map[string]float64{"a": 2, "x/y": 3}}, 1, agentRes)
	c := h.jsonSubscribe(fwInfo("roles", multiRole("a", "b")))
	h.m.Allocate()
	if r := str(offersOf(c.next("OFFERS"))[0], "allocation_info", "role"); r != "a" {
		t.Fatalf("offer role %q, want a", r)
	}
	sender := httpmaster.NewSender(httpcli.New(httpcli.Endpoint(h.url + "/api/v1")).Send)
	resp, err := sender.Send(context.Background(), mastercalls.NonStreaming(&master.Call{Type: master.Call_GET_ROLES}))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var r master.Response
	if err := resp.Decode(&r); err != nil {
		t.Fatal(err)
	}
	type role struct {
		Name       string
		Weight     float64
		Frameworks []string
		Resources  map[string]float64
	}
	var got []role
	for _, x := range r.GetGetRoles().GetRoles() {
		rr := role{Name: x.Name, Weight: x.Weight, Resources: map[string]float64{}}
		for _, f := range x.Frameworks {
			rr.Frameworks = append(rr.Frameworks, f.Value)
		}
		for _, res := range x.Resources {
			rr.Resources[res.Name] = res.GetScalar().GetValue()
		}
		got = append(got, rr)
	}
	want := []role{
		{Name: "a", Weight: 2, Frameworks: []string{c.fwID}, Resources: map[string]float64{"cpus": 4, "mem": 8192, "disk": 65536}},
		{Name: "b", Weight: 1, Frameworks: []string{c.fwID}, Resources: map[string]float64{}},
		{Name: "x", Weight: 1, Resources: map[string]float64{}},
		{Name: "x/y", Weight: 3, Resources: map[string]float64{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET_ROLES (-want +got):\n%s", diff)
	}
}
