package kubemesos

import (
	"context"
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

	"github.com/kubemesos/kubemesos/e2e/replicas"
)

// The API server of the shared control plane writes an audit log of pods/binding creates only (see
// replicas.BindingAudit): the independent count of Bindings per pod, with the API server's answer to each.
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
	args, log, err := replicas.BindingAudit(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no Binding audit log: %v\n", err)
		os.RemoveAll(dir)
		return nil
	}
	bindingAudit.dir, bindingAudit.log = dir, log
	return args
}

func removeBindingAudit() {
	if bindingAudit.dir != "" {
		os.RemoveAll(bindingAudit.dir)
	}
}

// bindingCounts reads the audit log: per pod name of namespace ns, the API server's answer codes to
// its Binding creates. The log is complete when read (blocking mode, every answer seen): a line that
// does not parse is an error.
func bindingCounts(ns string) (map[string][]int, error) {
	if bindingAudit.log == "" {
		return nil, fmt.Errorf("the control plane has no Binding audit log")
	}
	return replicas.ReadBindingCodes(bindingAudit.log, ns, replicas.ReadOptions{})
}

// replica is one of the two framework processes, restarted whenever it exits as a Deployment's
// container would be, with its own way to the API server (a TCP proxy the test cuts to partition it).
type replica struct {
	*replicas.Replica
	proxy *tcpProxy
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

	var reps []*replica
	for _, name := range []string{"a", "b"} {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{Replica: &replicas.Replica{Name: name, Port: port, Binary: kubemesosBinary(t), Dir: e.dir, Env: cleanEnv(),
			OnError: func(err error) { t.Error(err) }},
			proxy: newTCPProxy(t, strings.TrimPrefix(e.cp.URL, "https://"))}
		kubeconfig := filepath.Join(e.dir, "framework-"+name+".kubeconfig")
		if err := rewriteKubeconfigServer(e.cp.KubeconfigPath, kubeconfig, "https://"+r.proxy.Addr()); err != nil {
			t.Fatal(err)
		}
		r.Args = e.frameworkArgs([]string{
			"--kubeconfig=" + kubeconfig,
			"--http-address=127.0.0.1:" + strconv.Itoa(port),
			"--advertise-url=" + r.URL(),
			"--executor-uri=" + fileSrv.URL + "/kubemesos",
			"--leader-elect=true",
			"--leader-elect-lease-duration=" + lease.String(),
			"--leader-elect-renew-deadline=1500ms",
			"--leader-elect-retry-period=250ms",
		})
		reps = append(reps, r)
	}
	for _, r := range reps {
		r.Start()
	}
	t.Cleanup(func() {
		for _, r := range reps {
			r.Stop()
			r.proxy.close()
		}
		if t.Failed() {
			for _, r := range reps {
				logs := r.Logs()
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
			for _, r := range reps {
				if r != not && r.Subscribed(ctx) {
					found = r
					return true, nil
				}
			}
			return false, nil
		})
		return found
	}
	first := leader(time.Minute, nil)
	t.Logf("first leader: replica %s", first.Name)
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
		for _, r := range reps {
			if r != cur {
				standby = r
			}
		}
		// The standby must be in the election before the leader goes.
		e.eventually("replica "+standby.Name+" serving", 30*time.Second, func(ctx context.Context) (bool, error) {
			return standby.Serving(ctx), nil
		})
		t0 := time.Now()
		switch i % len(kinds) {
		case 0:
			cur.Signal(syscall.SIGSTOP)
			// The standby takes over while the leader is stopped; only then does the old leader wake
			// up, its goroutines mid-flight and its leader election still believing it leads.
			leader(30*time.Second, cur)
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			cur.Signal(syscall.SIGCONT)
		case 1:
			cur.proxy.Block()
			leader(30*time.Second, cur)
			cur.proxy.Unblock()
		case 2:
			cur.Hold()
			cur.Signal(syscall.SIGKILL)
			leader(30*time.Second, cur)
			cur.Release()
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

	fenced, failedOver := fenceLog(reps)
	runs := 0
	for _, r := range reps {
		runs += r.Runs()
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
func fenceLog(reps []*replica) (map[string]int, int) {
	fenced := map[string]int{}
	failedOver := 0
	for _, r := range reps {
		for _, path := range r.Logs() {
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
