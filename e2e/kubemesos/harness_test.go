package kubemesos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// Fixed shape of every test's Mesos cluster (issue 5).
const (
	agentResources  = "cpus:4;mem:8192;disk:65536;ports:[31000-32000]"
	agentAttributes = "rack:r%d"
	frameworkName   = "kubemesos"
)

// envOptions tune newEnv.
type envOptions struct {
	// Agents is the number of simulated agents (default 3).
	Agents int
	// FrameworkArgs are appended to the framework's flags.
	FrameworkArgs []string
	// BlockableAPI makes executors reach the API server through a TCP proxy the test can cut
	// (env.apiProxy); the framework keeps its direct connection.
	BlockableAPI bool
	// NoFramework leaves starting the framework to the test (env.startFramework).
	NoFramework bool
	// HostnamePrefix replaces the env's own prefix in its agents' hostnames: agents of another
	// env's hostnames (agentHostname and teardown still use the env's own prefix).
	HostnamePrefix string
	// Services runs kube-proxy for the env (ClusterIPs, NodePorts), as if on its agent 0's Node, once
	// the framework runs; ClusterDNS implies it. One control plane per host runs kube-proxy at a
	// time (cluster.ControlPlane.StartKubeProxy), so only tests that need Services ask for it.
	Services bool
	// ClusterDNS runs CoreDNS for the env (see env.startClusterDNS) once the framework runs.
	ClusterDNS bool
	// PodNetwork runs the framework with --pod-network kubemesos (Services and ClusterDNS imply it);
	// other envs use --pod-network host: a pod on the pod network also starts its sandbox executor,
	// fetched from the framework like the kubelet executor, which the rest of the suite does not need.
	PodNetwork bool
	// AgentTweak, when set, adjusts each agent's configuration (its Mesos flags) after the env's own.
	AgentTweak func(i int, cfg *agent.Config)
	// MasterTweak, when set, adjusts the simulated master's configuration (its Mesos flags: weights...).
	MasterTweak func(cfg *mesossim.Config)
}

// env is one test's world: a namespace of the shared control plane, a simulated Mesos cluster, the
// scheduler-API proxy that keeps the offer ledger, and the framework process.
type env struct {
	t    testing.TB
	cp   *cluster.ControlPlane
	kube kubernetes.Interface
	ns   string
	// prefix of the agents' hostnames (= Node names), unique per env.
	prefix string
	dir    string
	sim    *mesossim.Cluster
	simLog string
	// imageRegistry is the agents' --docker_registry (image archives).
	imageRegistry string
	// mode is how the agents run containers (isolating unless -isolation says otherwise or not root).
	mode simhost.Mode
	// network is the agents' pod network (isolating mode), nil in process mode.
	network *simhost.Network
	// podNetwork: the framework puts pods on network (envOptions.PodNetwork).
	podNetwork bool
	// dns is set once CoreDNS runs in the env's namespace (envOptions.ClusterDNS).
	dns bool
	// kubeProxy is set once kube-proxy runs for the env (envOptions.Services).
	kubeProxy bool
	// simLogFile is closed after the simulator.
	simLogFile *os.File
	ledger     *offerLedger
	// apiProxy is set with BlockableAPI.
	apiProxy *tcpProxy
	// executorKubeconfig is the executors' bootstrap kubeconfig (their --bootstrap-kubeconfig).
	executorKubeconfig string
	httpPort           int
	fw                 *frameworkProcess
	fwRuns             int
}

var envSeq atomic.Int32

// newEnv builds a test's world and registers its teardown: pods of the namespace force-deleted, the
// framework stopped, the simulator closed (executors and containers killed), Nodes and their Leases
// deleted, the namespace deleted.
func newEnv(t testing.TB, opts envOptions) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: needs the control plane and real processes")
	}
	kubemesosBinary(t) // before the control plane: a build failure should not cost a cluster start
	cp := controlPlane(t)
	if opts.Agents == 0 {
		opts.Agents = 3
	}
	e := &env{
		t: t, cp: cp, kube: cp.Client, dir: t.TempDir(),
		prefix: fmt.Sprintf("%s-%d", slug(t.Name(), 20), envSeq.Add(1)),
	}
	e.ns = cp.Namespace(t)
	t.Cleanup(e.teardown) // runs before the namespace's own cleanup

	e.simLog = filepath.Join(e.dir, "mesos-sim.log")
	logFile, err := os.Create(e.simLog)
	if err != nil {
		t.Fatal(err)
	}
	e.simLogFile = logFile
	log := logrus.New()
	log.SetOutput(logFile)
	log.SetLevel(logrus.InfoLevel)
	// The agents provision images as Mesos agents with the docker provider do, from the real image
	// store (busybox, agnhost, pause, ...); another image fails to launch as on Mesos. In isolating
	// mode (the default, see simhost) containers run in their image's rootfs.
	e.imageRegistry = imageStore(t)
	e.mode = agentMode()
	simCfg := mesossim.ClusterConfig{
		Master:          mesossim.Config{Log: log, AllocationInterval: 200 * time.Millisecond, HeartbeatInterval: 5 * time.Second},
		Agents:          opts.Agents,
		AgentResources:  agentResources,
		AgentAttributes: agentAttributes,
		WorkDir:         filepath.Join(e.dir, "mesos"),
		AgentTweak: func(i int, cfg *agent.Config) {
			prefix := e.prefix
			if opts.HostnamePrefix != "" {
				prefix = opts.HostnamePrefix
			}
			cfg.Hostname = fmt.Sprintf("%s-agent-%d", prefix, i)
			if opts.AgentTweak != nil {
				opts.AgentTweak(i, cfg)
			}
		},
	}
	if opts.MasterTweak != nil {
		opts.MasterTweak(&simCfg.Master)
	}
	if e.network, err = simhost.Configure(&simCfg, e.mode, e.imageRegistry, log); err != nil {
		t.Fatal(err)
	}
	e.podNetwork = opts.PodNetwork || opts.Services || opts.ClusterDNS
	e.sim, err = mesossim.StartCluster(simCfg)
	if err != nil {
		t.Fatalf("starting mesossim: %v", err)
	}
	if err := e.network.Err(); err != nil {
		t.Fatal(err)
	}
	e.ledger = newOfferLedger(t, e.sim.URL)

	// Executors bootstrap a Node identity from it as kubelets do; with a pod network its server is
	// the advertised address, where pods reach the API server (their KUBERNETES_SERVICE_HOST comes
	// from this kubeconfig).
	e.executorKubeconfig = cp.ExecutorBootstrapKubeconfigPath
	if opts.BlockableAPI {
		e.apiProxy = newTCPProxy(t, strings.TrimPrefix(cp.URL, "https://"))
		e.executorKubeconfig = filepath.Join(e.dir, "executor.kubeconfig")
		if err := rewriteKubeconfigServer(cp.ExecutorBootstrapKubeconfigPath, e.executorKubeconfig, "https://"+e.apiProxy.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if e.httpPort, err = freePort(); err != nil {
		t.Fatal(err)
	}
	if !opts.NoFramework {
		e.startFramework(opts.FrameworkArgs...)
		if opts.Services || opts.ClusterDNS {
			e.startKubeProxy()
		}
		if opts.ClusterDNS {
			e.startClusterDNS()
		}
	}
	return e
}

// startKubeProxy runs the control plane's kube-proxy for this env once its agent 0's Node exists.
func (e *env) startKubeProxy() {
	e.t.Helper()
	if e.network == nil {
		e.t.Skip("Services need the pod network (isolating agents, root)")
	}
	node := e.agentHostname(0)
	e.eventually("Node "+node, time.Minute, func(ctx context.Context) (bool, error) {
		_, err := e.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil, err
	})
	// Waits while another control plane's kube-proxy runs on this host.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := e.cp.StartKubeProxy(ctx, node); err != nil {
		e.t.Fatal(err)
	}
	e.kubeProxy = true
}

// startClusterDNS runs CoreDNS for this env and waits until it is ready. Every env's executors use
// the cluster DNS IP (cluster.ClusterDNSIP, --executor-env from simhost.Network.FrameworkArgs), but
// envs come one after the other with their own agents and framework, so CoreDNS lives in the env's
// namespace (Deployment, and the Service kube-dns holding that ClusterIP, which the previous env's
// namespace deletion frees), scheduled by this env's framework and gone with the namespace: pods of
// the env resolve <service>, <service>.<ns>.svc.cluster.local and names outside the cluster.
func (e *env) startClusterDNS() {
	e.t.Helper()
	if e.network == nil {
		e.t.Skip("cluster DNS needs the pod network (isolating agents, root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e.dns = true
	if err := cluster.DeployCoreDNS(ctx, e.kube, cluster.DNSOptions{Namespace: e.ns, Image: imagestore.CoreDNSImage}); err != nil {
		e.t.Fatal(err)
	}
	if err := cluster.WaitCoreDNS(ctx, e.kube, e.ns); err != nil {
		e.t.Fatal(err)
	}
}

// teardown stops everything newEnv started, in an order that leaves nothing running or pending.
func (e *env) teardown() {
	if e.t.Failed() {
		e.dump()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No new pods from controllers (creation in a terminating namespace is refused), then remove the
	// existing ones at once so that no later framework sees them pending.
	if err := e.kube.CoreV1().Namespaces().Delete(ctx, e.ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.t.Errorf("deleting namespace %s: %v", e.ns, err)
	}
	if pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			err := e.kube.CoreV1().Pods(e.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if err != nil && !apierrors.IsNotFound(err) {
				e.t.Errorf("force-deleting pod %s: %v", p.Name, err)
			}
		}
	}
	if e.kubeProxy {
		e.cp.StopKubeProxy()
	}
	if e.fw != nil {
		e.fw.stop(15 * time.Second)
	}
	if e.ledger != nil {
		e.ledger.close()
	}
	if e.apiProxy != nil {
		e.apiProxy.close()
	}
	if e.sim == nil {
		return
	}
	e.sim.Close()
	e.simLogFile.Close()
	if err := e.network.Close(); err != nil {
		e.t.Errorf("releasing the pod network: %v", err)
	}
	if e.dns {
		if err := cluster.DeleteCoreDNS(ctx, e.kube, e.ns); err != nil {
			e.t.Errorf("deleting CoreDNS' binding: %v", err)
		}
	}
	for i := range e.sim.Agents() {
		name := e.agentHostname(i)
		if err := e.kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			e.t.Errorf("deleting Node %s: %v", name, err)
		}
		err := e.kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			e.t.Errorf("deleting Lease %s: %v", name, err)
		}
	}
	// Wait for the namespace to be purged: deleting a terminating namespace again (the cleanup of
	// cluster.Namespace) would be refused with a Conflict.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := e.kube.CoreV1().Namespaces().Get(ctx, e.ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		e.t.Logf("namespace %s not purged yet: %v", e.ns, err)
	}
}

func (e *env) agentHostname(i int) string { return fmt.Sprintf("%s-agent-%d", e.prefix, i) }

// frameworkArgs are the framework's flags for this env (extra ones last, so they win).
func (e *env) frameworkArgs(extra []string) []string {
	url := "http://127.0.0.1:" + strconv.Itoa(e.httpPort)
	args := []string{
		"framework",
		"--master=" + e.ledger.URL(),
		"--kubeconfig=" + e.cp.KubeconfigPath,
		"--serve-default-scheduler",
		"--leader-elect=false",
		"--state-namespace=" + e.ns,
		"--http-address=127.0.0.1:" + strconv.Itoa(e.httpPort),
		"--advertise-url=" + url,
		// The executors' kubelet identity: TLS bootstrap, and the API server's kubelet client
		// certificate (signed by the client CA) trusted by their kubelet API.
		"--executor-env=KUBEMESOS_BOOTSTRAP_KUBECONFIG=" + e.executorKubeconfig,
		"--executor-env=KUBEMESOS_CLIENT_CA_FILE=" + e.cp.Files.ClientCA,
		"--agent-poll-interval=1s",
		"--node-lease-duration=20s",
		"--log-level=info",
	}
	if e.podNetwork {
		args = append(args, e.network.FrameworkArgs()...)
	} else {
		args = append(args, (*simhost.Network)(nil).FrameworkArgs()...)
	}
	return append(args, extra...)
}

// startFramework starts the framework process and waits until it is subscribed (/readyz).
func (e *env) startFramework(extra ...string) {
	e.t.Helper()
	e.fwRuns++
	logPath := filepath.Join(e.dir, fmt.Sprintf("framework-%d.log", e.fwRuns))
	p, err := startProcess(kubemesosBinary(e.t), e.frameworkArgs(extra), logPath, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.fw = p
	e.eventually("framework ready", time.Minute, func(ctx context.Context) (bool, error) {
		if done, werr := p.exited(); done {
			return false, fmt.Errorf("framework exited: %v\n%s", werr, fileTail(logPath, 40))
		}
		body, code, err := httpGet(ctx, e.frameworkURL()+"/readyz")
		return err == nil && code == 200 && strings.TrimSpace(body) == "ok", nil
	})
}

// stopFramework ends the framework: gracefully (SIGTERM) or as a crash (SIGKILL).
func (e *env) stopFramework(crash bool) {
	e.t.Helper()
	if crash {
		e.fw.kill()
	} else {
		e.fw.stop(15 * time.Second)
	}
}

func (e *env) frameworkURL() string { return "http://127.0.0.1:" + strconv.Itoa(e.httpPort) }

// frameworkMetrics reads the framework's /metrics counters and gauges (unlabelled ones by name,
// labelled ones as name{labels}).
func (e *env) frameworkMetrics(ctx context.Context) (map[string]float64, error) {
	body, code, err := httpGet(ctx, e.frameworkURL()+"/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("/metrics: HTTP %d", code)
	}
	return parseMetrics(body), nil
}

// eventually polls cond until it is true; on timeout or a fatalError the test fails. A non-fatal
// error of a false condition is kept to say what was last seen.
func (e *env) eventually(what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	e.t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if ok {
			return true, nil
		}
		if err != nil {
			var fatal *fatalError
			if errors.As(err, &fatal) {
				return false, err
			}
			if ctx.Err() == nil { // not an attempt cut short by the deadline
				last = err
			}
			return false, nil
		}
		return ok, nil
	})
	if err != nil {
		if last != nil {
			err = fmt.Errorf("%w (last error: %v)", err, last)
		}
		e.t.Fatalf("waiting for %s (%v): %v", what, timeout, err)
	}
}

// fatalError stops an eventually at once (a condition that can no longer become true).
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }

func fatalf(format string, args ...any) error { return &fatalError{fmt.Errorf(format, args...)} }

// dump logs what helps to understand a failure: pods, events, Mesos tasks, logs.
func (e *env) dump() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var b strings.Builder
	if pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		fmt.Fprintf(&b, "--- pods in %s:\n", e.ns)
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "  %s uid=%s node=%q phase=%s ready=%v deleting=%v %s\n", p.Name, p.UID, p.Spec.NodeName, p.Status.Phase,
				podReady(&p), p.DeletionTimestamp != nil, containerSummary(&p))
		}
	}
	if evs, err := e.kube.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{}); err == nil {
		sort.Slice(evs.Items, func(i, j int) bool { return evs.Items[i].LastTimestamp.Before(&evs.Items[j].LastTimestamp) })
		items := evs.Items
		if len(items) > 40 {
			items = items[len(items)-40:]
		}
		fmt.Fprintf(&b, "--- last %d events in %s:\n", len(items), e.ns)
		for _, ev := range items {
			fmt.Fprintf(&b, "  %s %s/%s %s: %s (x%d)\n", ev.Type, ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Message, ev.Count)
		}
	}
	if nodes, err := e.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		b.WriteString("--- nodes:\n")
		for _, n := range nodes.Items {
			if strings.HasPrefix(n.Name, e.prefix+"-") {
				fmt.Fprintf(&b, "  %s ready=%s taints=%v\n", n.Name, nodeReadyStatus(&n), n.Spec.Taints)
			}
		}
	}
	if e.sim == nil {
		b.WriteString("--- no Mesos cluster: the env's set-up stopped before it\n")
	} else if st, err := e.mesosState(ctx); err == nil {
		b.WriteString("--- Mesos tasks (active, unreachable, completed):\n")
		for _, group := range [][]mesos.Task{st.GetTasks.Tasks, st.GetTasks.UnreachableTasks, st.GetTasks.CompletedTasks} {
			for _, task := range group {
				fmt.Fprintf(&b, "  %s %s fw=%s agent=%s %s\n", task.TaskID.Value, task.Name, task.FrameworkID.Value, task.AgentID.Value, task.GetState())
			}
		}
	} else {
		fmt.Fprintf(&b, "--- Mesos state: %v\n", err)
	}
	if e.fw != nil {
		fmt.Fprintf(&b, "--- last lines of %s:\n%s\n", e.fw.logPath, fileTail(e.fw.logPath, 60))
	}
	fmt.Fprintf(&b, "--- last lines of %s:\n%s\n", e.simLog, fileTail(e.simLog, 30))
	for _, p := range executorLogs(filepath.Join(e.dir, "mesos")) {
		fmt.Fprintf(&b, "--- last lines of %s:\n%s\n", p, fileTail(p, 25))
	}
	e.t.Log(b.String())
}

// executorLogs finds the stderr files of kubemesos executors in the agents' sandboxes.
func executorLogs(workDir string) []string {
	var out []string
	_ = filepath.WalkDir(workDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !d.IsDir() && d.Name() == "stderr" && strings.Contains(path, "/executors/kubemesos-executor/runs/") &&
			filepath.Base(filepath.Dir(filepath.Dir(path))) == "runs" {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// slug turns a test name into a DNS label part of at most n characters.
func slug(s string, n int) string {
	s = strings.ToLower(s)
	s = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(s, "-")
	s = strings.TrimPrefix(s, "test")
	s = strings.Trim(s, "-")
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-")
	}
	if s == "" {
		s = "t"
	}
	return s
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitSchedulableNodes waits until the env's n Nodes are Ready without a NoSchedule taint.
func (e *env) waitSchedulableNodes(n int) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("%d schedulable Nodes", n), time.Minute, func(ctx context.Context) (bool, error) {
		nodes, err := e.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ok := 0
		for i := range nodes.Items {
			nd := &nodes.Items[i]
			if !strings.HasPrefix(nd.Name, e.prefix+"-") || nodeReadyStatus(nd) != corev1.ConditionTrue {
				continue
			}
			tainted := false
			for _, tt := range nd.Spec.Taints {
				tainted = tainted || tt.Effect == corev1.TaintEffectNoSchedule
			}
			if !tainted {
				ok++
			}
		}
		return ok == n, fmt.Errorf("%d of %d Nodes Ready and untainted", ok, n)
	})
}
