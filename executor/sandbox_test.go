package executor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// launchSandboxed launches a pod on the CNI network as the framework does (design P): the sandbox task
// on the pod's sandbox executor (podtranslate's ExecutorInfo with this test binary as the fetched
// kubemesos) holding the pod's resources, and the pod task on the kubelet executor. It returns both
// task IDs.
func (env *simEnv) launchSandboxed(pod *corev1.Pod, network string) (sandboxTask, podTask string) {
	env.t.Helper()
	if _, err := env.kube.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		env.t.Fatal(err)
	}
	opts := podtranslate.Options{PodNetwork: network}
	scalar := func(name string, v float64) mesos.Resource {
		return mesos.Resource{Name: name, Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: v}}
	}
	sbExec, err := opts.SandboxExecutorInfo(pod, env.exec, mesos.Resources{scalar("cpus", 0.01), scalar("mem", 32)})
	if err != nil {
		env.t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		env.t.Fatal(err)
	}
	sbExec.Command.Value = strPtr(strconv.Quote(self) + " pod-sandbox")
	sbExec.FrameworkID = env.fw.ID
	sb, err := opts.SandboxTaskInfo(pod, env.agent.ID(), sbExec, mesos.Resources{scalar("cpus", 0.5), scalar("mem", 128)})
	if err != nil {
		env.t.Fatal(err)
	}
	ti, err := opts.TaskInfo(pod, env.agent.ID(), env.exec, mesos.Resources{scalar("cpus", podtranslate.PodTaskDemand.CPUs)})
	if err != nil {
		env.t.Fatal(err)
	}
	env.agent.Launch(env.fw, &sbExec, []mesos.TaskInfo{sb}, false)
	env.agent.Launch(env.fw, &env.exec, []mesos.TaskInfo{ti}, false)
	return sb.TaskID.Value, ti.TaskID.Value
}

// A pod on the host's network has its containers nested one level under the kubelet executor's own
// container, the host's IP as pod IP, and its directory (pods/<uid> in the executor's sandbox) removed
// with it.
func TestHostNetworkPodNestsUnderTheExecutor(t *testing.T) {
	env := newSimEnv(t)
	marker := filepath.Join(env.dir, "parent")
	pod := shPod("boxed", corev1.RestartPolicyNever, 30, `basename "$(dirname "$(dirname "$MESOS_SANDBOX")")" > `+marker+`; sleep 1`)
	task := env.launch(pod)
	env.awaitState(task, "TASK_RUNNING")
	ex := env.agent.Executors()
	if len(ex) != 1 {
		t.Fatalf("%d executors", len(ex))
	}
	podDir := filepath.Join(ex[0].Directory, nested.PodsDir, string(pod.UID))
	if _, err := os.Stat(filepath.Join(podDir, "resolv.conf")); err != nil {
		t.Errorf("the pod's resolv.conf: %v", err)
	}
	env.awaitState(task, "TASK_FINISHED")
	p := env.pod("boxed")
	if p.Status.PodIP == "" || p.Status.PodIP != p.Status.HostIP || len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.HostIP {
		t.Errorf("podIP %q podIPs %v hostIP %q: want the host's IP on the host network", p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP)
	}
	out, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(out)) != ex[0].ContainerID.Value {
		t.Errorf("the container's parent is %q (%v), want the executor's container %q", out, err, ex[0].ContainerID.Value)
	}
	waitFor(t, "the pod's directory removed", func() bool {
		_, err := os.Stat(podDir)
		return os.IsNotExist(err)
	})
}

// A pod task whose sandbox executor never comes fails once SandboxTimeout is over: TASK_FAILED
// (container launch failed), the kubelet's FailedCreatePodSandBox event and PodReadyToStartContainers
// condition, and no container started.
func TestMissingSandboxExecutorFailsThePod(t *testing.T) {
	env := newSimEnvWith(t, nil, func(c *Config) { c.SandboxTimeout = 500 * time.Millisecond })
	pod := shPod("nobox", corev1.RestartPolicyAlways, 30, `sleep 600`)
	if _, err := env.kube.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ti, err := podtranslate.Options{PodNetwork: "kubemesos"}.TaskInfo(pod, env.agent.ID(), env.exec,
		mesos.Resources{{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.01}}})
	if err != nil {
		t.Fatal(err)
	}
	env.agent.Launch(env.fw, &env.exec, []mesos.TaskInfo{ti}, false)
	st := env.awaitState(ti.TaskID.Value, "TASK_FAILED")
	want := "Failed to create pod sandbox: the pod's sandbox executor kubemesos-pod-uid-nobox did not start within 500ms"
	if st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED || st.GetMessage() != want {
		t.Errorf("terminal update %s %q, want REASON_CONTAINER_LAUNCH_FAILED %q", st.GetReason(), st.GetMessage(), want)
	}
	waitFor(t, "the failed pod status", func() bool { return env.pod("nobox").Status.Phase == corev1.PodFailed })
	p := env.pod("nobox")
	if p.Status.Reason != "FailedCreatePodSandBox" || p.Status.Message != st.GetMessage() {
		t.Errorf("pod reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	var cond *corev1.PodCondition
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReadyToStartContainers {
			cond = &p.Status.Conditions[i]
		}
	}
	if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != "PodSandboxNotReady" {
		t.Errorf("PodReadyToStartContainers = %+v", cond)
	}
	if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].ContainerID != "" {
		t.Errorf("container status %+v, want waiting and never started", cs)
	}
	waitFor(t, "a FailedCreatePodSandBox event", func() bool {
		evs, err := env.kube.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Reason == "FailedCreatePodSandBox" && ev.Type == corev1.EventTypeWarning && ev.InvolvedObject.Name == "nobox" && ev.Message == st.GetMessage() {
				return true
			}
		}
		return false
	})
}

// The framework kills the pod task when its sandbox task failed (an unknown network, …): the kubelet
// executor stops waiting for the sandbox executor and the task ends TASK_KILLED.
func TestKillWhileWaitingForTheSandboxExecutor(t *testing.T) {
	env := newSimEnv(t)
	pod := shPod("waiting", corev1.RestartPolicyAlways, 30, `sleep 600`)
	if _, err := env.kube.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ti, err := podtranslate.Options{PodNetwork: "kubemesos"}.TaskInfo(pod, env.agent.ID(), env.exec,
		mesos.Resources{{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 0.01}}})
	if err != nil {
		t.Fatal(err)
	}
	env.agent.Launch(env.fw, &env.exec, []mesos.TaskInfo{ti}, false)
	env.awaitState(ti.TaskID.Value, "TASK_STARTING")
	env.agent.Kill(*env.fw.ID, ti.TaskID, nil)
	env.awaitState(ti.TaskID.Value, "TASK_KILLED")
	if cs := env.pod("waiting").Status.ContainerStatuses; len(cs) == 1 && cs[0].ContainerID != "" {
		t.Errorf("a container started: %+v", cs[0])
	}
}
