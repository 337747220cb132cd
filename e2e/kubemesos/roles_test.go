package kubemesos

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/master"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/mesossim"
)

var rolesOut = flag.String("roles-out", "", "directory to write TestNamespaceRolesShareByWeight's share samples to (roles-shares.csv and .svg)")

// roleAnnotation is framework.RoleAnnotation (the e2e module does not import the framework).
const roleAnnotation = "kubemesos.io/mesos-role"

// Must shows 1 and 2 of issue 15. Two namespaces on Mesos roles of weights 1 and 3, both with a
// Deployment wanting more than the cluster has, and a batch framework in a role of weight 2 that wants
// the whole cluster too: Mesos' weighted DRF gives each role a share proportional to its weight, which
// the test measures from the master's GET_ROLES (allocated plus offered cpus per role, sampled every
// second). Then one namespace's annotation names a third role: its new pods launch there, and its
// running pods stay as they are (same UID, Node, restart count, task and role). First, a namespace
// naming an invalid role: a Warning on it, and its pod Pending saying why.
//
// The cluster is 3 agents of 4 cpus and 8 GiB. Batch starts first and holds everything until both
// tenants' pods are pending; then its tasks (0.5 cpu, 1 GiB) end after 2 to 4 s and are relaunched,
// so Mesos keeps re-allocating what they free to the role with the lowest weighted share. The
// tenants' pods (0.5 cpu, 1 GiB) run until deleted: what a role got, it keeps (Mesos never takes
// resources back). Expected at equilibrium, of 12 cpus: tenant-a 1/6 = 2, tenant-b 3/6 = 6, batch
// 2/6 = 4. Tolerance: 1 cpu per role (two units: Mesos offers an agent's whole free part to one role
// at a time, and an executor (one unit) comes with a role's first pod on an agent).
func TestNamespaceRolesShareByWeight(t *testing.T) {
	e := newEnv(t, envOptions{
		MasterTweak: func(cfg *mesossim.Config) {
			cfg.Weights = map[string]float64{"tenant-a": 1, "tenant-b": 3, "batch": 2, "tenant-c": 1}
			// Offers carry an agent's whole free disk, which nobody here uses: counted, it would rank
			// a role by the offer it holds, not by what it runs.
			cfg.FairSharingExcludedResourceNames = []string{"disk"}
		},
		// Every task, pod and executor is a unit of 0.5 cpu and 1 GiB (an agent is 8 of them), so the
		// free part of an agent is whole units in both dimensions and no framework is left crumbs.
		FrameworkArgs: []string{"--executor-cpus=0.5", "--executor-mem=1024"},
	})
	e.waitSchedulableNodes(3)
	const clusterCPUs = 12.0
	e.checkInvalidRole()
	// Batch's first 24 tasks wait for the gate, so nothing is freed before both tenants' pods wait for
	// offers: a role whose pods came later would find the other holding more than its share, which it
	// keeps (on a busy host the two Deployments' pods appear seconds apart).
	gate := filepath.Join(t.TempDir(), "gate")
	openGate := func() {
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(openGate)
	batch := startBatchFramework(t, e.sim.URL, "batch", 24, 0.5, 1024, func(n int) string {
		if n <= 24 {
			return fmt.Sprintf("while [ ! -e %s ]; do sleep 0.2; done; sleep %d", gate, 2+n%3)
		}
		return fmt.Sprintf("sleep %d", 2+n%3)
	})
	e.eventually("batch holding the cluster", time.Minute, func(ctx context.Context) (bool, error) {
		s := batch.stats()
		return s.Running >= 24, fmt.Errorf("%d batch tasks running", s.Running)
	})

	sampler := startRoleSampler(e)
	t.Cleanup(func() { sampler.stop(); sampler.report(t, clusterCPUs) })
	nsA := e.tenantNamespace("a", "tenant-a")
	nsB := e.tenantNamespace("b", "tenant-b")
	spec := podSpec(sleeper)
	spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("500m")
	spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi")
	e.createDeploymentIn(nsA, deployment("tenant", 16, spec)) // 8 cpus wanted
	e.createDeploymentIn(nsB, deployment("tenant", 24, spec)) // 12 cpus wanted
	e.eventually("both tenants' 40 pods pending at kubemesos", 2*time.Minute, func(ctx context.Context) (bool, error) {
		m, err := e.frameworkMetrics(ctx)
		if err != nil {
			return false, err
		}
		return m["kubemesos_pending_pods"] >= 40, fmt.Errorf("kubemesos_pending_pods %v", m["kubemesos_pending_pods"])
	})
	openGate()

	targets := map[string]float64{"tenant-a": 2, "tenant-b": 6, "batch": 4}
	const tolerance = 1.0
	const window = 10 // samples, one a second
	var converged map[string]float64
	e.eventually("each role's cpus within 1 of its weighted DRF share over 10 s", 150*time.Second, func(ctx context.Context) (bool, error) {
		mean, n := sampler.mean(window)
		if n < window {
			return false, fmt.Errorf("%d samples", n)
		}
		var off []string
		for r, want := range targets {
			if math.Abs(mean[r]-want) > tolerance {
				off = append(off, fmt.Sprintf("%s %.2f (want %.0f)", r, mean[r], want))
			}
		}
		sort.Strings(off)
		converged = mean
		bs := batch.stats()
		return len(off) == 0, fmt.Errorf("mean cpus over the last %d s: %s (batch: %d tasks running, %d finished, %d offers, errors %v)",
			window, strings.Join(off, ", "), bs.Running, bs.Finished, bs.Offers, bs.Errs)
	})
	// And it stays there: the next 10 s, measured afresh.
	from := sampler.count()
	e.eventually("10 more samples", time.Minute, func(ctx context.Context) (bool, error) {
		return sampler.count() >= from+window, nil
	})
	converged, _ = sampler.mean(window)
	for r, want := range targets {
		if math.Abs(converged[r]-want) > tolerance {
			t.Errorf("role %s: %.2f cpus on average over the 10 s after converging, want %.0f ± %.0f", r, converged[r], want, tolerance)
		}
	}
	t.Logf("converged shares (mean of the 10 s after, of %.0f cpus): tenant-a %.2f cpus = %.3f (weight 1 → 1/6 = 0.167), tenant-b %.2f = %.3f (weight 3 → 0.5), batch %.2f = %.3f (weight 2 → 0.333); weighted shares %.3f %.3f %.3f",
		clusterCPUs, converged["tenant-a"], converged["tenant-a"]/clusterCPUs, converged["tenant-b"], converged["tenant-b"]/clusterCPUs,
		converged["batch"], converged["batch"]/clusterCPUs,
		converged["tenant-a"]/clusterCPUs/1, converged["tenant-b"]/clusterCPUs/3, converged["batch"]/clusterCPUs/2)
	if s := batch.stats(); len(s.Failed) > 0 || len(s.Errs) > 0 {
		t.Errorf("batch framework: failed tasks %v, errors %v", s.Failed, s.Errs)
	}

	// Must show 2: tenant b moves to role tenant-c while its pods run.
	ctx := context.Background()
	before := e.tenantPods(ctx, nsB)
	running := map[string]corev1.Pod{}
	for _, p := range before {
		if p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning {
			running[string(p.UID)] = p
		}
	}
	if len(running) == 0 {
		t.Fatalf("no running pod of %s before the role change", nsB)
	}
	st, err := e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldRoles := taskRoles(st)
	for uid := range running {
		if r := oldRoles[uid]; r != "tenant-b" {
			t.Fatalf("task of running pod %s in role %q, want tenant-b", uid, r)
		}
	}
	sampler.mark("tenant b → tenant-c")
	ns, err := e.kube.CoreV1().Namespaces().Get(ctx, nsB, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations[roleAnnotation] = "tenant-c"
	if _, err := e.kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// UPDATE_FRAMEWORK (after the framework's 1 s debounce): kubemesos is subscribed to tenant-c. From
	// then on the framework knows the new annotation, so every pod of b it launches goes to tenant-c.
	var fwID string
	for _, f := range st.GetGetFrameworks().GetFrameworks() {
		if f.FrameworkInfo.Name == frameworkName {
			fwID = f.FrameworkInfo.ID.Value
		}
	}
	e.eventually("kubemesos subscribed to tenant-c", 30*time.Second, func(ctx context.Context) (bool, error) {
		roles, err := getRoles(ctx, e)
		if err != nil {
			return false, err
		}
		return slices.Contains(roles["tenant-c"].frameworks, fwID), fmt.Errorf("tenant-c's frameworks %v", roles["tenant-c"].frameworks)
	})
	if st, err = e.mesosState(ctx); err != nil {
		t.Fatal(err)
	}
	launchedBefore := taskRoles(st)
	e.eventually("pods of the namespace launched since in role tenant-c", 90*time.Second, func(ctx context.Context) (bool, error) {
		st, err := e.mesosState(ctx)
		if err != nil {
			return false, err
		}
		roles := taskRoles(st)
		inC := 0
		for _, p := range e.tenantPods(ctx, nsB) {
			uid := string(p.UID)
			if _, old := launchedBefore[uid]; old {
				continue
			}
			if r, launched := roles[uid]; launched {
				if r != "tenant-c" {
					return false, fatalf("pod %s launched after the role change in %q, want tenant-c", p.Name, r)
				}
				inC++
			}
		}
		return inC >= 2, fmt.Errorf("%d pods of %s launched in tenant-c", inC, nsB)
	})
	// The pods running before stay: same UID, Node and restart count, their tasks still in tenant-b;
	// Mesos still counts them in tenant-b and lists the framework there, though it left the role.
	after := e.tenantPods(ctx, nsB)
	byUID := map[string]corev1.Pod{}
	for _, p := range after {
		byUID[string(p.UID)] = p
	}
	st, err = e.mesosState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nowRoles := taskRoles(st)
	for uid, old := range running {
		p, ok := byUID[uid]
		switch {
		case !ok:
			t.Errorf("pod %s (running before the role change) is gone", old.Name)
		case p.Spec.NodeName != old.Spec.NodeName || p.Status.Phase != corev1.PodRunning:
			t.Errorf("pod %s: %s on %s after the change, was Running on %s", p.Name, p.Status.Phase, p.Spec.NodeName, old.Spec.NodeName)
		case restarts(p) != restarts(old):
			t.Errorf("pod %s restarted: %d restarts, was %d", p.Name, restarts(p), restarts(old))
		case nowRoles[uid] != "tenant-b":
			t.Errorf("pod %s's task in role %q after the change, want tenant-b", p.Name, nowRoles[uid])
		}
	}
	roles, err := getRoles(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	b := roles["tenant-b"]
	if b.cpus < 0.5*float64(len(running))-1e-9 || len(b.frameworks) == 0 {
		t.Errorf("GET_ROLES tenant-b after the change: %.2f cpus, frameworks %v; want the %d running pods' cpus and kubemesos", b.cpus, b.frameworks, len(running))
	}
	t.Logf("after the change: %d pods of %s still running in tenant-b (%.2f cpus in GET_ROLES), role tenant-c holds %.2f cpus",
		len(running), nsB, b.cpus, roles["tenant-c"].cpus)
	// tenant-c (weight 1) is a DRF peer too: it takes what batch frees while its weighted share is the
	// lowest (about 4/3 cpus of batch's 4, as what tenant-b holds stays there).
	e.eventually("tenant-c holding at least 1 cpu over 5 s", 60*time.Second, func(ctx context.Context) (bool, error) {
		mean, n := sampler.mean(5)
		return n == 5 && mean["tenant-c"] >= 1-1e-9, fmt.Errorf("tenant-c %.2f cpus, batch %.2f", mean["tenant-c"], mean["batch"])
	})
	mean, _ := sampler.mean(5)
	t.Logf("after the change (mean of the last 5 s): tenant-a %.2f, tenant-b %.2f, tenant-c %.2f, batch %.2f cpus",
		mean["tenant-a"], mean["tenant-b"], mean["tenant-c"], mean["batch"])
}

// checkInvalidRole: a namespace naming a role Mesos refuses gets a Warning InvalidMesosRole, and its
// pod stays Pending with PodScheduled=False saying why.
func (e *env) checkInvalidRole() {
	e.t.Helper()
	ns := e.tenantNamespace("bad", "-bad")
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: podSpec(sleeper)}
	if _, err := e.kube.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	const why = `annotation kubemesos.io/mesos-role="-bad" of namespace %s is not a valid Mesos role: Role component '-bad' is invalid because it starts with a dash`
	want := fmt.Sprintf(why, ns)
	e.eventually("the pod of a namespace with an invalid role Pending, saying why", time.Minute, func(ctx context.Context) (bool, error) {
		pod, err := e.kube.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if pod.Spec.NodeName != "" {
			return false, fatalf("pod of a namespace with an invalid role bound to %s", pod.Spec.NodeName)
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && c.Message == want {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %v", pod.Status.Conditions)
	})
	e.eventually("a Warning InvalidMesosRole on the namespace", time.Minute, func(ctx context.Context) (bool, error) {
		evs, err := e.kube.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Namespace,involvedObject.name=" + ns})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Reason == "InvalidMesosRole" && strings.Contains(ev.Message, want) {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events", len(evs.Items))
	})
}

// tenantNamespace creates a namespace whose pods run in a Mesos role, and deletes it (pods first,
// at once) before the env's teardown.
func (e *env) tenantNamespace(suffix, role string) string {
	e.t.Helper()
	name := e.ns + "-" + suffix
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{roleAnnotation: role}}}
	if _, err := e.kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			e.t.Errorf("deleting namespace %s: %v", name, err)
		}
		if pods, err := e.kube.CoreV1().Pods(name).List(ctx, metav1.ListOptions{}); err == nil {
			for _, p := range pods.Items {
				_ = e.kube.CoreV1().Pods(name).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			}
		}
	})
	return name
}

func (e *env) createDeploymentIn(ns string, d *appsv1.Deployment) {
	e.t.Helper()
	if _, err := e.kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// tenantPods lists a namespace's pods that have not finished.
func (e *env) tenantPods(ctx context.Context, ns string) []corev1.Pod {
	e.t.Helper()
	list, err := e.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

func restarts(p corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// taskRoles maps the pod UID of every live kubemesos pod task to the role its resources are allocated to.
func taskRoles(st *master.Response_GetState) map[string]string {
	out := map[string]string{}
	for _, task := range st.GetGetTasks().GetTasks() {
		if !strings.HasPrefix(task.TaskID.Value, taskIDPrefix) || isTerminal(task.GetState()) {
			continue
		}
		role := ""
		for _, r := range task.Resources {
			if ai := r.GetAllocationInfo(); ai != nil {
				role = ai.GetRole()
			}
		}
		out[taskPodUID(task)] = role
	}
	return out
}

type roleInfo struct {
	cpus       float64
	frameworks []string
}

// getRoles is the master's GET_ROLES: cpus held (allocated and offered) and frameworks per role.
func getRoles(ctx context.Context, e *env) (map[string]roleInfo, error) {
	resp, err := operatorCall(ctx, e.sim.URL, master.Call{Type: master.Call_GET_ROLES})
	if err != nil {
		return nil, err
	}
	if resp.GetRoles == nil {
		return nil, fmt.Errorf("GET_ROLES answered %v without roles", resp.Type)
	}
	out := map[string]roleInfo{}
	for _, r := range resp.GetRoles.Roles {
		ri := roleInfo{cpus: scalarOf(r.Resources, "cpus")}
		for _, f := range r.Frameworks {
			ri.frameworks = append(ri.frameworks, f.Value)
		}
		out[r.Name] = ri
	}
	return out, nil
}

// roleSampler records GET_ROLES' cpus per role once a second.
type roleSampler struct {
	e      *env
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples []roleSample
	marks   []roleMark
}

type roleSample struct {
	at   time.Duration
	cpus map[string]float64
}

type roleMark struct {
	at   time.Duration
	what string
}

func (m roleMark) String() string { return fmt.Sprintf("%.1fs: %s", m.at.Seconds(), m.what) }

func startRoleSampler(e *env) *roleSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &roleSampler{e: e, start: time.Now(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if roles, err := getRoles(ctx, e); err == nil {
				cpus := map[string]float64{}
				for r, ri := range roles {
					cpus[r] = ri.cpus
				}
				s.mu.Lock()
				s.samples = append(s.samples, roleSample{at: time.Since(s.start), cpus: cpus})
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	e.t.Cleanup(s.stop)
	return s
}

func (s *roleSampler) stop() {
	s.cancel()
	<-s.done // closed once: stop may run twice
}

func (s *roleSampler) mark(what string) {
	s.mu.Lock()
	s.marks = append(s.marks, roleMark{at: time.Since(s.start), what: what})
	s.mu.Unlock()
}

func (s *roleSampler) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples)
}

// mean is the mean cpus per role over the last n samples, and how many there were.
func (s *roleSampler) mean(n int) (map[string]float64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.samples[max(0, len(s.samples)-n):]
	out := map[string]float64{}
	for _, smp := range last {
		for r, v := range smp.cpus {
			out[r] += v / float64(len(last))
		}
	}
	return out, len(last)
}

var chartRoles = []string{"tenant-a", "tenant-b", "batch", "tenant-c"}

// report logs the samples as CSV and, with -roles-out, writes them as CSV and an SVG chart.
func (s *roleSampler) report(t *testing.T, total float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var csv strings.Builder
	csv.WriteString("seconds," + strings.Join(chartRoles, ",") + "\n")
	for _, smp := range s.samples {
		fmt.Fprintf(&csv, "%.1f", smp.at.Seconds())
		for _, r := range chartRoles {
			fmt.Fprintf(&csv, ",%.2f", smp.cpus[r])
		}
		csv.WriteString("\n")
	}
	t.Logf("cpus per role (GET_ROLES, allocated+offered) over time; marks %v:\n%s", s.marks, csv.String())
	if *rolesOut == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(*rolesOut, "roles-shares.csv"), []byte(csv.String()), 0o644); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(*rolesOut, "roles-shares.svg"), []byte(s.svg(total)), 0o644); err != nil {
		t.Error(err)
	}
}

// svg draws the cpus per role over time, with the weighted DRF targets as dashed lines.
func (s *roleSampler) svg(total float64) string {
	const w, h, left, right, top, bottom = 760.0, 380.0, 50.0, 130.0, 30.0, 40.0
	end := 1.0
	if n := len(s.samples); n > 0 {
		end = s.samples[n-1].at.Seconds()
	}
	x := func(sec float64) float64 { return left + sec/end*(w-left-right) }
	y := func(cpus float64) float64 { return h - bottom - cpus/total*(h-top-bottom) }
	colors := map[string]string{"tenant-a": "#1f77b4", "tenant-b": "#d62728", "batch": "#2ca02c", "tenant-c": "#9467bd"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="18">cpus held per Mesos role (GET_ROLES), 3 agents × 4 cpus; weights tenant-a 1, tenant-b 3, batch 2, tenant-c 1</text>`+"\n", left)
	for c := 0.0; c <= total; c += 2 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			left, y(c), w-right, y(c), left-6, y(c)+4, c)
	}
	tick := 10.0
	if end > 120 {
		tick = 30
	}
	for sec := 0.0; sec <= end; sec += tick {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.0fs</text>`+"\n", x(sec), h-bottom+16, sec)
	}
	for _, m := range s.marks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/><text x="%.1f" y="%.1f" fill="#555">%s</text>`+"\n",
			x(m.at.Seconds()), top, x(m.at.Seconds()), h-bottom, x(m.at.Seconds())+4, top+12, m.what)
	}
	targets := map[string]float64{"tenant-a": 2, "tenant-b": 6, "batch": 4}
	for i, r := range chartRoles {
		var pts []string
		for _, smp := range s.samples {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(smp.at.Seconds()), y(smp.cpus[r])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", colors[r], strings.Join(pts, " "))
		if v, ok := targets[r]; ok {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="6,4" opacity="0.6"/>`+"\n", left, y(v), w-right, y(v), colors[r])
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="12" height="3" fill="%s"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			w-right+10, top+20+float64(i)*18, colors[r], w-right+26, top+25+float64(i)*18, r)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="#555">dashed: weighted DRF share</text>`+"\n", w-right+10, top+20+float64(len(chartRoles))*18+10)
	b.WriteString("</svg>\n")
	return b.String()
}
