package mesossim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// ClusterConfig describes an in-process Mesos cluster: one master and N agents.
type ClusterConfig struct {
	Master Config
	// Listen is the master's address (default 127.0.0.1:0, a random port).
	Listen string
	// Agents is the number of agents started with the cluster.
	Agents int
	// AgentResources in Mesos' syntax (default "cpus:4;mem:8192;disk:65536;ports:[31000-32000]").
	AgentResources string
	// AgentAttributes in Mesos' syntax; "%d" is replaced by the agent's index.
	AgentAttributes string
	// WorkDir holds the agents' sandboxes (required).
	WorkDir string
	// AgentClock drives agents (status update retries, grace periods); default: real clock.
	AgentClock clock.WithTicker
	// ImageProviders, DockerRegistry and Isolation are every agent's --image_providers,
	// --docker_registry and --isolation (see agent.Config).
	ImageProviders string
	DockerRegistry string
	Isolation      string
	// ImageCommands is every agent's --image-command fallback for images it cannot provision.
	ImageCommands map[string]string
	// ExecutorHook runs custom executors in-process instead of as processes (benchmarks).
	ExecutorHook agent.ExecutorHook
	// AgentTweak, if set, may adjust each agent's config before it starts (timeouts etc.).
	AgentTweak func(i int, cfg *agent.Config)
}

// DefaultAgentResources is what each simulated agent offers unless configured.
const DefaultAgentResources = "cpus:4;mem:8192;disk:65536;ports:[31000-32000]"

// Cluster is a running master with its agents, serving the master's HTTP API.
type Cluster struct {
	Master *Master
	// URL of the master, e.g. http://127.0.0.1:5050.
	URL string

	cfg       ClusterConfig
	resources mesos.Resources
	log       logrus.FieldLogger
	srv       *http.Server
	ln        net.Listener
	served    chan struct{}

	mu      sync.Mutex
	agents  []*agent.Agent
	configs map[string]agent.Config // each agent's config, to restart it (agentrestart.go)
	next    int
}

// StartCluster starts a master listening on cfg.Listen and cfg.Agents agents registered with it.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.WorkDir == "" {
		return nil, errors.New("starting cluster: WorkDir is required")
	}
	if cfg.AgentResources == "" {
		cfg.AgentResources = DefaultAgentResources
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	res, err := ParseResources(cfg.AgentResources)
	if err != nil {
		return nil, fmt.Errorf("starting cluster: --agent-resources: %w", err)
	}
	if _, err := ParseAttributes(cfg.AgentAttributes, 0); err != nil {
		return nil, fmt.Errorf("starting cluster: --agent-attributes: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("starting cluster: work dir: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("starting cluster: listening on %s: %w", cfg.Listen, err)
	}
	host, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	if cfg.Master.Hostname == "" {
		cfg.Master.Hostname = host
	}
	cfg.Master.Port = uint32(port)
	if cfg.Master.Log == nil {
		cfg.Master.Log = logrus.StandardLogger()
	}
	c := &Cluster{
		cfg: cfg, resources: res, log: cfg.Master.Log, ln: ln, served: make(chan struct{}),
		URL: "http://" + ln.Addr().String(),
	}
	c.Master = NewMaster(cfg.Master)
	for i := 0; i < cfg.Agents; i++ {
		if _, err := c.AddAgent(); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.srv = &http.Server{Handler: c.Master.Handler(), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(c.served)
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.WithError(err).Error("master HTTP server stopped")
		}
	}()
	c.log.WithFields(logrus.Fields{"url": c.URL, "agents": cfg.Agents}).Info("mesos simulator ready")
	return c, nil
}

// AddAgent starts one more agent and registers it with the master. Agent i gets ID
// "<master id>-S<i>" and hostname "mesos-agent-<i>".
func (c *Cluster) AddAgent() (*agent.Agent, error) {
	c.mu.Lock()
	i := c.next
	c.next++
	c.mu.Unlock()
	attrs, err := ParseAttributes(c.cfg.AgentAttributes, i)
	if err != nil {
		return nil, fmt.Errorf("agent %d attributes: %w", i, err)
	}
	acfg := agent.Config{
		ID:         mesos.AgentID{Value: fmt.Sprintf("%s-S%d", c.Master.Info().ID, i)},
		Hostname:   fmt.Sprintf("mesos-agent-%d", i),
		Resources:  c.resources.Clone(),
		Attributes: attrs,
		WorkDir:    c.cfg.WorkDir,
		// The agents share WorkDir (work_dir/slaves/<id>), but a fetcher cache directory is one
		// agent's alone, as on separate hosts: each agent empties it when it starts and numbers its
		// files from c1, so a shared one had one agent rewrite (O_TRUNC) the c1-kubemesos another
		// was copying into a sandbox, and that executor died of its truncated binary (SIGSEGV).
		FetcherCacheDir: filepath.Join(c.cfg.WorkDir, "fetch", fmt.Sprintf("agent-%d", i)),
		Master:          c.Master,
		Clock:           c.cfg.AgentClock,
		Log:             c.log,
		ImageProviders:  c.cfg.ImageProviders,
		DockerRegistry:  c.cfg.DockerRegistry,
		Isolation:       c.cfg.Isolation,
		ImageCommands:   c.cfg.ImageCommands,
		ExecutorHook:    c.cfg.ExecutorHook,
	}
	if c.cfg.AgentTweak != nil {
		c.cfg.AgentTweak(i, &acfg)
	}
	a, err := agent.New(acfg)
	if err != nil {
		return nil, fmt.Errorf("starting agent %d: %w", i, err)
	}
	if err := c.Master.AddAgent(a.Info(), a); err != nil {
		a.Stop()
		return nil, err
	}
	c.mu.Lock()
	c.agents = append(c.agents, a)
	if c.configs == nil {
		c.configs = map[string]agent.Config{}
	}
	c.configs[acfg.ID.Value] = acfg
	c.mu.Unlock()
	return a, nil
}

// Agents returns the agents started so far (removed ones included).
func (c *Cluster) Agents() []*agent.Agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*agent.Agent(nil), c.agents...)
}

// Close stops the HTTP server, the master and every agent (killing executors and containers).
func (c *Cluster) Close() {
	if c.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.Master.Close() // ends subscription streams so Shutdown need not wait for them
		_ = c.srv.Shutdown(ctx)
		cancel()
		<-c.served
	} else {
		c.Master.Close()
		_ = c.ln.Close()
	}
	var wg sync.WaitGroup
	for _, a := range c.Agents() {
		wg.Add(1)
		go func() { defer wg.Done(); a.Stop() }()
	}
	wg.Wait()
}

// Fault verbs, also served under /admin/ on the master.

// RemoveAgent stops an agent for good (see Master.RemoveAgent).
func (c *Cluster) RemoveAgent(id string) error { return c.Master.RemoveAgent(id) }

// PartitionAgent cuts an agent off (see Master.PartitionAgent).
func (c *Cluster) PartitionAgent(id string) error { return c.Master.PartitionAgent(id) }

// HealAgent ends a partition (see Master.HealAgent).
func (c *Cluster) HealAgent(id string) error { return c.Master.HealAgent(id) }

// KillExecutor kills an executor process on an agent.
func (c *Cluster) KillExecutor(agentID, frameworkID, executorID string) error {
	return c.Master.KillExecutor(agentID, frameworkID, executorID)
}

// FailoverMaster simulates a leading-master failover (see Master.Failover).
func (c *Cluster) FailoverMaster() { c.Master.Failover() }

// SetStatusUpdateFaults delays and/or duplicates status updates on their way from the master to
// frameworks (see Master.SetStatusUpdateFaults). Agents have their own hooks (agent.SetUpdateFaults).
func (c *Cluster) SetStatusUpdateFaults(delay time.Duration, duplicate bool) {
	c.Master.SetStatusUpdateFaults(delay, duplicate)
}
