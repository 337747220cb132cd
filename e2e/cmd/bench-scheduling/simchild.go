package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/test/bufconn"

	"github.com/kubemesos/kubemesos/e2e/schedbench"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/executor"
	"github.com/kubemesos/kubemesos/internal/deathsig"
	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// agents is the simulated cluster a kubemesos measurement runs on.
type agents interface {
	// URL is the master's.
	URL() string
	// withoutExecutor lists the hostnames of the agents that run no executor yet.
	withoutExecutor(ctx context.Context) ([]string, error)
	// executorUsage is the executors' CPU and memory (process mode: their processes summed; in-process
	// mode: the simulator process, master and agents included).
	executorUsage(framework int) map[int]schedbench.Usage
	close()
}

// simConfig is the simulated cluster of a run: sz agents named <prefix>-agent-<i>, process mode
// (the hollow runtime starts nothing), Mesos' default allocation and heartbeat intervals as local-up.
func simConfig(n int, prefix, workDir, registry string, log logrus.FieldLogger) (mesossim.ClusterConfig, error) {
	cfg := mesossim.ClusterConfig{
		Master:  mesossim.Config{Log: log, AllocationInterval: time.Second, HeartbeatInterval: 15 * time.Second},
		Agents:  n,
		WorkDir: workDir,
		AgentTweak: func(i int, c *agent.Config) {
			c.Hostname = fmt.Sprintf("%s-agent-%d", prefix, i)
		},
	}
	_, err := simhost.Configure(&cfg, simhost.Resolve(simhost.Process), registry, log)
	return cfg, err
}

// processAgents: agents in this process launching each executor as a process (the real binary,
// fetched from the framework), as local-up.
type processAgents struct {
	c *mesossim.Cluster
	b *bench
}

func (p *processAgents) URL() string { return p.c.URL }

func (p *processAgents) withoutExecutor(context.Context) ([]string, error) {
	return hostsWithoutExecutor(p.c), nil
}

func hostsWithoutExecutor(c *mesossim.Cluster) []string {
	var hosts []string
	for _, a := range c.Agents() {
		if len(a.Executors()) == 0 {
			hosts = append(hosts, a.Info().Hostname)
		}
	}
	return hosts
}

func (p *processAgents) executorUsage(framework int) map[int]schedbench.Usage {
	return usageByPID(p.b.executorPIDs(framework))
}

func (p *processAgents) close() { p.c.Close() }

// childAgents: the simulator in a child process (this binary's sim-host mode) whose agents run the
// executors in-process (executor.Run through the agents' ExecutorHook), for sizes where an executor
// process per agent would not fit in memory: kubemark runs its hollow kubelets many to a machine too.
type childAgents struct {
	cmd       *exec.Cmd
	url       string
	statusURL string
	exited    chan error
}

func (c *childAgents) URL() string { return c.url }

func (c *childAgents) withoutExecutor(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.statusURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st simStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return st.WithoutExecutor, nil
}

func (c *childAgents) executorUsage(int) map[int]schedbench.Usage {
	return usageByPID([]int{c.cmd.Process.Pid})
}

func (c *childAgents) close() {
	_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
}

type simStatus struct {
	Agents int `json:"agents"`
	// WithoutExecutor are the hostnames of the agents that run no executor yet.
	WithoutExecutor []string `json:"without_executor"`
}

// startChildAgents re-executes this binary as `sim-host` and reads the master's and its status URL
// from its first line of output.
func startChildAgents(ctx context.Context, n int, prefix, workDir, registry, kubeconfig, logPath string) (*childAgents, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "sim-host", "--agents="+strconv.Itoa(n), "--prefix="+prefix, "--work-dir="+workDir,
		"--registry="+registry, "--kubeconfig="+kubeconfig, "--log="+logPath)
	// Its stderr has the executors' kubelet API servers' klog lines.
	stderr, err := os.Create(strings.TrimSuffix(logPath, ".log") + "-stderr.log")
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := deathsig.Start(cmd); err != nil {
		return nil, err
	}
	c := &childAgents{cmd: cmd, exited: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
		c.exited <- cmd.Wait()
	}()
	select {
	case line, ok := <-lines:
		f := strings.Fields(line)
		if !ok || len(f) != 3 || f[0] != "sim-host" {
			c.close()
			return nil, fmt.Errorf("sim-host did not start (said %q; log %s)", line, logPath)
		}
		c.url, c.statusURL = f[1], f[2]
		return c, nil
	case <-time.After(10 * time.Minute):
		c.close()
		return nil, errors.New("sim-host: no answer in 10 minutes")
	case <-ctx.Done():
		c.close()
		return nil, ctx.Err()
	}
}

// runSimHost is the child: the simulator whose agents run the kubemesos executor in-process with
// the hollow runtime, until SIGTERM. It prints "sim-host <master URL> <status URL>" once up.
func runSimHost(args []string) error {
	fs := flag.NewFlagSet("sim-host", flag.ContinueOnError)
	n := fs.Int("agents", 1, "agents")
	prefix := fs.String("prefix", "r0", "agent hostname prefix")
	workDir := fs.String("work-dir", "", "agents' work dir")
	registry := fs.String("registry", "", "agents' --docker_registry")
	kubeconfig := fs.String("kubeconfig", "", "executors' kubeconfig")
	logPath := fs.String("log", "", "log file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logFile, err := os.Create(*logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := logrus.New()
	log.SetOutput(logFile)
	want := uint64(*n) * fdsPerInProcessExecutor
	if got, err := raiseOpenFiles(want); err != nil || got < want {
		log.WithError(err).WithFields(logrus.Fields{"want": want, "limit": got}).
			Warn("open-files limit below what the in-process executors may need; executors may fail with \"too many open files\"")
	}
	cfg, err := simConfig(*n, *prefix, *workDir, *registry, log)
	if err != nil {
		return err
	}
	agentConns := &inMemoryAgents{byEndpoint: map[string]*bufconn.Listener{}}
	cfg.ExecutorHook = func(ctx context.Context, env map[string]string) error {
		ec := executor.DefaultConfig()
		ec.Getenv = func(k string) string { return env[k] }
		ec.Kubeconfig = *kubeconfig
		ec.RuntimeName = executor.RuntimeHollow
		ec.Log = log
		ec.AgentDial = agentConns.dial
		// No kubelet API (kubectl logs/exec): hollow containers have neither logs nor processes, and
		// its two listeners and certificate watch per executor are what still ran 5,000 agents out of
		// descriptors once their executor connections were in memory.
		ec.KubeletAddress = ""
		return executor.Run(ctx, ec)
	}
	c, err := mesossim.StartCluster(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, a := range c.Agents() {
		agentConns.serve(a)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(simStatus{Agents: len(c.Agents()), WithoutExecutor: hostsWithoutExecutor(c)})
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Printf("sim-host %s http://%s/status\n", c.URL, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// executorStub is what in-process agents fetch as the executor (the hook runs it instead): a small
// file, so that thousands of agents do not each copy the kubemesos binary into their sandboxes.
func executorStub(dir string) (string, error) {
	path := filepath.Join(dir, "executor-stub")
	return path, os.WriteFile(path, []byte("#!/bin/sh\n# run in-process by bench-scheduling's sim-host\nexit 1\n"), 0o755)
}

// inMemoryAgents connects the in-process executors to their agents in memory: over TCP each
// executor held four descriptors (both ends of its subscription and of its calls), and 5,000 agents
// with a listener each and their executors ran out of this machine's 20,000 in issue 13's run
// ("socket: too many open files": the executors failed, and their pods with them). The agents serve
// the same API on both; nothing but the descriptors differs.
type inMemoryAgents struct {
	mu         sync.Mutex
	byEndpoint map[string]*bufconn.Listener
}

func (m *inMemoryAgents) serve(a *agent.Agent) {
	l := bufconn.Listen(256 << 10)
	m.mu.Lock()
	m.byEndpoint[a.Endpoint()] = l
	m.mu.Unlock()
	a.Serve(l)
}

// dial connects to the agent at addr in memory, or over TCP to an agent it does not serve.
func (m *inMemoryAgents) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	m.mu.Lock()
	l := m.byEndpoint[addr]
	m.mu.Unlock()
	if l == nil {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return l.DialContext(ctx)
}

// fdsPerInProcessExecutor bounds the descriptors one agent and its in-process executor hold in the
// sim-host: the agent's listener, the executor's fetch while it starts, and spare.
const fdsPerInProcessExecutor = 3

// raiseOpenFiles raises this process's RLIMIT_NOFILE towards want, as an operator raises mesos-agent's
// LimitNOFILE for a host running thousands of executors: the soft limit up to the hard one, and the
// hard one too where that is allowed (root with CAP_SYS_RESOURCE; not in every container). It
// returns the limit in effect.
func raiseOpenFiles(want uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if ceiling, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > ceiling {
			want = ceiling
		}
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: max(lim.Max, want)}); err == nil {
		return want, nil
	}
	lim.Cur = min(want, lim.Max)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
