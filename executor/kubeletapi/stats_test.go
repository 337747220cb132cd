package kubeletapi

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakeStatsAgent answers GET_CONTAINERS with its containers (protobuf, as a Mesos agent), or status
// fail when set; it records the calls.
type fakeStatsAgent struct {
	mu         sync.Mutex
	containers []agent.Response_GetContainers_Container
	fail       int
	calls      []agent.Call
}

func (f *fakeStatsAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var call agent.Call
	if err := call.Unmarshal(body); err != nil || call.GetType() != agent.Call_GET_CONTAINERS {
		http.Error(w, "unexpected call", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if f.fail != 0 {
		http.Error(w, "Failed to get containers", f.fail)
		return
	}
	b, _ := (&agent.Response{Type: agent.Response_GET_CONTAINERS,
		GetContainers: &agent.Response_GetContainers{Containers: f.containers}}).Marshal()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(b)
}

func (f *fakeStatsAgent) set(cs ...agent.Response_GetContainers_Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = cs
}

func u64(v uint64) *uint64   { return &v }
func f64(v float64) *float64 { return &v }

// container is a GET_CONTAINERS entry as the cgroups isolators fill it.
func container(id string, ts, user, system float64, total, cache, rss uint64) agent.Response_GetContainers_Container {
	return agent.Response_GetContainers_Container{
		ContainerID: mesos.ContainerID{Value: id},
		ResourceStatistics: &mesos.ResourceStatistics{
			Timestamp: ts, CPUsUserTimeSecs: f64(user), CPUsSystemTimeSecs: f64(system),
			MemTotalBytes: u64(total), MemCacheBytes: u64(cache), MemFileBytes: u64(cache),
			MemRSSBytes: u64(rss), MemAnonBytes: u64(rss),
		},
	}
}

// fakeProc writes a procfs with stat and meminfo.
func fakeProc(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	stat := "cpu  1000 200 300 50000 40 10 20 30 0 0\n" +
		"cpu0 1000 200 300 50000 40 10 20 30 0 0\n" +
		"intr 0\nctxt 0\nbtime 1767225600\nprocesses 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n"
	meminfo := "MemTotal:        8000000 kB\nMemFree:         3000000 kB\nMemAvailable:    6000000 kB\n" +
		"Inactive(file):  1000000 kB\nAnonPages:       1500000 kB\n"
	for name, content := range map[string]string{"stat": stat, "meminfo": meminfo} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// statsPod is testPod("web") running main and side (started at 10:00:05 and :06) after init.
func statsPod(r *Registry) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(s int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(s) * time.Second)) }
	main, side := running("main", "uid-web-main-0"), running("side", "uid-web-side-0")
	main.State.Running.StartedAt, side.State.Running.StartedAt = at(5), at(6)
	start := at(0)
	r.Update(testPod("web"), corev1.PodStatus{
		StartTime: &start,
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", ContainerID: "mesos://uid-web-init-0",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}},
		ContainerStatuses: []corev1.ContainerStatus{main, side},
	})
}

func statsSetup(t *testing.T, authz authorizer.Authorizer) (*fakeStatsAgent, *Stats, string) {
	t.Helper()
	fa := &fakeStatsAgent{}
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	reg := NewRegistry(t.TempDir())
	statsPod(reg)
	st := &Stats{Pods: reg, Usage: NewMesosUsage(srv.URL+"/api/v1", 0), Host: HostStats{ProcRoot: fakeProc(t)}}
	url := startServer(t, Config{Pods: reg, Stats: st, Authorizer: authz})
	return fa, st, url
}

const sampleTS = 1796556000.25 // 2026-12-06T11:20:00.25Z

func TestStatsSummaryFromGetContainers(t *testing.T) {
	fa, _, url := statsSetup(t, nil)
	fa.set(
		agent.Response_GetContainers_Container{ContainerID: mesos.ContainerID{Value: "executor-container"},
			ResourceStatistics: &mesos.ResourceStatistics{Timestamp: sampleTS, CPUsUserTimeSecs: f64(99)}},
		container("uid-web-main-0", sampleTS, 1.5, 0.25, 50<<20, 20<<20, 25<<20),
		container("uid-web-side-0", sampleTS, 0.5, 0.5, 10<<20, 1<<20, 8<<20),
		container("uid-web-init-0", sampleTS, 7, 7, 7<<20, 0, 7<<20), // a leftover: init is terminated
	)
	code, body := get(t, insecureClient(), url+"/stats/summary")
	if code != http.StatusOK {
		t.Fatalf("GET /stats/summary: %d %s", code, body)
	}
	var sum statsapi.Summary
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	// GET_CONTAINERS with show_nested and show_standalone: pod containers are nested.
	if c := fa.calls[0].GetContainers; c == nil || !c.GetShowNested() || !c.GetShowStandalone() {
		t.Errorf("GET_CONTAINERS call = %+v, want show_nested and show_standalone", fa.calls[0])
	}

	n := sum.Node
	if n.NodeName != "agent0" || n.StartTime.Unix() != 1767225600 {
		t.Errorf("node = %q started %v", n.NodeName, n.StartTime)
	}
	// (user 1000 + nice 200 + system 300 + irq 10 + softirq 20 + steal 30) ticks of 1/100 s.
	if got := *n.CPU.UsageCoreNanoSeconds; got != 15_600_000_000 {
		t.Errorf("node usageCoreNanoSeconds = %d, want 15.6 s", got)
	}
	// usage = 8000000 − 3000000 kB; working set = usage − Inactive(file) 1000000 kB.
	if got, want := *n.Memory.UsageBytes, uint64(5_000_000<<10); got != want {
		t.Errorf("node usageBytes = %d, want %d", got, want)
	}
	if got, want := *n.Memory.WorkingSetBytes, uint64(4_000_000<<10); got != want {
		t.Errorf("node workingSetBytes = %d, want %d", got, want)
	}
	if got, want := *n.Memory.AvailableBytes, uint64(4_000_000<<10); got != want {
		t.Errorf("node availableBytes = %d, want %d", got, want)
	}
	if got, want := *n.Memory.RSSBytes, uint64(1_500_000<<10); got != want {
		t.Errorf("node rssBytes = %d, want %d", got, want)
	}

	if len(sum.Pods) != 1 {
		t.Fatalf("pods = %+v", sum.Pods)
	}
	p := sum.Pods[0]
	if p.PodRef != (statsapi.PodReference{Name: "web", Namespace: "default", UID: "uid-web"}) {
		t.Errorf("podRef = %+v", p.PodRef)
	}
	if len(p.Containers) != 2 || p.Containers[0].Name != "main" || p.Containers[1].Name != "side" {
		t.Fatalf("containers = %+v, want the running main and side", p.Containers)
	}
	wantTime := time.Date(2026, 12, 6, 11, 20, 0, 0, time.UTC) // JSON times are whole seconds
	m := p.Containers[0]
	if !m.StartTime.Equal(&metav1.Time{Time: time.Date(2026, 12, 6, 10, 0, 5, 0, time.UTC)}) {
		t.Errorf("main startTime = %v", m.StartTime)
	}
	if !m.CPU.Time.Time.Equal(wantTime) || !m.Memory.Time.Time.Equal(wantTime) {
		t.Errorf("main sample times = %v, %v, want the agent's timestamp %v", m.CPU.Time, m.Memory.Time, wantTime)
	}
	if got := *m.CPU.UsageCoreNanoSeconds; got != 1_750_000_000 {
		t.Errorf("main usageCoreNanoSeconds = %d, want user+system 1.75 s", got)
	}
	if m.CPU.UsageNanoCores != nil {
		t.Errorf("main usageNanoCores = %d after one sample, want none", *m.CPU.UsageNanoCores)
	}
	if *m.Memory.UsageBytes != 50<<20 || *m.Memory.WorkingSetBytes != 30<<20 || *m.Memory.RSSBytes != 25<<20 {
		t.Errorf("main memory = usage %d ws %d rss %d, want 50 MiB, 50−20 MiB, 25 MiB",
			*m.Memory.UsageBytes, *m.Memory.WorkingSetBytes, *m.Memory.RSSBytes)
	}
	// The pod: the sum of its containers.
	if got := *p.CPU.UsageCoreNanoSeconds; got != 2_750_000_000 {
		t.Errorf("pod usageCoreNanoSeconds = %d, want 2.75 s", got)
	}
	if got := *p.Memory.WorkingSetBytes; got != 39<<20 {
		t.Errorf("pod workingSetBytes = %d, want 30+9 MiB", got)
	}
}

func TestStatsUsageNanoCoresBetweenSamples(t *testing.T) {
	fa, st, _ := statsSetup(t, nil)
	fa.set(container("uid-web-main-0", sampleTS, 1, 0, 1<<20, 0, 1<<20))
	if _, err := st.Summary(context.Background(), "n"); err != nil {
		t.Fatal(err)
	}
	// The same sample again (the agent answered from the same reading): no rate yet.
	sum, err := st.Summary(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	if r := sum.Pods[0].Containers[0].CPU.UsageNanoCores; r != nil {
		t.Errorf("usageNanoCores = %d from one sample, want none", *r)
	}
	// 2 s later, 1.5 cpu-seconds more: 0.75 cores.
	fa.set(container("uid-web-main-0", sampleTS+2, 2, 0.5, 1<<20, 0, 1<<20))
	sum, err = st.Summary(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	c := sum.Pods[0].Containers[0]
	if c.CPU.UsageNanoCores == nil || *c.CPU.UsageNanoCores != 750_000_000 {
		t.Fatalf("usageNanoCores = %v, want 750000000", c.CPU.UsageNanoCores)
	}
	if p := sum.Pods[0].CPU.UsageNanoCores; p == nil || *p != 750_000_000 {
		t.Errorf("pod usageNanoCores = %v, want the container's", p)
	}
}

func TestContainerMemoryWorkingSet(t *testing.T) {
	tests := []struct {
		name           string
		st             mesos.ResourceStatistics
		wantWS         uint64
		wantUsage      *uint64
		wantAvail      *uint64
		wantNoMemStats bool
	}{
		{"cgroups/mem: usage minus page cache",
			mesos.ResourceStatistics{MemTotalBytes: u64(100), MemCacheBytes: u64(30), MemRSSBytes: u64(60)}, 70, u64(100), nil, false},
		{"cache above usage (racy reading) is floored at 0",
			mesos.ResourceStatistics{MemTotalBytes: u64(10), MemCacheBytes: u64(30)}, 0, u64(10), nil, false},
		{"posix/mem: rss only",
			mesos.ResourceStatistics{MemRSSBytes: u64(42)}, 42, nil, nil, false},
		{"a limit below the host's memory gives availableBytes",
			mesos.ResourceStatistics{MemTotalBytes: u64(100 << 20), MemCacheBytes: u64(0), MemLimitBytes: u64(128 << 20)}, 100 << 20, u64(100 << 20), u64(28 << 20), false},
		{"Mesos' infinity (the host's memory) is no limit",
			mesos.ResourceStatistics{MemTotalBytes: u64(100), MemCacheBytes: u64(0), MemLimitBytes: u64(math.MaxUint64)}, 100, u64(100), nil, false},
		{"no memory statistics (process mode)",
			mesos.ResourceStatistics{CPUsUserTimeSecs: f64(1)}, 0, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := containerMemory(tt.st)
			if tt.wantNoMemStats {
				if m != nil {
					t.Fatalf("memory = %+v, want none", m)
				}
				return
			}
			if *m.WorkingSetBytes != tt.wantWS {
				t.Errorf("workingSetBytes = %d, want %d", *m.WorkingSetBytes, tt.wantWS)
			}
			if (m.UsageBytes == nil) != (tt.wantUsage == nil) || (m.UsageBytes != nil && *m.UsageBytes != *tt.wantUsage) {
				t.Errorf("usageBytes = %v, want %v", m.UsageBytes, tt.wantUsage)
			}
			if (m.AvailableBytes == nil) != (tt.wantAvail == nil) || (m.AvailableBytes != nil && *m.AvailableBytes != *tt.wantAvail) {
				t.Errorf("availableBytes = %v, want %v", m.AvailableBytes, tt.wantAvail)
			}
		})
	}
}

func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, insecureClient(), url+"/metrics/resource")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics/resource: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestResourceMetrics(t *testing.T) {
	fa, _, url := statsSetup(t, nil)
	fa.set(
		container("uid-web-main-0", sampleTS, 1.5, 0.25, 50<<20, 20<<20, 25<<20),
		container("uid-web-side-0", sampleTS, 0.5, 0.5, 10<<20, 1<<20, 8<<20),
	)
	fams := scrapeMetrics(t, url)
	wantMs := int64(sampleTS * 1000)
	check := func(name string, typ dto.MetricType, want map[string]float64, timed bool) {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Errorf("%s missing", name)
			return
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
		got := map[string]float64{}
		for _, m := range f.GetMetric() {
			l := labelsOf(m)
			key := l["namespace"] + "/" + l["pod"] + "/" + l["container"]
			if typ == dto.MetricType_COUNTER {
				got[key] = m.GetCounter().GetValue()
			} else {
				got[key] = m.GetGauge().GetValue()
			}
			if timed && name[:4] != "node" && m.GetTimestampMs() != wantMs {
				t.Errorf("%s%v timestamp = %d, want the agent's %d", name, l, m.GetTimestampMs(), wantMs)
			}
		}
		for k, v := range want {
			if math.Abs(got[k]-v) > 1e-9 {
				t.Errorf("%s{%s} = %v, want %v", name, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("container_cpu_usage_seconds_total", dto.MetricType_COUNTER, map[string]float64{"default/web/main": 1.75, "default/web/side": 1}, true)
	check("container_memory_working_set_bytes", dto.MetricType_GAUGE, map[string]float64{"default/web/main": 30 << 20, "default/web/side": 9 << 20}, true)
	check("container_start_time_seconds", dto.MetricType_GAUGE, map[string]float64{
		"default/web/main": float64(time.Date(2026, 12, 6, 10, 0, 5, 0, time.UTC).Unix()),
		"default/web/side": float64(time.Date(2026, 12, 6, 10, 0, 6, 0, time.UTC).Unix())}, false)
	check("pod_cpu_usage_seconds_total", dto.MetricType_COUNTER, map[string]float64{"default/web/": 2.75}, true)
	check("pod_memory_working_set_bytes", dto.MetricType_GAUGE, map[string]float64{"default/web/": 39 << 20}, true)
	check("node_cpu_usage_seconds_total", dto.MetricType_COUNTER, map[string]float64{"//": 15.6}, true)
	check("node_memory_working_set_bytes", dto.MetricType_GAUGE, map[string]float64{"//": 4_000_000 << 10}, true)
	check("scrape_error", dto.MetricType_GAUGE, map[string]float64{"//": 0}, false)
	check("resource_scrape_error", dto.MetricType_GAUGE, map[string]float64{"//": 0}, false)
	for _, name := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes"} {
		if ts := fams[name].GetMetric()[0].GetTimestampMs(); ts == 0 {
			t.Errorf("%s has no timestamp (metrics-server needs one)", name)
		}
	}
	if h := fams["container_cpu_usage_seconds_total"].GetHelp(); h != "[STABLE] Cumulative cpu time consumed by the container in core-seconds" {
		t.Errorf("help = %q", h)
	}
}

func TestResourceMetricsAgentUnavailable(t *testing.T) {
	fa, _, url := statsSetup(t, nil)
	fa.fail = http.StatusServiceUnavailable
	fams := scrapeMetrics(t, url)
	if v := fams["scrape_error"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("scrape_error = %v, want 1", v)
	}
	for name := range fams {
		if name != "scrape_error" && name != "resource_scrape_error" {
			t.Errorf("series %s served without a summary", name)
		}
	}
	code, body := get(t, insecureClient(), url+"/stats/summary")
	if code != http.StatusInternalServerError || !strings.Contains(body, "Internal Error: failed to get summary stats") {
		t.Errorf("GET /stats/summary with the agent down: %d %q", code, body)
	}
}

// The endpoints sit behind authorization on the kubelet's subresources: nodes/stats for
// /stats/summary, nodes/metrics for /metrics/resource.
func TestStatsEndpointsAuthorization(t *testing.T) {
	onlyMetrics := authorizer.AuthorizerFunc(func(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if a.GetResource() == "nodes" && a.GetSubresource() == "metrics" && a.GetVerb() == "get" && a.GetName() == "agent0" {
			return authorizer.DecisionAllow, "", nil
		}
		return authorizer.DecisionNoOpinion, "", nil
	})
	fa, _, url := statsSetup(t, onlyMetrics)
	fa.set(container("uid-web-main-0", sampleTS, 1, 0, 1<<20, 0, 1<<20))
	if code, body := get(t, insecureClient(), url+"/metrics/resource"); code != http.StatusOK {
		t.Errorf("/metrics/resource with nodes/metrics: %d %s", code, body)
	}
	code, body := get(t, insecureClient(), url+"/stats/summary")
	if code != http.StatusForbidden || !strings.Contains(body, "subresource(s)=[stats]") {
		t.Errorf("/stats/summary without nodes/stats: %d %s", code, body)
	}
}

func TestStatsNotConfigured(t *testing.T) {
	url := startServer(t, Config{Pods: NewRegistry(t.TempDir())})
	for _, p := range []string{"/stats/summary", "/metrics/resource"} {
		if code, _ := get(t, insecureClient(), url+p); code != http.StatusNotImplemented {
			t.Errorf("%s without Stats: %d, want 501", p, code)
		}
	}
}

// BenchmarkResourceMetrics100Pods is one /metrics/resource scrape of an executor hosting 100 pods of
// two containers (a GET_CONTAINERS of 200 nested containers from a fake agent, /proc of this host).
func BenchmarkResourceMetrics100Pods(b *testing.B) {
	fa := &fakeStatsAgent{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	reg := NewRegistry(b.TempDir())
	var cs []agent.Response_GetContainers_Container
	for i := range 100 {
		p := testPod("web" + strconv.Itoa(i))
		uid := string(p.UID)
		reg.Update(p, corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{running("main", uid+"-main-0"), running("side", uid+"-side-0")}})
		cs = append(cs, container(uid+"-main-0", sampleTS, 1, 1, 10<<20, 1<<20, 8<<20), container(uid+"-side-0", sampleTS, 1, 1, 10<<20, 1<<20, 8<<20))
	}
	fa.set(cs...)
	s, err := New(Config{NodeName: "agent0", Authenticator: anyUser, Authorizer: allowAll, Pods: reg, Log: quietLog(),
		Stats: &Stats{Pods: reg, Usage: NewMesosUsage(srv.URL+"/api/v1", 0)}})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics/resource", nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `container_cpu_usage_seconds_total{container="side",namespace="default",pod="web99"}`) {
			b.Fatalf("scrape: %d %.300s", w.Code, w.Body.String())
		}
	}
}
