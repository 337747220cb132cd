// Command conformance runs Kubernetes' [NodeConformance] specs (k8s.io/kubernetes' e2e suite, the
// release e2e/go.mod pins) against a local kubemesos cluster and writes JUnit XML and a one-line
// summary of the selected specs:
//
//	make conformance    # = cd e2e && go run ./cmd/conformance
//
// It builds e2e.test and ginkgo into the cache (package conformance; ~16 minutes the first time),
// lists the selection with a dry run (the skip list's entries must all be in it), starts the cluster
// with local-up (its pod network, kube-proxy and CoreDNS: the specs need Services and DNS; no stand-in
// for images the store lacks), runs the selection with ginkgo on --procs processes and stops the
// cluster. Results go to <repo>/.local/conformance/<UTC time>/ (and .local/conformance/latest):
// summary.txt, junit.xml (the selected specs only), failures.txt, images-missing.txt, the suite's log
// e2e.log, ginkgo's own reports under ginkgo/, and local-up's log.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubemesos/kubemesos/e2e/conformance"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/internal/deathsig"
)

type config struct {
	results    string
	procs      int
	agents     int
	timeout    time.Duration
	subset     string
	dryRun     bool
	kubeconfig string
	cacheDir   string
	skipList   string
	repoList   string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.results, "results", "", "results root; each run writes <root>/<UTC time> and points <root>/latest at it (default <repo>/.local/conformance)")
	flag.IntVar(&cfg.procs, "procs", 2, "ginkgo processes running specs in parallel (2 cores: more only slows each spec)")
	flag.IntVar(&cfg.agents, "agents", 3, "simulated Mesos agents (Nodes) of the local cluster")
	flag.DurationVar(&cfg.timeout, "timeout", 4*time.Hour, "the suite's timeout (ginkgo --timeout)")
	flag.StringVar(&cfg.subset, "subset", "", "run only the selected specs whose full name matches this regular expression (the summary then counts those)")
	flag.BoolVar(&cfg.dryRun, "dry-run", false, "list the selection and the images the store lacks, start nothing")
	flag.StringVar(&cfg.kubeconfig, "kubeconfig", "", "run against this running cluster instead of starting local-up")
	flag.StringVar(&cfg.cacheDir, "cache-dir", "", "cache root (default $KUBEMESOS_CACHE_DIR or ~/.cache/kubemesos)")
	flag.StringVar(&cfg.skipList, "skip-list", "", "the skip list (default e2e/conformance/skip.yaml)")
	flag.StringVar(&cfg.repoList, "repo-list", "", "KUBE_TEST_REPO_LIST (default e2e/conformance/repo-list.yaml)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// run returns 1 when a selected spec failed or did not run, 0 when all passed or were skipped.
func run(ctx context.Context, cfg config) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	modDir, err := kubebins.FindModuleDir(wd)
	if err != nil {
		return 0, err
	}
	repoDir := filepath.Dir(modDir)
	if cfg.results == "" {
		cfg.results = filepath.Join(repoDir, ".local", "conformance")
	}
	if cfg.skipList == "" {
		cfg.skipList = filepath.Join(modDir, "conformance", "skip.yaml")
	}
	if cfg.repoList == "" {
		cfg.repoList = filepath.Join(modDir, "conformance", "repo-list.yaml")
	}
	for _, p := range []*string{&cfg.results, &cfg.skipList, &cfg.repoList, &cfg.kubeconfig} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return 0, err
			}
		}
	}
	skip, err := conformance.LoadSkipList(cfg.skipList)
	if err != nil {
		return 0, err
	}
	out := filepath.Join(cfg.results, time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	latest := filepath.Join(cfg.results, "latest")
	_ = os.Remove(latest)
	if err := os.Symlink(filepath.Base(out), latest); err != nil {
		return 0, err
	}
	logf("results in %s", out)

	start := time.Now()
	bins, err := conformance.Ensure(ctx, conformance.Options{ModuleDir: modDir, CacheDir: cfg.cacheDir})
	if err != nil {
		return 0, err
	}
	kube, err := kubebins.Ensure(ctx, kubebins.Options{ModuleDir: modDir, CacheDir: cfg.cacheDir})
	if err != nil {
		return 0, err
	}
	suiteEnv := append(os.Environ(), "KUBE_TEST_REPO_LIST="+cfg.repoList)

	// The selection, from a dry run: what the focus and skip select, before the skip list.
	dry := filepath.Join(out, "dry-run")
	if err := os.MkdirAll(dry, 0o755); err != nil {
		return 0, err
	}
	dryRun := func(name, focus, skip string) ([]conformance.Report, error) {
		report := filepath.Join(dry, name)
		cmd := exec.CommandContext(ctx, bins.E2ETest, "--ginkgo.dry-run", "--ginkgo.no-color",
			"--ginkgo.focus="+focus, "--ginkgo.skip="+skip, "--ginkgo.json-report="+report)
		cmd.Env = suiteEnv
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dry run: %w\n%s", err, tail(b))
		}
		return conformance.ReadReport(report)
	}
	reports, err := dryRun("selection.json", conformance.Focus, conformance.Skip)
	if err != nil {
		return 0, err
	}
	selected := conformance.Selected(reports)
	if len(reports) != 1 || len(selected) == 0 {
		return 0, fmt.Errorf("dry run: %d suites, %d specs selected", len(reports), len(selected))
	}
	description := reports[0].SuiteDescription
	nodeConformance := conformance.Matching(reports, regexp.MustCompile(conformance.Focus))
	if err := skip.Check(selected); err != nil {
		return 0, fmt.Errorf("%s: %w", cfg.skipList, err)
	}
	logf("selected %d of the %d [NodeConformance] specs (focus %s, skip %s); %d on the skip list",
		len(selected), nodeConformance, conformance.Focus, conformance.Skip, len(skip))
	what := fmt.Sprintf("[NodeConformance] k8s.io/kubernetes %s on kubemesos", kubebins.KubernetesVersion)
	focus := conformance.Focus
	if cfg.subset != "" {
		re, err := regexp.Compile(cfg.subset)
		if err != nil {
			return 0, fmt.Errorf("--subset: %w", err)
		}
		selected = conformance.Subset(selected, re)
		if len(selected) == 0 {
			return 0, fmt.Errorf("--subset %q matches none of the selected specs", cfg.subset)
		}
		focus = conformance.ExactFocus(description, selected)
		what += fmt.Sprintf(" (subset %q)", cfg.subset)
		logf("--subset: %d specs", len(selected))
	}
	if err := writeLines(filepath.Join(out, "selection.txt"), selected); err != nil {
		return 0, err
	}
	// What ginkgo will run: the selection less exactly the listed specs.
	reports, err = dryRun("run.json", focus, skip.SkipRegexp(description))
	if err != nil {
		return 0, err
	}
	if err := conformance.CheckRun(selected, skip, conformance.Selected(reports)); err != nil {
		return 0, err
	}

	// The suite's images that the agents' store lacks: a spec using one fails to pull.
	store, err := imagestore.Ensure(ctx, imagestore.Options{ModuleDir: modDir, CacheDir: cfg.cacheDir})
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, bins.E2ETest, "--list-images")
	cmd.Env = suiteEnv
	listed, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("e2e.test --list-images: %w", err)
	}
	missing := conformance.MissingImages(strings.Split(string(listed), "\n"), store.Names())
	if err := writeLines(filepath.Join(out, "images-missing.txt"), missing); err != nil {
		return 0, err
	}
	logf("the image store %s lacks %d of the suite's images (images-missing.txt)", store.Dir, len(missing))
	if cfg.dryRun {
		return 0, nil
	}

	kubeconfig := cfg.kubeconfig
	if kubeconfig == "" {
		c, err := startCluster(ctx, modDir, cfg.results, out, cfg.agents)
		if err != nil {
			return 0, err
		}
		defer c.stop()
		kubeconfig = c.kubeconfig
	}

	ginkgoOut := filepath.Join(out, "ginkgo")
	if err := os.MkdirAll(ginkgoOut, 0o755); err != nil {
		return 0, err
	}
	e2eLog, err := os.Create(filepath.Join(out, "e2e.log"))
	if err != nil {
		return 0, err
	}
	defer e2eLog.Close()
	args := conformance.GinkgoArgs(bins.E2ETest, focus, skip.SkipRegexp(description), cfg.procs, cfg.timeout, ginkgoOut,
		conformance.E2EArgs(kubeconfig, kube.Kubectl, filepath.Join(out, "e2e-output")))
	logf("running %d specs on %d processes: %s %s", len(selected), cfg.procs, bins.Ginkgo, strings.Join(args, " "))
	suiteStart := time.Now()
	cmd = exec.CommandContext(ctx, bins.Ginkgo, args...)
	cmd.Env = suiteEnv
	cmd.Stdout = io.MultiWriter(os.Stdout, e2eLog)
	cmd.Stderr = cmd.Stdout
	// Ctrl-C reaches ginkgo and its spec processes as one interrupt, as in a terminal's foreground
	// group (the CLI alone does not stop the specs): they clean up and report, then exit.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Minute
	runErr := deathsig.Start(cmd)
	if runErr == nil {
		runErr = cmd.Wait()
	}
	wall := time.Since(suiteStart)

	reports, err = conformance.ReadReport(filepath.Join(ginkgoOut, "report.json"))
	if err != nil {
		return 0, fmt.Errorf("ginkgo wrote no report (%v): %w", runErr, err)
	}
	results, sum := conformance.Results(selected, skip, reports)
	sum.Wall = wall
	line := sum.Line(what) + fmt.Sprintf(" on %d processes, %d agents", cfg.procs, cfg.agents)
	if err := writeResults(out, results, sum, line); err != nil {
		return 0, err
	}
	logf("done in %s", time.Since(start).Round(time.Second))
	fmt.Println(line)
	if sum.Failed > 0 || sum.NotRun > 0 || len(sum.SuiteFailures) > 0 {
		return 1, nil
	}
	return 0, nil
}

func writeResults(out string, results []conformance.Result, sum conformance.Summary, line string) error {
	f, err := os.Create(filepath.Join(out, "junit.xml"))
	if err != nil {
		return err
	}
	if err := conformance.WriteJUnit(f, conformance.SuiteName, results, sum); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	var failures, skipped []string
	for _, r := range results {
		switch r.Outcome {
		case conformance.Failed, conformance.NotRun:
			failures = append(failures, fmt.Sprintf("%s\n  %s: %s", r.Spec, r.Outcome, indent(r.Detail)))
		case conformance.Skipped:
			skipped = append(skipped, fmt.Sprintf("%s\n  %s", r.Spec, r.Detail))
		}
	}
	for _, s := range sum.SuiteFailures {
		failures = append(failures, "suite: "+indent(s))
	}
	if err := writeLines(filepath.Join(out, "failures.txt"), failures); err != nil {
		return err
	}
	if err := writeLines(filepath.Join(out, "skipped.txt"), skipped); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "summary.txt"), []byte(line+"\n"), 0o644)
}

func indent(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }

func writeLines(path string, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "conformance: "+format+"\n", args...)
}

func tail(b []byte) string {
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// cluster is a local-up process: the same cluster `make local-up` gives, on its pod network with
// kube-proxy and CoreDNS, and without the stand-in for images the store lacks (the suite's pull
// failures must fail).
type cluster struct {
	cmd        *exec.Cmd
	exited     chan error
	kubeconfig string
}

func startCluster(ctx context.Context, modDir, results, out string, agents int) (*cluster, error) {
	bin := filepath.Join(out, "bin", "local-up")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/local-up")
	build.Dir = modDir
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building local-up: %w\n%s", err, b)
	}
	logPath := filepath.Join(out, "local-up.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &cluster{kubeconfig: filepath.Join(out, "kubeconfig"), exited: make(chan error, 1)}
	c.cmd = exec.Command(bin,
		"--dir", filepath.Join(results, "state"), // local-up wipes it at start
		"--kubeconfig-out", c.kubeconfig,
		"--agents", fmt.Sprint(agents),
		"--mesos-listen", "127.0.0.1:0",
		"--framework-listen", "127.0.0.1:0",
		// Thousands of short-lived pods: their sandboxes go a few minutes after their executors.
		"--gc-delay", "3m",
		"--image-fallback=false")
	c.cmd.Dir = modDir
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// It dies with us, and its subprocesses with it.
	logf("starting the local cluster (%d agents), log %s", agents, logPath)
	if err := deathsig.Start(c.cmd); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(2)
	var logMu sync.Mutex
	logLine := func(l string) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintln(logFile, l)
	}
	go func() { // the usage text, then the ready line
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		closed := false
		for sc.Scan() {
			logLine(sc.Text())
			if sc.Text() == "local-up: ready" && !closed {
				close(ready)
				closed = true
			}
		}
	}()
	go func() { // its log; warnings (e.g. waiting for another cluster's kube-proxy, which is host-wide) and errors are shown too
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			logLine(sc.Text())
			if l := sc.Text(); strings.Contains(l, "level=warning") || strings.Contains(l, "level=error") {
				fmt.Fprintln(os.Stderr, "local-up: "+l)
			}
		}
	}()
	go func() {
		readers.Wait() // Wait closes the pipes: only after both were read to the end
		c.exited <- c.cmd.Wait()
		logFile.Close()
	}()
	select {
	case <-ready:
		logf("local cluster ready: KUBECONFIG=%s", c.kubeconfig)
		return c, nil
	case err := <-c.exited:
		return nil, fmt.Errorf("local-up ended before it was ready (%v); see %s", err, logPath)
	case <-time.After(20 * time.Minute): // a cold image store and kube build
		c.stop()
		return nil, fmt.Errorf("local-up not ready after 20 minutes; see %s", logPath)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// stop sends local-up SIGTERM (it then stops the framework, the agents' containers and the control
// plane) and waits, killing it after 3 minutes.
func (c *cluster) stop() {
	if c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			logf("local-up: %v", err)
		}
	case <-time.After(3 * time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.exited <- nil // a second stop returns at once
}
