package simhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/podnet"
	"github.com/kubemesos/kubemesos/internal/cniplugins"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// Network is the pod network of one simulated cluster's agents: a podnet slot per agent, taken when
// the agent is configured (agents added later included) and released by Close. A nil Network is the
// host network (process mode).
type Network struct {
	// PluginsDir is every agent's --network_cni_plugins_dir.
	PluginsDir string

	opts podnet.Options
	log  logrus.FieldLogger

	mu     sync.Mutex
	agents map[int]*podnet.Agent
	errs   []error
}

// netDir is podnet.Options.Dir for every Network (tests point it elsewhere).
var netDir = ""

func newNetwork(log logrus.FieldLogger) (*Network, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	plugins, err := cniplugins.EnsureWith(ctx, cniplugins.Options{Log: io.Discard})
	if err != nil {
		return nil, fmt.Errorf("the pod network's CNI plugins: %w", err)
	}
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Network{PluginsDir: plugins, opts: podnet.Options{Dir: netDir, PluginsDir: plugins}, log: log, agents: map[int]*podnet.Agent{}}, nil
}

// configure gives agent i its slot: network/cni's flags, its address as ListenAddress and port
// mappings' host IP, and its pod subnet as attribute pod_cidr. Without a slot the agent has no pod
// network (its pods fail with Mesos' unknown-network error) and Err says why.
func (n *Network) configure(i int, c *agent.Config) {
	if n == nil {
		return
	}
	a, err := podnet.Acquire(n.opts)
	if err != nil {
		n.log.WithError(err).WithField("agent", i).Error("no pod network for this agent")
		n.mu.Lock()
		n.errs = append(n.errs, fmt.Errorf("agent %d: %w", i, err))
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	if old := n.agents[i]; old != nil {
		_ = old.Release()
	}
	n.agents[i] = a
	n.mu.Unlock()
	c.NetworkCNIConfigDir = a.ConfigDir
	c.NetworkCNIPluginsDir = a.PluginsDir
	c.RuntimeDir = a.RuntimeDir
	c.ListenAddress = net.JoinHostPort(a.IP.String(), "0")
	c.PortMappingHostIP = a.IP.String()
	text := a.Subnet.String()
	// The agent's real subnet replaces a pod_cidr the caller configured (the framework reads the first).
	attrs := c.Attributes[:0:0]
	for _, at := range c.Attributes {
		if at.Name != podnet.PodCIDRAttribute {
			attrs = append(attrs, at)
		}
	}
	c.Attributes = append(attrs, mesos.Attribute{Name: podnet.PodCIDRAttribute, Type: mesos.TEXT, Text: &mesos.Value_Text{Value: text}})
	n.log.WithFields(logrus.Fields{"agent": i, "ip": a.IP.String(), "pod_cidr": text, "bridge": a.Bridge}).Info("agent on the pod network")
}

// Agent is agent i's share of the pod network (nil if it has none).
func (n *Network) Agent(i int) *podnet.Agent {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agents[i]
}

// Agents are the agents' shares, by agent index.
func (n *Network) Agents() []*podnet.Agent {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	idx := make([]int, 0, len(n.agents))
	for i := range n.agents {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]*podnet.Agent, 0, len(idx))
	for _, i := range idx {
		out = append(out, n.agents[i])
	}
	return out
}

// Count counts the network objects of the agents (podnet.Count).
func (n *Network) Count() podnet.Objects { return podnet.Count(n.Agents()...) }

// Err is why some agent has no pod network, nil if every one has.
func (n *Network) Err() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}

// FrameworkArgs are the framework's flags for this network: --pod-network kubemesos and the
// executors' cluster DNS, or --pod-network host on a nil Network.
func (n *Network) FrameworkArgs() []string {
	if n == nil {
		return []string{"--pod-network=host"}
	}
	return []string{"--pod-network=" + podnet.NetworkName, "--executor-env=KUBEMESOS_CLUSTER_DNS=" + cluster.ClusterDNSIP}
}

// Close releases every slot (removing what the agents' containers left); call it after the
// cluster's Close. Safe on nil and more than once.
func (n *Network) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for i, a := range n.agents {
		if err := a.Release(); err != nil {
			errs = append(errs, fmt.Errorf("agent %d: %w", i, err))
		}
	}
	n.agents = map[int]*podnet.Agent{}
	return errors.Join(errs...)
}
