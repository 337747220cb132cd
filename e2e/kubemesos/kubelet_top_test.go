package kubemesos

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
)

// topRow parses a `kubectl top ... --no-headers` line: name, cpu in millicores, memory in bytes.
func topRow(line string) (name string, milli int64, mem int64, err error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return "", 0, 0, fmt.Errorf("top line %q", line)
	}
	cpu, err := resource.ParseQuantity(f[1])
	if err != nil {
		return "", 0, 0, fmt.Errorf("cpu of %q: %w", line, err)
	}
	// top pod: NAME CPU MEMORY; top node: NAME CPU CPU% MEMORY MEMORY%.
	memCol := 2
	if len(f) == 5 {
		memCol = 3
	}
	m, err := resource.ParseQuantity(f[memCol])
	if err != nil {
		return "", 0, 0, fmt.Errorf("memory of %q: %w", line, err)
	}
	return f[0], cpu.MilliValue(), m.Value(), nil
}

// TestKubectlTop: metrics-server (upstream's manifests, the image store's build) scrapes every
// Node's executor (/metrics/resource from the agent's GET_CONTAINERS) and `kubectl top pod` shows a
// pod burning cpu with non-zero cpu and memory, `kubectl top node` every agent; the summary the
// API server proxies (/stats/summary) has the same pod.
func TestKubectlTop(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 2, PodNetwork: true})
	ctx := context.Background()
	if err := cluster.DeployMetricsServer(ctx, e.kube, cluster.MetricsServerOptions{Namespace: e.ns, Image: imagestore.MetricsServerImage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.DeleteMetricsServer(ctx, e.kube, e.ns); err != nil {
			t.Errorf("removing metrics-server: %v", err)
		}
	})
	// One pod per agent, so that each Node has its executor: a burner (a busy loop limited to 200m,
	// holding a 16 MB shell variable) and an idle one. Requests equal limits: a cpu limit above the
	// request fails today (the pod's sandbox container gets the request as its CFS quota, and a
	// nested cgroup's quota may not exceed its parent's).
	pinned := func(name string, agent int, script string, cpu string) *corev1.Pod {
		c := container(script)
		rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("128Mi")}
		c.Resources = corev1.ResourceRequirements{Requests: rl, Limits: rl}
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "top"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: ptr.To[int64](5),
				NodeSelector: map[string]string{corev1.LabelHostname: e.agentHostname(agent)}},
		}
	}
	burner := pinned("burner", 0, `x=$(head -c 16000000 /dev/zero | tr '\0' a); while :; do :; done`, "200m")
	idle := pinned("idle", 1, sleeper, "100m")
	for _, p := range []*corev1.Pod{burner, idle} {
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// (waitRunningPods matches one Mesos task per pod: on the pod network each pod has two.)
	e.eventually("the burner and the idle pod to run", 3*time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, "app=top")
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && podReady(&p) {
				ready++
			}
		}
		return ready == 2, fmt.Errorf("%d of 2 pods ready", ready)
	})
	wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	if err := cluster.WaitMetricsServer(wctx, e.kube); err != nil {
		t.Fatal(err)
	}

	// metrics-server needs two scrapes of a container for its cpu rate.
	var milli, mem int64
	e.eventually("kubectl top pod burner to show cpu and memory", 3*time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "top", "pod", "burner", "--no-headers")
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl top pod: exit %d, %v: %s", code, err, stderr)
		}
		var name string
		if name, milli, mem, err = topRow(strings.TrimSpace(stdout)); err != nil {
			return false, err
		}
		t.Logf("kubectl top pod: %s", strings.TrimSpace(stdout))
		return name == "burner" && milli > 0 && mem > 0, fmt.Errorf("kubectl top pod = %q", stdout)
	})
	// The busy loop runs at its 200m limit (a loaded host gives it less); the variable is resident.
	if milli < 20 || milli > 400 {
		t.Errorf("burner's cpu = %dm, want about its 200m limit", milli)
	}
	if mem < 16e6 {
		t.Errorf("burner's memory = %d bytes, want at least its 16 MB variable", mem)
	}

	e.eventually("kubectl top node to show every agent", 2*time.Minute, func(ctx context.Context) (bool, error) {
		stdout, stderr, code, err := e.kubectl(ctx, "top", "node", "--no-headers")
		if err != nil || code != 0 {
			return false, fmt.Errorf("kubectl top node: exit %d, %v: %s", code, err, stderr)
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			name, milli, mem, err := topRow(line)
			if err == nil && milli > 0 && mem > 0 {
				seen[name] = true
			}
		}
		for i := range 2 {
			if !seen[e.agentHostname(i)] {
				return false, fmt.Errorf("kubectl top node = %q: no numbers for %s", stdout, e.agentHostname(i))
			}
		}
		t.Logf("kubectl top node:\n%s", stdout)
		return true, nil
	})

	// The summary through the API server's node proxy (nodes/proxy), as tools read it.
	b, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", e.agentHostname(0), "proxy/stats/summary").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sum statsapi.Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Node.NodeName != e.agentHostname(0) || sum.Node.CPU == nil || sum.Node.Memory == nil {
		t.Errorf("summary's node = %+v", sum.Node)
	}
	found := false
	for _, p := range sum.Pods {
		if p.PodRef.Namespace != e.ns || p.PodRef.Name != "burner" {
			continue
		}
		found = true
		if len(p.Containers) != 1 || p.CPU == nil || p.CPU.UsageCoreNanoSeconds == nil || *p.CPU.UsageCoreNanoSeconds == 0 ||
			p.Memory == nil || p.Memory.WorkingSetBytes == nil || *p.Memory.WorkingSetBytes < 16e6 {
			t.Errorf("burner's summary = %s", mustJSON(p))
		}
	}
	if !found {
		t.Errorf("burner is not in %s's summary: %s", e.agentHostname(0), b)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestExecutorRSSWith100Pods records the executor's resident memory while it hosts 100 pods (issue
// 12's closing note), and that its summary lists all of them with their usage.
func TestExecutorRSSWith100Pods(t *testing.T) {
	e := newEnv(t, envOptions{Agents: 1})
	ctx := context.Background()
	const n = 100
	for i := range n {
		c := container(sleeper)
		c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p" + strconv.Itoa(i), Labels: map[string]string{"app": "many"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: ptr.To[int64](2)},
		}
		if _, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	e.waitRunningPods("app=many", n, 10*time.Minute)
	t.Logf("%d pods running on one agent after %s", n, time.Since(start).Round(time.Second))

	var sum statsapi.Summary
	e.eventually("the executor's summary to list every pod with its usage", time.Minute, func(ctx context.Context) (bool, error) {
		b, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", e.agentHostname(0), "proxy/stats/summary").DoRaw(ctx)
		if err != nil {
			return false, err
		}
		sum = statsapi.Summary{}
		if err := json.Unmarshal(b, &sum); err != nil {
			return false, err
		}
		withUsage := 0
		for _, p := range sum.Pods {
			if p.PodRef.Namespace == e.ns && len(p.Containers) == 1 && (p.Memory != nil || !agentMode().Isolating) {
				withUsage++
			}
		}
		return withUsage == n, fmt.Errorf("%d of %d pods in the summary with their usage", withUsage, n)
	})
	scrapeStart := time.Now()
	if _, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", e.agentHostname(0), "proxy/metrics/resource").DoRaw(ctx); err != nil {
		t.Fatal(err)
	}
	scrape := time.Since(scrapeStart)
	pid := executorPID(e)
	if pid == 0 {
		t.Fatal("the executor's process is not found")
	}
	t.Logf("the executor's RSS with %d pods: %.1f MiB (pid %d); one /metrics/resource scrape through the API server took %s",
		n, float64(vmRSS(pid))/(1<<20), pid, scrape.Round(time.Millisecond))
}

// executorPID finds this env's kubelet executor process: the kubemesos binary run as `executor`, not
// the `sh -c` the agent's command executor starts it with.
func executorPID(e *env) int {
	for _, p := range envProcesses(e) {
		if f := strings.Fields(p.cmdline); len(f) >= 2 && strings.HasSuffix(f[0], "kubemesos") && f[1] == "executor" {
			return p.pid
		}
	}
	return 0
}
