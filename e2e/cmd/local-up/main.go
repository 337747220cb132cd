// Command local-up runs a complete local kubemesos cluster for a developer: etcd, kube-apiserver
// and kube-controller-manager (package cluster), the Mesos simulator with a few agents (package
// mesossim) and the kubemesos framework (serving default-scheduler, so ordinary pods run on the simulated
// agents). It builds what is missing, writes an
// admin kubeconfig to a known path, prints how to use it, and stops everything on Ctrl-C or
// SIGTERM.
//
//	make local-up        # = cd e2e && go run ./cmd/local-up
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/e2e/podnet"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// ReadyLine is printed on stdout once everything is up; scripts and tests wait for it.
const ReadyLine = "local-up: ready"

type config struct {
	dir           string // working state: control plane certs, logs, etcd data, agents' sandboxes
	kubeconfigOut string
	agents        int
	mesosListen   string
	imageCommands map[string]string
	// imageFallback gives images without an --image-command the default one ("*"); false: a
	// container of an image the agents' registry lacks fails to launch, as in Mesos.
	imageFallback bool
	cacheDir      string
	// imageStore builds the real image store for the agents' registry (false: config-only stand-ins);
	// imageRegistry is the store's directory once built ("" when it could not be).
	imageStore    bool
	imageRegistry string
	// isolation is the agents' --isolation (default simhost.Isolating; simhost.Process: process mode).
	isolation string
	// authenticateExecutors starts the agents with --authenticate_http_executors, a generated
	// --jwt_secret_key and --http_authenticators=jwt: executors must send their tokens.
	authenticateExecutors bool
	// gcDelay is the agents' --gc_delay: a local cluster runs many short-lived pods, each executor
	// sandbox with a copy of the kubemesos binary, so they go much sooner than Mesos' week.
	gcDelay time.Duration

	frameworkListen string // the framework's /metrics, /readyz and executor download
	repoDir         string // the kubemesos repository, where cmd/kubemesos is built from
}

// defaultImageCommand is what a container without a command runs when its image is not in the
// agents' local registry and has no --image-command of its own: the simulator cannot pull images, so
// it stands in for the image's entrypoint with a process that runs until it is told to stop.
const defaultImageCommand = `trap 'exit 0' TERM; while :; do sleep 1; done`

// addDefaultImageCommand gives cmds the stand-in for any image ("*") unless one was given or the
// fallback is off.
func addDefaultImageCommand(cmds map[string]string, fallback bool) {
	if _, ok := cmds["*"]; !ok && fallback {
		cmds["*"] = defaultImageCommand
	}
}

func main() {
	// The agents re-execute local-up as Mesos' launch helper (`mesos-containerizer launch`).
	containerizer.MaybeRunHelper()
	log := logrus.New()
	log.SetOutput(os.Stderr)
	if err := run(os.Args[1:], os.Stdout, log); err != nil {
		log.WithError(err).Error("local-up failed")
		os.Exit(1)
	}
	log.Info("stopped")
}

func run(args []string, out io.Writer, log *logrus.Logger) error {
	var cfg config
	fs := flag.NewFlagSet("local-up", flag.ContinueOnError)
	fs.StringVar(&cfg.dir, "dir", "", "state directory, wiped at start (default <repo>/.local/state)")
	fs.StringVar(&cfg.kubeconfigOut, "kubeconfig-out", "", "where to write the admin kubeconfig (default <repo>/.local/kubeconfig)")
	fs.IntVar(&cfg.agents, "agents", 3, "number of simulated Mesos agents")
	fs.StringVar(&cfg.mesosListen, "mesos-listen", "127.0.0.1:5050", "address of the simulated Mesos master (the framework's default --master)")
	cfg.imageCommands = map[string]string{}
	fs.Func("image-command", "image=command: what the simulated agents run for a container of that image without a command, when the image is not in their local registry (repeatable)", func(v string) error {
		image, command, ok := strings.Cut(v, "=")
		if !ok || image == "" || command == "" {
			return fmt.Errorf("%q: want image=command", v)
		}
		cfg.imageCommands[image] = command
		return nil
	})
	fs.BoolVar(&cfg.imageFallback, "image-fallback", true, `give an image without an --image-command the default stand-in ("*": a sleep loop); false: a container of an image the agents' registry lacks fails as in Mesos ("Failed to find archive for image ..."), as conformance runs need`)
	fs.StringVar(&cfg.frameworkListen, "framework-listen", "127.0.0.1:10260", "address of the kubemesos framework's HTTP server (port 0: any free port)")
	fs.StringVar(&cfg.cacheDir, "cache-dir", "", "cache of built Kubernetes binaries and images (default $KUBEMESOS_CACHE_DIR or ~/.cache/kubemesos)")
	fs.BoolVar(&cfg.imageStore, "image-store", true, "give the agents the real image store (busybox, agnhost, pause, nonewprivs, nonroot built offline; see e2e/imagestore); false: config-only stand-ins")
	fs.StringVar(&cfg.isolation, "isolation", simhost.Isolating, "the agents' --isolation: Linux isolators run every container in its own namespaces, image rootfs and cgroups (needs root; without it, process mode); "+simhost.Process+": process mode (containers are host processes)")
	fs.DurationVar(&cfg.gcDelay, "gc-delay", 10*time.Minute, "the agents' --gc_delay: how long the sandboxes and checkpoints of ended executors are kept (Mesos' default: a week)")
	fs.BoolVar(&cfg.authenticateExecutors, "authenticate-http-executors", false, "start the agents with --authenticate_http_executors (a generated --jwt_secret_key in the state directory, --http_authenticators=jwt): every executor call must carry the executor's MESOS_EXECUTOR_AUTHENTICATION_TOKEN")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.defaults(); err != nil {
		return err
	}
	addDefaultImageCommand(cfg.imageCommands, cfg.imageFallback)

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	start := time.Now()
	bins, err := kubebins.Ensure(ctx, kubebins.Options{CacheDir: cfg.cacheDir, Log: os.Stderr})
	if err != nil {
		return fmt.Errorf("building Kubernetes binaries: %w", err)
	}
	if cfg.imageStore {
		cfg.imageRegistry = imageRegistry(ctx, imagestore.Options{CacheDir: cfg.cacheDir, Log: os.Stderr}, log)
	}
	if err := resetStateDir(cfg.dir); err != nil {
		return err
	}
	// Isolating agents are on the pod network, which needs the API server reachable from pods and
	// kube-proxy.
	podNetwork := agentMode(cfg).Isolating
	cp, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(cfg.dir, "kube"), Binaries: &bins, Log: log, PodNetwork: podNetwork,
		// kube-proxy starts once agent 0's Node exists (kubeProxy), sparing its 30 s wait for a Node.
		LazyKubeProxy: true})
	if err != nil {
		return fmt.Errorf("starting control plane: %w", err)
	}
	defer cp.Stop()

	kubeconfig, err := os.ReadFile(cp.KubeconfigPath)
	if err != nil {
		return fmt.Errorf("reading admin kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.kubeconfigOut), 0o755); err != nil {
		return fmt.Errorf("creating kubeconfig dir: %w", err)
	}
	if err := os.WriteFile(cfg.kubeconfigOut, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}

	env := &environment{cfg: cfg, cp: cp, log: log}
	var running []component
	defer func() {
		for i := len(running) - 1; i >= 0; i-- {
			running[i].Stop()
		}
	}()
	for _, c := range components() {
		if err := c.Start(ctx, env); err != nil {
			return fmt.Errorf("starting %s: %w", c.Name(), err)
		}
		running = append(running, c)
	}

	printUsage(out, cfg, cp, env, time.Since(start))
	fmt.Fprintln(out, ReadyLine)

	<-ctx.Done()
	stopSignals() // a second Ctrl-C kills us at once; Pdeathsig then takes the subprocesses along
	log.Info("shutting down")
	return nil
}

// stateMarker marks a directory as local-up's, so that only such a directory is ever wiped.
const stateMarker = ".kubemesos-local-up"

// resetStateDir empties dir for a fresh cluster. It refuses a non-empty directory that local-up did
// not create (no marker), so a mistyped --dir cannot wipe someone's files.
func resetStateDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading state dir: %w", err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, stateMarker)); err != nil {
			return fmt.Errorf("--dir %s is not empty and was not made by local-up (no %s); not wiping it", dir, stateMarker)
		}
		// An agent killed without its cleanup leaves its work_dir's shared mount and sandbox mounts
		// (tmpfs emptyDirs) behind; RemoveAll cannot remove busy mount points.
		real, err := filepath.EvalSymlinks(dir) // the mount table names real paths
		if err != nil {
			return fmt.Errorf("resolving %s: %w", dir, err)
		}
		if err := containerizer.UnmountUnder(filepath.Clean(real) + "/"); err != nil {
			return fmt.Errorf("unmounting under %s: %w", dir, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("wiping %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, stateMarker), nil, 0o644); err != nil {
		return fmt.Errorf("marking state dir: %w", err)
	}
	return nil
}

func (c *config) defaults() error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	mod, err := kubebins.FindModuleDir(wd)
	if err != nil {
		return err
	}
	c.repoDir = filepath.Dir(mod)
	local := filepath.Join(c.repoDir, ".local") // <repo>/.local
	if c.dir == "" {
		c.dir = filepath.Join(local, "state")
	}
	if c.kubeconfigOut == "" {
		c.kubeconfigOut = filepath.Join(local, "kubeconfig")
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if c.kubeconfigOut, err = filepath.Abs(c.kubeconfigOut); err != nil {
		return fmt.Errorf("kubeconfig path: %w", err)
	}
	return nil
}

func printUsage(out io.Writer, cfg config, cp *cluster.ControlPlane, env *environment, took time.Duration) {
	fmt.Fprintf(out, "\nkubemesos local cluster is up (%s).\n\n", took.Round(100*time.Millisecond))
	fmt.Fprintf(out, "  %-24s %s\n", "API server", cp.URL)
	pids := cp.PIDs()
	for _, name := range []string{"kube-apiserver", "kube-controller-manager"} {
		fmt.Fprintf(out, "  %-24s pid %d, log %s\n", name, pids[name], cp.LogPath(name))
	}
	fmt.Fprintf(out, "  %-24s %s (in this process), log %s\n", "etcd", cp.EtcdURL, cp.LogPath("etcd"))
	for _, line := range env.notes {
		fmt.Fprintf(out, "  %s\n", line)
	}
	fmt.Fprintf(out, "\nUse it:\n\n  export KUBECONFIG=%s\n  export PATH=%s:$PATH   # kubectl %s\n  kubectl get ns\n\n",
		cfg.kubeconfigOut, cp.Binaries.Dir, kubebins.KubernetesVersion)
	fmt.Fprintf(out, "Ctrl-C stops everything.\n")
}

// environment is what components get: the running control plane and a place for usage notes.
type environment struct {
	cfg   config
	cp    *cluster.ControlPlane
	log   logrus.FieldLogger
	notes []string // lines for the usage text, e.g. "mesos master http://127.0.0.1:5050"

	// mesosMaster is the simulated master's URL once it runs; the framework needs it.
	mesosMaster string
	// network is the agents' pod network (nil: host network, process mode).
	network *simhost.Network
}

// component is something local-up runs next to the control plane: Start returns once it is ready,
// Stop ends it and waits. They start in the order of components() and stop in reverse.
type component interface {
	Name() string
	Start(ctx context.Context, env *environment) error
	Stop()
}

// components lists what runs next to the control plane, in start order.
func components() []component {
	return []component{
		&mesosSimulator{},
		&kubemesosFramework{},
		&kubeProxy{},
		&clusterDNS{},
		&metricsServer{},
	}
}

// mesosSimulator runs the simulated Mesos master and cfg.agents agents in this process (package
// mesossim); the agents run executors as real processes with sandboxes under <dir>/mesos.
type mesosSimulator struct {
	cluster *mesossim.Cluster
	network *simhost.Network
}

func (m *mesosSimulator) Name() string { return "mesos-sim" }

func (m *mesosSimulator) Start(_ context.Context, env *environment) error {
	simCfg, network, err := simulatorConfig(env.cfg, env.log.WithField("component", "mesos-sim"))
	if err != nil {
		return err
	}
	m.network = network
	c, err := mesossim.StartCluster(simCfg)
	if err != nil {
		return err
	}
	m.cluster = c
	if err := network.Err(); err != nil {
		return err
	}
	env.mesosMaster = c.URL
	env.network = network
	if network != nil {
		var ips []string
		for _, a := range network.Agents() {
			ips = append(ips, a.IP.String()+" "+a.Subnet.String())
		}
		env.notes = append(env.notes, fmt.Sprintf("%-24s %s: agents (address, pod subnet) %s; Services %s, cluster DNS %s",
			"pod network", podnet.NetworkName, strings.Join(ips, ", "), cluster.ServiceClusterIPRange, cluster.ClusterDNSIP))
	}
	env.notes = append(env.notes, fmt.Sprintf("%-24s %s (in this process), %d agents, sandboxes in %s, images in %s",
		"mesos master", c.URL, env.cfg.agents, simCfg.WorkDir, simCfg.DockerRegistry),
		fmt.Sprintf("%-24s %s", "containers", agentMode(env.cfg)))
	return nil
}

// imageRegistry builds the image store (or finds it in the cache) and returns its directory; when it
// cannot, it says why and returns "", and the agents get the stand-ins.
func imageRegistry(ctx context.Context, opts imagestore.Options, log logrus.FieldLogger) string {
	s, err := imagestore.Ensure(ctx, opts)
	if err != nil {
		log.WithError(err).Warn("cannot build the image store: the agents get config-only stand-in images (busybox, kubemesos/echo-entrypoint) instead")
		return ""
	}
	how := "built now"
	if s.Cached {
		how = "cached"
	}
	log.Infof("image store %s: %d images, %.1f MB, build time %s (%s)", s.Dir, len(s.Images), float64(s.Bytes)/(1<<20), s.BuildTime.Round(100*time.Millisecond), how)
	return s.Dir
}

// simulatorConfig is the simulated cluster local-up runs. Its agents provision images as Mesos
// agents started with --image_providers=docker --docker_registry=<dir> do, from cfg.imageRegistry
// (the image store) or, without it, from a registry of stand-ins written here (<dir>/images: busybox
// and an Entrypoint image with configs only, see imagearchive.StandIns); any other image runs its
// --image-command ("*" by default), since the simulator cannot pull.
func simulatorConfig(cfg config, log logrus.FieldLogger) (mesossim.ClusterConfig, *simhost.Network, error) {
	registry := cfg.imageRegistry
	if registry == "" {
		registry = filepath.Join(cfg.dir, "images")
		if err := imagearchive.WriteStandIns(registry); err != nil {
			return mesossim.ClusterConfig{}, nil, fmt.Errorf("writing the agents' image archives: %w", err)
		}
	}
	simCfg := mesossim.ClusterConfig{
		Master: mesossim.Config{
			Log:                log,
			AllocationInterval: time.Second,      // Mesos' default
			HeartbeatInterval:  15 * time.Second, // Mesos' default
		},
		Listen:        cfg.mesosListen,
		Agents:        cfg.agents,
		WorkDir:       filepath.Join(cfg.dir, "mesos"),
		ImageCommands: cfg.imageCommands,
	}
	if cfg.authenticateExecutors {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return mesossim.ClusterConfig{}, nil, err
		}
		keyFile := filepath.Join(cfg.dir, "jwt-secret-key")
		if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
			return mesossim.ClusterConfig{}, nil, fmt.Errorf("writing the agents' --jwt_secret_key: %w", err)
		}
		simCfg.AgentTweak = func(_ int, c *agent.Config) {
			c.AuthenticateHTTPExecutors, c.JWTSecretKey, c.HTTPAuthenticators = true, keyFile, agent.JWTHTTPAuthenticator
		}
	}
	authTweak := simCfg.AgentTweak
	simCfg.AgentTweak = func(i int, c *agent.Config) {
		c.GCDelay = cfg.gcDelay
		if authTweak != nil {
			authTweak(i, c)
		}
	}
	network, err := simhost.Configure(&simCfg, agentMode(cfg), registry, log)
	return simCfg, network, err
}

// agentMode is how local-up's agents run containers: --isolation on this machine, and process mode
// with the config-only stand-ins (they have no filesystem to run in).
func agentMode(cfg config) simhost.Mode {
	isolation := cfg.isolation
	if isolation == "" {
		isolation = simhost.Isolating
	}
	m := simhost.Resolve(isolation)
	if m.Isolating && cfg.imageRegistry == "" {
		m.Isolating = false
		m.Why = "no image store: the config-only stand-in images have no root filesystem"
	}
	return m
}

func (m *mesosSimulator) Stop() {
	if m.cluster != nil {
		m.cluster.Close()
	}
	// After the agents destroyed their containers: addresses, bridges, leftovers.
	if err := m.network.Close(); err != nil {
		logrus.WithError(err).Warn("releasing the pod network")
	}
}

// kubeProxy runs the control plane's kube-proxy (nftables mode) as a host process, as if on agent 0's
// Node, once that exists. Only with the pod network.
type kubeProxy struct{ cp *cluster.ControlPlane }

func (*kubeProxy) Name() string { return "kube-proxy" }

func (k *kubeProxy) Start(ctx context.Context, env *environment) error {
	if env.network == nil {
		return nil
	}
	const node = "mesos-agent-0"
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := env.cp.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for Node %s: %w", node, err)
	}
	if err := env.cp.StartKubeProxy(ctx, node); err != nil {
		return err
	}
	k.cp = env.cp
	env.notes = append(env.notes, fmt.Sprintf("%-24s pid %d, log %s", "kube-proxy", env.cp.PIDs()["kube-proxy"], env.cp.LogPath("kube-proxy")))
	return nil
}

func (k *kubeProxy) Stop() {
	if k.cp != nil {
		k.cp.StopKubeProxy()
	}
}

// clusterDNS runs CoreDNS in kube-system as an ordinary Deployment that kubemesos schedules (image
// store's coredns image), behind Service kube-dns at cluster.ClusterDNSIP, the executors'
// --cluster-dns. Only with the pod network.
type clusterDNS struct{}

func (*clusterDNS) Name() string { return "cluster DNS" }

func (*clusterDNS) Start(ctx context.Context, env *environment) error {
	if env.network == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := cluster.DeployCoreDNS(ctx, env.cp.Client, cluster.DNSOptions{Image: imagestore.CoreDNSImage}); err != nil {
		return err
	}
	if err := cluster.WaitCoreDNS(ctx, env.cp.Client, ""); err != nil {
		// The cluster is useful without names; say so rather than stop.
		env.log.WithError(err).Warn("cluster DNS is not ready: pods resolve no cluster names (kubectl -n kube-system describe pod -l k8s-app=kube-dns)")
		env.notes = append(env.notes, fmt.Sprintf("%-24s NOT READY: %v", "cluster DNS", err))
		return nil
	}
	env.notes = append(env.notes, fmt.Sprintf("%-24s kube-system/coredns (Deployment run by kubemesos), Service kube-dns %s", "cluster DNS", cluster.ClusterDNSIP))
	return nil
}

func (*clusterDNS) Stop() {}

// metricsServer runs metrics-server in kube-system (the image store's, upstream's manifests) for
// `kubectl top`: it scrapes each Node's executor (/metrics/resource). Only with the pod network, where
// the API server reaches it through its Service. It is not waited for: it serves once it has
// scraped twice (a minute or so).
type metricsServer struct{}

func (*metricsServer) Name() string { return "metrics-server" }

func (*metricsServer) Start(ctx context.Context, env *environment) error {
	if env.network == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cluster.DeployMetricsServer(ctx, env.cp.Client, cluster.MetricsServerOptions{Image: imagestore.MetricsServerImage}); err != nil {
		return err
	}
	env.notes = append(env.notes, fmt.Sprintf("%-24s kube-system/metrics-server, APIService %s (kubectl top; ready after its first scrapes)",
		"metrics-server", cluster.MetricsAPIService))
	return nil
}

func (*metricsServer) Stop() {}
