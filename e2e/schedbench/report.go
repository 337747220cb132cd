package schedbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one run of the benchmark: every size and limit setting measured on one API server.
type Report struct {
	Started time.Time `json:"started"`
	Commit  string    `json:"commit"`
	Machine Machine   `json:"machine"`
	// Note says what else ran on the machine meanwhile.
	Note string `json:"note,omitempty"`
	// FrameworkMemoryLimit is the framework's GOMEMLIMIT in the run, if any.
	FrameworkMemoryLimit string `json:"framework_memory_limit,omitempty"`
	Runs                 []Run  `json:"runs"`
}

// Machine describes where it ran.
type Machine struct {
	CPUs     int     `json:"cpus"`
	MemBytes int64   `json:"mem_bytes"`
	Kernel   string  `json:"kernel"`
	LoadAvg  string  `json:"loadavg_start"`
	LoadEnd  string  `json:"loadavg_end"`
	Load1Max float64 `json:"load1_max"`
}

// Run is one size at one client-limit setting.
type Run struct {
	Agents int `json:"agents"`
	Pods   int `json:"pods"`
	// Limits is "default" (each system's own client limits) or "high" (QPS and burst 5000 for
	// both, as scheduler_perf runs).
	Limits string `json:"limits"`
	// WriteLimit is the raw probe: Bindings per second one client with high limits gets accepted.
	WriteLimit Probe `json:"write_limit"`
	// Error says why the run did not complete (its systems' numbers are then partial or zero).
	Error         string `json:"error,omitempty"`
	KubeScheduler System `json:"kube_scheduler"`
	Kubemesos     System `json:"kubemesos"`
}

// Probe is the raw write-rate probe's result.
type Probe struct {
	Writes      int     `json:"writes"`
	Concurrency int     `json:"concurrency"`
	PerSecond   float64 `json:"per_second"`
	Errors      int     `json:"errors"`
}

// System is what one system (kube-scheduler or kubemesos) did with the pods.
type System struct {
	// CreatePerSecond is the rate at which the harness created the pods.
	CreatePerSecond float64 `json:"create_per_second"`
	// Bound and Running count the pods that got there before the deadline.
	Bound   int `json:"bound"`
	Running int `json:"running"`
	// BindsPerSecond is Bound over the time from the first create to the last bind; RunningPerSecond
	// likewise to the last pod Running (kubemesos: kube-scheduler's pods stay Pending on fake Nodes).
	BindsPerSecond   float64     `json:"binds_per_second"`
	RunningPerSecond float64     `json:"running_per_second,omitempty"`
	CreateToBound    Percentiles `json:"create_to_bound"`
	CreateToRunning  Percentiles `json:"create_to_running,omitempty"`
	// APIRequestsPerPod are the API server's apiserver_request_total increments over the
	// measurement, minus the harness' own pod creates, per pod, by "verb resource[/subresource]";
	// APIWritesPerPod sums the mutating ones.
	APIRequestsPerPod map[string]float64 `json:"api_requests_per_pod"`
	APIWritesPerPod   float64            `json:"api_writes_per_pod"`
	// MesosCallsPerPod are the framework's calls to the master, per pod, by "api TYPE".
	MesosCallsPerPod map[string]float64 `json:"mesos_calls_per_pod,omitempty"`
	// StatusUpdatesPerPod are the task status updates the framework received, per pod.
	StatusUpdatesPerPod float64 `json:"status_updates_per_pod,omitempty"`
	// Scheduler is kube-scheduler's or the framework's process; Executors the agents' executor
	// processes summed (CPU over the measurement, peak RSS each process' VmHWM summed).
	Scheduler Usage `json:"scheduler"`
	// SchedulerHeapLiveBytes is the framework's heap in use right after a GC as the last pod ran
	// (go_memstats_heap_inuse_bytes): what its RSS would approach under a tight GOMEMLIMIT.
	SchedulerHeapLiveBytes int64 `json:"scheduler_heap_live_bytes,omitempty"`
	// ExecutorsInProcess says the executors ran in-process in one simulator process (large sizes):
	// Executors is then that process, the simulated master and agents included.
	ExecutorsInProcess bool  `json:"executors_in_process,omitempty"`
	Executors          Usage `json:"executors"`
	MaxExecutorPeakMB  int64 `json:"max_executor_peak_rss_mb,omitempty"`
	// AgentsWithoutExecutor counts the agents the warm-up could not start an executor on in 10
	// minutes (kubemesos placed none of its pods there); pods placed there start one while measured.
	AgentsWithoutExecutor int `json:"agents_without_executor,omitempty"`
	// APIServerCPUSeconds is kube-apiserver's CPU over the measurement: what each system costs the
	// shared API server (etcd is embedded in the harness and not counted).
	APIServerCPUSeconds float64 `json:"apiserver_cpu_seconds,omitempty"`
	// Seconds is how long the measurement took (first create to the last pod counted or the deadline).
	Seconds float64 `json:"seconds"`
}

// WriteJSON writes r indented to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON reads a report WriteJSON wrote.
func ReadJSON(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	return &r, json.Unmarshal(b, &r)
}

const mb = 1 << 20

// WriteTable prints one line per run: kube-scheduler vs kubemesos vs the write limit.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "agents/pods\tlimits\tcreate/s\twrite limit/s\tkube-scheduler binds/s\tkubemesos binds/s\tkubemesos Running/s (×ks)\tkubemesos create→Running p50/p90/p99\tfw CPU s / peak MB\texecutors CPU s / peak MB\tAPI writes/pod ks | km\tAPI server CPU ms/pod ks | km\tMesos calls/pod")
	for _, run := range r.Runs {
		if run.Error != "" {
			fmt.Fprintf(tw, "%d/%d\t%s\tFAILED: %s\n", run.Agents, run.Pods, run.Limits, run.Error)
			continue
		}
		ks, km := run.KubeScheduler, run.Kubemesos
		ratio := "-"
		if ks.BindsPerSecond > 0 {
			ratio = fmt.Sprintf("%.2f×", km.RunningPerSecond/ks.BindsPerSecond)
		}
		fmt.Fprintf(tw, "%d/%d\t%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f (%s)\t%.2f/%.2f/%.2f s\t%.1f / %d\t%.1f / %d\t%.2f | %.2f\t%.1f | %.1f\t%.2f\n",
			run.Agents, run.Pods, run.Limits, km.CreatePerSecond, run.WriteLimit.PerSecond,
			ks.BindsPerSecond, km.BindsPerSecond, km.RunningPerSecond, ratio,
			km.CreateToRunning.P50, km.CreateToRunning.P90, km.CreateToRunning.P99,
			km.Scheduler.CPUSeconds, km.Scheduler.PeakRSSBytes/mb,
			km.Executors.CPUSeconds, km.Executors.PeakRSSBytes/mb,
			ks.APIWritesPerPod, km.APIWritesPerPod, perPodMS(ks.APIServerCPUSeconds, run.Pods), perPodMS(km.APIServerCPUSeconds, run.Pods),
			sumValues(km.MesosCallsPerPod))
	}
	return tw.Flush()
}

func perPodMS(seconds float64, pods int) float64 {
	if pods == 0 {
		return 0
	}
	return seconds * 1000 / float64(pods)
}

func sumValues(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return round3(s)
}

// FormatCounts renders per-pod counts as "k=v, ..." sorted by key, for logs and docs.
func FormatCounts(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%g", k, m[k])
	}
	return strings.Join(parts, ", ")
}
