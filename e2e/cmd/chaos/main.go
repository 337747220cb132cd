// Command chaos runs kubemesos on the local cluster's parts (etcd, kube-apiserver and
// kube-controller-manager from package cluster, the Mesos simulator's master and agents in this
// process, two `kubemesos framework` replicas with leader election) while it churns pods (Deployments
// scaling, Jobs, deletions) and injects faults at random: SIGKILL of the framework leader, SIGSTOP of
// the leader past its lease, SIGKILL of executors, agent partitions and restarts, Mesos master failovers and an
// API-server outage (kube-apiserver stopped). Then, with the faults healed and the churn stopped, an
// independent ledger compares the API server with the Mesos master's and the agents' own state and
// prints the counts of lost, duplicated, orphaned and over-committed (all must be 0), with the faults
// injected by kind; it exits 1 when a count is not 0.
//
// The seed fixes the fault schedule (which fault, when) and every churn choice: a run is reproduced by
// its seed (the processes' own timing still varies, which is the point of running many seeds). The
// flags' defaults are issue 14's full run (500 pods, 100 framework kills, ...); `make chaos` runs a
// scaled one that fits in about 10 minutes on a 2-core machine (see the Makefile's CHAOS_ARGS).
//
//	cd e2e && go run ./cmd/chaos --seed 42 --duration 5m --pods 150 --framework-kills 12 ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
)

// options are the command's flags.
type options struct {
	seed            uint64
	duration        time.Duration // the fault and churn phase
	settle          time.Duration // bound of the wait for convergence afterwards
	pods            int           // pods to churn (created over the run)
	frameworkKills  int
	leaderPauses    int
	executorKills   int
	agentPartitions int
	agentRestarts   int
	masterFailovers int
	apiOutage       time.Duration // one outage of this length; 0: none
	agents          int
	isolation       string
	dir             string
	keep            bool
}

func main() {
	// The agents re-execute this binary as Mesos' launch helper.
	containerizer.MaybeRunHelper()
	log := logrus.New()
	log.SetOutput(os.Stderr)
	code, err := run(os.Args[1:], log)
	if err != nil {
		log.WithError(err).Error("chaos failed")
		os.Exit(2)
	}
	os.Exit(code)
}

func run(args []string, log *logrus.Logger) (int, error) {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the fault schedule and the churn (0: from the clock; printed)")
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "length of the fault and churn phase")
	fs.DurationVar(&o.settle, "settle", 5*time.Minute, "how long to wait for convergence after the last fault before the ledger")
	fs.IntVar(&o.pods, "pods", 500, "pods to churn: the churn stops once this many were created")
	fs.IntVar(&o.frameworkKills, "framework-kills", 100, "SIGKILLs of the framework leader")
	fs.IntVar(&o.leaderPauses, "leader-pauses", 5, "SIGSTOPs of the framework leader past its lease (then SIGCONT)")
	fs.IntVar(&o.executorKills, "executor-kills", 20, "SIGKILLs of kubelet executors")
	fs.IntVar(&o.agentPartitions, "agent-partitions", 10, "agents partitioned from the master for a few seconds")
	fs.IntVar(&o.agentRestarts, "agent-restarts", 10, "agents restarted (down a few seconds, executors recovered)")
	fs.IntVar(&o.masterFailovers, "master-failovers", 5, "Mesos master failovers")
	fs.DurationVar(&o.apiOutage, "api-outage", 30*time.Second, "length of the one API-server outage (kube-apiserver SIGSTOPped); 0: none")
	fs.IntVar(&o.agents, "agents", 3, "simulated Mesos agents")
	fs.StringVar(&o.isolation, "isolation", simhost.Isolating, "the agents' --isolation ("+simhost.Process+": process mode)")
	fs.StringVar(&o.dir, "dir", "", "working directory (default: a new temporary one, removed unless --keep)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (logs of every process)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.dir == "" {
		d, err := os.MkdirTemp("", "kubemesos-chaos-")
		if err != nil {
			return 2, err
		}
		o.dir = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return 2, err
	}
	fmt.Printf("chaos: seed %d (rerun: make chaos CHAOS_ARGS='--seed %d', with the same other flags), working directory %s\n", o.seed, o.seed, o.dir)
	w, err := setUp(ctx, o, log)
	if w != nil {
		defer w.tearDown()
	}
	if err != nil {
		return 2, err
	}
	rng := rand.New(rand.NewPCG(o.seed, 0x6b75626d65736f73))
	schedule := planFaults(o, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
	churn := &churner{w: w, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), target: o.pods}

	started := time.Now()
	phase, endPhase := context.WithTimeout(ctx, o.duration)
	churnDone := make(chan struct{})
	go func() { defer close(churnDone); churn.run(phase) }()
	injected := w.inject(phase, schedule)
	endPhase()
	<-churnDone
	w.healAll()
	if ctx.Err() != nil {
		return 2, errors.New("interrupted")
	}
	faultPhase := time.Since(started)
	log.WithField("took", faultPhase.Round(time.Second)).Info("fault phase over: waiting for convergence")
	converged := w.settle(ctx, o.settle)
	l, err := w.ledger(ctx)
	if err != nil {
		return 2, err
	}

	fmt.Printf("chaos: fault phase %v (%d agents, %s), converged: %v\n", faultPhase.Round(time.Second), o.agents, w.mode, converged)
	fmt.Printf("faults injected by kind:\n")
	for _, k := range faultKinds {
		fmt.Printf("  %-28s %d (planned %d)\n", k, injected[k], countKind(schedule, k))
	}
	fmt.Printf("pods churned: %d created (%d Deployment scalings, %d Jobs, %d pods deleted); %d Bindings (API server audit log)\n",
		w.podsCreated(), churn.scales, churn.jobs, churn.deletions, l.bindings)
	fmt.Printf("ledger: lost %d, duplicated %d, orphaned %d, over-committed %d\n", len(l.lost), len(l.duplicated), len(l.orphaned), len(l.overCommitted))
	bad := false
	for _, c := range []struct {
		what string
		list []string
	}{{"lost", l.lost}, {"duplicated", l.duplicated}, {"orphaned", l.orphaned}, {"over-committed", l.overCommitted}} {
		sort.Strings(c.list)
		for i, p := range c.list {
			if i == 20 {
				fmt.Printf("  %s: ... %d more\n", c.what, len(c.list)-20)
				break
			}
			fmt.Printf("  %s: %s\n", c.what, p)
		}
		bad = bad || len(c.list) > 0
	}
	if bad {
		fmt.Printf("chaos: FAILED (seed %d); logs in %s\n", o.seed, o.dir)
		if !o.keep {
			fmt.Println("  (rerun with --keep to keep them)")
		}
		return 1, nil
	}
	fmt.Println("chaos: ok")
	return 0, nil
}

// setUp starts the control plane (auditing Binding creates), the simulated Mesos cluster and the two
// framework replicas, and waits for a leader.
func setUp(ctx context.Context, o options, log *logrus.Logger) (*world, error) {
	bins, err := kubebins.Ensure(ctx, kubebins.Options{Log: os.Stderr})
	if err != nil {
		return nil, fmt.Errorf("building Kubernetes binaries: %w", err)
	}
	store, err := imagestore.Ensure(ctx, imagestore.Options{Log: os.Stderr})
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	w := &world{opts: o, log: log, mode: simhost.Resolve(o.isolation)}
	auditArgs, err := w.bindingAudit()
	if err != nil {
		return nil, err
	}
	w.cp, err = cluster.Start(ctx, cluster.Options{Dir: filepath.Join(o.dir, "kube"), Binaries: &bins, Log: log,
		ExtraAPIServerArgs:         auditArgs,
		ExtraControllerManagerArgs: []string{"--node-monitor-grace-period=20s", "--node-monitor-period=2s"}})
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	w.kube = w.cp.Client
	simLog := logrus.New()
	f, err := os.Create(filepath.Join(o.dir, "mesos-sim.log"))
	if err != nil {
		return w, err
	}
	w.simLogFile = f
	simLog.SetOutput(f)
	simCfg := mesossim.ClusterConfig{
		Master:         mesossim.Config{Log: simLog, AllocationInterval: 200 * time.Millisecond, HeartbeatInterval: 5 * time.Second},
		Agents:         o.agents,
		AgentResources: "cpus:4;mem:8192;disk:65536;ports:[31000-32000]",
		WorkDir:        filepath.Join(o.dir, "mesos"),
		// A long run of short-lived pods and executor kills: sandboxes go a few minutes after their
		// executors (Mesos' --gc_delay default is a week), so the disk stays bounded.
		AgentTweak: func(_ int, c *agent.Config) { c.GCDelay = 3 * time.Minute },
	}
	if w.network, err = simhost.Configure(&simCfg, w.mode, store.Dir, log); err != nil {
		return w, err
	}
	if w.sim, err = mesossim.StartCluster(simCfg); err != nil {
		return w, fmt.Errorf("starting mesossim: %w", err)
	}
	if err := w.network.Err(); err != nil {
		return w, err
	}
	if err := w.startFrameworks(ctx); err != nil {
		return w, err
	}
	return w, w.prepareWorkloads(ctx)
}

func countKind(s []fault, k string) int {
	n := 0
	for _, f := range s {
		if f.kind == k {
			n++
		}
	}
	return n
}
