package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
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
	"github.com/kubemesos/kubemesos/e2e/replicas"
	"github.com/kubemesos/kubemesos/e2e/simhost"
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
	replicas   []*replicas.Replica
	auditLog   string
	stopWatch  chan struct{}

	mu      sync.Mutex
	created map[string]bool // UIDs of the namespace's pods ever seen
}

// bindingAudit writes an audit policy recording pods/binding creates only, and returns the API
// server's flags for it.
func (w *world) bindingAudit() ([]string, error) {
	args, log, err := replicas.BindingAudit(w.opts.dir)
	w.auditLog = log
	return args, err
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
		r := &replicas.Replica{Name: name, Port: port, Binary: bin, Dir: w.opts.dir,
			OnError: func(err error) { w.log.WithError(err).Error("framework replica") }}
		r.Args = append([]string{
			"framework",
			"--master=" + w.sim.URL,
			"--kubeconfig=" + w.cp.KubeconfigPath,
			"--executor-kubeconfig=" + w.cp.KubeconfigPath,
			"--executor-uri=" + executorURI,
			"--serve-default-scheduler",
			"--state-namespace=" + namespace,
			"--http-address=127.0.0.1:" + strconv.Itoa(port),
			"--advertise-url=" + r.URL(),
			"--agent-poll-interval=1s",
			"--node-lease-duration=20s",
			"--leader-elect=true",
			"--leader-elect-lease-duration=2s",
			"--leader-elect-renew-deadline=1500ms",
			"--leader-elect-retry-period=250ms",
		}, (*simhost.Network)(nil).FrameworkArgs()...)
		w.replicas = append(w.replicas, r)
		r.Start()
	}
	if w.leader(ctx, time.Minute) == nil {
		return fmt.Errorf("no framework replica leads after a minute (logs in %s)", w.opts.dir)
	}
	return nil
}

// leader waits up to timeout for a replica that leads.
func (w *world) leader(ctx context.Context, timeout time.Duration) *replicas.Replica {
	var found *replicas.Replica
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, r := range w.replicas {
			if r.Subscribed(ctx) {
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
		r.Stop()
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
