package kubeletapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/agent"
	agentcalls "github.com/mesos/mesos-go/api/v1/lib/agent/calls"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpagent"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/procfs"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/executor/agentclient"
	"github.com/kubemesos/kubemesos/internal/mesosdecode"
)

// The kubelet's resource metrics (/stats/summary and /metrics/resource, what metrics-server and
// `kubectl top` read) computed from what a Mesos agent's public API says about its containers.
//
// Containers: the agent operator API's GET_CONTAINERS (show_nested, show_standalone) gives each live
// container's ResourceStatistics; a pod's container attempt is the nested container whose
// ContainerID.value is the attempt's ID (package nested: unique per pod, container and attempt). With
// the cgroups/cpu and cgroups/mem isolators every pod container has cgroups of its own (package
// nested sends share_cgroups false) and Mesos fills (cgroups/subsystems/cpuacct.cpp and memory.cpp
// usage()):
//
//	cpus_user_time_secs + cpus_system_time_secs  cpuacct.stat user + system    → usageCoreNanoSeconds
//	mem_total_bytes                              memory.usage_in_bytes         → usageBytes
//	mem_cache_bytes                              memory.stat total_cache
//	mem_rss_bytes                                memory.stat total_rss         → rssBytes
//	timestamp                                    when the agent sampled them   → the samples' time
//
// cadvisor's working set is usage minus total_inactive_file, which Mesos does not report; its whole
// page cache (total_cache, a superset of the inactive file pages) is taken out instead, so the working
// set here is mem_total_bytes − mem_cache_bytes (never below 0): resident anonymous memory and kernel
// memory, without file pages a container could have reclaimed. An agent with posix/mem reports only
// mem_rss_bytes, which is then the working set. A container whose statistics lack cpu or memory (the
// simulator in process mode reports neither) has no cpu or memory stats, as a kubelet omits what
// cadvisor does not have.
//
// Pods: the sum of their running containers, as the kubelet's CRI stats provider computes a pod's
// figures when it has no pod cgroup (cri_stats_provider.go addPodCPUMemoryStats: "Sum Pod cpu and
// memory stats from containers stats"). The pod's parent container (its sandbox executor's) also holds
// the sandbox executor's own process, which a kubelet would not count.
//
// Node: the agent host, read from /proc as the kubelet's cadvisor reads the machine's root cgroup:
// cpu = the non-idle times of /proc/stat's cpu line (user, nice, system, irq, softirq, steal);
// memory usage = MemTotal − MemFree, working set = usage − Inactive(file), available = MemTotal −
// working set (the kubelet's rule for a limited container, the machine's capacity being the root's
// limit), rss = AnonPages; start time = btime. Several agents on one host (the local cluster) each
// report that host.

// StatsProvider computes the node's summary; Server serves it on /stats/summary and /metrics/resource.
type StatsProvider interface {
	Summary(ctx context.Context, nodeName string) (*statsapi.Summary, error)
}

// ContainerUsage returns the agent's live containers' statistics by ContainerID.value.
type ContainerUsage interface {
	ContainerStatistics(ctx context.Context) (map[string]mesos.ResourceStatistics, error)
}

// RunningContainer is one running container of a hosted pod.
type RunningContainer struct {
	Name string
	// ID is the running attempt's Mesos ContainerID.value.
	ID        string
	StartTime metav1.Time
}

// RunningPod is a hosted pod whose task runs, with its running containers.
type RunningPod struct {
	Ref        statsapi.PodReference
	StartTime  metav1.Time
	Containers []RunningContainer
}

// PodLister lists the hosted pods whose task runs.
type PodLister interface {
	RunningPods() []RunningPod
}

var _ PodLister = (*Registry)(nil)

// RunningPods implements PodLister: the pods whose task has not ended, with the containers (init
// containers too: sidecars) whose status says running, in name order.
func (r *Registry) RunningPods() []RunningPod {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]RunningPod, 0, len(r.pods))
	for _, p := range r.pods {
		if _, ended := r.ended[p.pod.UID]; ended {
			continue
		}
		rp := RunningPod{Ref: statsapi.PodReference{Name: p.pod.Name, Namespace: p.pod.Namespace, UID: string(p.pod.UID)}}
		if p.status.StartTime != nil {
			rp.StartTime = *p.status.StartTime
		}
		// Running ephemeral containers too: the kubelet's CRI stats list every container of the sandbox.
		for _, list := range [][]corev1.ContainerStatus{p.status.InitContainerStatuses, p.status.ContainerStatuses, p.status.EphemeralContainerStatuses} {
			for _, cs := range list {
				id := runtimeID(cs.ContainerID)
				if cs.State.Running == nil || id == "" {
					continue
				}
				rp.Containers = append(rp.Containers, RunningContainer{Name: cs.Name, ID: id, StartTime: cs.State.Running.StartedAt})
			}
		}
		out = append(out, rp)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Ref, out[j].Ref
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	return out
}

// MesosUsage is ContainerUsage from the agent operator API's GET_CONTAINERS.
type MesosUsage struct {
	sender agentcalls.Sender
}

var _ ContainerUsage = (*MesosUsage)(nil)

// NewMesosUsage returns a MesosUsage for the agent at agentURL (http://<agent>/api/v1); a call waits
// at most timeout for the answer's headers (10 s when 0). agent, at most one, is the calls' token and
// TLS configuration (package agentclient).
func NewMesosUsage(agentURL string, timeout time.Duration, agent ...agentclient.Options) *MesosUsage {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var opts agentclient.Options
	if len(agent) > 0 {
		opts = agent[0]
	}
	cli := opts.Client(agentURL, httpcli.Transport(func(t *http.Transport) { t.ResponseHeaderTimeout = timeout }))
	return &MesosUsage{sender: httpagent.NewSender(cli.Send)}
}

// ContainerStatistics implements ContainerUsage.
func (m *MesosUsage) ContainerStatistics(ctx context.Context) (map[string]mesos.ResourceStatistics, error) {
	yes := true
	call := agentcalls.GetContainers()
	call.GetContainers = &agent.Call_GetContainers{ShowNested: &yes, ShowStandalone: &yes}
	resp, err := m.sender.Send(ctx, agentcalls.NonStreaming(call))
	if resp != nil {
		defer resp.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("GET_CONTAINERS: %w", err)
	}
	var r agent.Response
	if err := mesosdecode.Decode(resp, &r); err != nil {
		return nil, fmt.Errorf("decoding GET_CONTAINERS: %w", err)
	}
	out := map[string]mesos.ResourceStatistics{}
	for _, c := range r.GetGetContainers().GetContainers() {
		if st := c.ResourceStatistics; st != nil {
			out[c.ContainerID.Value] = *st
		}
	}
	return out, nil
}

// HostStats reads the node's figures from a procfs.
type HostStats struct {
	// ProcRoot is where procfs is mounted (default /proc).
	ProcRoot string
}

// Node returns the host's cpu and memory stats at now, and its boot time.
func (h HostStats) Node(now time.Time) (*statsapi.CPUStats, *statsapi.MemoryStats, time.Time, error) {
	root := h.ProcRoot
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("reading %s/stat: %w", root, err)
	}
	mi, err := fs.Meminfo()
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("reading %s/meminfo: %w", root, err)
	}
	c := st.CPUTotal
	busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	cpuNs := uint64(math.Round(busy * 1e9))
	ts := metav1.NewTime(now)
	cpu := &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: &cpuNs}
	if mi.MemTotalBytes == nil || mi.MemFreeBytes == nil {
		return nil, nil, time.Time{}, fmt.Errorf("%s/meminfo lacks MemTotal or MemFree", root)
	}
	total := *mi.MemTotalBytes
	usage := total - min(*mi.MemFreeBytes, total)
	ws := usage
	if mi.InactiveFileBytes != nil {
		ws -= min(*mi.InactiveFileBytes, usage)
	}
	avail := total - ws
	mem := &statsapi.MemoryStats{Time: ts, UsageBytes: &usage, WorkingSetBytes: &ws, AvailableBytes: &avail}
	if mi.AnonPagesBytes != nil {
		rss := *mi.AnonPagesBytes
		mem.RSSBytes = &rss
	}
	return cpu, mem, time.Unix(int64(st.BootTime), 0), nil
}

// Stats is the StatsProvider of an executor: its pods from Pods, their containers' usage from Usage,
// the node from Host.
type Stats struct {
	Pods  PodLister
	Usage ContainerUsage
	Host  HostStats
	Clock clock.PassiveClock // default clock.RealClock{}

	mu   sync.Mutex
	prev map[string]cpuSample // last sample per container ID, for usageNanoCores
}

type cpuSample struct {
	at time.Time
	ns uint64
}

var _ StatsProvider = (*Stats)(nil)

// Summary implements StatsProvider.
func (s *Stats) Summary(ctx context.Context, nodeName string) (*statsapi.Summary, error) {
	var clk clock.PassiveClock = clock.RealClock{}
	if s.Clock != nil {
		clk = s.Clock
	}
	pods := s.Pods.RunningPods()
	usage, err := s.Usage.ContainerStatistics(ctx)
	if err != nil {
		return nil, err
	}
	now := clk.Now()
	cpu, mem, boot, err := s.Host.Node(now)
	if err != nil {
		return nil, err
	}
	sum := &statsapi.Summary{
		Node: statsapi.NodeStats{NodeName: nodeName, StartTime: metav1.NewTime(boot), CPU: cpu, Memory: mem},
		Pods: make([]statsapi.PodStats, 0, len(pods)),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]cpuSample, len(s.prev))
	for _, p := range pods {
		ps := statsapi.PodStats{PodRef: p.Ref, StartTime: p.StartTime, Containers: []statsapi.ContainerStats{}}
		for _, c := range p.Containers {
			cs := statsapi.ContainerStats{Name: c.Name, StartTime: c.StartTime}
			if st, ok := usage[c.ID]; ok {
				cs.CPU = s.containerCPU(c.ID, st, seen)
				cs.Memory = containerMemory(st)
			}
			addToPod(&ps, &cs)
			ps.Containers = append(ps.Containers, cs)
		}
		sum.Pods = append(sum.Pods, ps)
	}
	s.prev = seen
	return sum, nil
}

// containerCPU is the container's cumulative cpu and, from the previous sample, its rate
// (usageNanoCores, as cadvisor computes it between two housekeeping samples).
func (s *Stats) containerCPU(id string, st mesos.ResourceStatistics, seen map[string]cpuSample) *statsapi.CPUStats {
	if st.CPUsUserTimeSecs == nil && st.CPUsSystemTimeSecs == nil {
		return nil
	}
	secs := st.GetCPUsUserTimeSecs() + st.GetCPUsSystemTimeSecs()
	ns := uint64(math.Round(secs * 1e9))
	at := sampleTime(st.Timestamp)
	out := &statsapi.CPUStats{Time: metav1.NewTime(at), UsageCoreNanoSeconds: &ns}
	cur := cpuSample{at: at, ns: ns}
	if prev, ok := s.prev[id]; ok {
		if dt := cur.at.Sub(prev.at); dt > 0 && cur.ns >= prev.ns {
			rate := uint64(float64(cur.ns-prev.ns) / dt.Seconds())
			out.UsageNanoCores = &rate
		} else if dt <= 0 {
			cur = prev // the same sample again (the agent's clock did not move): keep the base
		}
	}
	seen[id] = cur
	return out
}

// containerMemory maps the memory statistics (see the package comment for the working set).
func containerMemory(st mesos.ResourceStatistics) *statsapi.MemoryStats {
	var ws uint64
	m := &statsapi.MemoryStats{Time: metav1.NewTime(sampleTime(st.Timestamp))}
	switch {
	case st.MemTotalBytes != nil:
		usage := *st.MemTotalBytes
		m.UsageBytes = &usage
		ws = usage - min(st.GetMemCacheBytes(), usage)
	case st.MemRSSBytes != nil:
		ws = *st.MemRSSBytes
	default:
		return nil
	}
	m.WorkingSetBytes = &ws
	if st.MemRSSBytes != nil {
		rss := *st.MemRSSBytes
		m.RSSBytes = &rss
	}
	// A limit Kubernetes does not set is sent as Mesos' infinity, which the agent reports as the
	// machine's memory: cadvisor leaves availableBytes out for an unlimited container, and so does
	// this when the limit is not below the host's total.
	if st.MemLimitBytes != nil && *st.MemLimitBytes > ws && *st.MemLimitBytes < hostMemTotal() {
		avail := *st.MemLimitBytes - ws
		m.AvailableBytes = &avail
	}
	return m
}

// hostMemTotal is MemTotal in bytes (math.MaxUint64 when unknown: every limit counts as set).
var hostMemTotal = sync.OnceValue(func() uint64 {
	if fs, err := procfs.NewFS(procfs.DefaultMountPoint); err == nil {
		if mi, err := fs.Meminfo(); err == nil && mi.MemTotalBytes != nil {
			return *mi.MemTotalBytes
		}
	}
	return math.MaxUint64
})

// addToPod adds a container's figures to its pod's (cri_stats_provider.go addPodCPUMemoryStats).
func addToPod(ps *statsapi.PodStats, cs *statsapi.ContainerStats) {
	if cs.CPU != nil {
		if ps.CPU == nil {
			ps.CPU = &statsapi.CPUStats{}
		}
		ps.CPU.Time = cs.CPU.Time
		ps.CPU.UsageCoreNanoSeconds = addPtr(ps.CPU.UsageCoreNanoSeconds, cs.CPU.UsageCoreNanoSeconds)
		ps.CPU.UsageNanoCores = addPtr(ps.CPU.UsageNanoCores, cs.CPU.UsageNanoCores)
	}
	if cs.Memory != nil {
		if ps.Memory == nil {
			ps.Memory = &statsapi.MemoryStats{}
		}
		ps.Memory.Time = cs.Memory.Time
		ps.Memory.AvailableBytes = addPtr(ps.Memory.AvailableBytes, cs.Memory.AvailableBytes)
		ps.Memory.UsageBytes = addPtr(ps.Memory.UsageBytes, cs.Memory.UsageBytes)
		ps.Memory.WorkingSetBytes = addPtr(ps.Memory.WorkingSetBytes, cs.Memory.WorkingSetBytes)
		ps.Memory.RSSBytes = addPtr(ps.Memory.RSSBytes, cs.Memory.RSSBytes)
	}
}

func addPtr(a, b *uint64) *uint64 {
	var v uint64
	if a != nil {
		v = *a
	}
	if b != nil {
		v += *b
	}
	return &v
}

// sampleTime converts Mesos' timestamp (seconds since the epoch, a double).
func sampleTime(ts float64) time.Time {
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC()
}

// serveStatsSummary is the kubelet's /stats/summary (GET, or POST with a body naming only_cpu_and_memory):
// the summary as JSON. Only cpu and memory are known, so both forms answer the same.
func (s *Server) serveStatsSummary(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Stats == nil {
		http.Error(w, "stats are not served by this executor", http.StatusNotImplemented)
		return
	}
	sum, err := s.cfg.Stats.Summary(r.Context(), s.currentNodeName())
	if err != nil {
		// The kubelet's text: handleSummary's "Internal Error: failed to get summary stats".
		s.log.WithError(err).Warn("computing the stats summary")
		http.Error(w, "Internal Error: failed to get summary stats: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(sum)
}

// Descriptions of the kubelet's resource metrics (pkg/kubelet/metrics/collectors/resource_metrics.go);
// component-base prefixes a stable metric's help with "[STABLE] ", an alpha one's with "[ALPHA] ".
var (
	nodeCPUUsageDesc = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemoryUsageDesc = prometheus.NewDesc("node_memory_working_set_bytes",
		"[STABLE] Current working set of the node in bytes", nil, nil)
	containerCPUUsageDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the container in core-seconds", []string{"container", "pod", "namespace"}, nil)
	containerMemoryUsageDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"[STABLE] Current working set of the container in bytes", []string{"container", "pod", "namespace"}, nil)
	containerStartTimeDesc = prometheus.NewDesc("container_start_time_seconds",
		"[STABLE] Start time of the container since unix epoch in seconds", []string{"container", "pod", "namespace"}, nil)
	podCPUUsageDesc = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	podMemoryUsageDesc = prometheus.NewDesc("pod_memory_working_set_bytes",
		"[STABLE] Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	scrapeErrorDesc = prometheus.NewDesc("scrape_error",
		"[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
	resourceScrapeErrorDesc = prometheus.NewDesc("resource_scrape_error",
		"[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// resourceCollector is the kubelet's resourceMetricsCollector over a StatsProvider: every series
// from one summary, each sample with its time, scrape_error 1 (and nothing else) when the summary
// fails.
type resourceCollector struct {
	ctx   context.Context
	stats StatsProvider
	node  string
	log   logrus.FieldLogger
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPUUsageDesc, nodeMemoryUsageDesc, containerStartTimeDesc, containerCPUUsageDesc,
		containerMemoryUsageDesc, podCPUUsageDesc, podMemoryUsageDesc, scrapeErrorDesc, resourceScrapeErrorDesc} {
		ch <- d
	}
}

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	var errorCount float64
	defer func() {
		ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, errorCount)
		ch <- prometheus.MustNewConstMetric(resourceScrapeErrorDesc, prometheus.GaugeValue, errorCount)
	}()
	sum, err := c.stats.Summary(c.ctx, c.node)
	if err != nil {
		errorCount = 1
		c.log.WithError(err).Warn("Error getting summary for resourceMetric prometheus endpoint")
		return
	}
	timed := func(t metav1.Time, desc *prometheus.Desc, vt prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.NewMetricWithTimestamp(t.Time, prometheus.MustNewConstMetric(desc, vt, v, labels...))
	}
	if n := sum.Node.CPU; n != nil && n.UsageCoreNanoSeconds != nil {
		timed(n.Time, nodeCPUUsageDesc, prometheus.CounterValue, float64(*n.UsageCoreNanoSeconds)/1e9)
	}
	if n := sum.Node.Memory; n != nil && n.WorkingSetBytes != nil {
		timed(n.Time, nodeMemoryUsageDesc, prometheus.GaugeValue, float64(*n.WorkingSetBytes))
	}
	for _, p := range sum.Pods {
		for _, cs := range p.Containers {
			if cs.StartTime.Unix() > 0 {
				ch <- prometheus.MustNewConstMetric(containerStartTimeDesc, prometheus.GaugeValue,
					float64(cs.StartTime.UnixNano())/1e9, cs.Name, p.PodRef.Name, p.PodRef.Namespace)
			}
			if cs.CPU != nil && cs.CPU.UsageCoreNanoSeconds != nil {
				timed(cs.CPU.Time, containerCPUUsageDesc, prometheus.CounterValue, float64(*cs.CPU.UsageCoreNanoSeconds)/1e9,
					cs.Name, p.PodRef.Name, p.PodRef.Namespace)
			}
			if cs.Memory != nil && cs.Memory.WorkingSetBytes != nil {
				timed(cs.Memory.Time, containerMemoryUsageDesc, prometheus.GaugeValue, float64(*cs.Memory.WorkingSetBytes),
					cs.Name, p.PodRef.Name, p.PodRef.Namespace)
			}
		}
		if p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil {
			timed(p.CPU.Time, podCPUUsageDesc, prometheus.CounterValue, float64(*p.CPU.UsageCoreNanoSeconds)/1e9, p.PodRef.Name, p.PodRef.Namespace)
		}
		if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
			timed(p.Memory.Time, podMemoryUsageDesc, prometheus.GaugeValue, float64(*p.Memory.WorkingSetBytes), p.PodRef.Name, p.PodRef.Namespace)
		}
	}
}

// serveResourceMetrics is the kubelet's /metrics/resource: the Prometheus text of one summary.
func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Stats == nil {
		http.Error(w, "resource metrics are not served by this executor", http.StatusNotImplemented)
		return
	}
	// A registry per scrape: the collector computes its summary within the request's context.
	reg := prometheus.NewRegistry()
	reg.MustRegister(&resourceCollector{ctx: r.Context(), stats: s.cfg.Stats, node: s.currentNodeName(), log: s.log})
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}
