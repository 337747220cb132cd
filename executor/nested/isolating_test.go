package nested_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/executor/podworker"
	"github.com/kubemesos/kubemesos/executor/sandboxexec"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/containerizer"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// TestMain lets the test binary serve as the simulated agent's launch helper (its launcher re-executes
// /proc/self/exe), which the isolating mode needs, as `kubemesos pod-sandbox`, the pods' sandbox
// executor the agent launches (see withSandbox), and as `kubemesos tmpfs-mount`, which the memory
// emptyDirs' helper containers run.
func TestMain(m *testing.M) {
	containerizer.MaybeRunHelper()
	if len(os.Args) > 2 && os.Args[1] == nested.TmpfsCommand {
		// `kubemesos tmpfs-mount`, the memory emptyDirs' helper (this binary is the runtime's
		// os.Executable()).
		os.Exit(runTmpfsCommand(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "pod-sandbox" {
		if err := sandboxexec.Run(context.Background(), sandboxexec.Config{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// simAgent is the agent behind an isolating runtime, with the framework and kubelet executor it runs.
type simAgent struct {
	agent  *agent.Agent
	master *ackMaster
	fw     mesos.FrameworkInfo
	exec   mesos.ExecutorInfo
}

// agents maps the tests' runtimes to their agents.
var agents sync.Map // *nested.Runtime -> *simAgent

func agentOf(t testing.TB, r *nested.Runtime) *simAgent {
	t.Helper()
	a, ok := agents.Load(r)
	if !ok {
		t.Fatal("the runtime has no simulated agent")
	}
	return a.(*simAgent)
}

// withSandbox readies the pod's sandbox on network: on a CNI network it launches the pod's sandbox
// executor as the framework does (podtranslate's ExecutorInfo and sandbox task, this test binary as
// the fetched kubemesos) and kills its task at the end of the test, waiting for its container's end
// (network/cni then releases the address).
func withSandbox(t testing.TB, r *nested.Runtime, pod *corev1.Pod, network string) podworker.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var spec podworker.SandboxSpec
	if network != "" {
		spec = launchSandboxExecutor(t, r, pod, network)
	}
	sb, err := r.RunPodSandbox(ctx, pod, spec)
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.StopPodSandbox(ctx, pod); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
	})
	return sb
}

// launchSandboxExecutor launches the pod's sandbox task on its sandbox executor and, at the end of
// the test, kills it and waits for the executor's end.
func launchSandboxExecutor(t testing.TB, r *nested.Runtime, pod *corev1.Pod, network string) podworker.SandboxSpec {
	t.Helper()
	sa := agentOf(t, r)
	opts := podtranslate.Options{PodNetwork: network}
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
	}
	info, err := opts.SandboxExecutorInfo(pod, sa.exec, mesos.Resources{scalar("cpus", 0.01), scalar("mem", 32)})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	info.Command.Value = &[]string{strconv.Quote(self) + " pod-sandbox"}[0]
	info.FrameworkID = sa.fw.ID
	task, err := opts.SandboxTaskInfo(pod, sa.agent.ID(), info, mesos.Resources{scalar("cpus", 0.5), scalar("mem", 256)})
	if err != nil {
		t.Fatal(err)
	}
	sa.agent.Launch(sa.fw, &info, []mesos.TaskInfo{task}, false)
	t.Cleanup(func() { killSandboxExecutor(t, r, pod) })
	return podworker.SandboxSpec{Network: network, Executor: info.ExecutorID.Value}
}

// killSandboxExecutor kills the pod's sandbox task, as the framework does once the pod is over, and
// waits for its executor's end.
func killSandboxExecutor(t testing.TB, r *nested.Runtime, pod *corev1.Pod) {
	t.Helper()
	sa := agentOf(t, r)
	sa.agent.Kill(*sa.fw.ID, podtranslate.SandboxTaskID(pod), nil)
	id := podtranslate.SandboxExecutorID(pod.UID).Value
	deadline := time.Now().Add(30 * time.Second)
	for executorRunning(sa.agent, id) {
		if time.Now().After(deadline) {
			t.Errorf("the sandbox executor %s did not end", id)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func executorRunning(a *agent.Agent, id string) bool {
	for _, e := range a.Executors() {
		if e.Info.ExecutorID.Value == id {
			return true
		}
	}
	return false
}

// ackMaster acknowledges every update as a framework does (the sandbox executor exits once its
// TASK_KILLED is acknowledged).
type ackMaster struct {
	mu      sync.Mutex
	agent   *agent.Agent
	updates []mesos.TaskStatus
}

func (m *ackMaster) StatusUpdate(_ mesos.AgentID, fw mesos.FrameworkID, s mesos.TaskStatus) {
	m.mu.Lock()
	a := m.agent
	m.updates = append(m.updates, s)
	m.mu.Unlock()
	if a != nil && len(s.UUID) > 0 {
		go a.Acknowledge(fw, s.TaskID, s.UUID)
	}
}

// last is the latest update of a task.
func (m *ackMaster) last(taskID string) (mesos.TaskStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.updates) - 1; i >= 0; i-- {
		if m.updates[i].TaskID.Value == taskID {
			return m.updates[i], true
		}
	}
	return mesos.TaskStatus{}, false
}

func (*ackMaster) ExecutorMessage(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, []byte)   {}
func (*ackMaster) ExecutorTerminated(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, int32) {}
func (*ackMaster) ResourcesRecovered(mesos.AgentID, mesos.FrameworkID, mesos.Resources)         {}

// isolatingRuntime is the executor's runtime against a simulated agent with Mesos' Linux isolators
// (as root), under a running (in-process) kubelet executor's container.
func isolatingRuntime(t testing.TB, isolation string, mutate func(*agent.Config)) *nested.Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent's Linux isolators need root (namespaces, mounts, users)")
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	res.Add(mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 2048}})
	m := &ackMaster{}
	cfg := agent.Config{
		ID: mesos.AgentID{Value: "agent-S0"}, Hostname: "agent0", Resources: res, WorkDir: t.TempDir(),
		Master: m, Log: log, Isolation: isolation,
		ExecutorShutdownGracePeriod: time.Second, RecoveryTimeout: time.Minute, SubscriptionBackoffMax: time.Second,
		// The kubelet executor's process: the containers it launches are what is tested.
		ExecutorHook: func(ctx context.Context, _ map[string]string) error { <-ctx.Done(); return nil },
		// The pods' sandbox executors run in containers of their own.
		ExecutorHookFor: func(e mesos.ExecutorInfo) bool {
			return !strings.HasPrefix(e.ExecutorID.Value, podtranslate.SandboxExecutorIDPrefix)
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.agent = a
	m.mu.Unlock()
	t.Cleanup(a.Stop)
	if !a.Isolating() {
		t.Fatalf("an agent with --isolation=%s as root in a binary hosting the launch helper does not isolate", isolation)
	}
	unused := "in-process"
	fw := mesos.FrameworkInfo{ID: &mesos.FrameworkID{Value: "fw-1"}, Name: "kubemesos", User: "root"}
	exec := mesos.ExecutorInfo{Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"}, FrameworkID: fw.ID,
		Command: &mesos.CommandInfo{Value: &unused}}
	a.Launch(fw, &exec, []mesos.TaskInfo{{Name: "t", TaskID: mesos.TaskID{Value: "t"},
		// The executor's cgroups (with cgroups/*) are sized by its tasks, as a pod's task sizes them.
		Resources: []mesos.Resource{
			{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1}},
			{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 512}},
		}}}, false)
	var ex agent.ExecutorState
	deadline := time.Now().Add(10 * time.Second)
	for {
		if exs := a.Executors(); len(exs) == 1 {
			ex = exs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the executor did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := nested.New(nested.Config{AgentURL: "http://" + a.Endpoint() + "/api/v1", Sandbox: ex.Directory, FrameworkID: fw.ID.Value, Log: log,
		SandboxTimeout: 30 * time.Second,
		DNS:            nested.DNS{ClusterDNS: []string{"10.0.0.10"}, ClusterDomain: "cluster.local", ResolvConf: "/etc/resolv.conf"}})
	r.SetParent(ex.ContainerID)
	agents.Store(r, &simAgent{agent: a, master: m, fw: fw, exec: exec})
	return r
}

func shPod(name, script string, psc *corev1.PodSecurityContext, sc *corev1.SecurityContext, res corev1.ResourceRequirements) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{
			Name: "main", Command: []string{"sh", "-c", script}, SecurityContext: sc, Resources: res,
		}}},
	}
}

// run starts the pod's container (in a host-network sandbox unless the pod has one), waits for it and
// returns its exit and stdout.
func run(t *testing.T, r *nested.Runtime, pod *corev1.Pod) (podworker.ExitStatus, string) {
	t.Helper()
	if _, _, ok := r.SandboxFor(pod.UID); !ok {
		withSandbox(t, r, pod, "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := r.Wait(ctx, h)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	out, err := os.ReadFile(h.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	stderr, _ := os.ReadFile(strings.TrimSuffix(h.LogPath, "stdout") + "stderr")
	if st.ExitCode != 0 && st.Reason == "" {
		t.Logf("container exited %+v; stderr:\n%s", st, stderr)
	}
	return st, string(out)
}

// capMask is the /proc/<pid>/status rendering of a set of Mesos capabilities.
func capMask(names ...string) string {
	var m uint64
	for _, n := range names {
		m |= 1 << uint(mesos.CapabilityInfo_Capability_value[n]-1000)
	}
	return fmt.Sprintf("%016x", m)
}

var defaultCapNames = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

const statusScript = `id -u; grep -E '^Cap(Eff|Bnd):' /proc/self/status | tr -d '\t'`

// A pod's runAsUser runs its container as the agent host's user with that uid (by name, as Mesos
// takes it), with the runtime's bounding set plus the added capability and, as a non-root process
// under a container runtime, no effective capabilities; a root container has them effective.
func TestIsolatedUserAndCapabilities(t *testing.T) {
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid,linux/capabilities", nil)
	if _, err := user.LookupId("1000"); err != nil {
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			t.Skip("this host has no user with uid 1000 for runAsUser 1000")
		}
		t.Fatal(err)
	}
	withAdmin := append([]string{"NET_ADMIN"}, defaultCapNames...)

	uid := int64(1000)
	st, out := run(t, r, shPod("as-1000", statusScript, &corev1.PodSecurityContext{RunAsUser: &uid},
		&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}, corev1.ResourceRequirements{}))
	if want := fmt.Sprintf("1000\nCapEff:%s\nCapBnd:%s\n", capMask(), capMask(withAdmin...)); st.ExitCode != 0 || out != want {
		t.Errorf("runAsUser 1000: exit %+v, output\n%s\nwant\n%s", st, out, want)
	}

	st, out = run(t, r, shPod("as-root", statusScript, nil,
		&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"KILL", "MKNOD"}}},
		corev1.ResourceRequirements{}))
	var rootCaps []string
	for _, c := range withAdmin {
		if c != "KILL" && c != "MKNOD" {
			rootCaps = append(rootCaps, c)
		}
	}
	if want := fmt.Sprintf("0\nCapEff:%s\nCapBnd:%s\n", capMask(rootCaps...), capMask(rootCaps...)); st.ExitCode != 0 || out != want {
		t.Errorf("root with NET_ADMIN, without KILL and MKNOD: exit %+v, output\n%s\nwant\n%s", st, out, want)
	}
}

// An exec container (probes, hooks) in a container runs with the container's capabilities.
func TestIsolatedExecHasTheContainersCapabilities(t *testing.T) {
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid,linux/capabilities", nil)
	pod := shPod("execd", "exec sleep 60", nil,
		&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"KILL", "NET_ADMIN"}}},
		corev1.ResourceRequirements{})
	withSandbox(t, r, pod, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = r.Signal(ctx, h, 9)
		_, _ = r.Wait(ctx, h)
		_ = r.Remove(ctx, h)
	}()
	mask := capMask("KILL", "NET_ADMIN")
	script := fmt.Sprintf(`grep -qx 'CapEff:.%s' /proc/self/status && grep -qx 'CapBnd:.%s' /proc/self/status`, mask, mask)
	code, err := r.Exec(ctx, h, []string{"sh", "-c", script}, nil, nil)
	if err != nil || code != 0 {
		t.Errorf("exec in a container with KILL and NET_ADMIN: exit %d, %v; want its CapEff and CapBnd %s", code, err, mask)
	}
}

// An agent whose --bounding_capabilities is the runtime's default set refuses a privileged container
// (every capability) with Mesos' text, which is the container's CreateContainerError.
func TestIsolatedPrivilegedRefusedByTheAgent(t *testing.T) {
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid,linux/capabilities", func(c *agent.Config) {
		c.BoundingCapabilities = defaultCapNames
	})
	yes := true
	pod := shPod("priv", "true", nil, &corev1.SecurityContext{Privileged: &yes}, corev1.ResourceRequirements{})
	withSandbox(t, r, pod, "")
	_, err := r.Start(context.Background(), pod, &pod.Spec.Containers[0], 0)
	var ce *podworker.CreateError
	if !errors.As(err, &ce) || ce.Reason != podworker.ReasonCreateContainerError ||
		!regexp.MustCompile(`^the Mesos agent refused the container: .*Bounding capabilities '\{ CHOWN, .*AUDIT_READ \}', but only '\{ CHOWN, .* \}' are allowed$`).MatchString(ce.Message) {
		t.Fatalf("Start of a privileged container = %v, want the agent's refusal as CreateContainerError", err)
	}
}

// A privileged container runs on an agent without --bounding_capabilities, with every capability
// of Mesos' enum that the executor's bounding set holds, effective and bounding: asking for the whole
// enum failed the launch on a host whose bounding set lacks one ("Failed to set process
// capabilities: operation not permitted").
func TestIsolatedPrivilegedRuns(t *testing.T) {
	r := isolatingRuntime(t, "filesystem/linux,namespaces/pid,linux/capabilities", nil)
	yes := true
	var want []string
	for v, name := range mesos.CapabilityInfo_Capability_name {
		if v < 1000 {
			continue
		}
		if in, _ := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(v-1000), 0, 0, 0); in == 1 {
			want = append(want, name)
		}
	}
	st, out := run(t, r, shPod("priv", statusScript, nil, &corev1.SecurityContext{Privileged: &yes}, corev1.ResourceRequirements{}))
	if w := fmt.Sprintf("0\nCapEff:%s\nCapBnd:%s\n", capMask(want...), capMask(want...)); st.ExitCode != 0 || out != w {
		t.Errorf("privileged: exit %+v, output\n%s\nwant\n%s", st, out, w)
	}
}

// BenchmarkIsolatedStart is one container's life through the runtime on an isolating agent with the
// isolation fields this package sends: LAUNCH_CONTAINER (own pid namespace, capabilities, a host user
// by name), WAIT_CONTAINER, REMOVE_CONTAINER.
func BenchmarkIsolatedStart(b *testing.B) {
	r := isolatingRuntime(b, "filesystem/linux,namespaces/pid,linux/capabilities", nil)
	uid := int64(1000)
	if _, err := user.LookupId("1000"); err != nil {
		b.Skip("no user with uid 1000")
	}
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		pod := shPod(fmt.Sprintf("b%d", i), "true", &corev1.PodSecurityContext{RunAsUser: &uid}, nil, corev1.ResourceRequirements{})
		if _, err := r.RunPodSandbox(ctx, pod, podworker.SandboxSpec{}); err != nil {
			b.Fatal(err)
		}
		h, err := r.Start(ctx, pod, &pod.Spec.Containers[0], 0)
		if err != nil {
			b.Fatal(err)
		}
		if st, err := r.Wait(ctx, h); err != nil || st.ExitCode != 0 {
			b.Fatal(st, err)
		}
		if err := r.Remove(ctx, h); err != nil {
			b.Fatal(err)
		}
		if err := r.StopPodSandbox(ctx, pod); err != nil {
			b.Fatal(err)
		}
	}
}

// A hostPath volume on an agent with volume/host_path: the container (in busybox's rootfs) sees the
// host's directory, sticky mode included, writes into it, and a subPath mount is that directory's
// subdirectory, made by the executor ("HostPath should give a volume the correct mode", "should
// support r/w", "should support subPath").
func TestIsolatedHostPathVolume(t *testing.T) {
	registry := busyboxRegistry(t)
	r := isolatingRuntime(t, "filesystem/linux,docker/runtime,volume/host_path", func(c *agent.Config) {
		c.ImageProviders, c.DockerRegistry, c.DockerStoreDir = "docker", registry, t.TempDir()
	})
	host := t.TempDir()
	if err := os.Chmod(host, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	pod := shPod("hostpath", `stat -c %A /test-volume && echo written > /test-volume/test-file && echo sub > /sub/file`, nil, nil, corev1.ResourceRequirements{})
	pod.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}}}}
	c := &pod.Spec.Containers[0]
	c.Image = "busybox"
	c.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/test-volume"}, {Name: "host", MountPath: "/sub", SubPath: "sub-path"}}
	st, out := run(t, r, pod)
	if st.ExitCode != 0 || out != "drwxrwxrwt\n" {
		t.Fatalf("exit %d, output %q; want 0 and the host directory's drwxrwxrwt", st.ExitCode, out)
	}
	for f, want := range map[string]string{"test-file": "written\n", "sub-path/file": "sub\n"} {
		if b, err := os.ReadFile(filepath.Join(host, f)); err != nil || string(b) != want {
			t.Errorf("host's %s: %q %v, want %q", f, b, err, want)
		}
	}
}
