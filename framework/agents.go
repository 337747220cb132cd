package framework

import (
	"context"
	"fmt"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"
)

// agentLister answers the master operator API's GET_AGENTS.
type agentLister interface {
	// ListAgents returns the registered agents and which of them are active.
	ListAgents(ctx context.Context) ([]agentObservation, map[string]bool, error)
}

// operatorAgents implements agentLister with mesos-go's master operator client (POST /api/v1).
type operatorAgents struct {
	sender calls.Sender
}

var _ agentLister = operatorAgents{}

func (o operatorAgents) ListAgents(ctx context.Context) ([]agentObservation, map[string]bool, error) {
	resp, err := o.sender.Send(ctx, calls.NonStreaming(calls.GetAgents()))
	if err != nil {
		return nil, nil, fmt.Errorf("GET_AGENTS: %w", err)
	}
	defer resp.Close()
	var r master.Response
	if err := resp.Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("decoding GET_AGENTS response: %w", err)
	}
	return agentsFromResponse(r.GetGetAgents())
}

func agentsFromResponse(ga *master.Response_GetAgents) ([]agentObservation, map[string]bool, error) {
	if ga == nil {
		return nil, nil, fmt.Errorf("GET_AGENTS response without get_agents")
	}
	var out []agentObservation
	active := map[string]bool{}
	for _, a := range ga.Agents {
		info := a.AgentInfo
		id := info.GetID().GetValue()
		if id == "" {
			continue
		}
		total := mesos.Resources(a.TotalResources)
		if total == nil {
			total = mesos.Resources{}
		}
		attrs := info.Attributes
		if attrs == nil {
			attrs = []mesos.Attribute{}
		}
		out = append(out, agentObservation{ID: id, Hostname: info.Hostname, Attributes: attrs, Total: total})
		active[id] = a.Active && !a.GetDeactivated()
	}
	return out, active, nil
}
