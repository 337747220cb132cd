package framework

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubemesos/kubemesos/offerbridge"
)

// Annotations on the Nodes the framework creates (docs/design.md, "Kubernetes side").
// AnnotationFrameworkID is the ownership mark: a framework acts only on Nodes carrying its FrameworkID
// (or one Mesos removed it under). The other two only tell people where a Node comes from.
const (
	AnnotationFrameworkID   = "kubemesos.io/framework-id"
	AnnotationFrameworkName = "kubemesos.io/framework-name"
	AnnotationMesosMaster   = "kubemesos.io/mesos-master"
)

// EventNodeNameConflict is the reason of the Warning Event recorded on a Node that another
// framework's Node (or a Node of no kubemesos framework) already has the name of one of our agents.
const EventNodeNameConflict = "NodeNameConflict"

// maxFormerFrameworkIDs bounds the FrameworkIDs remembered after Mesos removed the framework.
const maxFormerFrameworkIDs = 8

// errNodeConflict: the agent's hostname is the name of a Node the framework does not own.
var errNodeConflict = errors.New("hostname taken by a Node of another owner")

// nodeOwner is the identity the framework marks its Nodes with. The FrameworkID is the key: Mesos keeps
// it across master failovers (the master ID changes) and framework restarts (it is in the state
// ConfigMap) and across a change of --framework-name, and it embeds the ID of the master that first
// registered the framework, so two Mesos clusters never share one.
type nodeOwner struct {
	id     string          // "" until the framework has a FrameworkID
	former map[string]bool // FrameworkIDs Mesos removed the framework under (failover timeout, teardown)
	name   string          // --framework-name, informational
	master string          // --master, informational
}

// owns reports whether a framework-id annotation value is this framework's.
func (o *nodeOwner) owns(id string) bool { return id != "" && (id == o.id || o.former[id]) }

// describeOwner says whose a Node is, for conflict messages.
func describeOwner(n *corev1.Node) string {
	if id := n.Annotations[AnnotationFrameworkID]; id != "" {
		if name := n.Annotations[AnnotationFrameworkName]; name != "" {
			return fmt.Sprintf("Mesos framework %s (%s)", id, name)
		}
		return "Mesos framework " + id
	}
	if agent := n.Labels[offerbridge.LabelAgentID]; agent != "" {
		return fmt.Sprintf("Mesos agent %s without a framework mark", agent)
	}
	return "no kubemesos framework"
}

// SetOwner sets the FrameworkID the Nodes are marked with and the former ones still recognised as
// ours (Nodes carrying them are re-marked). Nodes are written only once a FrameworkID is known.
func (c *nodeController) SetOwner(frameworkID string, former []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fm := map[string]bool{}
	for _, id := range former {
		if id != frameworkID {
			fm[id] = true
		}
	}
	if c.owner.id == frameworkID && maps.Equal(fm, c.owner.former) {
		return
	}
	c.owner.id, c.owner.former = frameworkID, fm
	for _, rec := range c.agents {
		rec.synced = false
	}
	c.poke()
}

// NodeAgent returns the agent ID behind a Node and whether the Node is this framework's: marked with
// its FrameworkID, or a kubemesos Node without any mark (written before Nodes were marked; the node
// controller marks it) unless one of our agents found its hostname taken by it.
func (c *nodeController) NodeAgent(n *corev1.Node) (agentID string, ours bool) {
	agentID = n.Labels[offerbridge.LabelAgentID]
	if agentID == "" {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, marked := n.Annotations[AnnotationFrameworkID]; marked {
		return agentID, c.owner.owns(id)
	}
	for _, rec := range c.agents {
		if rec.Hostname == n.Name && rec.conflict != "" {
			return agentID, false
		}
	}
	return agentID, true
}

// Conflicted reports whether an agent's hostname is the name of a Node the framework does not own:
// such an agent gets no Node and no pods.
func (c *nodeController) Conflicted(agentID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.agents[agentID]
	return ok && rec.conflict != ""
}

// claimable decides, for an existing Node named after an agent's hostname, whether the agent may
// write it: a Node marked ours, or an unmarked kubemesos Node of this very agent. Anything else
// belongs to someone else.
func (c *nodeController) claimable(n *corev1.Node, rec *agentRecord) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, marked := n.Annotations[AnnotationFrameworkID]; marked {
		return c.owner.owns(id)
	}
	return n.Labels[offerbridge.LabelAgentID] == rec.ID
}

// setConflict records that an agent's hostname is taken by a Node of another owner (cur), or that
// it is not (cur nil). A new conflict is logged as an error and recorded as a Warning Event on that
// Node, once.
func (c *nodeController) setConflict(rec *agentRecord, cur *corev1.Node) {
	c.mu.Lock()
	r, ok := c.agents[rec.ID]
	if !ok {
		c.mu.Unlock()
		return
	}
	msg := ""
	if cur != nil {
		msg = fmt.Sprintf("Mesos agent %s (framework %s) has hostname %s, but Node %s belongs to %s: the agent gets no Node and no pods. "+
			"Two kubemesos frameworks on one API server need agents with distinct hostnames.", rec.ID, c.owner.id, rec.Hostname, cur.Name, describeOwner(cur))
	}
	changed := r.conflict != msg
	r.conflict = msg
	recorder := c.recorder
	c.mu.Unlock()
	if !changed {
		return
	}
	log := c.log.WithField("agentID", rec.ID).WithField("node", rec.Hostname)
	if cur == nil {
		log.Info("hostname conflict over: the agent's Node is ours")
		return
	}
	log.Error(msg)
	if recorder != nil {
		recorder.Event(cur, corev1.EventTypeWarning, EventNodeNameConflict, msg)
	}
}

// formerIDs appends id to the former FrameworkIDs, keeping the newest maxFormerFrameworkIDs.
func formerIDs(former []string, id string) []string {
	if id == "" || slices.Contains(former, id) {
		return former
	}
	out := append(slices.Clone(former), id)
	if len(out) > maxFormerFrameworkIDs {
		out = out[len(out)-maxFormerFrameworkIDs:]
	}
	return out
}
