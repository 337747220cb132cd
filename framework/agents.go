package framework

import (
	"context"
	"fmt"
	"net"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"

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
	var r master.Response
	if err := mesosdecode.Decode(resp, &r); err != nil {
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
		out = append(out, agentObservation{ID: id, Hostname: info.Hostname, IP: ipOfPID(a.GetPID()), Attributes: attrs, Total: total, Version: a.Version})
		active[id] = a.Active && !a.GetDeactivated()
	}
	return out, active, nil
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
