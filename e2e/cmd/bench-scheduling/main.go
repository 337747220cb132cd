// Command bench-scheduling is the scheduling-throughput benchmark of issue 13, the way Kubernetes
// measures itself (scheduler_perf, clusterloader2, kubemark's hollow nodes): on ONE control plane
// (etcd, kube-apiserver, kube-controller-manager from the cached Kubernetes build) it measures, per
// size (agents x pods) and per client-limit setting,
//
//   - a raw write-rate probe: Bindings per second one client with high limits gets accepted;
//   - kubemesos: the real `kubemesos framework` process binding and launching the pods on simulated
//     Mesos agents (mesossim, process mode) whose executors run the hollow runtime
//     (KUBEMESOS_RUNTIME=hollow, package executor/hollow: containers only report running);
//   - kube-scheduler v1.37.2 (its own process) binding the same number of pods onto as many fake
//     Ready Nodes with the kubemesos Nodes' allocatable.
//
// Pods (10m CPU, 8Mi) are created by parallel clients with high limits. It writes report.json,
// chart.svg and table.txt into --out and prints the table.
//
//	make bench-scheduling BENCH_FLAGS='--sizes 100x1000 --qps default,high'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/e2e/schedbench"
)

type size struct{ agents, pods int }

type options struct {
	sizes       []size
	limits      []string
	out         string
	concurrency int
	clients     int
	timeout     time.Duration
	note        string
	keepState   bool
	executors   string
	repoDir     string
	// frameworkArgs are added to the framework's command line (trying a flag, --log-level=debug).
	frameworkArgs []string
	// noKubeScheduler skips kube-scheduler's runs: quicker iterations on kubemesos alone.
	noKubeScheduler bool
	// frameworkMemoryLimit is the framework's GOMEMLIMIT, as the chart sets it from the container's
	// memory limit ("" leaves the Go runtime's default, no limit).
	frameworkMemoryLimit string
}

func parseSizes(s string) ([]size, error) {
	var out []size
	for _, part := range strings.Split(s, ",") {
		a, p, ok := strings.Cut(strings.TrimSpace(part), "x")
		agents, err1 := strconv.Atoi(a)
		pods, err2 := strconv.Atoi(p)
		if !ok || err1 != nil || err2 != nil || agents <= 0 || pods <= 0 {
			return nil, fmt.Errorf("--sizes: %q is not AGENTSxPODS", part)
		}
		out = append(out, size{agents, pods})
	}
	return out, nil
}

func parseLimits(s string) ([]string, error) {
	var out []string
	for _, l := range strings.Split(s, ",") {
		switch l = strings.TrimSpace(l); l {
		case limitsDefault, limitsHigh:
			out = append(out, l)
		default:
			return nil, fmt.Errorf("--qps: %q: want default, high or default,high", l)
		}
	}
	return out, nil
}

const (
	limitsDefault      = "default"
	limitsHigh         = "high"
	executorsAuto      = "auto"
	executorsProcess   = "process"
	executorsInProcess = "in-process"
	// autoProcessAgents is the most agents whose executors auto runs as processes (~60 MB each).
	autoProcessAgents = 200
	// highQPS is scheduler_perf's client limit (QPS and burst).
	highQPS = 5000
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sim-host" {
		if err := runSimHost(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "sim-host:", err)
			os.Exit(1)
		}
		return
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	if err := run(os.Args[1:], os.Stdout, log); err != nil {
		log.WithError(err).Error("bench-scheduling failed")
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer, log *logrus.Logger) error {
	var o options
	fs := flag.NewFlagSet("bench-scheduling", flag.ContinueOnError)
	sizes := fs.String("sizes", "100x1000", "comma-separated AGENTSxPODS, e.g. 100x1000,1000x10000,5000x30000")
	limits := fs.String("qps", "default,high", "client limits: default (each system's own), high (QPS/burst 5000 for both, as scheduler_perf), or both")
	fs.StringVar(&o.out, "out", "", "output directory (default <repo>/.local/bench/<UTC time>)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "parallel pod creators")
	fs.IntVar(&o.clients, "clients", 8, "API clients (connections) the creators share")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "deadline of each measurement")
	fs.StringVar(&o.note, "note", "", "what else ran on the machine (recorded in the report)")
	fs.StringVar(&o.executors, "executors", executorsAuto, "how agents run their executors: process (the kubemesos binary, fetched from the framework, one process per agent), in-process (executor.Run in a simulator child process), auto (process up to 200 agents)")
	fs.Func("framework-arg", "an argument added to the framework's command line (repeatable), e.g. --framework-arg=--log-level=debug", func(v string) error {
		o.frameworkArgs = append(o.frameworkArgs, v)
		return nil
	})
	fs.StringVar(&o.frameworkMemoryLimit, "framework-memory-limit", "", "the framework's GOMEMLIMIT (e.g. 280MiB), as the chart derives it from the Deployment's memory limit; empty: none")
	fs.BoolVar(&o.noKubeScheduler, "no-kube-scheduler", false, "measure kubemesos only (for iterating; the report then has no kube-scheduler rows)")
	render := fs.String("render", "", "only re-render chart.svg and table.txt of this report.json (into its directory)")
	fs.BoolVar(&o.keepState, "keep-state", false, "keep the agents' sandboxes and the control plane's data (logs are always kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if *render != "" {
		return renderReport(*render, stdout)
	}
	if o.sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	if o.limits, err = parseLimits(*limits); err != nil {
		return err
	}
	switch o.executors {
	case executorsAuto, executorsProcess, executorsInProcess:
	default:
		return fmt.Errorf("--executors %q: want process, in-process or auto", o.executors)
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	mod, err := kubebins.FindModuleDir(wd)
	if err != nil {
		return err
	}
	o.repoDir = filepath.Dir(mod)
	if o.out == "" {
		o.out = filepath.Join(o.repoDir, ".local", "bench", time.Now().UTC().Format("20060102-150405"))
	}
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.out, "logs"), 0o755); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	report := &schedbench.Report{Started: time.Now().UTC(), Commit: gitCommit(o.repoDir), Note: o.note, Machine: machine(),
		FrameworkMemoryLimit: o.frameworkMemoryLimit}
	load := startLoadSampler(ctx)

	bins, err := kubebins.Ensure(ctx, kubebins.Options{Log: os.Stderr})
	if err != nil {
		return fmt.Errorf("Kubernetes binaries: %w", err)
	}
	bin := filepath.Join(o.out, "bin", "kubemesos")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kubemesos")
	build.Dir = o.repoDir
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building kubemesos: %w\n%s", err, out)
	}
	state := filepath.Join(o.out, "state")
	// A fresh etcd, simulator and sandboxes every run (the control plane keeps a given Dir's data).
	if err := os.RemoveAll(state); err != nil {
		return err
	}
	cp, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(state, "kube"), Binaries: &bins, Log: log,
		// The fake Nodes have no kubelet renewing their Leases: they must stay Ready through a run.
		// Its node lifecycle controller lifts the new Nodes' not-ready taints at its client's default
		// 20 QPS, about 4.5 Nodes a second: 1,000 agents waited almost 4 minutes for it.
		ExtraControllerManagerArgs: []string{"--node-monitor-grace-period=1h", "--kube-api-qps=500", "--kube-api-burst=1000"},
		// Clients at QPS 5000 are what is measured, not the API server's inflight limits.
		// Profiling on: the harness saves the API server's CPU profile of each measurement.
		ExtraAPIServerArgs: []string{"--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000", "--profiling=true"},
	})
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	defer cp.Stop()
	defer func() {
		for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			_ = copyFile(cp.LogPath(c), filepath.Join(o.out, "logs", c+".log"))
		}
		if !o.keepState {
			_ = os.RemoveAll(filepath.Join(state, "mesos"))
		}
	}()

	b := &bench{o: o, cp: cp, log: log, bin: bin, state: state}
	if err := b.setup(ctx); err != nil {
		return err
	}
	var runErr error
	for _, sz := range o.sizes {
		probe, err := b.probe(ctx, sz)
		if err != nil {
			runErr = err
			break
		}
		log.WithFields(logrus.Fields{"size": fmt.Sprintf("%dx%d", sz.agents, sz.pods), "binds/s": fmt.Sprintf("%.0f", probe.PerSecond)}).Info("write-rate probe")
		for _, l := range o.limits {
			r := schedbench.Run{Agents: sz.agents, Pods: sz.pods, Limits: l, WriteLimit: probe}
			alloc, km, err := b.kubemesos(ctx, sz, l)
			r.Kubemesos = km
			if err != nil {
				runErr = fmt.Errorf("kubemesos %dx%d %s: %w", sz.agents, sz.pods, l, err)
				r.Error = runErr.Error()
				report.Runs = append(report.Runs, r)
				break
			}
			if o.noKubeScheduler {
				report.Runs = append(report.Runs, r)
				_ = b.write(report, load)
				continue
			}
			if r.KubeScheduler, err = b.kubeScheduler(ctx, sz, l, alloc); err != nil {
				runErr = fmt.Errorf("kube-scheduler %dx%d %s: %w", sz.agents, sz.pods, l, err)
				r.Error = runErr.Error()
				report.Runs = append(report.Runs, r)
				break
			}
			report.Runs = append(report.Runs, r)
			_ = b.write(report, load) // partial results survive a later failure
		}
		if runErr != nil {
			break
		}
	}
	if err := b.write(report, load); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprintf(stdout, "\nbench-scheduling: %s (load average at start %s, end %s, 1-min max %.2f; %d CPUs)\n",
		o.out, report.Machine.LoadAvg, report.Machine.LoadEnd, report.Machine.Load1Max, report.Machine.CPUs)
	if err := report.WriteTable(stdout); err != nil {
		return err
	}
	return runErr
}

// write saves report.json, chart.svg and table.txt.
func (b *bench) write(report *schedbench.Report, load *loadSampler) error {
	report.Machine.LoadEnd = readLoadAvg()
	report.Machine.Load1Max = load.max()
	if err := report.WriteJSON(filepath.Join(b.o.out, "report.json")); err != nil {
		return err
	}
	return writeViews(report, b.o.out)
}

// renderReport rewrites the chart and table of a saved report.
func renderReport(path string, stdout io.Writer) error {
	report, err := schedbench.ReadJSON(path)
	if err != nil {
		return err
	}
	if err := writeViews(report, filepath.Dir(path)); err != nil {
		return err
	}
	return report.WriteTable(stdout)
}

// writeViews writes chart.svg and table.txt of report into dir.
func writeViews(report *schedbench.Report, dir string) error {
	svg, err := os.Create(filepath.Join(dir, "chart.svg"))
	if err != nil {
		return err
	}
	if err := schedbench.WriteSVG(svg, report); err != nil {
		svg.Close()
		return err
	}
	if err := svg.Close(); err != nil {
		return err
	}
	table, err := os.Create(filepath.Join(dir, "table.txt"))
	if err != nil {
		return err
	}
	defer table.Close()
	return report.WriteTable(table)
}

func gitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func machine() schedbench.Machine {
	m := schedbench.Machine{CPUs: runtime.NumCPU(), LoadAvg: readLoadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemBytes = kb << 10
			}
		}
	}
	return m
}

func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
