package kubemesos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// The API server of the shared control plane writes an audit log of pods/binding creates only (see
// bindingAuditArgs): the independent count of Bindings per pod, with the API server's answer to each.
var bindingAudit struct {
	dir string
	log string
}

// bindingAuditArgs are the API server flags of that audit log; TestMain adds them.
func bindingAuditArgs() []string {
	dir, err := os.MkdirTemp("", "kubemesos-e2e-audit-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no Binding audit log: %v\n", err)
		return nil
	}
	policy := `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create"]
  resources:
  - group: ""
    resources: ["pods/binding"]
- level: None
`
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no Binding audit log: %v\n", err)
		return nil
	}
	bindingAudit.dir, bindingAudit.log = dir, filepath.Join(dir, "bindings.log")
	return []string{"--audit-policy-file=" + path, "--audit-log-path=" + bindingAudit.log, "--audit-log-mode=blocking"}
}

func removeBindingAudit() {
	if bindingAudit.dir != "" {
		os.RemoveAll(bindingAudit.dir)
	}
}

// bindingCounts reads the audit log: per pod name of namespace ns, the API server's answer codes to
// its Binding creates.
func bindingCounts(ns string) (map[string][]int, error) {
	if bindingAudit.log == "" {
		return nil, fmt.Errorf("the control plane has no Binding audit log")
	}
	f, err := os.Open(bindingAudit.log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			ObjectRef struct {
				Namespace, Name, Resource, Subresource string
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("audit log line %q: %w", sc.Text(), err)
		}
		ref := ev.ObjectRef
		if ev.Stage != "ResponseComplete" || ref.Namespace != ns || ref.Resource != "pods" || ref.Subresource != "binding" {
			continue
		}
		out[ref.Name] = append(out[ref.Name], ev.ResponseStatus.Code)
	}
	return out, sc.Err()
}

// replica is one of the two framework processes, with its own HTTP port and its own way to the API
// server (a TCP proxy the test cuts to partition it), restarted whenever it exits, as a Deployment's
// container would be.
type replica struct {
	name       string
	port       int
	proxy      *tcpProxy
	args       []string
	binary     string
	dir        string
	stopped    chan struct{}
	supervised sync.WaitGroup

	mu   sync.Mutex
	proc *frameworkProcess
	runs int
	logs []string
	// hold, when set, keeps the replica down after its process exits until it is closed.
	hold chan struct{}
}

// holdRestarts keeps the replica down once its process exits, until releaseRestarts: a killed leader
// restarted at once may win the Lease back, and the takeover would not be one.
func (r *replica) holdRestarts() {
	r.mu.Lock()
	r.hold = make(chan struct{})
	r.mu.Unlock()
}

func (r *replica) releaseRestarts() {
	r.mu.Lock()
	if r.hold != nil {
		close(r.hold)
		r.hold = nil
	}
	r.mu.Unlock()
}

func (r *replica) url() string { return "http://127.0.0.1:" + strconv.Itoa(r.port) }

// supervise runs the process until stop, restarting it 200 ms after every exit.
func (r *replica) supervise(t testing.TB) {
	r.supervised.Add(1)
	go func() {
		defer r.supervised.Done()
		for {
			r.mu.Lock()
			r.runs++
			logPath := filepath.Join(r.dir, fmt.Sprintf("framework-%s-%d.log", r.name, r.runs))
			p, err := startProcess(r.binary, r.args, logPath, nil)
			if err != nil {
				r.mu.Unlock()
				t.Errorf("starting replica %s: %v", r.name, err)
				return
			}
			r.proc = p
			r.logs = append(r.logs, logPath)
			r.mu.Unlock()
			select {
			case <-r.stopped:
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT)
				p.stop(10 * time.Second)
				return
			case <-p.done:
			}
			r.mu.Lock()
			hold := r.hold
			r.mu.Unlock()
			if hold != nil {
				select {
				case <-r.stopped:
					return
				case <-hold:
				}
			}
			select {
			case <-r.stopped:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

func (r *replica) stop() {
	close(r.stopped)
	r.supervised.Wait()
}

// signal sends sig to the current process' group.
func (r *replica) signal(sig syscall.Signal) {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc.cmd.Process.Pid
}

// subscribed reports whether the replica answers and says it is subscribed to Mesos (only the leader
// subscribes).
func (r *replica) subscribed(ctx context.Context) bool {
	m, err := metricsOf(ctx, r.url())
	return err == nil && m["kubemesos_mesos_subscribed"] == 1
}

// serving reports whether the replica's HTTP server answers (it then takes part in the election).
func (r *replica) serving(ctx context.Context) bool {
	_, code, err := httpGet(ctx, r.url()+"/healthz")
	return err == nil && code == 200
}

func metricsOf(ctx context.Context, base string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	body, code, err := httpGet(ctx, base+"/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("/metrics: HTTP %d", code)
	}
	return parseMetrics(body), nil
}

// Must show 2 of issue 14: two framework replicas with leader election while a Deployment churns; 50
// forced takeovers, alternating a leader paused (SIGSTOP) past its lease then resumed, a leader
// partitioned from the API server, and a leader killed (SIGKILL). Throughout, no pod is bound twice
// (the API server's own audit log of Binding creates: at most one succeeded per pod; and no pod's
// nodeName ever changes) and no pod has more than one live Mesos task (the master's and the agents'
// own task lists, sampled after every takeover); at the end every pod runs, each with one RUNNING task,
// under the one FrameworkID.
func TestLeaderTakeovers(t *testing.T) {
	const (
		takeovers = 50
		lease     = 2 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KUBEMESOS_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (KUBEMESOS_E2E_SEED reproduces the churn)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))      // the faults' timing
	churnRng := rand.New(rand.NewPCG(seed, 1)) // the churn, on its own goroutine

	e := newEnv(t, envOptions{NoFramework: true})
	if bindingAudit.log == "" {
		t.Fatal("the shared control plane has no Binding audit log (bindingAuditArgs)")
	}
	// Executors are fetched from a server of their own: a replica paused or killed while an agent
	// fetches from it would stall that launch for reasons that have nothing to do with fencing.
	binDir := filepath.Dir(kubemesosBinary(t))
	fileSrv := httptest.NewServer(http.FileServer(http.Dir(binDir)))
	t.Cleanup(fileSrv.Close)

	var replicas []*replica
	for _, name := range []string{"a", "b"} {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{name: name, port: port, binary: kubemesosBinary(t), dir: e.dir, stopped: make(chan struct{}),
			proxy: newTCPProxy(t, strings.TrimPrefix(e.cp.URL, "https://"))}
		kubeconfig := filepath.Join(e.dir, "framework-"+name+".kubeconfig")
		if err := rewriteKubeconfigServer(e.cp.KubeconfigPath, kubeconfig, "https://"+r.proxy.Addr()); err != nil {
			t.Fatal(err)
		}
		r.args = e.frameworkArgs([]string{
			"--kubeconfig=" + kubeconfig,
			"--http-address=127.0.0.1:" + strconv.Itoa(port),
			"--advertise-url=" + r.url(),
			"--executor-uri=" + fileSrv.URL + "/kubemesos",
			"--leader-elect=true",
			"--leader-elect-lease-duration=" + lease.String(),
			"--leader-elect-renew-deadline=1500ms",
			"--leader-elect-retry-period=250ms",
		})
		replicas = append(replicas, r)
	}
	for _, r := range replicas {
		r.supervise(t)
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.stop()
			r.proxy.close()
		}
		if t.Failed() {
			for _, r := range replicas {
				r.mu.Lock()
				logs := append([]string(nil), r.logs...)
				r.mu.Unlock()
				if len(logs) > 3 {
					logs = logs[len(logs)-3:]
				}
				for _, l := range logs {
					t.Logf("--- last lines of %s:\n%s", l, fileTail(l, 40))
				}
			}
		}
	})

	// Independently of both replicas: every pod's Node, from the first time it is bound.
	var watchMu sync.Mutex
	boundTo := map[string]string{} // pod UID → Node
	var rebinds []string
	factory := informers.NewSharedInformerFactoryWithOptions(e.kube, 0, informers.WithNamespace(e.ns))
	podInf := factory.Core().V1().Pods().Informer()
	record := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" {
			return
		}
		watchMu.Lock()
		defer watchMu.Unlock()
		if prev, seen := boundTo[string(p.UID)]; seen && prev != p.Spec.NodeName {
			rebinds = append(rebinds, fmt.Sprintf("pod %s (%s) moved from %s to %s", p.Name, p.UID, prev, p.Spec.NodeName))
		}
		boundTo[string(p.UID)] = p.Spec.NodeName
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, o any) { record(o) }}); err != nil {
		t.Fatal(err)
	}
	stopWatch := make(chan struct{})
	factory.Start(stopWatch)
	t.Cleanup(func() { close(stopWatch); factory.Shutdown() })

	leader := func(timeout time.Duration, not *replica) *replica {
		t.Helper()
		var found *replica
		e.eventually("a subscribed leader", timeout, func(ctx context.Context) (bool, error) {
			for _, r := range replicas {
				if r != not && r.subscribed(ctx) {
					found = r
					return true, nil
				}
			}
			return false, nil
		})
		return found
	}
	first := leader(time.Minute, nil)
	t.Logf("first leader: replica %s", first.name)
	e.waitSchedulableNodes(3)

	spec := podSpec(sleeper)
	spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	e.createDeployment(deployment("churn", 8, spec))
	e.waitLivePods(selector(map[string]string{"app": "churn"}), 8, 2*time.Minute)

	// Churn: the Deployment scales between 4 and 14 replicas, and a random pod is deleted now and then.
	churnCtx, stopChurn := context.WithCancel(context.Background())
	var churnWG sync.WaitGroup
	churnWG.Add(1)
	var scales, deletions int
	go func() {
		defer churnWG.Done()
		for churnCtx.Err() == nil {
			select {
			case <-churnCtx.Done():
				return
			case <-time.After(time.Duration(800+churnRng.IntN(1200)) * time.Millisecond):
			}
			if churnRng.IntN(3) == 0 {
				pods, err := e.pods(churnCtx, selector(map[string]string{"app": "churn"}))
				if err == nil && len(pods) > 0 {
					p := pods[churnRng.IntN(len(pods))]
					if e.kube.CoreV1().Pods(e.ns).Delete(churnCtx, p.Name, metav1.DeleteOptions{}) == nil {
						deletions++
					}
				}
				continue
			}
			n := int32(4 + churnRng.IntN(11))
			s, err := e.kube.AppsV1().Deployments(e.ns).GetScale(churnCtx, "churn", metav1.GetOptions{})
			if err != nil {
				continue
			}
			s.Spec.Replicas = n
			if _, err := e.kube.AppsV1().Deployments(e.ns).UpdateScale(churnCtx, "churn", s, metav1.UpdateOptions{}); err == nil {
				scales++
			}
		}
	}()

	maxLive := 0
	var liveProblems []string
	sample := func(when string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := e.mesosState(ctx)
		if err != nil {
			t.Logf("%s: GET_STATE: %v", when, err)
			return
		}
		n, problems := e.liveTasksPerPod(st)
		maxLive = max(maxLive, n)
		for _, p := range problems {
			liveProblems = append(liveProblems, when+": "+p)
		}
	}

	kinds := []string{"SIGSTOP past the lease", "partition from the API server", "SIGKILL"}
	var took []time.Duration
	cur := first
	started := time.Now()
	for i := range takeovers {
		kind := kinds[i%len(kinds)]
		var standby *replica
		for _, r := range replicas {
			if r != cur {
				standby = r
			}
		}
		// The standby must be in the election before the leader goes.
		e.eventually("replica "+standby.name+" serving", 30*time.Second, func(ctx context.Context) (bool, error) {
			return standby.serving(ctx), nil
		})
		t0 := time.Now()
		switch i % len(kinds) {
		case 0:
			cur.signal(syscall.SIGSTOP)
			// The standby takes over while the leader is stopped; only then does the old leader wake
			// up, its goroutines mid-flight and its leader election still believing it leads.
			leader(30*time.Second, cur)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			cur.signal(syscall.SIGCONT)
		case 1:
			cur.proxy.Block()
			leader(30*time.Second, cur)
			cur.proxy.Unblock()
		case 2:
			cur.holdRestarts()
			cur.signal(syscall.SIGKILL)
			leader(30*time.Second, cur)
			cur.releaseRestarts()
		}
		took = append(took, time.Since(t0))
		cur = standby
		sample(fmt.Sprintf("takeover %d (%s)", i+1, kind))
		if t.Failed() {
			break
		}
	}
	elapsed := time.Since(started)
	stopChurn()
	churnWG.Wait()

	// Converge: a last scale, then every pod Running with exactly one RUNNING task.
	e.scale("churn", 10)
	pods := e.waitLivePods(selector(map[string]string{"app": "churn"}), 10, 3*time.Minute)
	e.waitDeploymentReady("churn", 10, time.Minute)

	ctx := context.Background()
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sample("end")
	if ids := frameworkIDs(st, frameworkName); len(ids) != 1 {
		t.Errorf("Mesos knows %d frameworks named %s (%v), want 1: every leader must resume the FrameworkID", len(ids), frameworkName, ids)
	}
	if diff := e.checkAgentsAgree(st); diff != "" {
		t.Errorf("agents and master disagree: %s", diff)
	}
	if diff := checkTasksMatchPods(st, pods); diff != "" {
		t.Errorf("tasks and pods differ: %s", diff)
	}
	if maxLive > 1 || len(liveProblems) > 0 {
		t.Errorf("a pod had more than one live Mesos task (max %d): %s", maxLive, strings.Join(liveProblems, "; "))
	}
	watchMu.Lock()
	if len(rebinds) > 0 {
		t.Errorf("pods bound twice (nodeName changed): %s", strings.Join(rebinds, "; "))
	}
	watched := len(boundTo)
	watchMu.Unlock()

	// The audit log is written before the API server answers (blocking mode): complete by now.
	codes, err := bindingCounts(e.ns)
	if err != nil {
		t.Fatal(err)
	}
	var created, refused, podsBound int
	refusedBy := map[int]int{}
	for name, cs := range codes {
		ok := 0
		for _, c := range cs {
			if c == http.StatusCreated || c == http.StatusOK {
				ok++
			} else {
				refusedBy[c]++
				refused++
			}
		}
		created += ok
		if ok > 0 {
			podsBound++
		}
		if ok > 1 {
			t.Errorf("pod %s: %d Bindings succeeded (answers %v), want at most 1", name, ok, cs)
		}
	}

	fenced, failedOver := fenceLog(replicas)
	runs := 0
	for _, r := range replicas {
		r.mu.Lock()
		runs += r.runs
		r.mu.Unlock()
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	t.Logf("%d takeovers in %v (%v each on average, median %v, max %v): SIGSTOP %d, partition %d, SIGKILL %d; %d framework processes started",
		len(took), elapsed.Round(time.Second), (sum / time.Duration(max(len(took), 1))).Round(time.Millisecond),
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
		(len(took)+2)/3, (len(took)+1)/3, len(took)/3, runs)
	t.Logf("churn: %d scale changes, %d pod deletions; %d pods ever bound (watch)", scales, deletions, watched)
	t.Logf("Bindings (API server audit log): %d pods bound, %d Bindings succeeded, %d refused %v; max live Mesos tasks per pod %d",
		podsBound, created, refused, refusedBy, maxLive)
	t.Logf("fenced by the old leaders (kubemesos_fenced_total, from their logs): %v; Mesos streams failed over: %d; SUBSCRIBED events: %d",
		fenced, failedOver, e.ledger.snapshot().Subscribes)
	if len(took) < takeovers {
		t.Errorf("%d of %d takeovers done", len(took), takeovers)
	}
}

// liveTasksPerPod counts, per pod UID, the framework's live tasks: the master's active and unreachable
// ones, and on each agent its own non-terminal ones. It returns the highest count and the pods with
// more than one.
func (e *env) liveTasksPerPod(st *master.Response_GetState) (int, []string) {
	perPod := map[string]map[string]bool{} // uid → "master:agent" / "agent:agent" holding it live
	add := func(uid, where string) {
		if perPod[uid] == nil {
			perPod[uid] = map[string]bool{}
		}
		perPod[uid][where] = true
	}
	ts := tasksOf(st, frameworkName)
	for _, group := range [][]mesos.Task{ts.Active, ts.Unreachable} {
		seen := map[string]int{}
		for _, task := range group {
			if !strings.HasPrefix(task.TaskID.Value, taskIDPrefix) {
				continue
			}
			seen[taskPodUID(task)]++
			add(taskPodUID(task), "master:"+task.AgentID.Value)
		}
		for uid, n := range seen {
			if n > 1 {
				add(uid, fmt.Sprintf("master lists it %d times", n))
			}
		}
	}
	ids := frameworkIDs(st, frameworkName)
	for _, a := range e.sim.Agents() {
		for _, ts := range a.Tasks() {
			id := ts.Task.TaskID.Value
			if !ids[ts.FrameworkID.Value] || isTerminal(ts.State) || !strings.HasPrefix(id, taskIDPrefix) {
				continue
			}
			add(strings.TrimPrefix(id, taskIDPrefix), "agent:"+a.ID().Value)
		}
	}
	highest := 0
	var problems []string
	for uid, where := range perPod {
		agents := map[string]bool{}
		for w := range where {
			_, agent, _ := strings.Cut(w, ":")
			agents[agent] = true
		}
		n := len(agents)
		highest = max(highest, n)
		if n > 1 {
			var ws []string
			for w := range where {
				ws = append(ws, w)
			}
			sort.Strings(ws)
			problems = append(problems, fmt.Sprintf("pod %s live at %v", uid, ws))
		}
	}
	sort.Strings(problems)
	return highest, problems
}

// fenceLog counts, over every run of both replicas, the actions refused by the fence (by action) and
// the Mesos streams failed over by a new leader's SUBSCRIBE.
func fenceLog(replicas []*replica) (map[string]int, int) {
	fenced := map[string]int{}
	failedOver := 0
	for _, r := range replicas {
		r.mu.Lock()
		logs := append([]string(nil), r.logs...)
		r.mu.Unlock()
		for _, path := range logs {
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "Framework failed over") && strings.Contains(line, "Mesos sent ERROR") {
					failedOver++
				}
				if !strings.Contains(line, "fenced: not acting without the leader Lease") {
					continue
				}
				action := "?"
				if _, rest, ok := strings.Cut(line, "action="); ok {
					action, _, _ = strings.Cut(rest, " ")
				}
				fenced[action]++
			}
		}
	}
	return fenced, failedOver
}
