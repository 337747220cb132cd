package mesossim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// operatorJSON posts a JSON operator call to /api/v1 and returns the status and body.
func operatorJSON(t *testing.T, url string, call map[string]any, user, pass string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(call)
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func quotaConfig(role string, guarantees, limits map[string]float64) map[string]any {
	scal := func(m map[string]float64) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = map[string]any{"value": v}
		}
		return out
	}
	c := map[string]any{"role": role}
	if guarantees != nil {
		c["guarantees"] = scal(guarantees)
	}
	if limits != nil {
		c["limits"] = scal(limits)
	}
	return c
}

func updateQuota(force bool, configs ...map[string]any) map[string]any {
	u := map[string]any{"quota_configs": configs}
	if force {
		u["force"] = true
	}
	return map[string]any{"type": "UPDATE_QUOTA", "update_quota": u}
}

// TestUpdateQuotaValidation: QuotaHandler::update's and quota::validate's texts and 400s (the cases of
// Mesos' MasterQuotaTest: UpdateQuotaTooLarge, the overcommit and consumption checks).
func TestUpdateQuotaValidation(t *testing.T) {
	// 2 agents: cpus 8, mem 16384, disk 131072.
	h := newHarness(t, Config{}, 2, agentRes)
	for _, tc := range []struct {
		name string
		call map[string]any
		want string
	}{
		{"missing update_quota", map[string]any{"type": "UPDATE_QUOTA"}, "Failed to validate master::Call: Expecting 'update_quota' to be present"},
		{"nested role", updateQuota(false, quotaConfig("eng/a", nil, map[string]float64{"cpus": 1})), "Updating quota on nested role 'eng/a' is not supported yet"},
		{"no role", updateQuota(false, quotaConfig("", nil, nil)), "Invalid QuotaConfig: 'QuotaConfig.role' must be set"},
		{"invalid role", updateQuota(false, quotaConfig("-x", nil, nil)), "Invalid QuotaConfig: Invalid 'QuotaConfig.role': Role component '-x' is invalid because it starts with a dash"},
		{"limit too large", updateQuota(true, quotaConfig("r", map[string]float64{"cpus": 1000000000000}, map[string]float64{"cpus": 1000000000001})),
			"Invalid QuotaConfig: Invalid 'QuotaConfig.limits': {'cpus': 1000000000001} is invalid: values greater than 1 trillion (1000000000000) are not supported"},
		{"mem limit too large", updateQuota(true, quotaConfig("r", map[string]float64{"mem": 1099511627776}, map[string]float64{"mem": 1099511627777})),
			"Invalid QuotaConfig: Invalid 'QuotaConfig.limits': {'mem': 1099511627777} is invalid: values greater than 1 exabyte (1099511627776) are not supported"},
		{"disk guarantee too large", updateQuota(true, quotaConfig("r", map[string]float64{"disk": 1099511627777}, nil)),
			"Invalid QuotaConfig: Invalid 'QuotaConfig.guarantees': {'disk': 1099511627777} is invalid: values greater than 1 exabyte (1099511627776) are not supported"},
		{"negative", updateQuota(false, quotaConfig("r", nil, map[string]float64{"cpus": -1})), "Invalid QuotaConfig: Invalid limit configuration {'cpus': -1}: Negative values not supported"},
		{"guarantee above limit", updateQuota(false, quotaConfig("r", map[string]float64{"cpus": 2, "mem": 10}, map[string]float64{"cpus": 1})),
			"Invalid QuotaConfig: 'QuotaConfig.guarantees' { cpus: 2, mem: 10 } is not contained within the 'QuotaConfig.limits' { cpus: 1 }"},
		{"overcommit", updateQuota(false, quotaConfig("r", map[string]float64{"cpus": 9, "mem": 2048}, nil)),
			"Invalid QuotaConfig: total quota guarantees 'cpus:9; mem:2048' exceed cluster capacity 'cpus:8; disk:131072; mem:16384' (use 'force' flag to bypass this check)"},
	} {
		code, body := operatorJSON(t, h.url, tc.call, "", "")
		if code != http.StatusBadRequest || body != tc.want {
			t.Errorf("%s: %d %q, want 400 %q", tc.name, code, body, tc.want)
		}
	}
	// force bypasses the capacity check.
	if code, body := operatorJSON(t, h.url, updateQuota(true, quotaConfig("r", map[string]float64{"cpus": 9}, nil)), "", ""); code != 200 {
		t.Errorf("forced overcommit: %d %s", code, body)
	}
	// Back to the default quota (its guarantee would hold every cpu back as headroom).
	if code, body := operatorJSON(t, h.url, updateQuota(false, quotaConfig("r", nil, nil)), "", ""); code != 200 {
		t.Errorf("default quota: %d %s", code, body)
	}

	// A limit below what the role consumes needs force.
	c := h.jsonSubscribe(fwInfo("busy", multiRole("busy")))
	h.m.Allocate()
	offers := offersOf(c.next("OFFERS"))
	c.mustCall("ACCEPT", launchCall([]any{offers[0]["id"]}, 0, commandTask("t", offers[0]["agent_id"], 2, 1024)))
	code, body := operatorJSON(t, h.url, updateQuota(false, quotaConfig("busy", nil, map[string]float64{"cpus": 1})), "", "")
	want := "Invalid QuotaConfig: Role 'busy' is already consuming 'cpus:2; mem:1024'; this is more than the requested limits 'cpus:1' (use 'force' flag to bypass this check)"
	if code != 400 || body != want {
		t.Errorf("limit below consumption: %d %q, want 400 %q", code, body, want)
	}
	if code, body := operatorJSON(t, h.url, updateQuota(false, quotaConfig("busy", nil, map[string]float64{"cpus": 2})), "", ""); code != 200 {
		t.Errorf("limit at consumption: %d %s", code, body)
	}
}

// TestQuotaAuthorization: with --authenticate_http_readwrite a call without credentials gets 401, and
// the update_quotas ACLs refuse a principal with 403 "403 Forbidden." after validation.
func TestQuotaAuthorization(t *testing.T) {
	h := newHarness(t, Config{
		AuthenticateHTTPReadWrite: true, Credentials: map[string]string{"ops": "s1", "dev": "s2"},
		QuotaACLs: []QuotaACL{{Principals: []string{"ops"}}}, QuotaACLsPermissive: false,
	}, 1, agentRes)
	call := updateQuota(false, quotaConfig("r", nil, map[string]float64{"cpus": 1}))
	if code, _ := operatorJSON(t, h.url, call, "", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, body := operatorJSON(t, h.url, call, "dev", "s2"); code != http.StatusForbidden || body != "403 Forbidden." {
		t.Errorf("dev: %d %q, want 403", code, body)
	}
	if code, body := operatorJSON(t, h.url, call, "ops", "s1"); code != http.StatusOK {
		t.Errorf("ops: %d %q, want 200", code, body)
	}
	// Validation comes before authorization.
	if code, _ := operatorJSON(t, h.url, updateQuota(false, quotaConfig("a/b", nil, nil)), "dev", "s2"); code != http.StatusBadRequest {
		t.Errorf("dev with a nested role: %d, want 400", code)
	}
}

// TestQuotaStatusAndRoles: GET_QUOTA returns the configs (and legacy infos), /quota the same as JSON,
// a quota role is a known role of GET_ROLES, and the default quota removes it again.
func TestQuotaStatusAndRoles(t *testing.T) {
	h := newHarness(t, Config{}, 1, agentRes)
	if code, body := operatorJSON(t, h.url, updateQuota(false, quotaConfig("tenant", map[string]float64{"cpus": 1}, map[string]float64{"cpus": 2, "mem": 1024})), "", ""); code != 200 {
		t.Fatalf("UPDATE_QUOTA: %d %s", code, body)
	}
	code, body := operatorJSON(t, h.url, map[string]any{"type": "GET_QUOTA"}, "", "")
	if code != 200 {
		t.Fatalf("GET_QUOTA: %d %s", code, body)
	}
	var got map[string]any
	_ = json.Unmarshal([]byte(body), &got)
	want := map[string]any{"type": "GET_QUOTA", "get_quota": map[string]any{"status": map[string]any{
		"infos": []any{map[string]any{"role": "tenant", "guarantee": []any{map[string]any{"name": "cpus", "type": "SCALAR", "scalar": map[string]any{"value": 1.0}}}}},
		"configs": []any{map[string]any{"role": "tenant", "guarantees": map[string]any{"cpus": map[string]any{"value": 1.0}},
			"limits": map[string]any{"cpus": map[string]any{"value": 2.0}, "mem": map[string]any{"value": 1024.0}}}},
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET_QUOTA (-want +got):\n%s", diff)
	}
	_, body = operatorJSON(t, h.url, map[string]any{"type": "GET_ROLES"}, "", "")
	if !bytes.Contains([]byte(body), []byte(`"name":"tenant"`)) {
		t.Errorf("GET_ROLES %s: the quota role is a known role", body)
	}
	resp, err := http.Get(h.url + "/roles")
	if err != nil {
		t.Fatal(err)
	}
	var roles struct {
		Roles []struct {
			Name  string
			Quota map[string]any
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&roles)
	resp.Body.Close()
	if len(roles.Roles) != 1 || !cmp.Equal(roles.Roles[0].Quota, map[string]any{"role": "tenant", "guarantee": map[string]any{"cpus": 1.0},
		"limit": map[string]any{"cpus": 2.0, "mem": 1024.0}, "consumed": map[string]any{}}) {
		t.Errorf("/roles: %+v", roles)
	}
	if code, body := operatorJSON(t, h.url, updateQuota(false, quotaConfig("tenant", nil, nil)), "", ""); code != 200 {
		t.Fatalf("UPDATE_QUOTA to the default: %d %s", code, body)
	}
	_, body = operatorJSON(t, h.url, map[string]any{"type": "GET_QUOTA"}, "", "")
	got = nil
	_ = json.Unmarshal([]byte(body), &got)
	if !cmp.Equal(got, map[string]any{"type": "GET_QUOTA", "get_quota": map[string]any{"status": map[string]any{}}}) {
		t.Errorf("GET_QUOTA after removal: %s", body)
	}
}

// TestQuotaLimitRescindsAndCaps: a limit set while the role holds an offer rescinds it, and the next
// offers of the role stay within the limit while another framework's role gets the rest.
func TestQuotaLimitRescindsAndCaps(t *testing.T) {
	h := newHarness(t, Config{}, 2, agentRes)
	c := h.jsonSubscribe(fwInfo("capped", multiRole("capped")))
	h.m.Allocate()
	if n := len(offersOf(c.next("OFFERS"))); n != 2 {
		t.Fatalf("%d offers, want 2", n)
	}
	if code, body := operatorJSON(t, h.url, updateQuota(false, quotaConfig("capped", nil, map[string]float64{"cpus": 3})), "", ""); code != 200 {
		t.Fatalf("UPDATE_QUOTA: %d %s", code, body)
	}
	c.next("RESCIND")
	c.next("RESCIND") // 8 cpus offered: both offers go before 3 fits
	other := h.jsonSubscribe(fwInfo("other", multiRole("other")))
	h.m.Allocate()
	var cpus float64
	for _, o := range offersOf(c.next("OFFERS")) {
		for _, r := range o["resources"].([]any) {
			if r.(map[string]any)["name"] == "cpus" {
				cpus += r.(map[string]any)["scalar"].(map[string]any)["value"].(float64)
			}
		}
	}
	if cpus != 3 {
		t.Errorf("capped offered %v cpus, want its limit 3", cpus)
	}
	if n := len(offersOf(other.next("OFFERS"))); n == 0 {
		t.Errorf("the other role got no offer")
	}
}
