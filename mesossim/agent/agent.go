package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// Defaults of a Mesos 1.x agent (flags executor_shutdown_grace_period, executor_registration_timeout,
// recovery_timeout, and the status update manager's retry interval bounds).
const (
	DefaultExecutorShutdownGracePeriod   = 5 * time.Second
	DefaultExecutorRegistrationTimeout   = time.Minute
	DefaultExecutorReregistrationTimeout = 2 * time.Second
	DefaultRecoveryTimeout               = 15 * time.Minute
	DefaultSubscriptionBackoffMax        = 2 * time.Second
	DefaultStatusUpdateRetryMin          = 10 * time.Second
	DefaultStatusUpdateRetryMax          = 10 * time.Minute
)

// ExecutorHook runs a custom executor in-process instead of as a process (for benchmarks with
// thousands of executors). env holds exactly the variables a process would get from the agent
// (MESOS_AGENT_ENDPOINT, MESOS_FRAMEWORK_ID, ...), without the agent's own environment. ctx is
// cancelled when the agent kills the executor; the executor counts as exited when the hook returns
// (exit status 0 for a nil error, 1 otherwise).
type ExecutorHook func(ctx context.Context, env map[string]string) error

// Config describes one agent.
type Config struct {
	ID         mesos.AgentID
	Hostname   string // default "localhost"
	Resources  mesos.Resources
	Attributes []mesos.Attribute
	// WorkDir is the agent's work_dir; sandboxes live under <WorkDir>/slaves/<ID>/...
	WorkDir string
	Master  Master
	// ListenAddress of the agent's HTTP endpoint; default "127.0.0.1:0" (a random port).
	ListenAddress string
	Clock         clock.WithTicker
	Log           logrus.FieldLogger

	ExecutorShutdownGracePeriod time.Duration
	ExecutorRegistrationTimeout time.Duration
	// ExecutorReregistrationTimeout is --executor_reregistration_timeout (default 2secs): how long a
	// restarted agent waits for recovered executors to subscribe again before it kills them.
	ExecutorReregistrationTimeout time.Duration
	// Recover is --recover: "reconnect" (default) recovers the checkpointed frameworks, executors,
	// tasks and status updates of an earlier run of this agent (same WorkDir and ID, see recover.go);
	// "cleanup" kills the executors left from it and starts afresh.
	Recover                string
	RecoveryTimeout        time.Duration // MESOS_RECOVERY_TIMEOUT for checkpointing frameworks
	SubscriptionBackoffMax time.Duration // MESOS_SUBSCRIPTION_BACKOFF_MAX
	StatusUpdateRetryMin   time.Duration
	StatusUpdateRetryMax   time.Duration
	// ExecutorHeartbeatInterval, when positive, sends HEARTBEAT events on executor subscriptions.
	ExecutorHeartbeatInterval time.Duration
	// GCDelay, GCDiskHeadroom and DiskWatchInterval are --gc_delay (default DefaultGCDelay, 1weeks),
	// --gc_disk_headroom (nil: DefaultGCDiskHeadroom, 0.1; between 0.0 and 1.0) and
	// --disk_watch_interval (default 1mins): the sandboxes and checkpoints of removed executors and
	// frameworks are deleted GCDelay after they were last modified, sooner when the work dir's
	// file system fills up (gc.go).
	GCDelay           time.Duration
	GCDiskHeadroom    *float64
	DiskWatchInterval time.Duration

	// ImageProviders, DockerRegistry and Isolation are the Mesos agent flags --image_providers (only
	// "docker" is supported), --docker_registry (default DefaultDockerRegistry; with the docker provider
	// it must be a local directory of `docker save` archives, see internal/imagearchive) and --isolation
	// (default DefaultIsolation; recorded and validated as Mesos does, not applied: the docker provider
	// needs filesystem/linux and docker/runtime in it). With the docker provider a container's DOCKER
	// image is provisioned from its archive and its command merged with the image's config by Mesos'
	// docker/runtime rule.
	ImageProviders string
	DockerRegistry string
	Isolation      string
	// CgroupsHierarchy, CgroupsRoot, EffectiveCapabilities, BoundingCapabilities and
	// DisallowSharingAgentPidNamespace (and CgroupsEnableCFS, CgroupsLimitSwap) are the Mesos agent flags
	// --cgroups_hierarchy, --cgroups_root, --effective_capabilities, --bounding_capabilities and
	// --disallow_sharing_agent_pid_namespace (--cgroups_enable_cfs, --cgroups_limit_swap), read by
	// the isolators when --isolation names Linux ones (run as root, the agent then isolates nested
	// containers and sessions through mesossim/containerizer; see newContainerizer).
	CgroupsHierarchy                 string
	CgroupsRoot                      string
	CgroupsEnableCFS                 bool
	CgroupsLimitSwap                 bool
	EffectiveCapabilities            []string
	BoundingCapabilities             []string
	DisallowSharingAgentPidNamespace bool
	// DockerStoreDir and ImageProvisionerBackend are --docker_store_dir (default
	// containerizer.DefaultDockerStoreDir()) and --image_provisioner_backend (default: Mesos' choice,
	// overlay when the work dir can host it, else copy). In isolating mode with the docker provider the
	// agent provisions every image's root filesystem there; agents of one host need their own store
	// directories, as separate mesos-agent processes would.
	DockerStoreDir          string
	ImageProvisionerBackend string
	// NetworkCNIConfigDir, NetworkCNIPluginsDir and RuntimeDir are the Mesos agent flags
	// --network_cni_config_dir, --network_cni_plugins_dir (network/cni, when --isolation names it) and
	// --runtime_dir (default DefaultRuntimeDir(): /var/run/mesos for root, as Mesos computes it), where
	// the isolator keeps each container's network namespace handle and CNI results. Agents of one host
	// should each have their own runtime dir, as separate mesos-agent processes would.
	NetworkCNIConfigDir  string
	NetworkCNIPluginsDir string
	RuntimeDir           string
	// FetcherCacheDir and FetcherCacheSize are --fetcher_cache_dir and --fetcher_cache_size (default
	// DefaultFetcherCacheSize, 2GB): where URIs with `cache: true` are kept between fetches. The
	// directory defaults to <WorkDir>/fetch, not Mesos' /tmp/mesos/fetch, since simulated agents share
	// a host and each empties its cache directory when it starts, as mesos-agent does.
	FetcherCacheDir  string
	FetcherCacheSize int64
	// PortMappingHostIP (a simulator knob, not a Mesos flag) is the host IP every CNI port mapping of
	// this agent binds to (CNI portmap's runtimeConfig portMappings[].hostIP). Several simulated agents
	// share one host network namespace, so each binds its containers' host ports on its own IP; a real
	// mesos-agent has the host to itself and maps the port on every address. Empty: every address.
	PortMappingHostIP string
	// ProcessMode (a simulator knob, not a Mesos flag) keeps containers host processes even when
	// --isolation names Linux isolators and the agent could isolate: --isolation stays what images need
	// (filesystem/linux,docker/runtime) while containers run as in the default posix isolation.
	ProcessMode bool
	// ImageCommands is the simulator's fallback (not a Mesos behaviour) for a container whose image
	// the agent cannot provision (no image provider, or no archive): it maps an image name to the shell
	// command run when the container has no command of its own. A name without tag or digest also
	// serves tagged references of it, and "*" serves every image not listed. An image neither
	// provisioned nor listed fails the launch with Mesos' 400.
	ImageCommands map[string]string
	// ImageCommandImage (simulator-only) is the image an isolating agent runs an --image-command fallback
	// in, e.g. busybox of its registry; empty: the fallback shares the host's filesystem, where a
	// volume's absolute container path must then exist, as for any container without an image.
	ImageCommandImage string
	// ExecutorHook, when set, runs custom executors in-process instead of as processes. Command tasks
	// still run through the (in-process) command executor.
	ExecutorHook ExecutorHook
	// ExecutorHookFor, when set, picks the custom executors ExecutorHook runs; the others are launched
	// as without a hook (a process, or a container in isolating mode, e.g. on a CNI network).
	ExecutorHookFor func(mesos.ExecutorInfo) bool
	// HTTPClient used by the fetcher; default http.DefaultClient.
	HTTPClient *http.Client

	// SSL is the agent's libprocess SSL configuration (LIBPROCESS_SSL_*): https when enabled.
	SSL SSLConfig
	// ExecutorEnvironmentVariables is --executor_environment_variables: every executor's environment
	// starts from it (how Mesos' SSL documentation hands LIBPROCESS_SSL_* to executors), the agent's
	// MESOS_* variables set over it.
	ExecutorEnvironmentVariables map[string]string

	// AuthenticateHTTPExecutors, AuthenticateHTTPReadwrite, AuthenticateHTTPReadonly, JWTSecretKey,
	// HTTPAuthenticators and HTTPCredentials are the flags of a Mesos agent built with SSL
	// --authenticate_http_executors (/api/v1/executor), --authenticate_http_readwrite (/api/v1),
	// --authenticate_http_readonly (/state), --jwt_secret_key (alias --executor_secret_key: a file
	// whose content signs every executor's MESOS_EXECUTOR_AUTHENTICATION_TOKEN),
	// --http_authenticators (default basic, or basic,jwt with --authenticate_http_executors) and
	// --http_credentials (a credentials file, for basic). See executorauth.go.
	AuthenticateHTTPExecutors bool
	AuthenticateHTTPReadwrite bool
	AuthenticateHTTPReadonly  bool
	JWTSecretKey              string
	HTTPAuthenticators        string
	HTTPCredentials           string
}

// UpdateFaults are fault hooks on the way from the status update manager to the master.
type UpdateFaults struct {
	// Delay holds every forwarded update this long (on the agent's clock) before the master sees it.
	Delay time.Duration
	// Duplicate delivers every forwarded update twice.
	Duplicate bool
}

// TaskState is what an agent knows about one task, for reconciliation and reregistration.
type TaskState struct {
	FrameworkID mesos.FrameworkID
	ExecutorID  mesos.ExecutorID // for a command task: its command executor (ExecutorID = TaskID)
	Task        mesos.TaskInfo
	State       mesos.TaskState   // latest state; TASK_STAGING until the executor reports
	Status      *mesos.TaskStatus // latest status, nil while staging
	// Unacknowledged holds the updates not yet acknowledged by the framework, oldest first.
	Unacknowledged []mesos.TaskStatus
}

// ExecutorState describes a live executor.
type ExecutorState struct {
	FrameworkID mesos.FrameworkID
	Info        mesos.ExecutorInfo
	ContainerID mesos.ContainerID
	Directory   string
	// Command is true for the command executor the agent generated for a command task.
	Command bool
}

// Agent is one simulated Mesos agent. All methods are safe for concurrent use.
type Agent struct {
	cfg      Config
	log      logrus.FieldLogger
	clock    clock.WithTicker
	info     mesos.AgentInfo
	listener net.Listener
	server   *http.Server
	endpoint string // host:port
	start    time.Time

	// fetchCache is the fetcher cache (--fetcher_cache_dir), for URIs with cache set.
	fetchCache *fetcherCache
	// auth authenticates the HTTP realms and signs executors' tokens (executorauth.go).
	auth *httpAuth

	// ctx is cancelled by Stop; it bounds fetches and in-process executors.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// procs counts executor runs whose process Stop has to see reaped (executors.go).
	procs  sync.WaitGroup
	outbox *queue[func()]
	// outboxDone is closed when the outbox goroutine has delivered everything and returned.
	outboxDone chan struct{}

	mu          sync.Mutex
	stopped     bool
	partitioned bool
	// recovering: recovered from a checkpoint and not yet re-registered with the master (Reregistered);
	// status updates wait meanwhile, as the status update manager is paused until the agent registers.
	recovering bool
	recovered  chan struct{} // closed when executor reregistration is over (Recovered)
	faults     UpdateFaults
	frameworks map[string]*framework
	containers map[string]*container // nested and standalone containers, by containerKey
	imageTypes map[mesos.Image_Type]bool
	cz         *containerizer.Containerizer // nil in process mode
	imageCache map[string]v1.Config         // the docker store's pulled images, by stringify(reference)
	updates    *updateManager
	retry      map[streamKey]*timerHandle // retry timer of each stream's head
	gc         *garbageCollector          // gc.go
}

type framework struct {
	info        mesos.FrameworkInfo
	executors   map[string]*executorRun // live executors
	tasks       map[string]*task        // tasks not yet completed (terminal update acknowledged)
	terminating bool
}

type task struct {
	info       mesos.TaskInfo
	executor   *executorRun
	state      mesos.TaskState
	latest     *mesos.TaskStatus
	launched   bool // delivered to the executor
	terminal   bool // a terminal state was recorded (resources recovered)
	groupIndex int  // for tasks of a queued LAUNCH_GROUP: which queued item
}

// New creates an agent and starts its HTTP endpoint.
func New(cfg Config) (*Agent, error) {
	if cfg.ID.Value == "" {
		return nil, errors.New("agent: Config.ID is required")
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("agent: Config.WorkDir is required")
	}
	if cfg.Master == nil {
		return nil, errors.New("agent: Config.Master is required")
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = "127.0.0.1:0"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDefault(&cfg.ExecutorShutdownGracePeriod, DefaultExecutorShutdownGracePeriod)
	setDefault(&cfg.ExecutorRegistrationTimeout, DefaultExecutorRegistrationTimeout)
	setDefault(&cfg.ExecutorReregistrationTimeout, DefaultExecutorReregistrationTimeout)
	switch cfg.Recover {
	case "":
		cfg.Recover = "reconnect"
	case "reconnect", "cleanup":
	default:
		return nil, fmt.Errorf("agent %s: Failed to load flags: Flag 'recover' must be 'reconnect' or 'cleanup'", cfg.ID.Value)
	}
	setDefault(&cfg.RecoveryTimeout, DefaultRecoveryTimeout)
	setDefault(&cfg.SubscriptionBackoffMax, DefaultSubscriptionBackoffMax)
	setDefault(&cfg.StatusUpdateRetryMin, DefaultStatusUpdateRetryMin)
	setDefault(&cfg.StatusUpdateRetryMax, DefaultStatusUpdateRetryMax)
	setDefault(&cfg.GCDelay, DefaultGCDelay)
	setDefault(&cfg.DiskWatchInterval, DefaultDiskWatchInterval)
	if cfg.GCDiskHeadroom == nil {
		h := DefaultGCDiskHeadroom
		cfg.GCDiskHeadroom = &h
	} else if h := *cfg.GCDiskHeadroom; h < 0 || h > 1 {
		return nil, fmt.Errorf("agent %s: Invalid value '%s' for --gc_disk_headroom. Must be between 0.0 and 1.0", cfg.ID.Value, formatHeadroom(h))
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Isolation == "" {
		cfg.Isolation = DefaultIsolation
	}
	if cfg.DockerRegistry == "" {
		cfg.DockerRegistry = DefaultDockerRegistry
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = DefaultRuntimeDir()
	}
	if cfg.FetcherCacheDir == "" {
		cfg.FetcherCacheDir = filepath.Join(cfg.WorkDir, "fetch")
	}
	if cfg.FetcherCacheSize <= 0 {
		cfg.FetcherCacheSize = DefaultFetcherCacheSize
	}
	if cfg.PortMappingHostIP != "" && net.ParseIP(cfg.PortMappingHostIP) == nil {
		return nil, fmt.Errorf("agent %s: PortMappingHostIP %q is not an IP address", cfg.ID.Value, cfg.PortMappingHostIP)
	}
	auth, err := newHTTPAuth(&cfg, cfg.Clock.Now)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.ID.Value, err)
	}
	serverTLS, err := cfg.SSL.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.ID.Value, err)
	}
	imageTypes, err := validateImageFlags(&cfg)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", cfg.ID.Value, err)
	}
	// The containerizer the previous agent of this ID left its containers running in is recovered
	// (recover.go); creating another would set up the isolators' mounts once more.
	cz := takeContainerizer(cfg.ID.Value)
	recovered := cz != nil
	// On a failure below, a recovered containerizer goes back for the next attempt (its executors keep
	// running); a new one is closed (its isolators' mounts undone).
	release := func() {
		switch {
		case cz == nil:
		case recovered:
			detachedContainerizers.Lock()
			detachedContainerizers.byAgent[cfg.ID.Value] = cz
			detachedContainerizers.Unlock()
		default:
			_ = cz.Close()
		}
	}
	if cz == nil {
		if cz, err = newContainerizer(cfg, imageTypes, cfg.Log.WithField("agentID", cfg.ID.Value)); err != nil {
			return nil, fmt.Errorf("agent %s: %w", cfg.ID.Value, err)
		}
	}

	fetchCache, err := newFetcherCache(cfg.FetcherCacheDir, cfg.FetcherCacheSize, cfg.Log.WithField("agentID", cfg.ID.Value))
	if err != nil {
		release()
		return nil, fmt.Errorf("agent %s: %w", cfg.ID.Value, err)
	}

	l, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		release()
		return nil, fmt.Errorf("agent %s: listening on %s: %w", cfg.ID.Value, cfg.ListenAddress, err)
	}
	if serverTLS != nil {
		l = sslListener(l, serverTLS, cfg.SSL.SupportDowngrade)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{
		cfg:        cfg,
		log:        cfg.Log.WithField("agentID", cfg.ID.Value),
		clock:      cfg.Clock,
		listener:   l,
		endpoint:   l.Addr().String(),
		start:      cfg.Clock.Now(),
		ctx:        ctx,
		cancel:     cancel,
		outbox:     newQueue[func()](),
		outboxDone: make(chan struct{}),
		frameworks: map[string]*framework{},
		containers: map[string]*container{},
		imageTypes: imageTypes,
		cz:         cz,
		imageCache: map[string]v1.Config{},
		fetchCache: fetchCache,
		auth:       auth,
		updates:    newUpdateManager(),
		retry:      map[streamKey]*timerHandle{},
		recovered:  make(chan struct{}),
		gc:         newGarbageCollector(),
	}
	_, portStr, _ := net.SplitHostPort(a.endpoint)
	port, _ := strconv.Atoi(portStr)
	p := int32(port)
	a.info = mesos.AgentInfo{
		ID:         &cfg.ID,
		Hostname:   cfg.Hostname,
		Port:       &p,
		Resources:  cfg.Resources,
		Attributes: cfg.Attributes,
	}
	if err := a.recover(); err != nil {
		cancel()
		_ = l.Close()
		release()
		return nil, fmt.Errorf("agent %s: Failed to perform recovery: %w", cfg.ID.Value, err)
	}
	a.mu.Lock()
	a.afterLocked(cfg.DiskWatchInterval, a.checkDiskUsageLocked)
	a.mu.Unlock()
	mux := http.NewServeMux()
	executorAPI := a.authenticated(ExecutorAuthenticationRealm, a.serveExecutorAPI)
	operatorAPI := a.authenticated(ReadwriteAuthenticationRealm, a.serveOperatorAPI)
	state := a.authenticated(ReadonlyAuthenticationRealm, a.serveState)
	mux.HandleFunc("/api/v1/executor", executorAPI)
	mux.HandleFunc("/api/v1", operatorAPI)
	mux.HandleFunc("/slave(1)/api/v1/executor", executorAPI)
	mux.HandleFunc("/slave(1)/api/v1", operatorAPI)
	mux.HandleFunc("/state", state)
	mux.HandleFunc("/slave(1)/state", state)
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	a.server = &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	a.Serve(l)
	go a.runOutbox()
	a.log.WithField("endpoint", a.endpoint).Debug("agent started")
	return a, nil
}

// Serve serves the agent's HTTP API on l as well, until the agent stops (which closes l). For a host
// running thousands of agents and their executors in one process (issue 13's 5,000-agent benchmark),
// an in-memory listener spares two descriptors per connection; what is served is the same.
func (a *Agent) Serve(l net.Listener) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.WithError(err).Error("agent HTTP server stopped")
		}
	}()
}

// ID returns the agent's ID.
func (a *Agent) ID() mesos.AgentID { return a.cfg.ID }

// Info returns the AgentInfo the agent registers with (its port is the HTTP endpoint's).
func (a *Agent) Info() mesos.AgentInfo { return a.info }

// Endpoint returns host:port of the agent's HTTP API (what MESOS_AGENT_ENDPOINT holds).
func (a *Agent) Endpoint() string { return a.endpoint }

// PID returns the libprocess-style PID of the agent, "slave(1)@host:port".
func (a *Agent) PID() string { return "slave(1)@" + a.endpoint }

// runOutbox delivers agent → master messages in order, outside the agent's lock.
func (a *Agent) runOutbox() {
	defer close(a.outboxDone)
	for {
		<-a.outbox.ready()
		items, closed := a.outbox.drain()
		for _, f := range items {
			f()
		}
		if closed {
			items, _ = a.outbox.drain()
			for _, f := range items {
				f()
			}
			return
		}
	}
}

// toMaster queues a message for the master unless the agent is stopped. Caller holds a.mu.
func (a *Agent) toMasterLocked(f func()) {
	if a.stopped {
		return
	}
	a.outbox.push(f)
}

// Stop is agent loss: every executor and container is killed at once, the HTTP endpoint closes and
// nothing more reaches the master. It returns when every process has been reaped.
func (a *Agent) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	for _, f := range a.frameworks {
		for _, e := range f.executors {
			e.destroyLocked()
		}
	}
	for _, c := range a.containers {
		c.killLocked(sigkill)
	}
	a.mu.Unlock()
	a.cancel()
	_ = a.server.Close()
	a.wg.Wait()
	a.procs.Wait()
	if a.cz != nil {
		_ = a.cz.Close() // the work_dir's shared mount (filesystem/linux)
	}
	a.outbox.close()
	<-a.outboxDone
	a.log.Debug("agent stopped")
}

// Partition cuts (true) or heals (false) the link to the master. While partitioned nothing reaches the
// master: status updates wait in the status update manager and are forwarded again on healing;
// executor messages are dropped (they are unreliable in Mesos too).
func (a *Agent) Partition(partitioned bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.partitioned == partitioned {
		return
	}
	a.partitioned = partitioned
	a.log.WithField("partitioned", partitioned).Info("agent partition changed")
	if !partitioned {
		for _, k := range a.updates.keys() {
			a.updates.resetBackoff(k)
			a.forwardHeadLocked(k)
		}
	}
}

// SetUpdateFaults installs fault hooks on status update forwarding (zero value: none).
func (a *Agent) SetUpdateFaults(f UpdateFaults) {
	a.mu.Lock()
	a.faults = f
	a.mu.Unlock()
}

// Tasks returns every task the agent knows and has not completed (terminal update acknowledged),
// sorted by framework and task ID.
func (a *Agent) Tasks() []TaskState {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []TaskState
	for fid, f := range a.frameworks {
		for tid, t := range f.tasks {
			ts := TaskState{
				FrameworkID: mesos.FrameworkID{Value: fid},
				ExecutorID:  t.executor.info.ExecutorID,
				Task:        t.info,
				State:       t.state,
			}
			if t.latest != nil {
				s := *t.latest
				ts.Status = &s
			}
			for _, u := range a.updates.pendingFor(streamKey{fid, tid}) {
				ts.Unacknowledged = append(ts.Unacknowledged, u.status)
			}
			out = append(out, ts)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FrameworkID.Value != out[j].FrameworkID.Value {
			return out[i].FrameworkID.Value < out[j].FrameworkID.Value
		}
		return out[i].Task.TaskID.Value < out[j].Task.TaskID.Value
	})
	return out
}

// Executors returns the live executors, sorted by framework and executor ID.
func (a *Agent) Executors() []ExecutorState {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []ExecutorState
	for fid, f := range a.frameworks {
		for _, e := range f.executors {
			out = append(out, ExecutorState{
				FrameworkID: mesos.FrameworkID{Value: fid},
				Info:        e.info,
				ContainerID: e.containerID,
				Directory:   e.dir,
				Command:     e.command,
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].FrameworkID.Value != out[j].FrameworkID.Value {
			return out[i].FrameworkID.Value < out[j].FrameworkID.Value
		}
		return out[i].Info.ExecutorID.Value < out[j].Info.ExecutorID.Value
	})
	return out
}

// frameworkLocked returns the framework, creating it (or refreshing its info) when info is given.
func (a *Agent) frameworkLocked(info mesos.FrameworkInfo) *framework {
	id := info.GetID().GetValue()
	f := a.frameworks[id]
	if f == nil {
		a.unscheduleFrameworkLocked(id)
		f = &framework{executors: map[string]*executorRun{}, tasks: map[string]*task{}}
		a.frameworks[id] = f
	}
	f.info = info
	f.terminating = false
	a.checkpointFrameworkLocked(f)
	return f
}

// maybeRemoveFrameworkLocked forgets a framework with nothing left on this agent.
func (a *Agent) maybeRemoveFrameworkLocked(id string) {
	f := a.frameworks[id]
	if f != nil && len(f.executors) == 0 && len(f.tasks) == 0 {
		delete(a.frameworks, id)
		a.removeFrameworkDirsLocked(f)
	}
}

// Launch runs tasks: on the given executor (started if it is not running), or, when executor is nil,
// each task on its own command executor. group delivers the tasks as one LAUNCH_GROUP. The master has
// validated the tasks; the agent reports nothing until the executor does (TASK_STAGING), except
// failures to start the executor (TASK_FAILED from SOURCE_AGENT).
func (a *Agent) Launch(fw mesos.FrameworkInfo, executorInfo *mesos.ExecutorInfo, tasks []mesos.TaskInfo, group bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped || len(tasks) == 0 {
		return
	}
	f := a.frameworkLocked(fw)
	if executorInfo == nil {
		for _, t := range tasks {
			e := a.newExecutorLocked(f, commandExecutorInfo(fw, t), true)
			a.addTasksLocked(f, e, []mesos.TaskInfo{t}, false)
			a.startExecutorLocked(e)
		}
		return
	}
	e := f.executors[executorInfo.ExecutorID.Value]
	if e != nil && e.state >= executorTerminating {
		for _, t := range tasks {
			a.agentUpdateLocked(f, t.TaskID, nil, lostOrDropped(f.info), mesos.REASON_EXECUTOR_TERMINATED,
				"Executor terminating")
		}
		return
	}
	if e == nil {
		info := *executorInfo
		if info.FrameworkID == nil {
			fid := *fw.ID
			info.FrameworkID = &fid
		}
		e = a.newExecutorLocked(f, info, false)
		a.addTasksLocked(f, e, tasks, group)
		a.startExecutorLocked(e)
		return
	}
	a.addTasksLocked(f, e, tasks, group)
}

// addTasksLocked records tasks and delivers them now (subscribed executor) or on subscription.
func (a *Agent) addTasksLocked(f *framework, e *executorRun, tasks []mesos.TaskInfo, group bool) {
	for _, t := range tasks {
		t.AgentID = a.cfg.ID
		f.tasks[t.TaskID.Value] = &task{info: t, executor: e, state: mesos.TASK_STAGING}
	}
	item := launchItem{group: group}
	for _, t := range tasks {
		item.tasks = append(item.tasks, t.TaskID.Value)
	}
	if !a.updateExecutorContainerLocked(e, "") {
		e.queued = append(e.queued, item) // never delivered: they end with the destroyed executor
		return
	}
	if e.state == executorRunning && e.sink != nil {
		a.deliverLaunchLocked(f, e, item)
		return
	}
	e.queued = append(e.queued, item)
}

// deliverLaunchLocked sends LAUNCH (one per task) or LAUNCH_GROUP for the still-live tasks of item.
func (a *Agent) deliverLaunchLocked(f *framework, e *executorRun, item launchItem) {
	var infos []mesos.TaskInfo
	for _, id := range item.tasks {
		t := f.tasks[id]
		if t == nil || t.terminal || t.launched {
			continue
		}
		t.launched = true
		a.checkpointTaskLocked(t)
		infos = append(infos, t.info)
	}
	if len(infos) == 0 {
		return
	}
	if item.group {
		e.send(executor.Event{
			Type:        executor.Event_LAUNCH_GROUP,
			LaunchGroup: &executor.Event_LaunchGroup{TaskGroup: mesos.TaskGroupInfo{Tasks: infos}},
		})
		return
	}
	for _, t := range infos {
		e.send(executor.Event{Type: executor.Event_LAUNCH, Launch: &executor.Event_Launch{Task: t}})
	}
}

// Kill kills a task: through its executor (KILL event with the kill policy), or directly when the
// executor has not subscribed yet (TASK_KILLED from the agent). Unknown tasks of a known framework get
// TASK_LOST (TASK_DROPPED for partition-aware frameworks), as in Mesos.
func (a *Agent) Kill(frameworkID mesos.FrameworkID, taskID mesos.TaskID, killPolicy *mesos.KillPolicy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.frameworks[frameworkID.Value]
	if a.stopped || f == nil {
		return
	}
	t := f.tasks[taskID.Value]
	if t == nil {
		a.agentUpdateLocked(f, taskID, nil, lostOrDropped(f.info), mesos.REASON_EXECUTOR_TERMINATED, "Cannot find executor")
		return
	}
	e := t.executor
	switch {
	case t.terminal || e.state >= executorTerminating:
		return
	case !t.launched:
		a.agentUpdateLocked(f, taskID, e, mesos.TASK_KILLED, mesos.REASON_TASK_KILLED_DURING_LAUNCH,
			"Killed before delivery to the executor")
		if !e.hasLiveTasksLocked(f) && e.state == executorRegistering {
			a.shutdownExecutorLocked(e)
		}
	default:
		e.send(executor.Event{Type: executor.Event_KILL, Kill: &executor.Event_Kill{TaskID: taskID, KillPolicy: killPolicy}})
	}
}

// Acknowledge is the framework's acknowledgement of a status update (uuid) of a task.
func (a *Agent) Acknowledge(frameworkID mesos.FrameworkID, taskID mesos.TaskID, uuid []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return
	}
	k := streamKey{frameworkID.Value, taskID.Value}
	acked, next, ok := a.updates.ack(k, uuid)
	if !ok {
		a.log.WithFields(logrus.Fields{"frameworkID": frameworkID.Value, "taskID": taskID.Value}).
			Debug("ignoring acknowledgement of an update that is not outstanding")
		return
	}
	if h := a.retry[k]; h != nil {
		h.cancel()
		delete(a.retry, k)
	}
	f := a.frameworks[frameworkID.Value]
	if f != nil {
		a.appendUpdateRecordLocked(f, taskID.Value, recordAck, nil, uuid)
		t := f.tasks[taskID.Value]
		if acked.fromExecutor && t != nil && t.executor.sink != nil {
			t.executor.send(executor.Event{
				Type:         executor.Event_ACKNOWLEDGED,
				Acknowledged: &executor.Event_Acknowledged{TaskID: taskID, UUID: acked.status.UUID},
			})
		}
		if isTerminal(acked.status.GetState()) && next == nil {
			delete(f.tasks, taskID.Value)
			if t != nil {
				a.completeTaskLocked(t)
				a.removeExecutorLocked(t.executor)
			}
			a.maybeRemoveFrameworkLocked(frameworkID.Value)
		}
	}
	if next != nil {
		a.forwardHeadLocked(k)
	}
}

// ShutdownExecutor asks an executor to shut down (SHUTDOWN event) and kills it after the shutdown
// grace period.
func (a *Agent) ShutdownExecutor(frameworkID mesos.FrameworkID, executorID mesos.ExecutorID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.frameworks[frameworkID.Value]; f != nil && !a.stopped {
		if e := f.executors[executorID.Value]; e != nil {
			a.shutdownExecutorLocked(e)
		}
	}
}

// ShutdownFramework shuts down every executor of a framework and drops its pending status updates, as
// the agent does when the master removes a framework.
func (a *Agent) ShutdownFramework(frameworkID mesos.FrameworkID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.frameworks[frameworkID.Value]
	if f == nil || a.stopped {
		return
	}
	f.terminating = true
	a.updates.dropFramework(frameworkID.Value)
	for k, h := range a.retry {
		if k.framework == frameworkID.Value {
			h.cancel()
			delete(a.retry, k)
		}
	}
	for _, e := range f.executors {
		a.shutdownExecutorLocked(e)
	}
	var done []*executorRun
	for id, t := range f.tasks {
		if t.executor.state == executorTerminated {
			delete(f.tasks, id)
			done = append(done, t.executor)
		}
	}
	for _, e := range done {
		a.removeExecutorLocked(e)
	}
	a.maybeRemoveFrameworkLocked(frameworkID.Value)
}

// FrameworkMessage delivers scheduler → executor data (executor event MESSAGE). Dropped if the executor
// is not subscribed, like Mesos does.
func (a *Agent) FrameworkMessage(frameworkID mesos.FrameworkID, executorID mesos.ExecutorID, data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.frameworks[frameworkID.Value]; f != nil {
		if e := f.executors[executorID.Value]; e != nil && e.sink != nil {
			e.send(executor.Event{Type: executor.Event_MESSAGE, Message: &executor.Event_Message{Data: data}})
			return
		}
	}
	a.log.WithFields(logrus.Fields{"frameworkID": frameworkID.Value, "executorID": executorID.Value}).
		Warn("dropping framework message for an executor that is not subscribed")
}

// KillExecutor is a fault: the executor's process (group) is killed with SIGKILL, as if it crashed.
// Its tasks become TASK_FAILED (REASON_EXECUTOR_TERMINATED) and the master hears ExecutorTerminated.
func (a *Agent) KillExecutor(frameworkID mesos.FrameworkID, executorID mesos.ExecutorID) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.frameworks[frameworkID.Value]
	if f == nil || f.executors[executorID.Value] == nil {
		return fmt.Errorf("agent %s: no executor %s of framework %s", a.cfg.ID.Value, executorID.Value, frameworkID.Value)
	}
	f.executors[executorID.Value].killProcessLocked()
	return nil
}

// statusUpdateLocked records a task status update and hands it to the status update manager.
func (a *Agent) statusUpdateLocked(f *framework, status mesos.TaskStatus, fromExecutor bool) {
	fid := f.info.GetID().GetValue()
	if f.terminating {
		return
	}
	status.AgentID = &a.cfg.ID
	if status.Timestamp == nil {
		ts := float64(a.clock.Now().UnixNano()) / 1e9
		status.Timestamp = &ts
	}
	t := f.tasks[status.TaskID.Value]
	if t != nil && status.ExecutorID == nil {
		eid := t.executor.info.ExecutorID
		status.ExecutorID = &eid
	}
	if t != nil && t.terminal && !isTerminal(status.GetState()) {
		a.log.WithFields(logrus.Fields{"taskID": status.TaskID.Value, "state": status.GetState()}).
			Warn("ignoring non-terminal update of a terminated task")
		return
	}
	a.addContainerStatusLocked(t, &status)
	k := streamKey{fid, status.TaskID.Value}
	head, dup := a.updates.add(k, pendingUpdate{status: status, fromExecutor: fromExecutor})
	if dup {
		return
	}
	a.appendUpdateRecordLocked(f, status.TaskID.Value, recordUpdate, &status, nil)
	if t != nil {
		s := status
		t.latest = &s
		t.state = status.GetState()
		if isTerminal(t.state) && !t.terminal {
			t.terminal = true
			a.updateExecutorContainerLocked(t.executor, status.TaskID.Value)
			res := t.info.Resources
			if len(res) > 0 && !a.partitioned {
				agentID := a.cfg.ID
				fwID := mesos.FrameworkID{Value: fid}
				a.toMasterLocked(func() { a.cfg.Master.ResourcesRecovered(agentID, fwID, res) })
			}
		}
	}
	if head {
		a.forwardHeadLocked(k)
	}
}

// agentUpdateLocked makes a status update on behalf of the agent (SOURCE_AGENT).
func (a *Agent) agentUpdateLocked(f *framework, taskID mesos.TaskID, e *executorRun, state mesos.TaskState, reason mesos.TaskStatus_Reason, message string) {
	st := mesos.TaskStatus{
		TaskID:  taskID,
		State:   state.Enum(),
		Source:  mesos.SOURCE_AGENT.Enum(),
		Reason:  reason.Enum(),
		Message: &message,
		UUID:    newUUID(),
	}
	if e != nil {
		eid := e.info.ExecutorID
		st.ExecutorID = &eid
	}
	a.statusUpdateLocked(f, st, false)
}

// forwardHeadLocked sends the head of a stream to the master (honouring partition and fault hooks) and
// arms its retry timer.
func (a *Agent) forwardHeadLocked(k streamKey) {
	u, gen, ok := a.updates.head(k)
	if !ok || a.stopped || a.partitioned || a.recovering {
		return
	}
	send := func() {
		agentID := a.cfg.ID
		fwID := mesos.FrameworkID{Value: k.framework}
		status := u.status
		n := 1
		if a.faults.Duplicate {
			n = 2
		}
		for i := 0; i < n; i++ {
			a.toMasterLocked(func() { a.cfg.Master.StatusUpdate(agentID, fwID, status) })
		}
	}
	// The retry timer is armed before the update can reach the master: whoever reacts to the update
	// (a test stepping a fake clock) finds it armed.
	if h := a.retry[k]; h != nil {
		h.cancel()
	}
	retry := a.updates.nextBackoff(k, a.cfg.StatusUpdateRetryMin, a.cfg.StatusUpdateRetryMax)
	a.retry[k] = a.afterLocked(retry, func() {
		if _, g, ok := a.updates.head(k); ok && g == gen {
			a.forwardHeadLocked(k)
		}
	})
	if d := a.faults.Delay; d > 0 {
		a.afterLocked(d, func() {
			if _, g, ok := a.updates.head(k); ok && g == gen && !a.partitioned {
				send()
			}
		})
	} else {
		send()
	}
}

// timerHandle is a cancellable timer on the agent's clock.
type timerHandle struct {
	t    clock.Timer
	stop chan struct{}
	once sync.Once
}

func (h *timerHandle) cancel() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.t.Stop()
		close(h.stop)
	})
}

// afterLocked runs f under a.mu after d on the agent's clock, unless cancelled or the agent stopped.
func (a *Agent) afterLocked(d time.Duration, f func()) *timerHandle {
	h := &timerHandle{t: a.clock.NewTimer(d), stop: make(chan struct{})}
	if a.stopped {
		// Stop is waiting for a.wg (a late executor unsubscription arms a grace timer): nothing
		// may join it now, and nothing would run anyway.
		h.cancel()
		return h
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-h.t.C():
			a.mu.Lock()
			select {
			case <-h.stop:
			default:
				if !a.stopped {
					f()
				}
			}
			a.mu.Unlock()
		case <-h.stop:
		case <-a.ctx.Done():
			h.t.Stop()
		}
	}()
	return h
}

func lostOrDropped(fw mesos.FrameworkInfo) mesos.TaskState {
	for _, c := range fw.Capabilities {
		if c.GetType() == mesos.FrameworkInfo_Capability_PARTITION_AWARE {
			return mesos.TASK_DROPPED
		}
	}
	return mesos.TASK_LOST
}

func hasCapability(fw mesos.FrameworkInfo, t mesos.FrameworkInfo_Capability_Type) bool {
	for _, c := range fw.Capabilities {
		if c.GetType() == t {
			return true
		}
	}
	return false
}

// newUUID returns 16 random bytes (a version 4 UUID), the form Mesos uses for update UUIDs.
func newUUID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return b
}

func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
