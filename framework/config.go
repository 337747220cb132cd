package framework

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	cniutils "github.com/containernetworking/cni/pkg/utils"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/executor"
	"github.com/kubemesos/kubemesos/internal/mesosrole"
	"github.com/kubemesos/kubemesos/offerbridge"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Names fixed by docs/design.md.
const (
	// StateName is the name of the ConfigMap holding framework state and of the leader-election Lease.
	StateName = "kubemesos-framework"
	// ExecutorID is the ExecutorID of the one kubemesos executor per agent.
	ExecutorID = "kubemesos-executor"
	// ExecutorPath is the HTTP path serving the framework's own binary to agents.
	ExecutorPath = "/executor/kubemesos"
	// DefaultSchedulerName is the scheduler name the framework serves with --serve-default-scheduler.
	DefaultSchedulerName = "default-scheduler"
)

// Config is every option of `kubemesos framework` (docs/design.md, "Configuration"). BindFlags registers
// them with their defaults; viper maps the same names to KUBEMESOS_* variables and the config file.
type Config struct {
	// Master is the Mesos master URL (the scheduler API is Master + "/api/v1/scheduler").
	Master string
	// Kubeconfig is the path of the API server credentials; empty means in-cluster configuration.
	Kubeconfig string
	// FrameworkName is FrameworkInfo.name.
	FrameworkName string
	// Roles are Mesos roles the framework always subscribes to (MULTI_ROLE), besides those namespaces
	// name with RoleAnnotation.
	Roles []string
	// DefaultRole is the role of the pods of namespaces without RoleAnnotation; empty: the first of Roles.
	DefaultRole string
	// Principal is the Mesos principal (FrameworkInfo.principal and HTTP basic authentication user).
	Principal string
	// MesosUser is FrameworkInfo.user, the user agents run the executors as (with --switch_user); empty:
	// the user running the framework, which agents may not have (the image's nonroot user).
	MesosUser string
	// SecretFile is a file holding the principal's secret for HTTP basic authentication.
	SecretFile string
	// MesosCAFile verifies an https master's certificate (empty: the system's roots);
	// MesosCertFile and MesosKeyFile are a client certificate for masters that require one (Mesos'
	// libprocess SSL with LIBPROCESS_SSL_REQUIRE_CLIENT_CERT).
	MesosCAFile   string
	MesosCertFile string
	MesosKeyFile  string
	// FailoverTimeout is FrameworkInfo.failover_timeout: how long Mesos keeps the tasks of a disconnected
	// framework.
	FailoverTimeout time.Duration
	// SchedulerName is the pods' spec.schedulerName the framework schedules.
	SchedulerName string
	// ServeDefaultScheduler makes the framework also schedule pods of "default-scheduler".
	ServeDefaultScheduler bool
	// StateNamespace holds the state ConfigMap and the leader-election Lease.
	StateNamespace string
	// LeaderElect enables leader election on the Lease kubemesos-framework; only the leader subscribes.
	LeaderElect bool
	// LeaderElectLeaseDuration, LeaderElectRenewDeadline and LeaderElectRetryPeriod are leader
	// election's LeaseDuration, RenewDeadline and RetryPeriod (kube-scheduler's flags of the same names).
	// The leader acts only within RenewDeadline of its last renewal (see leaseFence).
	LeaderElectLeaseDuration time.Duration
	LeaderElectRenewDeadline time.Duration
	LeaderElectRetryPeriod   time.Duration
	// HTTPAddress is the listen address of /metrics, /healthz, /readyz and /executor/kubemesos.
	HTTPAddress string
	// AdvertiseURL is the URL agents use to reach HTTPAddress; derived from the hostname and port when empty.
	AdvertiseURL string
	// ExecutorURI is where agents fetch the executor binary; AdvertiseURL + /executor/kubemesos when empty.
	ExecutorURI string
	// ExecutorURICache says ExecutorURI names one immutable binary, so agents may keep it in their
	// fetcher cache for the sandbox executors (the framework's own URI is pinned by digest and cached).
	ExecutorURICache bool
	// ExecutorKubeconfig is the kubeconfig path the executor uses on the agent (KUBEMESOS_KUBECONFIG);
	// empty means in-cluster configuration.
	ExecutorKubeconfig string
	// ExecutorEnv are settings of the executors as KUBEMESOS_<FLAG>=value (see `kubemesos executor
	// --help`), put in their ExecutorInfo's environment; they override --log-level for executors.
	ExecutorEnv []string
	// ExecutorCPUs and ExecutorMemMB are the executor's own resources.
	ExecutorCPUs  float64
	ExecutorMemMB float64
	// PodOverheadCPUs and PodOverheadMemMB are added to every pod's task.
	PodOverheadCPUs  float64
	PodOverheadMemMB float64
	// PodNetwork is the CNI network (Mesos NetworkInfo.name) pods without hostNetwork join, or "host"
	// for the agents' network (every containerPort is then a Mesos `ports` resource).
	PodNetwork string
	// PodCIDRAttribute names the agent attribute holding the agent's pod CIDR(s), comma-separated,
	// written to its Node's spec.podCIDR(s).
	PodCIDRAttribute string
	// PlacementStrategy chooses among the agents a pod fits on: spread (least allocated, kube-scheduler's
	// default) or binpack (most allocated).
	PlacementStrategy string
	// OfferHold is how long an offer is held to batch pods before it is declined.
	OfferHold time.Duration
	// RefuseSeconds is the refuse filter of declined offers.
	RefuseSeconds float64
	// LogLevel is the logrus level of the framework and of its executors.
	LogLevel string
	// AgentPollInterval is how often the master's operator API GET_AGENTS is polled.
	AgentPollInterval time.Duration
	// NodeLeaseDuration is the lease duration of the Nodes' Leases in kube-node-lease; leases are
	// renewed every quarter of it while the agent is active.
	NodeLeaseDuration time.Duration
	// ReconcileInterval is the period of implicit task reconciliation.
	ReconcileInterval time.Duration
	// KubeAPIQPS and KubeAPIBurst limit the framework's API client (Bindings, pod status, state), as
	// kube-scheduler's --kube-api-qps/--kube-api-burst (whose defaults, 50 and 100, they share);
	// Node heartbeats have a client of their own.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// Profiling serves net/http/pprof under /debug/pprof/ on the HTTP address, as kube-scheduler's
	// --profiling (default on) does on its secure port.
	Profiling bool
}

// DefaultConfig returns the defaults of docs/design.md.
func DefaultConfig() Config {
	return Config{
		Master:            "http://127.0.0.1:5050",
		FrameworkName:     "kubemesos",
		Roles:             []string{"kubemesos"},
		FailoverTimeout:   168 * time.Hour,
		SchedulerName:     "kubemesos",
		StateNamespace:    "kube-system",
		LeaderElect:       true,
		HTTPAddress:       ":10260",
		ExecutorCPUs:      0.1,
		ExecutorMemMB:     96,
		PodNetwork:        podtranslate.PodNetworkHost,
		PodCIDRAttribute:  "pod_cidr",
		PlacementStrategy: offerbridge.Spread.String(),
		OfferHold:         500 * time.Millisecond,
		RefuseSeconds:     5,
		LogLevel:          "info",
		AgentPollInterval: 10 * time.Second,
		NodeLeaseDuration: 40 * time.Second,
		ReconcileInterval: 15 * time.Minute,
		KubeAPIQPS:        50,
		KubeAPIBurst:      100,
		Profiling:         true,

		LeaderElectLeaseDuration: 15 * time.Second,
		LeaderElectRenewDeadline: 10 * time.Second,
		LeaderElectRetryPeriod:   2 * time.Second,
	}
}

// BindFlags registers every option on fs with DefaultConfig's values as defaults, writing into c.
func (c *Config) BindFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.Master, "master", d.Master, "Mesos master URL")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", d.Kubeconfig, "kubeconfig of the API server (empty: in-cluster)")
	fs.StringVar(&c.FrameworkName, "framework-name", d.FrameworkName, "Mesos FrameworkInfo.name")
	fs.StringSliceVar(&c.Roles, "roles", d.Roles, "comma-separated Mesos roles always subscribed to, besides the roles namespaces name with the annotation "+RoleAnnotation)
	fs.StringVar(&c.DefaultRole, "default-role", d.DefaultRole, "Mesos role of the pods of namespaces without the annotation "+RoleAnnotation+" (default: the first of --roles)")
	fs.StringVar(&c.Principal, "principal", d.Principal, "Mesos principal (HTTP basic authentication user)")
	fs.StringVar(&c.MesosUser, "mesos-user", d.MesosUser, "FrameworkInfo.user: the user Mesos agents run the executors as (must exist on every agent; default: the user running the framework)")
	fs.StringVar(&c.SecretFile, "secret-file", d.SecretFile, "file holding the Mesos principal's secret")
	fs.StringVar(&c.MesosCAFile, "mesos-ca-file", d.MesosCAFile, "PEM CA bundle that verifies an https --master (default: the system's roots)")
	fs.StringVar(&c.MesosCertFile, "mesos-cert-file", d.MesosCertFile, "PEM client certificate for an https --master that requires one (with --mesos-key-file)")
	fs.StringVar(&c.MesosKeyFile, "mesos-key-file", d.MesosKeyFile, "PEM key of --mesos-cert-file")
	fs.DurationVar(&c.FailoverTimeout, "failover-timeout", d.FailoverTimeout, "Mesos FrameworkInfo.failover_timeout")
	fs.StringVar(&c.SchedulerName, "scheduler-name", d.SchedulerName, "pods' spec.schedulerName served by the framework")
	fs.BoolVar(&c.ServeDefaultScheduler, "serve-default-scheduler", d.ServeDefaultScheduler, "also schedule pods of default-scheduler")
	fs.StringVar(&c.StateNamespace, "state-namespace", d.StateNamespace, "namespace of the state ConfigMap and the leader-election Lease")
	fs.BoolVar(&c.LeaderElect, "leader-elect", d.LeaderElect, "leader election on the Lease kubemesos-framework")
	fs.DurationVar(&c.LeaderElectLeaseDuration, "leader-elect-lease-duration", d.LeaderElectLeaseDuration, "how long a standby waits after the leader's last renewal before taking the Lease (whole seconds: the Lease records seconds)")
	fs.DurationVar(&c.LeaderElectRenewDeadline, "leader-elect-renew-deadline", d.LeaderElectRenewDeadline, "how long the leader tries to renew before it gives up leading; it launches and binds only within this time of its last renewal")
	fs.DurationVar(&c.LeaderElectRetryPeriod, "leader-elect-retry-period", d.LeaderElectRetryPeriod, "period of the Lease's renewals and acquisition attempts")
	fs.StringVar(&c.HTTPAddress, "http-address", d.HTTPAddress, "listen address of /metrics, /healthz, /readyz, /executor/kubemesos")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", d.AdvertiseURL, "URL agents use to reach --http-address (default: derived from hostname and port)")
	fs.StringVar(&c.ExecutorURI, "executor-uri", d.ExecutorURI, "where agents fetch the executor binary (default: <advertise-url>/executor/kubemesos)")
	fs.BoolVar(&c.ExecutorURICache, "executor-uri-cache", d.ExecutorURICache, "--executor-uri names one immutable binary (e.g. a versioned URL): the pods' sandbox executors fetch it with cache: true, through the agents' fetcher cache (the framework's own URI is pinned by its sha256 and always cached)")
	fs.StringVar(&c.ExecutorKubeconfig, "executor-kubeconfig", d.ExecutorKubeconfig, "kubeconfig path the executor uses on the agents (empty: in-cluster)")
	fs.StringSliceVar(&c.ExecutorEnv, "executor-env", d.ExecutorEnv, "executor settings as VAR=value, VAR the environment variable of a 'kubemesos executor' flag (repeatable or comma-separated)")
	fs.Float64Var(&c.ExecutorCPUs, "executor-cpus", d.ExecutorCPUs, "executor's own cpus")
	fs.Float64Var(&c.ExecutorMemMB, "executor-mem", d.ExecutorMemMB, "executor's own memory in MB")
	fs.Float64Var(&c.PodOverheadCPUs, "pod-overhead-cpus", d.PodOverheadCPUs, "cpus added to every pod's task")
	fs.Float64Var(&c.PodOverheadMemMB, "pod-overhead-mem", d.PodOverheadMemMB, "memory in MB added to every pod's task")
	fs.StringVar(&c.PodNetwork, "pod-network", d.PodNetwork, "CNI network (Mesos NetworkInfo.name, configured on the agents) of pods without hostNetwork; 'host': every pod uses its agent's network and every containerPort is a Mesos ports resource")
	fs.StringVar(&c.PodCIDRAttribute, "pod-cidr-attribute", d.PodCIDRAttribute, "agent attribute holding the agent's pod CIDR(s), comma-separated, set as its Node's spec.podCIDR(s) (empty: none)")
	fs.StringVar(&c.PlacementStrategy, "placement-strategy", d.PlacementStrategy, "scoring of the agents a pod fits on: spread (least allocated, kube-scheduler's default) or binpack (most allocated: pods fill the fewest agents, whole agents stay free for other frameworks)")
	fs.DurationVar(&c.OfferHold, "offer-hold", d.OfferHold, "how long offers are held to batch pods")
	fs.Float64Var(&c.RefuseSeconds, "refuse-seconds", d.RefuseSeconds, "decline filter for unusable offers, seconds")
	fs.StringVar(&c.LogLevel, "log-level", d.LogLevel, "logrus level (framework and executors)")
	fs.DurationVar(&c.AgentPollInterval, "agent-poll-interval", d.AgentPollInterval, "period of GET_AGENTS polls of the master's operator API")
	fs.DurationVar(&c.NodeLeaseDuration, "node-lease-duration", d.NodeLeaseDuration, "duration of the Nodes' Leases (renewed every quarter of it)")
	fs.Float32Var(&c.KubeAPIQPS, "kube-api-qps", d.KubeAPIQPS, "QPS of the framework's API client (Bindings, pod status; not Node heartbeats)")
	fs.IntVar(&c.KubeAPIBurst, "kube-api-burst", d.KubeAPIBurst, "burst of the framework's API client")
	fs.DurationVar(&c.ReconcileInterval, "reconcile-interval", d.ReconcileInterval, "period of implicit task reconciliation")
	fs.BoolVar(&c.Profiling, "profiling", d.Profiling, "serve net/http/pprof under /debug/pprof/ on --http-address")
}

// Validate reports every invalid option at once.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Master); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("--master %q: not an absolute URL", c.Master))
	}
	if (c.MesosCertFile == "") != (c.MesosKeyFile == "") {
		errs = append(errs, errors.New("--mesos-cert-file and --mesos-key-file go together"))
	}
	if c.KubeAPIQPS <= 0 || c.KubeAPIBurst <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d must be positive", c.KubeAPIQPS, c.KubeAPIBurst))
	}
	if c.FrameworkName == "" {
		errs = append(errs, errors.New("--framework-name is empty"))
	}
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("--roles is empty"))
	}
	for _, r := range c.Roles {
		if r == "*" {
			errs = append(errs, fmt.Errorf("--roles: invalid role %q: the default role, which every framework shares", r))
		} else if err := mesosrole.Validate(r); err != nil {
			errs = append(errs, fmt.Errorf("--roles: %v", err))
		}
	}
	if c.DefaultRole != "" {
		if err := mesosrole.Validate(c.DefaultRole); err != nil {
			errs = append(errs, fmt.Errorf("--default-role: %v", err))
		}
	}
	if c.FailoverTimeout <= 0 {
		errs = append(errs, errors.New("--failover-timeout must be positive"))
	}
	if c.LeaderElect {
		errs = append(errs, c.validateLeaderElection()...)
	}
	if c.SchedulerName == "" {
		errs = append(errs, errors.New("--scheduler-name is empty"))
	}
	if c.StateNamespace == "" {
		errs = append(errs, errors.New("--state-namespace is empty"))
	}
	if _, err := c.executorEnv(); err != nil {
		errs = append(errs, fmt.Errorf("--executor-env: %w", err))
	}
	if c.ExecutorCPUs < 0 || c.ExecutorMemMB < 0 || c.PodOverheadCPUs < 0 || c.PodOverheadMemMB < 0 {
		errs = append(errs, errors.New("executor resources and pod overheads must not be negative"))
	}
	switch {
	case c.PodNetwork == "":
		errs = append(errs, errors.New("--pod-network is empty (host: the agents' network)"))
	case c.PodNetwork != podtranslate.PodNetworkHost:
		// The name must be one the agents' CNI configs can have.
		if err := cniutils.ValidateNetworkName(c.PodNetwork); err != nil {
			errs = append(errs, fmt.Errorf("--pod-network %q: %s", c.PodNetwork, err.Msg))
		}
	}
	if _, err := offerbridge.ParseStrategy(c.PlacementStrategy); err != nil {
		errs = append(errs, fmt.Errorf("--placement-strategy: %w", err))
	}
	if c.OfferHold <= 0 {
		errs = append(errs, errors.New("--offer-hold must be positive"))
	}
	if c.RefuseSeconds < 0 {
		errs = append(errs, errors.New("--refuse-seconds must not be negative"))
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if c.AgentPollInterval <= 0 || c.NodeLeaseDuration <= 0 || c.ReconcileInterval <= 0 {
		errs = append(errs, errors.New("--agent-poll-interval, --node-lease-duration and --reconcile-interval must be positive"))
	}
	if c.ExecutorURI == "" && c.AdvertiseURL != "" {
		if u, err := url.Parse(c.AdvertiseURL); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("--advertise-url %q: not an absolute URL", c.AdvertiseURL))
		}
	}
	return errors.Join(errs...)
}

// executorEnv parses --executor-env and checks it against the executor's flags, with the values the
// framework itself gives executors (--log-level, --executor-kubeconfig).
func (c *Config) executorEnv() (map[string]string, error) {
	env := map[string]string{}
	var errs []error
	for _, kv := range c.ExecutorEnv {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%q is not KEY=VALUE", kv))
			continue
		case k == executorKubeconfigVar:
			errs = append(errs, fmt.Errorf("%s: set it with --executor-kubeconfig", k))
			continue
		}
		if _, dup := env[k]; dup {
			errs = append(errs, fmt.Errorf("%s is set twice", k))
		}
		env[k] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := map[string]string{executorLogLevelVar: c.LogLevel}
	if c.ExecutorKubeconfig != "" {
		all[executorKubeconfigVar] = c.ExecutorKubeconfig
	}
	maps.Copy(all, env)
	if err := executor.ValidateEnv(all); err != nil {
		return nil, err
	}
	return env, nil
}

// translateOptions are the settings podtranslate works with.
func (c *Config) translateOptions() podtranslate.Options {
	return podtranslate.Options{
		Overhead:   podtranslate.Overhead{CPUs: c.PodOverheadCPUs, MemMB: c.PodOverheadMemMB},
		PodNetwork: c.PodNetwork,
	}
}

// defaultRole is --default-role, else the first of --roles.
func (c *Config) defaultRole() string {
	if c.DefaultRole != "" || len(c.Roles) == 0 {
		return c.DefaultRole
	}
	return c.Roles[0]
}

// SchedulerNames returns the pod schedulerNames the framework serves.
func (c *Config) SchedulerNames() map[string]bool {
	names := map[string]bool{c.SchedulerName: true}
	if c.ServeDefaultScheduler {
		names[DefaultSchedulerName] = true
	}
	return names
}

// executorURI resolves --executor-uri from --advertise-url, or from hostname and the port of
// --http-address when neither is set.
func (c *Config) executorURI(hostname string) string {
	if c.ExecutorURI != "" {
		return c.ExecutorURI
	}
	return strings.TrimSuffix(c.advertiseURL(hostname), "/") + ExecutorPath
}

// sandboxExecutorURI is the URI of the pods' sandbox executors when it may be cached: the framework's
// own URI pinned to its binary's digest, or --executor-uri with --executor-uri-cache; nil otherwise
// (they then fetch as the kubelet executor does, uncached).
func (c *Config) sandboxExecutorURI(hostname string, a executorArtifact) *mesos.CommandInfo_URI {
	var value string
	switch {
	case c.ExecutorURI != "" && c.ExecutorURICache:
		value = c.ExecutorURI
	case c.ExecutorURI == "" && a.digest != "":
		value = a.pinned(c.executorURI(hostname))
	default:
		return nil
	}
	executable, extract, cache := true, false, true
	output := "kubemesos"
	return &mesos.CommandInfo_URI{Value: value, Executable: &executable, Extract: &extract, Cache: &cache, OutputFile: &output}
}

func (c *Config) advertiseURL(hostname string) string {
	if c.AdvertiseURL != "" {
		return c.AdvertiseURL
	}
	port := "10260"
	if i := strings.LastIndex(c.HTTPAddress, ":"); i >= 0 && i+1 < len(c.HTTPAddress) {
		port = c.HTTPAddress[i+1:]
	}
	return "http://" + hostname + ":" + port
}

// validateLeaderElection checks the Lease timings as leaderelection.NewLeaderElector does, with the
// lease duration as the Lease records it (whole seconds), which is what a standby waits.
func (c *Config) validateLeaderElection() []error {
	var errs []error
	lease := c.LeaderElectLeaseDuration.Truncate(time.Second)
	if lease <= c.LeaderElectRenewDeadline {
		errs = append(errs, fmt.Errorf("--leader-elect-lease-duration %v (in whole seconds: %v) must be greater than --leader-elect-renew-deadline %v",
			c.LeaderElectLeaseDuration, lease, c.LeaderElectRenewDeadline))
	}
	// leaderelection.JitterFactor: the retry period is jittered up to 1.2 times.
	if c.LeaderElectRetryPeriod <= 0 || float64(c.LeaderElectRenewDeadline) <= 1.2*float64(c.LeaderElectRetryPeriod) {
		errs = append(errs, fmt.Errorf("--leader-elect-renew-deadline %v must be greater than 1.2 x --leader-elect-retry-period %v (positive)",
			c.LeaderElectRenewDeadline, c.LeaderElectRetryPeriod))
	}
	return errs
}
