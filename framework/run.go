package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpsched"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// errLostLeadership ends Run when another instance took the Lease.
var errLostLeadership = errors.New("lost leadership of the Lease " + StateName)

// Run runs the framework until ctx is cancelled: the HTTP server, then (as leader when --leader-elect)
// the informers, the Mesos subscription, the placement loop, the pod workers and the Node controller.
// It returns nil after a cancellation and joins every goroutine it started.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	log := logrus.New()
	lvl, _ := logrus.ParseLevel(cfg.LogLevel)
	log.SetLevel(lvl)
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	restCfg.UserAgent = "kubemesos-framework"
	// client-go's default 5 QPS would pace a batch of 20 Bindings over 4 s: kube-scheduler's limits by default.
	restCfg.QPS, restCfg.Burst = cfg.KubeAPIQPS, cfg.KubeAPIBurst
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("building Kubernetes client: %w", err)
	}
	// Node heartbeats get their own client and rate limit: they are what thousands of kubelets would
	// send, and must never queue behind Bindings (nor Bindings behind them).
	heartbeatCfg := rest.CopyConfig(restCfg)
	heartbeatCfg.QPS, heartbeatCfg.Burst = 200, 400
	nodeKube, err := kubernetes.NewForConfig(heartbeatCfg)
	if err != nil {
		return fmt.Errorf("building Kubernetes client for node heartbeats: %w", err)
	}
	// Events get a client of their own, as kube-scheduler's eventClient: sharing one, every pod's
	// Scheduled event would take a Binding's place in the rate limit and halve the binding rate.
	eventKube, err := kubernetes.NewForConfig(rest.CopyConfig(restCfg))
	if err != nil {
		return fmt.Errorf("building Kubernetes client for events: %w", err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("reading hostname: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating own binary to serve as executor: %w", err)
	}
	artifact, err := newExecutorArtifact(exe)
	if err != nil {
		// Still served; only the pinned, cacheable URI of the sandbox executors is lost.
		log.WithError(err).Warn("reading own binary for its digest: sandbox executors will not use the agents' fetcher cache")
	}
	l, err := net.Listen("tcp", cfg.HTTPAddress)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTPAddress, err)
	}
	m := newMetrics()
	ready := &readiness{}
	ready.electing.Store(cfg.LeaderElect)
	log.WithFields(logrus.Fields{"master": cfg.Master, "http": l.Addr().String(), "executorURI": cfg.executorURI(hostname)}).Info("kubemesos framework starting")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(gctx, l, newHandler(m.registry, ready.ready, artifact, cfg.Profiling)) })
	g.Go(func() error {
		lead := func(ctx context.Context, fence *leaseFence) error {
			return runLeader(ctx, cfg, leaderDeps{kube: kube, nodeKube: nodeKube, eventKube: eventKube, clock: clock.RealClock{}, log: log, metrics: m, ready: ready, hostname: hostname, artifact: artifact, fence: fence})
		}
		if !cfg.LeaderElect {
			return lead(gctx, nil)
		}
		return runElected(gctx, cfg, kube, hostname, log, m, lead)
	})
	return g.Wait()
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster configuration (set --kubeconfig outside a cluster): %w", err)
	}
	return c, nil
}

// runElected runs lead while holding the Lease kubemesos-framework; losing it ends Run with an error
// (a restart re-joins the election), as kube-controller-manager does. lead gets the fence that its
// launches, Bindings, Mesos calls and state writes check first.
func runElected(ctx context.Context, cfg Config, kube kubernetes.Interface, hostname string, log logrus.FieldLogger, m *metrics,
	lead func(context.Context, *leaseFence) error) error {
	identity := hostname + "_" + string(uuid.NewUUID())
	fence := newLeaseFence(clock.RealClock{}, cfg.LeaderElectRenewDeadline, identity, log)
	m.registry.MustRegister(fence.fenced)
	lock := fencedLock{fence: fence, Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: StateName, Namespace: cfg.StateNamespace},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}}
	// OnStartedLeading runs on a goroutine leaderelection does not join, so it only hands the leader
	// context over; lead runs here and every goroutine is joined before returning.
	started := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaderElectLeaseDuration,
		RenewDeadline:   cfg.LeaderElectRenewDeadline,
		RetryPeriod:     cfg.LeaderElectRetryPeriod,
		ReleaseOnCancel: true,
		Name:            StateName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { started <- lctx },
			OnStoppedLeading: fence.lost,
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); le.Run(ectx) }()
	select {
	case <-ran:
		return nil // cancelled before leading
	case lctx := <-started:
		log.WithField("identity", lock.Identity()).Info("became leader")
		err := lead(lctx, fence) // returns when lctx ends: leadership lost or ctx cancelled
		cancel()
		<-ran
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		}
		return errLostLeadership
	}
}

// leaderDeps are what runLeader needs besides Config.
type leaderDeps struct {
	kube     kubernetes.Interface
	nodeKube kubernetes.Interface // Node and Lease writes; kube when nil
	// eventKube writes Events; kube when nil.
	eventKube kubernetes.Interface
	clock     clock.WithTicker
	log       logrus.FieldLogger
	metrics   *metrics
	ready     *readiness
	hostname  string
	// artifact is the binary this process serves; its digest pins the sandbox executors' URI.
	artifact executorArtifact
	// fence is checked before acting as the leader; nil without leader election.
	fence *leaseFence
}

// runLeader is the framework proper; it returns when ctx is cancelled.
func runLeader(ctx context.Context, cfg Config, d leaderDeps) error {
	d.ready.leading.Store(true)
	defer d.ready.leading.Store(false)
	var store StateStore = &ConfigMapStore{Client: d.kube, Namespace: cfg.StateNamespace, Name: StateName}
	if d.fence != nil {
		store = fencedStore{StateStore: store, fence: d.fence}
	}
	st, err := store.Load(ctx)
	if err != nil {
		return err
	}
	d.log.WithFields(logrus.Fields{"frameworkID": st.FrameworkID, "executors": len(st.Executors)}).Info("loaded framework state")

	cacheForm := newInterner()
	factory := informers.NewSharedInformerFactoryWithOptions(d.kube, 0, informers.WithTransform(cacheForm.cacheTransform))
	podInf := factory.Core().V1().Pods().Informer()
	nodeLister := factory.Core().V1().Nodes().Lister()
	namespaceLister := factory.Core().V1().Namespaces().Lister()

	eventKube := d.eventKube
	if eventKube == nil {
		eventKube = d.kube
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventKube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: cfg.SchedulerName})

	caller, operator, err := mesosClients(cfg)
	if err != nil {
		return err
	}
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "pods"})
	nodeKube := d.nodeKube
	if nodeKube == nil {
		nodeKube = d.kube
	}
	nodes := newNodeController(nodeKube, d.clock, cfg.NodeLeaseDuration, cfg.ExecutorCPUs, cfg.ExecutorMemMB, d.log.WithField("component", "nodes"))
	executorEnv, err := cfg.executorEnv()
	if err != nil {
		return fmt.Errorf("--executor-env: %w", err)
	}
	s := newScheduler(cfg, ExecutorSettings{
		URI: cfg.executorURI(d.hostname), Kubeconfig: cfg.ExecutorKubeconfig, LogLevel: cfg.LogLevel,
		Env: executorEnv, CPUs: cfg.ExecutorCPUs, MemMB: cfg.ExecutorMemMB,
		SandboxURI: cfg.sandboxExecutorURI(d.hostname, d.artifact),
	}, st, schedulerDeps{
		Clock: d.clock, Log: d.log, Caller: caller, Store: store, Kube: d.kube,
		PodIndex: podInf.GetIndexer(), PodUIDs: cacheForm.uids, NodeLister: nodeLister, NamespaceLister: namespaceLister, Nodes: nodes, Operator: operator, Recorder: recorder,
		Metrics: d.metrics, Ready: d.ready, Queue: queue, Fence: d.fence,
	})
	if _, err := podInf.AddEventHandler(s.podHandlers()); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("syncing informer of %v", typ)
		}
	}
	d.ready.synced.Store(true)
	defer d.ready.synced.Store(false)

	sub := &subscriber{
		caller: caller, info: s.FrameworkInfo, handle: s.HandleEvent, disconnected: s.Disconnected,
		clock: d.clock, minBackoff: time.Second, maxBackoff: 30 * time.Second, log: d.log,
		// A SUBSCRIBE with the FrameworkID fails over whoever holds the Mesos stream now: only the
		// leader may send it, or an old leader woken up would take the framework back.
		mayLead: func() error { return d.fence.allow(fencedSubscribe, "SUBSCRIBE") },
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return nodes.Run(gctx) })
	// The executors' client certificates (executor/identity), for Nodes of agents it knows.
	g.Go(func() error {
		return newCSRApprover(d.kube, nodes.AgentOfHostname, d.clock, d.log.WithField("component", "csrapprover")).Run(gctx)
	})
	g.Go(func() error { return pollAgents(gctx, operator, nodes, d.clock, cfg.AgentPollInterval, d.log) })
	g.Go(func() error { s.runWorkers(gctx, 2); return nil })
	s.quotaOp = operator
	g.Go(func() error { return s.runQuotas(gctx, quotaSyncPeriod) })
	g.Go(func() error { return s.runLoop(gctx, loopTick(cfg.OfferHold)) })
	g.Go(func() error { return sub.Run(gctx) })
	return g.Wait()
}

// loopTick is the placement loop's period: fine enough to decline offers close to --offer-hold.
func loopTick(hold time.Duration) time.Duration {
	return max(min(hold/4, time.Second), 10*time.Millisecond)
}

// mesosClients builds the scheduler API caller and the operator API agent lister.
func mesosClients(cfg Config) (calls.Caller, operatorAgents, error) {
	var auth httpcli.ConfigOpt
	if cfg.Principal != "" && cfg.SecretFile != "" {
		secret, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, operatorAgents{}, fmt.Errorf("reading --secret-file: %w", err)
		}
		auth = httpcli.BasicAuth(cfg.Principal, strings.TrimSpace(string(secret)))
	}
	tlsOpt, err := mesosTLS(cfg)
	if err != nil {
		return nil, operatorAgents{}, err
	}
	base := strings.TrimSuffix(cfg.Master, "/")
	codec := httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf])
	// Launches call ACCEPT up to launchParallelism at a time: keep that many connections instead of
	// Go's 2 idle ones, and give the master mesos-go's default 15 s (not With's 5 s) to answer, since
	// mesos-go resubscribes after any failed call, and a resubscription rescinds every offer.
	schedTransport := httpcli.Transport(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = launchParallelism
		t.ResponseHeaderTimeout = 15 * time.Second
	})
	schedCli := httpcli.New(httpcli.Endpoint(base+"/api/v1/scheduler"), codec, httpcli.Do(httpcli.With(auth, tlsOpt, schedTransport)))
	opCli := httpcli.New(httpcli.Endpoint(base+"/api/v1"), codec, httpcli.Do(httpcli.With(auth, tlsOpt, httpcli.Timeout(10*time.Second))))
	// mesos-go retries every failed SUBSCRIBE (a 401 too) as if it were a leader redirect, 9 times over
	// about a minute, before the subscriber sees the error; 2 attempts still follow a redirect to the
	// new leader, and the subscriber's own back-off does the rest.
	return httpsched.NewCaller(schedCli, httpsched.AllowReconnection(true), httpsched.MaxRedirects(2)),
		operatorAgents{sender: httpmaster.NewSender(opCli.Send)}, nil
}

// pollAgents feeds GET_AGENTS answers to the Node controller every interval.
func pollAgents(ctx context.Context, lister agentLister, nodes *nodeController, clk clock.WithTicker, every time.Duration, log logrus.FieldLogger) error {
	t := clk.NewTicker(every)
	defer t.Stop()
	for {
		agents, active, err := lister.ListAgents(ctx)
		if err != nil {
			log.WithError(err).Debug("polling GET_AGENTS")
		} else {
			nodes.SetAgents(agents, active)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// mesosTLS is the TLS configuration for an https master: --mesos-ca-file's roots instead of the
// system's, and --mesos-cert-file/--mesos-key-file as the client certificate; nil without them.
func mesosTLS(cfg Config) (httpcli.ConfigOpt, error) {
	if cfg.MesosCAFile == "" && cfg.MesosCertFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.MesosCAFile != "" {
		pem, err := os.ReadFile(cfg.MesosCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --mesos-ca-file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--mesos-ca-file %s: no PEM certificate in it", cfg.MesosCAFile)
		}
	}
	if cfg.MesosCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.MesosCertFile, cfg.MesosKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --mesos-cert-file/--mesos-key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return httpcli.TLSConfig(tc), nil
}

// withoutManagedFields returns o itself when it has no managedFields, else a shallow copy without them.
func withoutManagedFields[T any, P interface {
	*T
	GetManagedFields() []metav1.ManagedFieldsEntry
	SetManagedFields([]metav1.ManagedFieldsEntry)
}](o P) P {
	if o.GetManagedFields() == nil {
		return o
	}
	c := *o
	P(&c).SetManagedFields(nil)
	return &c
}
