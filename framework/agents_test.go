package framework

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/gogo/protobuf/proto"
	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

// fullAgentsAnswer is a GET_AGENTS answer with every part Mesos fills in for a busy agent: what the
// framework reads (info, pid, version, total, active flags) and what it skips (allocated and offered
// resources, capabilities, times, resource providers, drain info, recovered agents).
func fullAgentsAnswer(n int) *master.Response {
	ga := &master.Response_GetAgents{}
	res := func(cpus, mem float64, role string) []mesos.Resource {
		out := []mesos.Resource{scalar("cpus", cpus), scalar("mem", mem), scalar("disk", 10240),
			{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: 31000, End: 32000}}}}}
		if role != "" {
			for i := range out {
				out[i].AllocationInfo = &mesos.Resource_AllocationInfo{Role: &role}
			}
		}
		return out
	}
	caps := []mesos.AgentInfo_Capability{}
	for _, c := range []mesos.AgentInfo_Capability_Type{mesos.AgentInfo_Capability_MULTI_ROLE, mesos.AgentInfo_Capability_HIERARCHICAL_ROLE,
		mesos.AgentInfo_Capability_RESERVATION_REFINEMENT, mesos.AgentInfo_Capability_RESOURCE_PROVIDER, mesos.AgentInfo_Capability_RESIZE_VOLUME,
		mesos.AgentInfo_Capability_AGENT_OPERATION_FEEDBACK, mesos.AgentInfo_Capability_AGENT_DRAINING, mesos.AgentInfo_Capability_TASK_RESOURCE_LIMITS} {
		caps = append(caps, mesos.AgentInfo_Capability{Type: c})
	}
	deactivated := true
	for i := 0; i < n; i++ {
		id, host := fmt.Sprintf("a%d-S%d", i, i), fmt.Sprintf("agent-%d.example", i)
		pid := fmt.Sprintf("slave(1)@10.0.%d.%d:5051", i/250, i%250+1)
		text := "rack-" + fmt.Sprint(i%10)
		a := master.Response_GetAgents_Agent{
			AgentInfo: mesos.AgentInfo{ID: &mesos.AgentID{Value: id}, Hostname: host, Port: new(int32),
				Resources:  res(8, 16384, ""),
				Attributes: []mesos.Attribute{{Name: "rack", Type: mesos.TEXT, Text: &mesos.Value_Text{Value: text}}}},
			Active: i%7 != 0, Version: "1.12.0", PID: &pid,
			RegisteredTime:     &mesos.TimeInfo{Nanoseconds: 1},
			ReregisteredTime:   &mesos.TimeInfo{Nanoseconds: 2},
			TotalResources:     res(8, 16384, ""),
			AllocatedResources: append(res(4, 8192, "kubernetes"), res(2, 4096, "spark")...),
			OfferedResources:   res(2, 4096, "kubernetes"),
			Capabilities:       caps,
			DrainInfo:          &mesos.DrainInfo{State: mesos.DrainState_DRAINING},
		}
		if i%11 == 0 {
			a.Deactivated = &deactivated
		}
		ga.Agents = append(ga.Agents, a)
	}
	ga.RecoveredAgents = []mesos.AgentInfo{{ID: &mesos.AgentID{Value: "recovered"}, Hostname: "r"}}
	return &master.Response{Type: master.Response_GET_AGENTS, GetAgents: ga}
}

// agentsAnswer, which decodes only the fields the framework reads, tells what decoding the whole
// answer tells, in protobuf and in JSON.
func TestAgentsAnswerReadsWhatTheWholeAnswerTells(t *testing.T) {
	r := fullAgentsAnswer(30)
	wantAgents, wantActive, err := agentsFromResponse(r.GetAgents)
	if err != nil {
		t.Fatal(err)
	}
	if len(wantAgents) != 30 || wantAgents[3].IP != "10.0.0.4" || len(wantAgents[3].Total) != 4 || wantActive["a0-S0"] || !wantActive["a1-S1"] || wantActive["a11-S11"] {
		t.Fatalf("the fixture is not what the test expects: %+v %v", wantAgents[3], wantActive)
	}
	pb, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	js, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for name, decode := range map[string]func(*agentsAnswer) error{
		// How mesos-go's codecs decode (encoding/proto and encoding/json).
		"protobuf": func(a *agentsAnswer) error { return proto.Unmarshal(pb, a) },
		"json":     func(a *agentsAnswer) error { return json.Unmarshal(js, a) },
	} {
		var a agentsAnswer
		if err := decode(&a); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(wantAgents, a.agents); diff != "" {
			t.Errorf("%s: agents (-whole +trimmed):\n%s", name, diff)
		}
		if diff := cmp.Diff(wantActive, a.active); diff != "" {
			t.Errorf("%s: active (-whole +trimmed):\n%s", name, diff)
		}
	}
}

// Bad input: a truncated answer, an answer without get_agents and an agent without its required
// fields are errors, as decoding the whole answer makes them.
func TestAgentsAnswerRefusesMalformedAnswers(t *testing.T) {
	pb, err := fullAgentsAnswer(3).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	noAgents, _ := (&master.Response{Type: master.Response_GET_HEALTH}).Marshal()
	withoutInfo, _ := (&master.Response{Type: master.Response_GET_AGENTS, GetAgents: &master.Response_GetAgents{
		Agents: []master.Response_GetAgents_Agent{{Active: true, Version: "1.12.0"}}}}).Marshal()
	// agent_info is required: gogo's Marshal writes it empty, so cut it out of the agent by hand.
	withoutInfo = dropAgentInfo(t, withoutInfo)
	for name, b := range map[string][]byte{"truncated": pb[:len(pb)-5], "without get_agents": noAgents, "an agent without agent_info": withoutInfo} {
		var a agentsAnswer
		if err := a.Unmarshal(b); err == nil {
			t.Errorf("%s: decoded %d agents, want an error", name, len(a.agents))
		}
		var whole master.Response
		if err := whole.Unmarshal(b); err == nil && name != "without get_agents" {
			t.Errorf("%s: mesos-go decodes it whole: not a malformed answer", name)
		}
	}
}

// dropAgentInfo re-encodes a one-agent GET_AGENTS answer without the agent's field 1 (agent_info).
func dropAgentInfo(t *testing.T, b []byte) []byte {
	t.Helper()
	var r master.Response
	if err := r.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	ag := r.GetAgents.Agents[0]
	var agent []byte
	agent = append(agent, 0x10, 1) // active = true (field 2, varint)
	agent = append(agent, 0x1a, byte(len(ag.Version)))
	agent = append(agent, ag.Version...)
	ga := append([]byte{0x0a, byte(len(agent))}, agent...) // agents (field 1)
	return append([]byte{0x08, byte(master.Response_GET_AGENTS), 0x52, byte(len(ga))}, ga...)
}

// BenchmarkDecodeGetAgents: the bytes a GET_AGENTS poll of 5,000 busy agents allocates, decoded whole
// (as mesos-go's generated code does) and trimmed to what the framework reads.
func BenchmarkDecodeGetAgents(b *testing.B) {
	pb, err := fullAgentsAnswer(5000).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r master.Response
			if err := r.Unmarshal(pb); err != nil {
				b.Fatal(err)
			}
			if _, _, err := agentsFromResponse(r.GetAgents); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("trimmed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var a agentsAnswer
			if err := a.Unmarshal(pb); err != nil {
				b.Fatal(err)
			}
		}
	})
}
