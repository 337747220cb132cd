package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/internal/imagearchive"
	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// fakeMaster records the updates an agent forwards and acknowledges them like a framework would.
type fakeMaster struct {
	mu      sync.Mutex
	updates []mesos.TaskStatus
	exited  []int32
	agent   *agent.Agent
}

func (m *fakeMaster) StatusUpdate(_ mesos.AgentID, fw mesos.FrameworkID, s mesos.TaskStatus) {
	m.mu.Lock()
	dup := false
	for _, u := range m.updates {
		dup = dup || string(u.UUID) == string(s.UUID)
	}
	if !dup {
		m.updates = append(m.updates, s)
	}
	a := m.agent
	m.mu.Unlock()
	if a != nil && len(s.UUID) > 0 {
		go a.Acknowledge(fw, s.TaskID, s.UUID)
	}
}

func (m *fakeMaster) ExecutorMessage(mesos.AgentID, mesos.FrameworkID, mesos.ExecutorID, []byte) {}

func (m *fakeMaster) ExecutorTerminated(_ mesos.AgentID, _ mesos.FrameworkID, _ mesos.ExecutorID, status int32) {
	m.mu.Lock()
	m.exited = append(m.exited, status)
	m.mu.Unlock()
}

func (m *fakeMaster) ResourcesRecovered(mesos.AgentID, mesos.FrameworkID, mesos.Resources) {}

// states lists the states of a task's updates in order.
func (m *fakeMaster) states(taskID string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, u := range m.updates {
		if u.TaskID.Value == taskID {
			out = append(out, u.GetState().String())
		}
	}
	return out
}

func (m *fakeMaster) last(taskID string) *mesos.TaskStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.updates) - 1; i >= 0; i-- {
		if m.updates[i].TaskID.Value == taskID {
			u := m.updates[i]
			return &u
		}
	}
	return nil
}

// waitFor polls cond until it holds; real processes run, so this is a deadline against hangs, not a
// timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type simEnv struct {
	t      *testing.T
	master *fakeMaster
	agent  *agent.Agent
	kube   *fake.Clientset
	fw     mesos.FrameworkInfo
	exec   mesos.ExecutorInfo
	done   chan error
	dir    string // where test containers leave marker files
	// workDir is the agent's work_dir.
	workDir string
	// sandboxTimeout, when set before the first launch, is the executor's SandboxTimeout.
	sandboxTimeout time.Duration
}

func newSimEnv(t *testing.T) *simEnv {
	t.Helper()
	return newSimEnvWith(t, nil, nil)
}

// newSimEnvWith is newSimEnv with changes to the agent's and the executor's configurations.
func newSimEnvWith(t *testing.T, mutate func(*agent.Config), execMutate func(*Config)) *simEnv {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if testing.Verbose() {
		log.SetLevel(logrus.DebugLevel)
	}
	env := &simEnv{t: t, master: &fakeMaster{}, kube: fake.NewClientset(), done: make(chan error, 10), dir: t.TempDir()}
	res, err := mesos.Resources{}, error(nil)
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 4}})
	res.Add(mesos.Resource{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 1024}})
	// The agent provisions busybox from a local image store, as a Mesos agent with the docker provider.
	registry := t.TempDir()
	if err := imagearchive.Write(registry, "busybox", imagearchive.BusyboxConfig); err != nil {
		t.Fatal(err)
	}
	env.workDir = t.TempDir()
	acfg := agent.Config{
		ID:                          mesos.AgentID{Value: "agent-S0"},
		Hostname:                    "agent0",
		Resources:                   res,
		WorkDir:                     env.workDir,
		ImageProviders:              "docker",
		DockerRegistry:              registry,
		Isolation:                   "filesystem/linux,docker/runtime",
		ProcessMode:                 true,
		Master:                      env.master,
		Log:                         log,
		ExecutorShutdownGracePeriod: 5 * time.Second,
		RecoveryTimeout:             time.Minute,
		SubscriptionBackoffMax:      time.Second,
		ExecutorHook: func(ctx context.Context, vars map[string]string) error {
			cfg := Config{
				Getenv:             func(k string) string { return vars[k] },
				KubeClient:         env.kube,
				Log:                log,
				ShutdownMargin:     time.Second,
				StatusFlushTimeout: 5 * time.Second,
				SandboxTimeout:     env.sandboxTimeout,
			}
			if execMutate != nil {
				execMutate(&cfg)
			}
			err := Run(ctx, cfg)
			env.done <- err
			return err
		},
		// The pods' sandbox executors (kubemesos pod-sandbox: this test binary, see TestMain) run as
		// processes, the kubelet executor in-process.
		ExecutorHookFor: func(e mesos.ExecutorInfo) bool {
			return !strings.HasPrefix(e.ExecutorID.Value, podtranslate.SandboxExecutorIDPrefix)
		},
	}
	if mutate != nil {
		mutate(&acfg)
	}
	a, err := agent.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	env.master.mu.Lock()
	env.master.agent = a
	env.master.mu.Unlock()
	env.agent = a
	t.Cleanup(a.Stop)
	id := "fw-1"
	checkpoint := true
	env.fw = mesos.FrameworkInfo{ID: &mesos.FrameworkID{Value: id}, Name: "kubemesos", User: "root", Checkpoint: &checkpoint,
		Capabilities: []mesos.FrameworkInfo_Capability{{Type: mesos.FrameworkInfo_Capability_TASK_KILLING_STATE}}}
	env.exec = mesos.ExecutorInfo{Type: mesos.ExecutorInfo_CUSTOM, ExecutorID: mesos.ExecutorID{Value: "kubemesos-executor"},
		FrameworkID: env.fw.ID, Command: &mesos.CommandInfo{Value: strPtr("./kubemesos executor")}}
	return env
}

func strPtr(s string) *string { return &s }

// executorDir is the kubelet executor's sandbox directory.
func (env *simEnv) executorDir() string {
	env.t.Helper()
	for _, e := range env.agent.Executors() {
		if e.Info.ExecutorID == env.exec.ExecutorID {
			return e.Directory
		}
	}
	for _, e := range env.agent.Executors() {
		env.t.Logf("executor %s", e.Info.ExecutorID.Value)
	}
	env.t.Fatal("the kubelet executor is not running")
	return ""
}

// launch creates the pod in the API server and launches its task.
func (env *simEnv) launch(pod *corev1.Pod) string {
	env.t.Helper()
	if _, err := env.kube.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		env.t.Fatal(err)
	}
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1}})
	ti, err := podtranslate.TaskInfo(pod, env.agent.ID(), env.exec, res)
	if err != nil {
		env.t.Fatal(err)
	}
	env.agent.Launch(env.fw, &env.exec, []mesos.TaskInfo{ti}, false)
	return ti.TaskID.Value
}

func (env *simEnv) pod(name string) *corev1.Pod {
	env.t.Helper()
	p, err := env.kube.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		env.t.Fatal(err)
	}
	return p
}

func (env *simEnv) awaitState(taskID, state string) *mesos.TaskStatus {
	env.t.Helper()
	waitFor(env.t, taskID+" "+state, func() bool {
		s := env.master.last(taskID)
		return s != nil && s.GetState().String() == state
	})
	return env.master.last(taskID)
}

func shPod(name string, policy corev1.RestartPolicy, grace int64, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			RestartPolicy:                 policy,
			TerminationGracePeriodSeconds: &grace,
			NodeName:                      "agent0",
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox", Command: []string{"sh", "-c", script},
				Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			}},
		},
	}
}

func terminated(p *corev1.Pod) *corev1.ContainerStateTerminated {
	if len(p.Status.ContainerStatuses) == 0 {
		return nil
	}
	return p.Status.ContainerStatuses[0].State.Terminated
}

func TestPodsRunToCompletion(t *testing.T) {
	env := newSimEnv(t)
	okPodSpec := shPod("ok", corev1.RestartPolicyNever, 30, `echo "hello $POD_NAME"`)
	// A volume: materialized in the executor's sandbox, mounted by Mesos (the simulator ignores mounts).
	okPodSpec.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	okPodSpec.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	ok := env.launch(okPodSpec)
	bad := env.launch(shPod("bad", corev1.RestartPolicyNever, 30, `exit 3`))

	env.awaitState(ok, "TASK_FINISHED")
	st := env.awaitState(bad, "TASK_FAILED")
	if got := st.GetMessage(); !strings.Contains(got, "container main exited with 3") {
		t.Errorf("TASK_FAILED message %q", got)
	}
	for _, task := range []string{ok, bad} {
		states := env.master.states(task)
		if states[0] != "TASK_STARTING" {
			t.Errorf("%s: first state %v", task, states)
		}
	}
	waitFor(t, "statuses written", func() bool {
		return env.pod("ok").Status.Phase == corev1.PodSucceeded && env.pod("bad").Status.Phase == corev1.PodFailed
	})
	if term := terminated(env.pod("bad")); term == nil || term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("bad: container state %+v", term)
	}
	okPod := env.pod("ok")
	if term := terminated(okPod); term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("ok: container state %+v", term)
	}
	if okPod.Status.HostIP != "127.0.0.1" || okPod.Status.StartTime == nil {
		t.Errorf("ok: hostIP %q startTime %v", okPod.Status.HostIP, okPod.Status.StartTime)
	}
}

func TestOnFailureRestartsInCrashLoop(t *testing.T) {
	env := newSimEnv(t)
	// Fails the first time, succeeds the second: the marker file survives the restart.
	// Each attempt also records its parent container: the restart runs under the same one.
	marker, parents := filepath.Join(env.dir, "ran-once"), filepath.Join(env.dir, "parents")
	task := env.launch(shPod("flaky", corev1.RestartPolicyOnFailure, 30,
		fmt.Sprintf(`basename "$(dirname "$(dirname "$MESOS_SANDBOX")")" >> %[2]s; if [ -e %[1]s ]; then exit 0; fi; touch %[1]s; exit 1`, marker, parents)))
	execContainer := env.agent.Executors()[0].ContainerID.Value
	waitFor(t, "crash loop status", func() bool {
		p := env.pod("flaky")
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "CrashLoopBackOff"
	})
	p := env.pod("flaky")
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
		t.Errorf("lastState %+v", p.Status.ContainerStatuses[0].LastTerminationState)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase in back-off %s, want Running", p.Status.Phase)
	}
	// The real clock runs the 10 s back-off.
	env.awaitState(task, "TASK_FINISHED")
	waitFor(t, "Succeeded", func() bool { return env.pod("flaky").Status.Phase == corev1.PodSucceeded })
	if got := env.pod("flaky").Status.ContainerStatuses[0].RestartCount; got != 1 {
		t.Errorf("restartCount %d, want 1", got)
	}
	// A host-network pod's attempts are nested under the executor's container.
	if b, err := os.ReadFile(parents); err != nil || string(b) != execContainer+"\n"+execContainer+"\n" {
		t.Errorf("the attempts' parents: %q, %v; want both under the executor's container %s", b, err, execContainer)
	}
}

func TestKillIsGraceful(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		grace     time.Duration
		wantExit  int32
		wantPhase corev1.PodPhase
		wantTERM  bool
	}{
		{
			name:      "SIGTERM is trapped",
			script:    `trap 'echo TERM > %s; exit 0' TERM; touch %s; while true; do sleep 0.05; done`,
			grace:     30 * time.Second,
			wantExit:  0,
			wantPhase: corev1.PodSucceeded,
			wantTERM:  true,
		},
		{
			name:      "SIGTERM ignored, SIGKILL after the grace period",
			script:    `trap 'echo TERM > %s' TERM; touch %s; while true; do sleep 0.05; done`,
			grace:     time.Second,
			wantExit:  137,
			wantPhase: corev1.PodFailed,
			wantTERM:  true,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSimEnv(t)
			termFile := filepath.Join(env.dir, "term")
			started := filepath.Join(env.dir, "started")
			name := fmt.Sprintf("web-%d", i)
			task := env.launch(shPod(name, corev1.RestartPolicyAlways, 30, fmt.Sprintf(tt.script, termFile, started)))
			env.awaitState(task, "TASK_RUNNING")
			waitFor(t, "trap installed", func() bool { _, err := os.Stat(started); return err == nil })
			waitFor(t, "Running status", func() bool {
				p := env.pod(name)
				return p.Status.Phase == corev1.PodRunning && len(p.Status.Conditions) > 0
			})
			env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: task}, podtranslate.KillPolicy(tt.grace))
			st := env.awaitState(task, "TASK_KILLED")
			if diff := cmp.Diff([]string{"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"}, env.master.states(task)); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
			phase := ""
			for _, l := range st.GetLabels().GetLabels() {
				if l.Key == podtranslate.LabelPodPhase {
					phase = l.GetValue()
				}
			}
			if phase != string(tt.wantPhase) {
				t.Errorf("phase label %q, want %s", phase, tt.wantPhase)
			}
			b, _ := os.ReadFile(termFile)
			if got := strings.TrimSpace(string(b)) == "TERM"; got != tt.wantTERM {
				t.Errorf("SIGTERM seen = %v, want %v", got, tt.wantTERM)
			}
			waitFor(t, "terminal status", func() bool { return env.pod(name).Status.Phase == tt.wantPhase })
			if term := terminated(env.pod(name)); term == nil || term.ExitCode != tt.wantExit {
				t.Errorf("container state %+v, want exit %d", term, tt.wantExit)
			}
		})
	}
}

func TestShutdownTerminatesPodsAndExits(t *testing.T) {
	env := newSimEnv(t)
	started := filepath.Join(env.dir, "started")
	pod := shPod("svc", corev1.RestartPolicyAlways, 30,
		fmt.Sprintf(`trap 'exit 0' TERM; touch %s; while true; do sleep 0.05; done`, started))
	task := env.launch(pod)
	env.awaitState(task, "TASK_RUNNING")
	waitFor(t, "trap installed", func() bool { _, err := os.Stat(started); return err == nil })
	execDir := env.executorDir()
	env.agent.ShutdownExecutor(*env.fw.ID, env.exec.ExecutorID)
	env.awaitState(task, "TASK_KILLED")
	select {
	case err := <-env.done:
		if err != nil {
			t.Errorf("Run = %v, want nil after SHUTDOWN", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("executor did not exit after SHUTDOWN")
	}
	if got := env.pod("svc").Status.Phase; got != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", got)
	}
	// The pod's directory does not outlive it.
	if _, err := os.Stat(filepath.Join(execDir, nested.PodsDir, string(pod.UID))); !os.IsNotExist(err) {
		t.Errorf("the pod's directory is left after SHUTDOWN (%v)", err)
	}
}

func TestInvalidTaskDataFails(t *testing.T) {
	env := newSimEnv(t)
	var res mesos.Resources
	res.Add(mesos.Resource{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.1}})
	ti := mesos.TaskInfo{Name: "x", TaskID: mesos.TaskID{Value: "pod-broken"}, Resources: res, Executor: &env.exec, Data: []byte("{not json")}
	env.agent.Launch(env.fw, &env.exec, []mesos.TaskInfo{ti}, false)
	st := env.awaitState("pod-broken", "TASK_FAILED")
	if st.GetReason() != mesos.REASON_TASK_INVALID {
		t.Errorf("reason %v", st.GetReason())
	}
}

func TestExecReadinessProbeAndPreStopHook(t *testing.T) {
	env := newSimEnv(t)
	readyFile := filepath.Join(env.dir, "ready")
	hookFile := filepath.Join(env.dir, "prestop")
	termFile := filepath.Join(env.dir, "term")
	pod := shPod("probed", corev1.RestartPolicyAlways, 30,
		fmt.Sprintf(`trap 'test -e %s && echo TERM-after-hook > %s; exit 0' TERM; while true; do sleep 0.05; done`, hookFile, termFile))
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-e", readyFile}}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"touch", hookFile}},
	}}
	task := env.launch(pod)
	env.awaitState(task, "TASK_RUNNING")
	ready := func() bool {
		p := env.pod("probed")
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
	}
	waitFor(t, "a failed readiness check", func() bool {
		p := env.pod("probed")
		return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) == 1 && !ready()
	})
	if err := os.WriteFile(readyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Ready", ready)
	env.agent.Kill(*env.fw.ID, mesos.TaskID{Value: task}, podtranslate.KillPolicy(30*time.Second))
	env.awaitState(task, "TASK_KILLED")
	b, _ := os.ReadFile(termFile)
	if got := strings.TrimSpace(string(b)); got != "TERM-after-hook" {
		t.Errorf("the container saw %q, want SIGTERM after the preStop hook ran", got)
	}
}

func TestPodEventsAreRecorded(t *testing.T) {
	env := newSimEnv(t)
	task := env.launch(shPod("evented", corev1.RestartPolicyNever, 30, `exit 0`))
	env.awaitState(task, "TASK_FINISHED")
	waitFor(t, "a Started event", func() bool {
		evs, err := env.kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Reason == "Started" && ev.InvolvedObject.Name == "evented" && ev.Source.Component == EventComponent {
				return true
			}
		}
		return false
	})
}

// The executor follows the API server's pods of its Node, as the kubelet does: an
// activeDeadlineSeconds added to a running pod ends it with DeadlineExceeded ("Pods should allow
// activeDeadlineSeconds to be updated"); the task carries the pod as it was at launch.
func TestPodUpdateActiveDeadline(t *testing.T) {
	env := newSimEnv(t)
	task := env.launch(shPod("long", corev1.RestartPolicyAlways, 1, `exec sleep 600`))
	env.awaitState(task, "TASK_RUNNING")
	p := env.pod("long")
	two := int64(2)
	p.Spec.ActiveDeadlineSeconds = &two
	if _, err := env.kube.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.awaitState(task, "TASK_FAILED")
	waitFor(t, "DeadlineExceeded written", func() bool {
		p := env.pod("long")
		return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "DeadlineExceeded"
	})
}

// An annotation changed in the API server reaches the pod's downwardAPI volume through the
// executor's watch of its Node's pods.
func TestPodUpdateRefreshesDownwardAPIVolume(t *testing.T) {
	env := newSimEnv(t)
	pod := shPod("annotated", corev1.RestartPolicyAlways, 1, `exec sleep 600`)
	pod.Annotations = map[string]string{"builder": "bar"}
	pod.Spec.Volumes = []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
	}}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}}
	task := env.launch(pod)
	env.awaitState(task, "TASK_RUNNING")
	file := filepath.Join(env.executorDir(), "pods", string(pod.UID), "volumes", "podinfo", "annotations")
	read := func() string { b, _ := os.ReadFile(file); return string(b) }
	waitFor(t, "the annotations file", func() bool { return read() == `builder="bar"` })
	p := env.pod("annotated")
	p.Annotations["builder"] = "foo"
	if _, err := env.kube.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the updated annotations file", func() bool { return read() == `builder="foo"` })
}

// A pod with a sysctl outside the kubelet's allowlist is rejected as a kubelet rejects it: Failed,
// SysctlForbidden, "Pod was rejected: forbidden sysctl: …", a Warning event, nothing started ("Sysctls
// should not launch unsafe, but not explicitly enabled sysctls on the node").
func TestUnsafeSysctlRejected(t *testing.T) {
	env := newSimEnv(t)
	pod := shPod("unsafe", corev1.RestartPolicyNever, 1, `echo started`)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "kernel.msgmax", Value: "10000000000"}}}
	task := env.launch(pod)
	st := env.awaitState(task, "TASK_FAILED")
	waitFor(t, "the rejection written", func() bool {
		p := env.pod("unsafe")
		return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "SysctlForbidden" &&
			p.Status.Message == `Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted`
	})
	if len(env.pod("unsafe").Status.ContainerStatuses) != 0 {
		t.Errorf("container statuses %v: nothing may start", env.pod("unsafe").Status.ContainerStatuses)
	}
	t.Logf("task: %s", st.GetMessage())
}

// A pod for another OS is placed (kube-scheduler does not match spec.os) and rejected by the
// kubelet's admission: Failed, PodOSNotSupported ("PodOSRejection Kubelet should reject pod when the
// node OS doesn't match pod's OS").
func TestOtherOSRejected(t *testing.T) {
	env := newSimEnv(t)
	pod := shPod("windows", corev1.RestartPolicyNever, 1, `echo started`)
	pod.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	env.awaitState(env.launch(pod), "TASK_FAILED")
	waitFor(t, "the rejection written", func() bool {
		p := env.pod("windows")
		return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "PodOSNotSupported" &&
			p.Status.Message == "Pod was rejected: Failed to admit pod as the OS field doesn't match node OS"
	})
}
