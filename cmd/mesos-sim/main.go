// Command mesos-sim runs the simulated Mesos cluster (package mesossim): one master serving the Mesos
// v1 scheduler and operator HTTP APIs plus N agents running executors as real processes, so that
// Mesos frameworks can be developed and tested on machines where Mesos cannot be installed.
//
//	mesos-sim --listen 127.0.0.1:5050 --agents 3 \
//	  --agent-resources 'cpus:4;mem:8192;disk:65536;ports:[31000-32000]' \
//	  --agent-attributes 'rack:r%d' --work-dir DIR --allocation-interval 1s \
//	  --image_providers docker --docker_registry /path/to/archives --isolation filesystem/linux,docker/runtime
//
// With Linux isolators in --isolation (filesystem/linux, namespaces/pid, linux/capabilities, ...) and run
// as root, the agents run nested containers and sessions isolated, through the launch helper this binary
// also is (`mesos-containerizer launch`); otherwise as host processes. With network/cni in --isolation,
// --network_cni_config_dir and --network_cni_plugins_dir give them CNI networks (%d in the config and
// runtime dirs is the agent's index: agents of one host each need their own pod subnet).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesostime "github.com/mesos/mesos-go/api/v1/lib/time"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

type options struct {
	listen             string
	agents             int
	agentResources     string
	agentAttributes    string
	workDir            string
	allocationInterval time.Duration
	offerTimeout       time.Duration
	heartbeatInterval  time.Duration
	weights            string
	fairExcluded       []string
	imageCommands      []string
	imageProviders     string
	dockerRegistry     string
	isolation          string
	// The agents' HTTP authentication flags (Mesos' names; see agent.Config).
	authenticateHTTPExecutors bool
	authenticateHTTPReadwrite bool
	authenticateHTTPReadonly  bool
	jwtSecretKey              string
	httpAuthenticators        string
	httpCredentials           string
	executorEnvVars           string
	// getenv reads libprocess' LIBPROCESS_SSL_* variables, which make the agents serve https as
	// mesos-agent does; os.Getenv when nil.
	getenv func(string) string
	// The agents' Linux isolators' flags (Mesos' names).
	cgroupsHierarchy      string
	cgroupsRoot           string
	effectiveCapabilities string
	boundingCapabilities  string
	disallowSharingPidNS  bool
	// network/cni's flags; "%d" in the config and runtime dirs is the agent's index.
	networkCNIConfigDir  string
	networkCNIPluginsDir string
	runtimeDir           string
	fetcherCacheDir      string
	authenticateHTTPFws  bool
	httpFwAuthenticators string
	credentials          string
	fetcherCacheSize     int64
	// The agents' garbage collection flags (Mesos' names); zero: the agent's (Mesos') default.
	gcDelay            time.Duration
	executorRegTimeout time.Duration
	gcDiskHeadroom     float64
	diskWatchInterval  time.Duration
	seed               int64
	logLevel           string
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := pflag.NewFlagSet("mesos-sim", pflag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:5050", "address of the master's HTTP endpoint")
	fs.IntVar(&o.agents, "agents", 3, "number of agents")
	fs.StringVar(&o.agentResources, "agent-resources", mesossim.DefaultAgentResources, "resources of every agent, in Mesos' syntax")
	fs.StringVar(&o.agentAttributes, "agent-attributes", "", "attributes of every agent, in Mesos' syntax; %d is replaced by the agent index")
	fs.StringVar(&o.workDir, "work-dir", "", "agents' work dir (sandboxes); default: a temporary directory removed on exit")
	fs.DurationVar(&o.allocationInterval, "allocation-interval", time.Second, "batch allocation interval (0: offers only through POST /admin/allocate)")
	fs.DurationVar(&o.offerTimeout, "offer-timeout", 0, "rescind offers held longer than this (0: never)")
	fs.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 15*time.Second, "HEARTBEAT event interval")
	fs.StringVar(&o.weights, "weights", "", "role weights, e.g. 'web=1,batch=3'")
	fs.StringSliceVar(&o.fairExcluded, "fair_sharing_excluded_resource_names", nil, "the master's --fair_sharing_excluded_resource_names: resource names (e.g. 'gpus') no DRF share counts")
	fs.StringVar(&o.imageProviders, "image_providers", "", "the agents' --image_providers: 'docker' provisions container images from --docker_registry")
	fs.StringVar(&o.dockerRegistry, "docker_registry", agent.DefaultDockerRegistry, "the agents' --docker_registry: with --image_providers=docker, a local directory of docker-save archives (<dir>/<image>.tar); registries cannot be reached")
	fs.StringVar(&o.isolation, "isolation", agent.DefaultIsolation, "the agents' --isolation; Linux isolators (filesystem/linux, namespaces/pid, linux/capabilities, linux/nnp, docker/runtime, ...) isolate nested containers when run as root, else containers run as host processes; --image_providers=docker needs filesystem/linux and docker/runtime")
	fs.BoolVar(&o.authenticateHTTPExecutors, "authenticate_http_executors", false, "the agents' --authenticate_http_executors: /api/v1/executor requires authentication (needs --jwt_secret_key; --http_credentials too with the default --http_authenticators basic,jwt)")
	fs.BoolVar(&o.authenticateHTTPReadwrite, "authenticate_http_readwrite", false, "the agents' --authenticate_http_readwrite: their operator API /api/v1 requires authentication (an executor's token, or basic)")
	fs.BoolVar(&o.authenticateHTTPReadonly, "authenticate_http_readonly", false, "the agents' --authenticate_http_readonly: their /state requires authentication")
	fs.StringVar(&o.jwtSecretKey, "jwt_secret_key", "", "the agents' --jwt_secret_key: a file whose content signs each executor's MESOS_EXECUTOR_AUTHENTICATION_TOKEN (HS256)")
	fs.StringVar(&o.jwtSecretKey, "executor_secret_key", "", "deprecated name of --jwt_secret_key")
	_ = fs.MarkDeprecated("executor_secret_key", "use --jwt_secret_key")
	fs.StringVar(&o.httpAuthenticators, "http_authenticators", "", "the agents' --http_authenticators: basic and/or jwt (default basic, or basic,jwt with --authenticate_http_executors)")
	fs.StringVar(&o.executorEnvVars, "executor_environment_variables", "", `the agents' --executor_environment_variables: a JSON object of the variables every executor starts with, e.g. {"LIBPROCESS_SSL_ENABLED":"true",...} for agents serving https (LIBPROCESS_SSL_* in mesos-sim's environment; the master stays http)`)
	fs.StringVar(&o.httpCredentials, "http_credentials", "", `the agents' --http_credentials, for basic: a file of {"credentials":[{"principal":"p","secret":"s"}]}`)
	fs.StringVar(&o.cgroupsHierarchy, "cgroups_hierarchy", containerizer.DefaultCgroupsHierarchy, "the agents' --cgroups_hierarchy (cgroups isolators)")
	fs.StringVar(&o.cgroupsRoot, "cgroups_root", containerizer.DefaultCgroupsRoot, "the agents' --cgroups_root (cgroups isolators)")
	fs.StringVar(&o.effectiveCapabilities, "effective_capabilities", "", `the agents' --effective_capabilities (linux/capabilities), JSON: {"capabilities":["NET_RAW"]}`)
	fs.StringVar(&o.boundingCapabilities, "bounding_capabilities", "", `the agents' --bounding_capabilities (linux/capabilities), JSON: {"capabilities":["NET_RAW"]}`)
	fs.BoolVar(&o.disallowSharingPidNS, "disallow_sharing_agent_pid_namespace", false, "the agents' --disallow_sharing_agent_pid_namespace (namespaces/pid)")
	fs.StringVar(&o.networkCNIConfigDir, "network_cni_config_dir", "", "the agents' --network_cni_config_dir (network/cni): their CNI network configurations; %d is replaced by the agent index, so that each agent can have its own networks")
	fs.StringVar(&o.networkCNIPluginsDir, "network_cni_plugins_dir", "", "the agents' --network_cni_plugins_dir (network/cni): search path of the CNI plugins")
	fs.StringVar(&o.runtimeDir, "runtime_dir", "", "the agents' --runtime_dir (default: Mesos', /var/run/mesos as root); %d is replaced by the agent index")
	fs.StringVar(&o.fetcherCacheDir, "fetcher_cache_dir", "", "the agents' --fetcher_cache_dir (default: <agent work dir>/fetch, since agents share this host); %d is replaced by the agent index")
	fs.Int64Var(&o.fetcherCacheSize, "fetcher_cache_size", agent.DefaultFetcherCacheSize, "the agents' --fetcher_cache_size in bytes")
	fs.Var(mesosDuration{&o.executorRegTimeout}, "executor_registration_timeout", "the agents' --executor_registration_timeout, in Mesos' syntax (default 1mins): how long an executor has to subscribe after its launch began, before its container is destroyed and its tasks fail with REASON_EXECUTOR_REGISTRATION_TIMEOUT")
	fs.Var(mesosDuration{&o.gcDelay}, "gc_delay", "the agents' --gc_delay, in Mesos' syntax (e.g. 10mins; default 1weeks): how long after an executor or framework is removed its sandboxes and checkpoints are deleted")
	fs.Float64Var(&o.gcDiskHeadroom, "gc_disk_headroom", agent.DefaultGCDiskHeadroom, "the agents' --gc_disk_headroom: directories older than gc_delay * max(0, 1 - gc_disk_headroom - disk usage) are deleted at each disk check")
	fs.Var(mesosDuration{&o.diskWatchInterval}, "disk_watch_interval", "the agents' --disk_watch_interval, in Mesos' syntax (default 1mins): how often they check the disk usage of their work dir")
	fs.BoolVar(&o.authenticateHTTPFws, "authenticate_http_frameworks", false, "the master's --authenticate_http_frameworks: /api/v1/scheduler requires HTTP authentication (with --http_framework_authenticators=basic and --credentials)")
	fs.StringVar(&o.httpFwAuthenticators, "http_framework_authenticators", "", "the master's --http_framework_authenticators: only 'basic' is supported")
	fs.StringVar(&o.credentials, "credentials", "", `the master's --credentials: a file of {"credentials":[{"principal":"p","secret":"s"}]} or 'principal secret' lines`)
	fs.StringArrayVar(&o.imageCommands, "image-command", nil, "image=command: what runs for a container of an image the agents cannot provision, when it has no command (repeatable; '*' for any image; not a Mesos flag)")
	fs.Int64Var(&o.seed, "seed", 1, "allocator seed (agent order)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.agents < 0 {
		return nil, errors.New("--agents must not be negative")
	}
	return o, nil
}

func (o *options) clusterConfig(log *logrus.Logger) (mesossim.ClusterConfig, error) {
	weights, err := mesossim.ParseWeights(o.weights)
	if err != nil {
		return mesossim.ClusterConfig{}, fmt.Errorf("--weights: %w", err)
	}
	if _, err := mesossim.ParseResources(o.agentResources); err != nil {
		return mesossim.ClusterConfig{}, fmt.Errorf("--agent-resources: %w", err)
	}
	if _, err := mesossim.ParseAttributes(o.agentAttributes, 0); err != nil {
		return mesossim.ClusterConfig{}, fmt.Errorf("--agent-attributes: %w", err)
	}
	var credentials map[string]string
	if o.credentials != "" {
		if credentials, err = mesossim.ReadCredentials(o.credentials); err != nil {
			return mesossim.ClusterConfig{}, fmt.Errorf("--credentials: %w", err)
		}
	}
	if o.authenticateHTTPFws {
		switch o.httpFwAuthenticators {
		case "":
			return mesossim.ClusterConfig{}, errors.New("Missing `--http_framework_authenticators` flag. This must be used in conjunction with `--authenticate_http_frameworks`")
		case "basic":
		default:
			return mesossim.ClusterConfig{}, fmt.Errorf("--http_framework_authenticators %q: the simulator has only 'basic'", o.httpFwAuthenticators)
		}
	}
	images := map[string]string{}
	for _, ic := range o.imageCommands {
		image, cmd, ok := strings.Cut(ic, "=")
		if !ok || image == "" || cmd == "" {
			return mesossim.ClusterConfig{}, fmt.Errorf("--image-command %q: expected image=command", ic)
		}
		images[image] = cmd
	}
	effective, err := parseCapabilities("--effective_capabilities", o.effectiveCapabilities)
	if err != nil {
		return mesossim.ClusterConfig{}, err
	}
	bounding, err := parseCapabilities("--bounding_capabilities", o.boundingCapabilities)
	if err != nil {
		return mesossim.ClusterConfig{}, err
	}
	getenv := o.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	ssl, err := agent.SSLFromEnv(getenv)
	if err != nil {
		return mesossim.ClusterConfig{}, err
	}
	var executorEnv map[string]string
	if o.executorEnvVars != "" {
		var raw map[string]any
		if err := json.Unmarshal([]byte(o.executorEnvVars), &raw); err != nil {
			return mesossim.ClusterConfig{}, fmt.Errorf("--executor_environment_variables: %w", err)
		}
		executorEnv = map[string]string{}
		for k, v := range raw {
			s, ok := v.(string)
			if !ok {
				return mesossim.ClusterConfig{}, errors.New("Failed to load flag 'executor_environment_variables': `executor_environment_variables` must only contain string values")
			}
			executorEnv[k] = s
		}
	}
	tweak := func(i int, a *agent.Config) {
		a.CgroupsHierarchy, a.CgroupsRoot = o.cgroupsHierarchy, o.cgroupsRoot
		a.EffectiveCapabilities, a.BoundingCapabilities = effective, bounding
		a.DisallowSharingAgentPidNamespace = o.disallowSharingPidNS
		a.NetworkCNIConfigDir = perAgent(o.networkCNIConfigDir, i)
		a.NetworkCNIPluginsDir = o.networkCNIPluginsDir
		a.RuntimeDir = perAgent(o.runtimeDir, i)
		a.FetcherCacheDir, a.FetcherCacheSize = perAgent(o.fetcherCacheDir, i), o.fetcherCacheSize
		a.AuthenticateHTTPExecutors, a.AuthenticateHTTPReadwrite = o.authenticateHTTPExecutors, o.authenticateHTTPReadwrite
		a.AuthenticateHTTPReadonly, a.JWTSecretKey = o.authenticateHTTPReadonly, o.jwtSecretKey
		a.HTTPAuthenticators, a.HTTPCredentials = o.httpAuthenticators, o.httpCredentials
		a.SSL, a.ExecutorEnvironmentVariables = ssl, executorEnv
		a.GCDelay, a.DiskWatchInterval = o.gcDelay, o.diskWatchInterval
		a.ExecutorRegistrationTimeout = o.executorRegTimeout
		if o.gcDiskHeadroom != agent.DefaultGCDiskHeadroom {
			h := o.gcDiskHeadroom
			a.GCDiskHeadroom = &h
		}
	}
	return mesossim.ClusterConfig{
		AgentTweak: tweak,
		Master: mesossim.Config{
			Log: log, AllocationInterval: o.allocationInterval, OfferTimeout: o.offerTimeout,
			HeartbeatInterval: o.heartbeatInterval, Weights: weights, Seed: o.seed, FairSharingExcludedResourceNames: o.fairExcluded,
			AuthenticateHTTPFrameworks: o.authenticateHTTPFws, Credentials: credentials,
		},
		Listen: o.listen, Agents: o.agents, AgentResources: o.agentResources,
		AgentAttributes: o.agentAttributes, WorkDir: o.workDir, ImageCommands: images,
		ImageProviders: o.imageProviders, DockerRegistry: o.dockerRegistry, Isolation: o.isolation,
	}, nil
}

// mesosDuration is a flag in stout's duration syntax ("10mins", "1weeks", "1.5days").
type mesosDuration struct{ d *time.Duration }

func (m mesosDuration) String() string {
	if m.d == nil || *m.d == 0 {
		return ""
	}
	return m.d.String()
}

func (m mesosDuration) Set(v string) error {
	d, err := mesostime.ParseDuration(v)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("negative duration %q", v)
	}
	*m.d = d
	return nil
}

func (mesosDuration) Type() string { return "duration" }

// perAgent replaces "%d" in an agent flag's value by the agent's index.
func perAgent(value string, i int) string {
	return strings.ReplaceAll(value, "%d", strconv.Itoa(i))
}

// parseCapabilities reads a Mesos CapabilityInfo flag ({"capabilities": ["NET_RAW", ...]}); "" is unset.
func parseCapabilities(flag, value string) ([]string, error) {
	if value == "" {
		return nil, nil
	}
	var info struct {
		Capabilities []string `json:"capabilities"`
	}
	if err := json.Unmarshal([]byte(value), &info); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	for _, c := range info.Capabilities {
		if _, ok := mesos.CapabilityInfo_Capability_value[c]; !ok {
			return nil, fmt.Errorf("%s: unknown capability %q", flag, c)
		}
	}
	if info.Capabilities == nil {
		info.Capabilities = []string{}
	}
	return info.Capabilities, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	log := logrus.New()
	lvl, err := logrus.ParseLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log.SetLevel(lvl)
	if o.workDir == "" {
		dir, err := os.MkdirTemp("", "mesos-sim-")
		if err != nil {
			return fmt.Errorf("creating work dir: %w", err)
		}
		defer os.RemoveAll(dir)
		o.workDir = dir
	}
	cfg, err := o.clusterConfig(log)
	if err != nil {
		return err
	}
	c, err := mesossim.StartCluster(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	log.WithFields(logrus.Fields{"master": c.URL, "agents": o.agents, "work_dir": o.workDir}).Info("serving; stop with Ctrl-C")
	<-ctx.Done()
	log.Info("shutting down")
	return nil
}

func main() {
	// The agents' Linux launcher re-executes this binary as `mesos-containerizer launch`.
	containerizer.MaybeRunHelper()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "mesos-sim:", err)
		os.Exit(2)
	}
}
