package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/kubebins"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/internal/deathsig"
	"github.com/kubemesos/kubemesos/mesossim"
)

// namespace holds the churned workloads and the framework's state and Lease.
const namespace = "chaos"

// world is everything a run drives.
type world struct {
	opts       options
	log        logrus.FieldLogger
	mode       simhost.Mode
	cp         *cluster.ControlPlane
	kube       kubernetes.Interface
	sim        *mesossim.Cluster
	simLogFile *os.File
	network    *simhost.Network
	replicas   []*replica
	auditLog   string
	stopWatch  chan struct{}

	mu      sync.Mutex
	created map[string]bool // UIDs of the namespace's pods ever seen
}

// bindingAudit writes an audit policy recording pods/binding creates only, and returns the API
// server's flags for it.
func (w *world) bindingAudit() ([]string, error) {
	policy := filepath.Join(w.opts.dir, "audit-policy.yaml")
	err := os.WriteFile(policy, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create"]
  resources:
  - group: ""
    resources: ["pods/binding"]
- level: None
`), 0o644)
	w.auditLog = filepath.Join(w.opts.dir, "bindings-audit.log")
	return []string{"--audit-policy-file=" + policy, "--audit-log-path=" + w.auditLog, "--audit-log-mode=blocking"}, err
}

// replica is a framework process, restarted 200 ms after it exits (as a Deployment's container).
type replica struct {
	name    string
	port    int
	args    []string
	binary  string
	dir     string
	stopped chan struct{}
	wg      sync.WaitGroup

	mu   sync.Mutex
	cmd  *exec.Cmd
	runs int
	hold chan struct{} // set: stay down after an exit until closed
}

func (r *replica) url() string { return "http://127.0.0.1:" + strconv.Itoa(r.port) }

func (r *replica) supervise(log logrus.FieldLogger) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			r.mu.Lock()
			r.runs++
			logPath := filepath.Join(r.dir, fmt.Sprintf("framework-%s-%d.log", r.name, r.runs))
			lf, err := os.Create(logPath)
			if err != nil {
				r.mu.Unlock()
				log.WithError(err).Error("framework log")
				return
			}
			cmd := exec.Command(r.binary, r.args...)
			cmd.Stdout, cmd.Stderr = lf, lf
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			err = deathsig.Start(cmd)
			lf.Close()
			if err != nil {
				r.mu.Unlock()
				log.WithError(err).Error("starting the framework")
				return
			}
			r.cmd = cmd
			r.mu.Unlock()
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-r.stopped:
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
				}
				return
			case <-done:
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

func (r *replica) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, sig)
	}
}

func (r *replica) setHold(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case on && r.hold == nil:
		r.hold = make(chan struct{})
	case !on && r.hold != nil:
		close(r.hold)
		r.hold = nil
	}
}

// subscribed: the replica answers and is subscribed to Mesos, i.e. leads.
func (r *replica) subscribed(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url()+"/metrics", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if sc.Text() == "kubemesos_mesos_subscribed 1" {
			_, _ = io.Copy(io.Discard, resp.Body)
			return true
		}
	}
	return false
}

// startFrameworks builds cmd/kubemesos and runs two replicas with leader election (lease 2 s, as the
// two-replica e2e test), each restarted whenever it exits, and waits for a leader.
func (w *world) startFrameworks(ctx context.Context) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	mod, err := kubebins.FindModuleDir(wd)
	if err != nil {
		return err
	}
	bin := filepath.Join(w.opts.dir, "bin", "kubemesos")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kubemesos")
	build.Dir = filepath.Dir(mod)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building kubemesos: %w\n%s", err, out)
	}
	if _, err := w.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	// Executors fetch the binary from a server of their own, not from a replica that may be paused.
	binSrv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(bin)))}
	l, err := listenLocal()
	if err != nil {
		return err
	}
	go func() { _ = binSrv.Serve(l) }()
	executorURI := "http://" + l.Addr().String() + "/kubemesos"
	for _, name := range []string{"a", "b"} {
		port, err := freePort()
		if err != nil {
			return err
		}
		r := &replica{name: name, port: port, binary: bin, dir: w.opts.dir, stopped: make(chan struct{})}
		r.args = append([]string{
			"framework",
			"--master=" + w.sim.URL,
			"--kubeconfig=" + w.cp.KubeconfigPath,
			"--executor-kubeconfig=" + w.cp.KubeconfigPath,
			"--executor-uri=" + executorURI,
			"--serve-default-scheduler",
			"--state-namespace=" + namespace,
			"--http-address=127.0.0.1:" + strconv.Itoa(port),
			"--advertise-url=" + r.url(),
			"--agent-poll-interval=1s",
			"--node-lease-duration=20s",
			"--leader-elect=true",
			"--leader-elect-lease-duration=2s",
			"--leader-elect-renew-deadline=1500ms",
			"--leader-elect-retry-period=250ms",
		}, (*simhost.Network)(nil).FrameworkArgs()...)
		w.replicas = append(w.replicas, r)
		r.supervise(w.log)
	}
	if w.leader(ctx, time.Minute) == nil {
		return fmt.Errorf("no framework replica leads after a minute (logs in %s)", w.opts.dir)
	}
	return nil
}

// leader waits up to timeout for a replica that leads.
func (w *world) leader(ctx context.Context, timeout time.Duration) *replica {
	var found *replica
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, r := range w.replicas {
			if r.subscribed(ctx) {
				found = r
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// prepareWorkloads waits for the agents' Nodes and starts counting the namespace's pods.
func (w *world) prepareWorkloads(ctx context.Context) error {
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := w.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			tainted := false
			for _, t := range n.Spec.Taints {
				tainted = tainted || t.Effect == corev1.TaintEffectNoSchedule
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !tainted {
					ready++
				}
			}
		}
		return ready == w.opts.agents, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d schedulable Nodes: %w", w.opts.agents, err)
	}
	w.created = map[string]bool{}
	factory := informers.NewSharedInformerFactoryWithOptions(w.kube, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Pods().Informer()
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			w.mu.Lock()
			w.created[string(p.UID)] = true
			w.mu.Unlock()
		}
	}})
	if err != nil {
		return err
	}
	w.stopWatch = make(chan struct{})
	factory.Start(w.stopWatch)
	return nil
}

func (w *world) podsCreated() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.created)
}

// tearDown stops everything setUp started.
func (w *world) tearDown() {
	if w.stopWatch != nil {
		close(w.stopWatch)
	}
	if w.cp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = w.kube.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{})
		cancel()
	}
	for _, r := range w.replicas {
		close(r.stopped)
		r.setHold(false)
	}
	for _, r := range w.replicas {
		r.wg.Wait()
	}
	if w.sim != nil {
		w.sim.Close()
	}
	if w.simLogFile != nil {
		w.simLogFile.Close()
	}
	if err := w.network.Close(); err != nil {
		w.log.WithError(err).Warn("releasing the pod network")
	}
	if w.cp != nil {
		w.cp.Stop()
	}
}

// apiServerPID is kube-apiserver's process.
func (w *world) apiServerPID() int { return w.cp.PIDs()["kube-apiserver"] }
