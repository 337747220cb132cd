package charts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"

	"github.com/kubemesos/kubemesos/e2e/cluster"
	"github.com/kubemesos/kubemesos/e2e/imagestore"
	"github.com/kubemesos/kubemesos/e2e/simhost"
	"github.com/kubemesos/kubemesos/internal/cli"
	"github.com/kubemesos/kubemesos/mesossim"
	"github.com/kubemesos/kubemesos/mesossim/agent"
)

// Issue 6, must show: the chart's objects, applied to the e2e control plane, bring up the framework, which
// runs a Deployment's pods on mesos-sim agents; the chart's second replica takes over on the Lease. No kubelet runs the framework's own pod here, so the test
// runs the built kubemesos binary the way that pod would: the container's args and KUBEMESOS_* env, the
// ConfigMap (as stored by the API server) at the --config path, and the ServiceAccount's token, which in a
// pod comes from in-cluster config and here from --kubeconfig. The executors bootstrap their Nodes'
// certificates with the chart's executor ServiceAccount's token (approved by the framework with the
// chart's RBAC) and write pod status as their Nodes, so every identity's RBAC is exercised.
func TestHelmInstalledFrameworkRunsADeploymentOnMesos(t *testing.T) {
	binary := kubemesosBinary(t)
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns := cp.Namespace(t)
	dir := t.TempDir()

	simLog, err := os.Create(filepath.Join(dir, "mesos-sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer simLog.Close()
	log := logrus.New()
	log.SetOutput(simLog)
	// The agents provision images from the real image store, as Mesos agents with the docker provider
	// and the Linux isolators (isolating mode as root, see simhost).
	store, err := imagestore.Ensure(ctx, imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	simCfg := mesossim.ClusterConfig{
		Agents:  2,
		WorkDir: filepath.Join(dir, "mesos"),
		// A pod CIDR is no label value: the Node is written without that label, with spec.podCIDR.
		AgentAttributes: "pod_cidr:10.244.%d.0/24;rack:r%d",
		Master:          mesossim.Config{Log: log, AllocationInterval: 200 * time.Millisecond, HeartbeatInterval: 5 * time.Second},
		AgentTweak:      func(i int, cfg *agent.Config) { cfg.Hostname = fmt.Sprintf("helm-agent-%d", i) },
	}
	// As root the agents are on the pod network (simhost), which gives each its own pod_cidr.
	network, err := simhost.Configure(&simCfg, simhost.Resolve(simhost.Isolating), store.Dir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = network.Close() }) // after sim.Close (cleanups run last first)
	sim, err := mesossim.StartCluster(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	t.Cleanup(func() { deleteNodes(t, cp.Client) })

	port := freeTCPPort(t)
	executorKubeconfig := filepath.Join(dir, "executor.kubeconfig")
	values := fmt.Sprintf(`
mesos: {master: %q}
framework: {httpPort: %d, advertiseURL: "http://127.0.0.1:%d"}
executor: {bootstrapKubeconfig: %q, clientCAFile: %q, serviceAccount: {create: true}}
`, sim.URL, port, port, executorKubeconfig, cp.Files.ClientCA)
	r, err := renderChart(t, valuesYAML(t, values), ns)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, ctx, cp, r)
	writeKubeconfig(t, ctx, cp, ns, testFullname+"-executor", executorKubeconfig)
	frameworkKubeconfig := filepath.Join(dir, "framework.kubeconfig")
	writeKubeconfig(t, ctx, cp, ns, testFullname, frameworkKubeconfig)

	// The framework's container, as the kubelet would start it.
	d := only[*appsv1.Deployment](t, r)
	c := d.Spec.Template.Spec.Containers[0]
	cm, err := cp.Client.CoreV1().ConfigMaps(ns).Get(ctx, testFullname+"-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(configPath, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--config=") {
			a = "--config=" + configPath
		}
		args = append(args, a)
	}
	args = append(args, "--kubeconfig="+frameworkKubeconfig) // in a pod: in-cluster config for the same ServiceAccount
	env := []string{"POD_NAME=" + testFullname + "-0", "POD_NAMESPACE=" + ns, "POD_IP=127.0.0.1"}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, e.Name+"="+strings.ReplaceAll(e.Value, "$(POD_IP)", "127.0.0.1"))
		}
	}
	fw := startFrameworkProcess(t, binary, args, env, filepath.Join(dir, "framework.log"))
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if pods, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, p := range pods.Items {
				t.Logf("pod %s: phase %s node %q conditions %+v containers %+v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.Conditions, p.Status.ContainerStatuses)
			}
		}
		if evs, err := cp.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
			for _, e := range evs.Items {
				t.Logf("event %s %s/%s: %s %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
		t.Logf("--- framework log:\n%s\n--- mesos-sim log:\n%s", tail(filepath.Join(dir, "framework.log"), 60), tail(simLog.Name(), 30))
	})
	eventually(t, ctx, "the framework ready (/readyz: subscribed to Mesos, informers synced)", func(ctx context.Context) (bool, error) {
		if err := fw.exited(); err != nil {
			return false, err
		}
		return httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", port)), nil
	}, nil)

	// A workload for Mesos: a Deployment whose pods name the chart's scheduler.
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					SchedulerName:                 "kubemesos",
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					// As most public charts have it: the framework's Nodes carry kubernetes.io/os.
					NodeSelector: map[string]string{corev1.LabelOSStable: "linux"},
					Containers: []corev1.Container{{
						Name: "web", Image: "busybox", Command: []string{"sleep", "3600"},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi"),
						}},
					}},
				},
			},
		},
	}
	if _, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the Deployment's 2 pods running on Mesos agents", func(ctx context.Context) (bool, error) {
		if err := fw.exited(); err != nil {
			return false, err
		}
		return runningOnMesos(ctx, cp, ns) == 2, nil
	}, nil)

	for i := range 2 {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, fmt.Sprintf("helm-agent-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("10.244.%d.0/24", i)
		if a := network.Agent(i); a != nil {
			want = a.Subnet.String()
		}
		if n.Spec.PodCIDR != want || !slices.Equal(n.Spec.PodCIDRs, []string{want}) {
			t.Errorf("Node %s: podCIDR %q podCIDRs %q, want %s (agent attribute pod_cidr)", n.Name, n.Spec.PodCIDR, n.Spec.PodCIDRs, want)
		}
		if _, ok := n.Labels["kubemesos.io/attr-pod_cidr"]; ok || n.Labels["kubemesos.io/attr-rack"] != fmt.Sprintf("r%d", i) ||
			n.Labels[corev1.LabelOSStable] != "linux" || n.Labels[corev1.LabelArchStable] == "" {
			t.Errorf("Node %s labels %v: want attr-rack, kubernetes.io/os and arch, no attr-pod_cidr", n.Name, n.Labels)
		}
		if info := n.Status.NodeInfo; info.ContainerRuntimeVersion != "mesos://"+mesossim.Version || info.OperatingSystem != "linux" {
			t.Errorf("Node %s nodeInfo %+v, want operatingSystem linux, containerRuntimeVersion mesos://%s", n.Name, info, mesossim.Version)
		}
	}

	// The chart's second replica: same configuration, its own pod address (here: port). It stands by on
	// the Lease, then takes over when the first stops, and keeps scheduling.
	leader := leaseHolder(ctx, cp, ns)
	if leader == "" {
		t.Fatalf("no holder of the Lease %s/kubemesos-framework while the first replica runs", ns)
	}
	port2 := freeTCPPort(t)
	env2 := append(slices.Clone(env), fmt.Sprintf("KUBEMESOS_ADVERTISE_URL=http://127.0.0.1:%d", port2))
	args2 := append(slices.Clone(args), fmt.Sprintf("--http-address=:%d", port2)) // a pod's own IP, here a port
	fw2 := startFrameworkProcess(t, binary, args2, env2, filepath.Join(dir, "framework-2.log"))
	eventually(t, ctx, "the second replica healthy (/healthz)", func(ctx context.Context) (bool, error) {
		if err := fw2.exited(); err != nil {
			return false, err
		}
		return httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", port2)), nil
	}, nil)
	// A standby is ready (so rolling updates can finish) but does not take the Lease.
	if !httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", port2)) {
		t.Error("the standby replica is not ready (/readyz): a rolling update would stall")
	}
	if got := leaseHolder(ctx, cp, ns); got != leader {
		t.Errorf("Lease holder %q while the first replica (%q) leads: two leaders?", got, leader)
	}
	if err := fw.stop(20 * time.Second); err != nil {
		t.Errorf("first replica did not stop cleanly: %v", err)
	}
	eventually(t, ctx, "the second replica leading (Lease taken over, /readyz ok)", func(ctx context.Context) (bool, error) {
		if err := fw2.exited(); err != nil {
			return false, err
		}
		holder := leaseHolder(ctx, cp, ns)
		return holder != "" && holder != leader && httpOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", port2)), nil
	}, nil)
	scale, err := cp.Client.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 3
	if _, err := cp.Client.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "3 pods running after the failover", func(ctx context.Context) (bool, error) {
		if err := fw2.exited(); err != nil {
			return false, err
		}
		return runningOnMesos(ctx, cp, ns) == 3, nil
	}, nil)
	if err := fw2.stop(20 * time.Second); err != nil {
		t.Errorf("second replica did not stop cleanly: %v", err)
	}
}

// leaseHolder is the holder of the framework's leader-election Lease in ns ("" if none or unreadable).
func leaseHolder(ctx context.Context, cp *cluster.ControlPlane, ns string) string {
	l, err := cp.Client.CoordinationV1().Leases(ns).Get(ctx, "kubemesos-framework", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// runningOnMesos counts the pods of the web Deployment running, ready, on a Mesos agent's Node.
func runningOnMesos(ctx context.Context, cp *cluster.ControlPlane, ns string) int {
	pods, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return 0
	}
	running := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Spec.NodeName, "helm-agent-") && podReady(&p) {
			running++
		}
	}
	return running
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// applyAll creates every rendered object for real, as `helm template | kubectl apply` would, and deletes
// the cluster-scoped ones when the test ends.
func applyAll(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, r *rendered) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	for _, obj := range r.Objects {
		u, err := toUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		namespaced := mapping.Scope.Name() == "namespace"
		if namespaced {
			res = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
		}
		if _, err := res.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("applying %s %s/%s: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
		if !namespaced || u.GetNamespace() == "kube-node-lease" {
			name := u.GetName()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = res.Delete(ctx, name, metav1.DeleteOptions{})
			})
		}
	}
}

// writeKubeconfig writes a kubeconfig for a ServiceAccount at path.
func writeKubeconfig(t *testing.T, ctx context.Context, cp *cluster.ControlPlane, ns, sa, path string) {
	t.Helper()
	src := serviceAccountKubeconfig(t, ctx, cp, ns, sa)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The kubemesos binary, built once per test binary from the repository with the Dockerfile's own build
// command (flags, CGO_ENABLED, version stamps), so the e2e tests run what the image would contain.
var kubemesosBin struct {
	once sync.Once
	path string
	err  error
}

// Stamped into the test build in place of the Dockerfile's ${VERSION} and ${COMMIT}.
const (
	testVersion = "v0.0.0-charts-test"
	testCommit  = "0123456789abcdef"
)

func kubemesosBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIP in -short mode: builds kubemesos and runs real processes")
	}
	kubemesosBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "kubemesos-charts-bin-")
		if err != nil {
			kubemesosBin.err = err
			return
		}
		binDir = dir
		out := filepath.Join(dir, "kubemesos")
		args, env, err := dockerfileBuildCommand(repoRoot(t), "/out/kubemesos", out)
		if err != nil {
			kubemesosBin.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), env...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			kubemesosBin.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, buf.Bytes())
			return
		}
		kubemesosBin.path = out
	})
	if kubemesosBin.err != nil {
		t.Fatal(kubemesosBin.err)
	}
	return kubemesosBin.path
}

// binDir is removed by TestMain.
var binDir string

// process is a child in its own process group that dies with the test binary (Pdeathsig).
type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func startFrameworkProcess(t *testing.T, path string, args, env []string, logPath string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	for _, kv := range os.Environ() { // the test's own KUBEMESOS_* must not configure the child
		if !strings.HasPrefix(kv, cli.EnvPrefix+"_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // Pdeathsig follows the thread that forked
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() { _ = p.stop(10 * time.Second) })
	return p
}

// exited returns an error once the process has ended.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("process exited: %v", p.waitErr)
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group and SIGKILL after grace; it returns the exit error of a
// process that did not stop gracefully or exited with an error.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return errors.New("did not stop within the grace period; killed")
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpOK(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
