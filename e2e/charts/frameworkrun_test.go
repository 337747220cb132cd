package charts

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/framework"
	"github.com/kubemesos/kubemesos/mesossim"
)

// The framework, configured exactly as the chart's Deployment configures it (ConfigMap, args and env) and
// authenticated as the chart's ServiceAccount with the chart's RBAC, does its work against the real API
// server and a simulated Mesos cluster: it takes the Lease, stores its state, keeps one Node (and node
// Lease) per agent, records Events and binds a pod. A missing permission shows up as one of these never
// happening.
func TestFrameworkRunsUnderTheChartsServiceAccount(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := cp.Namespace(t)
	r, err := renderChart(t, nil, ns)
	if err != nil {
		t.Fatal(err)
	}
	applyRBAC(t, ctx, cp.Client, r)
	sa := only[*corev1.ServiceAccount](t, r).Name
	kubeconfig := serviceAccountKubeconfig(t, ctx, cp, ns, sa)

	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	sim, err := mesossim.StartCluster(mesossim.ClusterConfig{
		Agents:  2,
		WorkDir: t.TempDir(),
		Master:  mesossim.Config{Log: log, AllocationInterval: 200 * time.Millisecond, HeartbeatInterval: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	t.Cleanup(func() { deleteNodes(t, cp.Client) })

	cfg := chartFrameworkConfigFrom(t, r)
	if cfg.StateNamespace != ns || !cfg.LeaderElect {
		t.Fatalf("chart config: state namespace %q leader election %v", cfg.StateNamespace, cfg.LeaderElect)
	}
	// What differs outside a pod: the master, the credentials file, a loopback listener, and an executor
	// URI on loopback that refuses connections (this test checks the framework's API calls, not executors).
	cfg.Master = sim.URL
	cfg.Kubeconfig = kubeconfig
	cfg.HTTPAddress = "127.0.0.1:0"
	cfg.AdvertiseURL = ""
	cfg.ExecutorURI = "http://127.0.0.1:1/executor/kubemesos"
	cfg.LogLevel = "warning"

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- framework.Run(runCtx, cfg) }()
	stopped := false
	stopFramework := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stop()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("framework.Run did not return within 30s of cancellation")
		}
	}
	defer func() { _ = stopFramework() }()

	c := cp.Client
	eventually(t, ctx, "the framework holds the Lease "+ns+"/"+framework.StateName, func(ctx context.Context) (bool, error) {
		l, err := c.CoordinationV1().Leases(ns).Get(ctx, framework.StateName, metav1.GetOptions{})
		return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", ignoreNotFound(err)
	}, done)
	eventually(t, ctx, "one Node per Mesos agent", func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "kubemesos.io/agent-id"})
		return err == nil && len(nodes.Items) == 2, err
	}, done)
	eventually(t, ctx, "the framework's state ConfigMap "+ns+"/"+framework.StateName, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ConfigMaps(ns).Get(ctx, framework.StateName, metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	}, done)
	eventually(t, ctx, "node Leases in kube-node-lease", func(ctx context.Context) (bool, error) {
		for _, n := range []string{"mesos-agent-0", "mesos-agent-1"} {
			if _, err := c.CoordinationV1().Leases("kube-node-lease").Get(ctx, n, metav1.GetOptions{}); err != nil {
				return false, ignoreNotFound(err)
			}
		}
		return true, nil
	}, done)

	// A pod for the framework: it must be bound to one of the agents' Nodes (pods/binding create).
	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.PodSpec{
			SchedulerName: cfg.SchedulerName,
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
				}},
			}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound := ""
	for bound == "" {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("pod watch closed before the pod was bound")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type != watch.Deleted {
				bound = p.Spec.NodeName
			}
		case err := <-done:
			t.Fatalf("framework.Run returned before binding the pod: %v", err)
		case <-ctx.Done():
			t.Fatal("the pod was never bound")
		}
	}
	if !strings.HasPrefix(bound, "mesos-agent-") {
		t.Errorf("pod bound to %q, want a Mesos agent's Node", bound)
	}
	eventually(t, ctx, "Events recorded by the framework", func(ctx context.Context) (bool, error) {
		evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Source.Component == cfg.SchedulerName || e.ReportingController == cfg.SchedulerName {
				return true, nil
			}
		}
		return false, nil
	}, done)

	if err := stopFramework(); err != nil {
		t.Errorf("framework.Run: %v", err)
	}
	if d := only[*appsv1.Deployment](t, r); d.Spec.Template.Spec.ServiceAccountName != sa {
		t.Errorf("the Deployment runs as %q, the test as %q", d.Spec.Template.Spec.ServiceAccountName, sa)
	}
}

// eventually polls cond until it holds, failing the test at ctx's deadline or if the framework stops.
func eventually(t *testing.T, ctx context.Context, what string, cond func(context.Context) (bool, error), done <-chan error) {
	t.Helper()
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-done:
			return false, errors.Join(errors.New("framework.Run returned"), err)
		default:
		}
		return cond(ctx)
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func ignoreNotFound(err error) error {
	if err != nil && strings.Contains(err.Error(), "not found") {
		return nil
	}
	return err
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the ServiceAccount with a minted token.
func serviceAccountKubeconfig(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, ns, sa string) string {
	t.Helper()
	token := mintToken(t, ctx, cp, ns, sa)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthority: cp.Files.ServingCA}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: sa, Namespace: ns}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// deleteNodes removes the Nodes the framework created (they are cluster-scoped).
func deleteNodes(t *testing.T, c kubernetes.Interface) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "kubemesos.io/agent-id"}); err != nil {
		t.Errorf("deleting Nodes: %v", err)
	}
}
