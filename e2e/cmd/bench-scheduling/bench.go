package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/schedbench"
	"github.com/kubemesos/kubemesos/internal/deathsig"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim"
)

type bench struct {
	o     options
	cp    *cluster.ControlPlane
	log   *logrus.Logger
	bin   string
	state string

	// creators are the pod creators' clients (each its own connection, QPS and burst 5000, as
	// clusterloader2's); admin a client with the same limits for everything else the harness does.
	creators []kubernetes.Interface
	admin    kubernetes.Interface
	registry string
	runs     int
}

// highLimits gives cfg QPS and burst 5000 and its own connection (client-go shares one transport,
// hence one HTTP/2 connection, between configs with equal TLS settings unless a dialer is set).
func highLimits(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = highQPS, highQPS
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	c.Dial = d.DialContext
	c.UserAgent = "bench-scheduling"
	return c
}

func (b *bench) setup(ctx context.Context) error {
	for range b.o.clients {
		c, err := kubernetes.NewForConfig(highLimits(b.cp.Config))
		if err != nil {
			return err
		}
		b.creators = append(b.creators, c)
	}
	var err error
	if b.admin, err = kubernetes.NewForConfig(highLimits(b.cp.Config)); err != nil {
		return err
	}
	// Process-mode agents need image configs only; the hollow runtime starts nothing.
	b.registry = filepath.Join(b.state, "images")
	return imagearchive.WriteStandIns(b.registry)
}

func (b *bench) namespace(ctx context.Context, name string) error {
	if _, err := b.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Pods are refused until the service account controller made "default".
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := b.admin.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// podSpec is the benchmark's pod: one container of 10m CPU and 8Mi, as issue 13's runs.
func pod(name, schedulerName string) *corev1.Pod {
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("8Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			SchedulerName:                 schedulerName,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "c", Image: "registry.k8s.io/pause:3.10.2",
				Resources: corev1.ResourceRequirements{Requests: req, Limits: req},
			}},
		},
	}
}

// createPods creates n pods in ns with the creators, concurrency at a time, and returns when each
// was created (the time just before its request) and the rate achieved.
// With pin (n entries), pod i asks for the Node pin[i] (nodeSelector kubernetes.io/hostname).
func (b *bench) createPods(ctx context.Context, ns, prefix, schedulerName string, n int, pin []string, created func(name string, at time.Time)) (float64, error) {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	start := time.Now()
	for w := range b.o.concurrency {
		client := b.creators[w%len(b.creators)]
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("%s-%06d", prefix, i)
				at := time.Now()
				if created != nil {
					created(name, at)
				}
				p := pod(name, schedulerName)
				if pin != nil {
					p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: pin[i]}
				}
				if _, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	rate := schedbench.Rate(n, time.Since(start))
	if len(errs) > 0 {
		return rate, fmt.Errorf("%d of %d creates failed, first: %w", len(errs), n, errs[0])
	}
	return rate, ctx.Err()
}

// deletePods deletes every pod of ns (grace 0: force, for pods on fake Nodes) and waits until they
// are gone, up to timeout.
func (b *bench) deletePods(ctx context.Context, ns string, grace *int64, timeout time.Duration) error {
	deleteAll := func() {
		// 30,000 pods take the API server longer than its 60 s request timeout: the request fails
		// while the deletion goes on; it is sent again if pods are still there later.
		if err := b.admin.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: grace}, metav1.ListOptions{}); err != nil {
			b.log.WithError(err).WithField("namespace", ns).Warn("deleting pods; checking and retrying")
		}
	}
	deleteAll()
	last := time.Now()
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := b.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil && len(l.Items) == 0 {
			return true, nil
		}
		if time.Since(last) > time.Minute {
			deleteAll()
			last = time.Now()
		}
		return false, nil
	})
}

// probe is the raw write-rate probe: sz.pods unscheduled pods (created beforehand, not timed) bound by
// one client (QPS 5000) with --concurrency requests in flight.
func (b *bench) probe(ctx context.Context, sz size) (schedbench.Probe, error) {
	b.runs++
	ns := fmt.Sprintf("bench-r%d-probe", b.runs)
	if err := b.namespace(ctx, ns); err != nil {
		return schedbench.Probe{}, err
	}
	if _, err := b.createPods(ctx, ns, "probe", "bench-nobody", sz.pods, nil, nil); err != nil {
		return schedbench.Probe{}, err
	}
	client := b.creators[0]
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := 0
	start := time.Now()
	for range b.o.concurrency {
		wg.Go(func() {
			for i := range next {
				binding := &corev1.Binding{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("probe-%06d", i)},
					Target:     corev1.ObjectReference{Kind: "Node", Name: fmt.Sprintf("probe-node-%d", i%sz.agents)},
				}
				if err := client.CoreV1().Pods(ns).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
				}
			}
		})
	}
	for i := range sz.pods {
		next <- i
	}
	close(next)
	wg.Wait()
	p := schedbench.Probe{Writes: sz.pods - errs, Concurrency: b.o.concurrency, PerSecond: schedbench.Rate(sz.pods-errs, time.Since(start)), Errors: errs}
	err := b.deletePods(ctx, ns, ptr.To[int64](0), 5*time.Minute)
	return p, err
}

// tracker records when each pod was created, first seen bound and first seen Running, from a watch.
type tracker struct {
	mu                      sync.Mutex
	created, bound, running map[string]time.Time
	lastCreate              time.Time
}

func newTracker() *tracker {
	return &tracker{created: map[string]time.Time{}, bound: map[string]time.Time{}, running: map[string]time.Time{}}
}

func (t *tracker) observe(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.bound[p.Name]; !seen && p.Spec.NodeName != "" {
		t.bound[p.Name] = now
	}
	if _, seen := t.running[p.Name]; !seen && p.Status.Phase == corev1.PodRunning {
		t.running[p.Name] = now
	}
}

func (t *tracker) counts() (bound, running int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bound), len(t.running)
}

// latencies and the span from the first create to the last event of kind.
func (t *tracker) latencies(events map[string]time.Time) ([]time.Duration, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first, last time.Time
	for _, c := range t.created {
		if first.IsZero() || c.Before(first) {
			first = c
		}
	}
	var out []time.Duration
	for name, at := range events {
		if c, ok := t.created[name]; ok {
			out = append(out, at.Sub(c))
		}
		if at.After(last) {
			last = at
		}
	}
	return out, last.Sub(first)
}

// watchPods runs an informer on ns feeding t until ctx ends.
func (b *bench) watchPods(ctx context.Context, ns string, t *tracker) error {
	client := b.admin
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.CoreV1().Pods(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.CoreV1().Pods(ns).Watch(ctx, o)
		},
	}, &corev1.Pod{}, 0, cache.Indexers{})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
	}); err != nil {
		return err
	}
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return errors.New("pod informer did not sync")
	}
	return nil
}

func (b *bench) requestCounts(ctx context.Context) (map[schedbench.RequestKey]float64, error) {
	raw, err := b.admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("API server /metrics: %w", err)
	}
	samples, err := schedbench.ParseSamples(bytes.NewReader(raw), "apiserver_request_total")
	if err != nil {
		return nil, err
	}
	return schedbench.RequestCounts(samples), nil
}

// measure creates sz.pods pods for schedulerName in ns and waits until all are bound (and Running
// with wantRunning) or the deadline; it fills the rates, latencies and API requests per pod.
// around runs right before the creates and right after the end (process and Mesos counters).
func (b *bench) measure(ctx context.Context, ns, schedulerName string, n int, wantRunning bool, before, after func()) (schedbench.System, error) {
	var sys schedbench.System
	t := newTracker()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.watchPods(wctx, ns, t); err != nil {
		return sys, err
	}
	reqBefore, err := b.requestCounts(ctx)
	if err != nil {
		return sys, err
	}
	apiserver := b.cp.PIDs()["kube-apiserver"]
	apiBefore, _ := schedbench.ReadUsage(apiserver)
	before()
	// Where the API server's CPU goes in the measurement's first 20 s (issue 13: what a pod costs it).
	go func() {
		path := filepath.Join(b.o.out, "logs", fmt.Sprintf("apiserver-cpu-%s-r%d.pb.gz", schedulerName, b.runs))
		if err := b.saveAPIServerProfile(ctx, path); err != nil {
			b.log.WithError(err).Warn("saving the API server's CPU profile")
		}
	}()
	start := time.Now()
	sys.CreatePerSecond, err = b.createPods(ctx, ns, "pod", schedulerName, n, nil, func(name string, at time.Time) {
		t.mu.Lock()
		t.created[name] = at
		t.mu.Unlock()
	})
	if err != nil {
		return sys, err
	}
	deadline := time.Now().Add(b.o.timeout)
	lastLog := time.Now()
	for {
		bound, running := t.counts()
		if bound >= n && (!wantRunning || running >= n) {
			break
		}
		if time.Now().After(deadline) {
			b.log.WithFields(logrus.Fields{"bound": bound, "running": running, "want": n}).Warn("deadline: not every pod got there")
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			b.log.WithFields(logrus.Fields{"bound": bound, "running": running, "want": n, "elapsed": time.Since(start).Round(time.Second)}).Info("waiting")
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return sys, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	sys.Seconds = time.Since(start).Seconds()
	// Status writes that trail the last Running (Ready conditions) belong to the pods as well.
	time.Sleep(2 * time.Second)
	after()
	if apiAfter, err := schedbench.ReadUsage(apiserver); err == nil {
		sys.APIServerCPUSeconds = apiAfter.CPUSeconds - apiBefore.CPUSeconds
	}
	reqAfter, err := b.requestCounts(ctx)
	if err != nil {
		return sys, err
	}
	diff := schedbench.DiffCounts(reqBefore, reqAfter)
	// The harness' own creates are not the system's.
	k := schedbench.RequestKey{Verb: "create", Resource: "pods"}
	if diff[k] -= float64(n); diff[k] <= 0 {
		delete(diff, k)
	}
	sys.APIRequestsPerPod = schedbench.PerPod(diff, n)
	sys.APIWritesPerPod = schedbench.Writes(sys.APIRequestsPerPod)

	boundLat, boundSpan := t.latencies(t.bound)
	sys.Bound = len(boundLat)
	sys.BindsPerSecond = schedbench.Rate(sys.Bound, boundSpan)
	sys.CreateToBound = schedbench.Summarize(boundLat)
	if wantRunning {
		runLat, runSpan := t.latencies(t.running)
		sys.Running = len(runLat)
		sys.RunningPerSecond = schedbench.Rate(sys.Running, runSpan)
		sys.CreateToRunning = schedbench.Summarize(runLat)
	}
	return sys, nil
}

// kubemesos runs the simulator with sz.agents agents and the framework process at limits, warms the
// executors up (one per agent, as kubelets already run on nodes) and measures; it returns the
// allocatable of its Nodes for kube-scheduler's fake Nodes.
func (b *bench) kubemesos(ctx context.Context, sz size, limits string) (corev1.ResourceList, schedbench.System, error) {
	b.runs++
	r := b.runs
	prefix := fmt.Sprintf("r%d", r)
	log := b.log.WithFields(logrus.Fields{"run": r, "system": "kubemesos", "size": fmt.Sprintf("%dx%d", sz.agents, sz.pods), "limits": limits})
	var sys schedbench.System
	var err error

	simLogPath := filepath.Join(b.o.out, "logs", fmt.Sprintf("mesos-sim-r%d.log", r))
	workDir := filepath.Join(b.state, "mesos", prefix)
	inProcess := b.o.executors == executorsInProcess || (b.o.executors == executorsAuto && sz.agents > autoProcessAgents)
	var sim agents
	var executorURI string
	started := time.Now()
	if inProcess {
		if executorURI, err = executorStub(b.state); err != nil {
			return nil, sys, err
		}
		if sim, err = startChildAgents(ctx, sz.agents, prefix, workDir, b.registry, b.cp.KubeconfigPath, simLogPath); err != nil {
			return nil, sys, err
		}
	} else {
		simLog := logrus.New()
		simLogFile, err := os.Create(simLogPath)
		if err != nil {
			return nil, sys, err
		}
		defer simLogFile.Close()
		simLog.SetOutput(simLogFile)
		simCfg, err := simConfig(sz.agents, prefix, workDir, b.registry, simLog)
		if err != nil {
			return nil, sys, err
		}
		c, err := mesossim.StartCluster(simCfg)
		if err != nil {
			return nil, sys, err
		}
		sim = &processAgents{c: c, b: b}
	}
	defer sim.close()
	sys.ExecutorsInProcess = inProcess
	log.WithFields(logrus.Fields{"took": time.Since(started).Round(time.Millisecond), "executors in-process": inProcess}).Info("simulator up")

	counter, err := schedbench.NewMesosCounter(sim.URL())
	if err != nil {
		return nil, sys, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, sys, err
	}
	proxy := &http.Server{Handler: counter, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = proxy.Serve(ln) }()
	defer proxy.Close()

	ns, stateNS, warmNS := "bench-"+prefix+"-kubemesos", "bench-"+prefix+"-state", "bench-"+prefix+"-warm"
	for _, n := range []string{ns, stateNS, warmNS} {
		if err := b.namespace(ctx, n); err != nil {
			return nil, sys, err
		}
	}
	fw, err := b.startFramework(ctx, r, "http://"+ln.Addr().String(), stateNS, limits, executorURI)
	if err != nil {
		return nil, sys, err
	}
	defer fw.stop()

	nodes, err := b.waitNodes(ctx, prefix+"-agent-", sz.agents, 5*time.Minute)
	if err != nil {
		return nil, sys, err
	}
	alloc := nodes[0].Status.Allocatable
	log.WithField("allocatable", alloc).Info("Nodes Ready")
	defer b.deleteNodes(context.Background(), prefix+"-agent-")

	var cold int
	if err := b.warmUp(ctx, sim, warmNS, &cold); err != nil {
		return nil, sys, err
	}
	log.Info("every agent runs its executor; measuring")

	var fwBefore, fwAfter schedbench.Usage
	var exBefore, exAfter map[int]schedbench.Usage
	var callsBefore, callsAfter map[string]int
	var updBefore, updAfter float64
	var heapLive int64
	sys, err = b.measure(ctx, ns, "kubemesos", sz.pods, true, func() {
		fwBefore, _ = schedbench.ReadUsage(fw.pid())
		exBefore = sim.executorUsage(fw.pid())
		callsBefore = counter.Calls()
		updBefore = fw.statusUpdates(ctx)
		// Where the framework's CPU goes in the measurement's first 20 s (issue 13).
		go func() {
			if err := fw.saveProfile(ctx, "profile?seconds=20", filepath.Join(b.o.out, "logs", fmt.Sprintf("framework-cpu-r%d.pb.gz", r))); err != nil {
				log.WithError(err).Warn("saving the framework's CPU profile")
			}
		}()
	}, func() {
		fwAfter, _ = schedbench.ReadUsage(fw.pid())
		exAfter = sim.executorUsage(fw.pid())
		callsAfter = counter.Calls()
		updAfter = fw.statusUpdates(ctx)
		// The live heap (after a GC) as the last pod runs, for `go tool pprof` (issue 13: where the
		// framework's memory goes).
		if err := fw.saveProfile(ctx, "heap?gc=1", filepath.Join(b.o.out, "logs", fmt.Sprintf("framework-heap-r%d.pb.gz", r))); err != nil {
			log.WithError(err).Warn("saving the framework's heap profile")
		}
		heapLive = int64(fw.metricSum(ctx, "go_memstats_heap_inuse_bytes"))
	})
	if err != nil {
		return alloc, sys, err
	}
	sys.Scheduler = schedbench.Usage{CPUSeconds: fwAfter.CPUSeconds - fwBefore.CPUSeconds, RSSBytes: fwAfter.RSSBytes, PeakRSSBytes: fwAfter.PeakRSSBytes, Processes: 1}
	sys.SchedulerHeapLiveBytes = heapLive
	sys.AgentsWithoutExecutor = cold
	for pid, u := range exAfter {
		u.CPUSeconds -= exBefore[pid].CPUSeconds
		sys.Executors = sys.Executors.Add(u)
		sys.MaxExecutorPeakMB = max(sys.MaxExecutorPeakMB, u.PeakRSSBytes>>20)
	}
	sys.MesosCallsPerPod = map[string]float64{}
	for k, v := range schedbench.DiffCalls(callsBefore, callsAfter) {
		sys.MesosCallsPerPod[k] = float64(int64(float64(v)/float64(sz.pods)*1000+0.5)) / 1000
	}
	sys.StatusUpdatesPerPod = float64(int64((updAfter-updBefore)/float64(sz.pods)*1000+0.5)) / 1000
	log.WithFields(logrus.Fields{"binds/s": fmt.Sprintf("%.1f", sys.BindsPerSecond), "running/s": fmt.Sprintf("%.1f", sys.RunningPerSecond),
		"p99 running": sys.CreateToRunning.P99, "api": schedbench.FormatCounts(sys.APIRequestsPerPod), "mesos": schedbench.FormatCounts(sys.MesosCallsPerPod)}).Info("kubemesos measured")

	if err := b.deletePods(ctx, ns, nil, 5*time.Minute); err != nil {
		log.WithError(err).Warn("the measured pods did not all go")
	}
	return alloc, sys, nil
}

func usageByPID(pids []int) map[int]schedbench.Usage {
	out := map[int]schedbench.Usage{}
	for _, p := range pids {
		if u, err := schedbench.ReadUsage(p); err == nil {
			out[p] = u
		}
	}
	return out
}

// executorPIDs are the agents' executor processes: kubemesos processes under this one other than
// the framework.
func (b *bench) executorPIDs(framework int) []int {
	pids, err := schedbench.Descendants(os.Getpid(), "kubemesos", framework)
	if err != nil {
		b.log.WithError(err).Warn("listing executor processes")
	}
	return pids
}

// warmBatch is the most warm-up pods created at once.
const warmBatch = 400

// warmUp starts every agent's executor, as kubelets already run on nodes: it creates one pod for
// each agent without executor, asking for that agent's Node (nodeSelector on its hostname), until
// none is left, then deletes them. Unpinned pods left it to placement which agents got one: at 5,000
// agents that took 40 batches and 10 minutes, and 4 agents were still cold.
func (b *bench) warmUp(ctx context.Context, sim agents, ns string, cold *int) error {
	started := time.Now()
	batch := 0
	for {
		missing, err := sim.withoutExecutor(ctx)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			break
		}
		if time.Since(started) > 10*time.Minute {
			b.log.WithFields(logrus.Fields{"agents": len(missing), "hosts": missing[:min(len(missing), 10)]}).
				Warn("warm-up: after 10 minutes some agents still run no executor; measuring without them warm")
			*cold = len(missing)
			break
		}
		batch++
		// At most warmBatch pods at a time: at 1,000 agents, 2,000 at once started 1,000 in-process
		// executors together in the simulator's process, which then answered ACCEPTs after mesos-go's
		// timeout (and mesos-go resubscribes after any failed call, rescinding every offer).
		hosts := missing[:min(len(missing), warmBatch)]
		if _, err := b.createPods(ctx, ns, fmt.Sprintf("warm%d", batch), "kubemesos", len(hosts), hosts, nil); err != nil {
			return err
		}
		// Wait for those pods to be Running, or failed (an executor that could not start fails its
		// pods, and its agent is still without executor next time round), or for 2 minutes: a pod
		// still pending then is logged, and its agent gets another pod in the next batch.
		var failed, pending int
		_ = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			l, err := b.admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			failed, pending = 0, 0
			for _, p := range l.Items {
				switch p.Status.Phase {
				case corev1.PodRunning:
				case corev1.PodFailed, corev1.PodSucceeded:
					failed++
				default:
					pending++
				}
			}
			return pending == 0, nil
		})
		if err := ctx.Err(); err != nil {
			return err
		}
		if failed > 0 || pending > 0 {
			b.log.WithFields(logrus.Fields{"ended": failed, "pending": pending}).
				Warn("warm-up: pods ended or still pending instead of running, so far (see the framework's log)")
		}
	}
	b.log.WithFields(logrus.Fields{"took": time.Since(started).Round(time.Second), "batches": batch}).Info("warm-up done")
	return b.deletePods(ctx, ns, nil, 5*time.Minute)
}

func (b *bench) waitNodes(ctx context.Context, prefix string, n int, timeout time.Duration) ([]corev1.Node, error) {
	var ready []corev1.Node
	var lastErr error
	lastLog := time.Now()
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		if time.Since(lastLog) > 30*time.Second {
			b.log.WithError(lastErr).WithFields(logrus.Fields{"ready": len(ready), "want": n}).Info("waiting for Nodes")
			lastLog = time.Now()
		}
		l, err := b.admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if lastErr = err; err != nil {
			return false, nil
		}
		ready = ready[:0]
		for _, node := range l.Items {
			if !strings.HasPrefix(node.Name, prefix) || len(node.Spec.Taints) > 0 {
				continue
			}
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready = append(ready, node)
				}
			}
		}
		return len(ready) >= n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d Nodes %s* Ready and untainted (last error: %v): %w", len(ready), n, prefix, lastErr, err)
	}
	return ready, nil
}

func (b *bench) deleteNodes(ctx context.Context, prefix string) {
	l, err := b.admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, n := range l.Items {
		if strings.HasPrefix(n.Name, prefix) {
			_ = b.admin.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
		}
	}
}

// kubeScheduler measures kube-scheduler binding sz.pods pods onto sz.agents fake Ready Nodes with
// the given allocatable, started with its default client limits or QPS/burst 5000.
func (b *bench) kubeScheduler(ctx context.Context, sz size, limits string, alloc corev1.ResourceList) (schedbench.System, error) {
	b.runs++
	r := b.runs
	prefix := fmt.Sprintf("r%d-node-", r)
	log := b.log.WithFields(logrus.Fields{"run": r, "system": "kube-scheduler", "size": fmt.Sprintf("%dx%d", sz.agents, sz.pods), "limits": limits})
	var sys schedbench.System
	ns := fmt.Sprintf("bench-r%d-kube-scheduler", r)
	if err := b.namespace(ctx, ns); err != nil {
		return sys, err
	}
	defer b.deleteNodes(context.Background(), prefix)
	if err := b.fakeNodes(ctx, prefix, sz.agents, alloc); err != nil {
		return sys, err
	}
	if _, err := b.waitNodes(ctx, prefix, sz.agents, 5*time.Minute); err != nil {
		return sys, err
	}
	var extra []string
	if limits == limitsHigh {
		extra = []string{fmt.Sprintf("--kube-api-qps=%d", highQPS), fmt.Sprintf("--kube-api-burst=%d", highQPS)}
	}
	if err := b.cp.StartScheduler(ctx, extra...); err != nil {
		return sys, err
	}
	defer b.cp.StopScheduler()
	pid := b.cp.PIDs()["kube-scheduler"]
	log.WithField("pid", pid).Info("kube-scheduler up; measuring")
	var before, after schedbench.Usage
	sys, err := b.measure(ctx, ns, corev1.DefaultSchedulerName, sz.pods, false,
		func() { before, _ = schedbench.ReadUsage(pid) },
		func() { after, _ = schedbench.ReadUsage(pid) })
	if err != nil {
		return sys, err
	}
	sys.Scheduler = schedbench.Usage{CPUSeconds: after.CPUSeconds - before.CPUSeconds, RSSBytes: after.RSSBytes, PeakRSSBytes: after.PeakRSSBytes, Processes: 1}
	log.WithFields(logrus.Fields{"binds/s": fmt.Sprintf("%.1f", sys.BindsPerSecond), "p99 bound": sys.CreateToBound.P99,
		"api": schedbench.FormatCounts(sys.APIRequestsPerPod)}).Info("kube-scheduler measured")
	if err := b.deletePods(ctx, ns, ptr.To[int64](0), 5*time.Minute); err != nil {
		log.WithError(err).Warn("the measured pods did not all go")
	}
	return sys, nil
}

// fakeNodes creates n Ready Nodes as a kubelet registers them (hollow: nothing runs pods on them).
func (b *bench) fakeNodes(ctx context.Context, prefix string, n int, alloc corev1.ResourceList) error {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := range min(b.o.concurrency, n) {
		client := b.creators[w%len(b.creators)]
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("%s%d", prefix, i)
				node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
					Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}, metav1.CreateOptions{})
				// The node lifecycle controller updates a new Node too (taints): retry on conflicts.
				for err == nil {
					now := metav1.Now()
					node.Status = corev1.NodeStatus{Capacity: alloc, Allocatable: alloc, Conditions: []corev1.NodeCondition{{
						Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}}
					if _, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
						break
					}
					node, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				}
				// The node lifecycle controller would lift the not-ready taint the API server put on the
				// new Node, at its client's 20 QPS: minutes for thousands of Nodes. Setup, not measured.
				for attempt := 0; err == nil; attempt++ {
					if node, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil || len(node.Spec.Taints) == 0 {
						break
					}
					node.Spec.Taints = nil
					if _, err = client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); apierrors.IsConflict(err) && attempt < 10 {
						err = nil // someone else changed it: read it again
					}
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// framework is a running `kubemesos framework` process.
type framework struct {
	cmd    *exec.Cmd
	url    string
	exited chan error
}

func (f *framework) pid() int { return f.cmd.Process.Pid }

func (f *framework) stop() {
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.exited
	}
}

// statusUpdates is the framework's kubemesos_task_status_updates_total summed over its labels.
func (f *framework) statusUpdates(ctx context.Context) float64 {
	return f.metricSum(ctx, "kubemesos_task_status_updates_total")
}

// metricSum is the sum of the framework's samples of the metric name (0 if it cannot be read).
func (f *framework) metricSum(ctx context.Context, name string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/metrics", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	samples, err := schedbench.ParseSamples(resp.Body, name)
	if err != nil {
		return 0
	}
	var sum float64
	for _, s := range samples {
		sum += s.Value
	}
	return sum
}

// saveAPIServerProfile writes a 20 s CPU profile of kube-apiserver (started with --profiling) to path.
func (b *bench) saveAPIServerProfile(ctx context.Context, path string) error {
	raw, err := b.admin.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "20").DoRaw(ctx)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

// saveProfile writes one of the framework's profiles (profile is the path and query under
// /debug/pprof/) to path.
func (f *framework) saveProfile(ctx context.Context, profile, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/debug/pprof/"+profile, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", profile, resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// startFramework runs `kubemesos framework` as local-up does, but serving only schedulerName
// kubemesos, with the hollow runtime for its executors and the given client limits.
func (b *bench) startFramework(ctx context.Context, run int, master, stateNS, limits, executorURI string) (*framework, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	url := "http://" + addr
	logPath := filepath.Join(b.o.out, "logs", fmt.Sprintf("framework-r%d.log", run))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{
		"framework",
		"--master=" + master,
		"--kubeconfig=" + b.cp.KubeconfigPath,
		"--executor-kubeconfig=" + b.cp.KubeconfigPath,
		"--leader-elect=false",
		"--state-namespace=" + stateNS,
		"--http-address=" + addr,
		"--advertise-url=" + url,
		"--agent-poll-interval=2s",
		"--pod-network=host",
		"--executor-env=KUBEMESOS_RUNTIME=hollow",
	}
	if limits == limitsHigh {
		args = append(args, fmt.Sprintf("--kube-api-qps=%d", highQPS), fmt.Sprintf("--kube-api-burst=%d", highQPS))
	}
	if executorURI != "" {
		args = append(args, "--executor-uri="+executorURI)
	}
	args = append(args, b.o.frameworkArgs...)
	cmd := exec.Command(b.bin, args...)
	if b.o.frameworkMemoryLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+b.o.frameworkMemoryLimit)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := deathsig.Start(cmd); err != nil {
		return nil, err
	}
	f := &framework{cmd: cmd, url: url, exited: make(chan error, 1)}
	go func() { f.exited <- cmd.Wait() }()
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-f.exited:
			f.exited <- err
			return false, fmt.Errorf("framework exited: %v (log %s)", err, logPath)
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		f.stop()
		return nil, err
	}
	return f, nil
}
