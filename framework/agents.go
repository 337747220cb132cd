package framework

import (
	"context"
	"fmt"
	"net"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kubemesos/kubemesos/internal/mesosdecode"
)

// agentLister answers the master operator API's GET_AGENTS.
type agentLister interface {
	// ListAgents returns the registered agents and which of them are active.
	ListAgents(ctx context.Context) ([]agentObservation, map[string]bool, error)
}

// executorLister answers GET_EXECUTORS: the ExecutorInfo of an executor running on an agent, for when
// the framework's state lost it (the running executor must be launched onto with exactly that info).
type executorLister interface {
	// RunningExecutor returns the ExecutorInfo of the framework's executor on an agent, nil if none runs.
	RunningExecutor(ctx context.Context, frameworkID, agentID, executorID string) (*mesos.ExecutorInfo, error)
}

// operatorAgents implements agentLister and executorLister with mesos-go's master operator client
// (POST /api/v1).
type operatorAgents struct {
	sender calls.Sender
}

var (
	_ agentLister    = operatorAgents{}
	_ executorLister = operatorAgents{}
)

func (o operatorAgents) RunningExecutor(ctx context.Context, frameworkID, agentID, executorID string) (*mesos.ExecutorInfo, error) {
	resp, err := o.sender.Send(ctx, calls.NonStreaming(calls.GetExecutors()))
	if err != nil {
		return nil, fmt.Errorf("GET_EXECUTORS: %w", err)
	}
	defer resp.Close()
	var r master.Response
	if err := mesosdecode.Decode(resp, &r); err != nil {
		return nil, fmt.Errorf("decoding GET_EXECUTORS response: %w", err)
	}
	return findExecutor(r.GetGetExecutors(), frameworkID, agentID, executorID), nil
}

// findExecutor picks one framework's executor on one agent out of a GET_EXECUTORS answer.
func findExecutor(ge *master.Response_GetExecutors, frameworkID, agentID, executorID string) *mesos.ExecutorInfo {
	for i := range ge.GetExecutors() {
		e := &ge.Executors[i]
		info := e.ExecutorInfo
		if e.AgentID.Value == agentID && info.ExecutorID.Value == executorID && info.GetFrameworkID().GetValue() == frameworkID {
			return &info
		}
	}
	return nil
}

func (o operatorAgents) ListAgents(ctx context.Context) ([]agentObservation, map[string]bool, error) {
	resp, err := o.sender.Send(ctx, calls.NonStreaming(calls.GetAgents()))
	if err != nil {
		return nil, nil, fmt.Errorf("GET_AGENTS: %w", err)
	}
	defer resp.Close()
	var ans agentsAnswer
	if err := mesosdecode.Decode(resp, &ans); err != nil {
		return nil, nil, fmt.Errorf("decoding GET_AGENTS response: %w", err)
	}
	return ans.agents, ans.active, nil
}

// agentsAnswer decodes a GET_AGENTS answer straight into agent observations. In protobuf it decodes,
// of each agent, only the fields observeAgent reads: the rest (allocated and offered resources,
// capabilities, resource providers, times) is most of an agent: a poll of 5,000 busy agents decoded
// whole allocates 39 MB, 9 MB trimmed (BenchmarkDecodeGetAgents), every --agent-poll-interval.
type agentsAnswer struct {
	agents []agentObservation
	active map[string]bool
}

const (
	responseGetAgents protowire.Number = 10 // master.Response.get_agents
	getAgentsAgents   protowire.Number = 1  // master.Response.GetAgents.agents
	agentInfoField    protowire.Number = 1  // master.Response.GetAgents.Agent.agent_info
)

// agentFieldsRead are the fields of master.Response.GetAgents.Agent that observeAgent reads:
// agent_info, active, version, pid, total_resources, deactivated; and of its AgentInfo: hostname,
// attributes, id (not resources, which total_resources tells again).
var (
	agentFieldsRead     = map[protowire.Number]bool{agentInfoField: true, 2: true, 3: true, 4: true, 7: true, 12: true}
	agentInfoFieldsRead = map[protowire.Number]bool{1: true, 5: true, 6: true}
)

func (a *agentsAnswer) Unmarshal(b []byte) error {
	a.agents, a.active = nil, map[string]bool{}
	found := false
	var kept, info []byte
	err := eachField(b, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
		if num != responseGetAgents || typ != protowire.BytesType {
			return nil
		}
		found = true
		return eachField(value, func(num protowire.Number, typ protowire.Type, _, agent []byte) error {
			if num != getAgentsAgents || typ != protowire.BytesType {
				return nil
			}
			kept = kept[:0]
			if err := eachField(agent, func(num protowire.Number, typ protowire.Type, field, value []byte) error {
				switch {
				case num == agentInfoField && typ == protowire.BytesType:
					var err error
					if info, err = keepFields(info[:0], value, agentInfoFieldsRead); err != nil {
						return err
					}
					kept = protowire.AppendBytes(protowire.AppendTag(kept, num, typ), info)
				case agentFieldsRead[num]:
					kept = append(kept, field...)
				}
				return nil
			}); err != nil {
				return err
			}
			var ag master.Response_GetAgents_Agent
			if err := ag.Unmarshal(kept); err != nil {
				return err
			}
			a.add(&ag)
			return nil
		})
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("GET_AGENTS response without get_agents")
	}
	return nil
}

// Reset, String and ProtoMessage make it a proto.Message, which mesos-go's protobuf decoder asks for.
func (a *agentsAnswer) Reset()         { *a = agentsAnswer{} }
func (a *agentsAnswer) String() string { return fmt.Sprintf("GET_AGENTS: %d agents", len(a.agents)) }
func (*agentsAnswer) ProtoMessage()    {}

func (a *agentsAnswer) UnmarshalJSON(b []byte) error {
	var r master.Response
	if err := r.UnmarshalJSON(b); err != nil {
		return err
	}
	agents, active, err := agentsFromResponse(r.GetGetAgents())
	a.agents, a.active = agents, active
	return err
}

func (a *agentsAnswer) add(ag *master.Response_GetAgents_Agent) {
	if obs, ok := observeAgent(ag); ok {
		a.agents = append(a.agents, obs)
		a.active[obs.ID] = ag.Active && !ag.GetDeactivated()
	}
}

// keepFields appends to dst the fields of the protobuf message b that read names.
func keepFields(dst, b []byte, read map[protowire.Number]bool) ([]byte, error) {
	err := eachField(b, func(num protowire.Number, _ protowire.Type, field, _ []byte) error {
		if read[num] {
			dst = append(dst, field...)
		}
		return nil
	})
	return dst, err
}

// eachField calls f with each field of the protobuf message b: its number and wire type, the whole
// field as encoded (tag included) and its value (a length-delimited field's contents).
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, field, value []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		value := b[n : n+m]
		if typ == protowire.BytesType {
			value, _ = protowire.ConsumeBytes(value)
		}
		if err := f(num, typ, b[:n+m], value); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

func agentsFromResponse(ga *master.Response_GetAgents) ([]agentObservation, map[string]bool, error) {
	if ga == nil {
		return nil, nil, fmt.Errorf("GET_AGENTS response without get_agents")
	}
	ans := agentsAnswer{active: map[string]bool{}}
	for i := range ga.Agents {
		ans.add(&ga.Agents[i])
	}
	return ans.agents, ans.active, nil
}

// observeAgent is what the Node controller needs of a GET_AGENTS agent; false for one without an ID.
func observeAgent(a *master.Response_GetAgents_Agent) (agentObservation, bool) {
	info := a.AgentInfo
	id := info.GetID().GetValue()
	if id == "" {
		return agentObservation{}, false
	}
	total := mesos.Resources(a.TotalResources)
	if total == nil {
		total = mesos.Resources{}
	}
	attrs := info.Attributes
	if attrs == nil {
		attrs = []mesos.Attribute{}
	}
	return agentObservation{ID: id, Hostname: info.Hostname, IP: ipOfPID(a.GetPID()), Attributes: attrs, Total: total, Version: a.Version}, true
}

// ipOfPID extracts the IP of a libprocess PID such as "slave(1)@10.0.0.5:5051"; "" when it has none.
func ipOfPID(pid string) string {
	_, addr, ok := strings.Cut(pid, "@")
	if !ok {
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return ""
	}
	return host
}
