package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubemesos/kubemesos/executor/nested"
	"github.com/kubemesos/kubemesos/podtranslate"
)

// Every pod runs in its sandbox: a container under it, the host's IP as pod IP on the host network,
// and the sandbox removed with the pod.
func TestPodRunsInItsSandbox(t *testing.T) {
	env := newSimEnv(t)
	marker := filepath.Join(env.dir, "parent")
	pod := shPod("boxed", corev1.RestartPolicyNever, 30, `basename "$(dirname "$(dirname "$MESOS_SANDBOX")")" > `+marker)
	task := env.launch(pod)
	env.awaitState(task, "TASK_FINISHED")
	p := env.pod("boxed")
	if p.Status.PodIP == "" || p.Status.PodIP != p.Status.HostIP || len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.HostIP {
		t.Errorf("podIP %q podIPs %v hostIP %q: want the host's IP on the host network", p.Status.PodIP, p.Status.PodIPs, p.Status.HostIP)
	}
	ex := env.agent.Executors()
	if len(ex) != 1 {
		t.Fatalf("%d executors", len(ex))
	}
	// The container's sandbox is under the pod sandbox's; the pod sandbox is gone with the pod.
	out, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(out)) != nested.SandboxID(pod.UID) {
		t.Errorf("the container's parent sandbox is %q (%v), want %q", out, err, nested.SandboxID(pod.UID))
	}
	waitFor(t, "the pod sandbox removed", func() bool {
		_, err := os.Stat(nested.SandboxDir(env.workDir, pod.UID))
		return os.IsNotExist(err)
	})
}

// A sandbox the agent cannot launch fails the pod: TASK_FAILED (container launch failed) with Mesos'
// text, the kubelet's FailedCreatePodSandBox event and PodReadyToStartContainers condition, and no
// container started.
func TestSandboxLaunchFailureFailsThePod(t *testing.T) {
	env := newSimEnv(t)
	env.sandboxCmd = []string{filepath.Join(t.TempDir(), "no-such-binary"), "pod-sandbox"}
	pod := shPod("nobox", corev1.RestartPolicyAlways, 30, `sleep 600`)
	task := env.launch(pod)
	st := env.awaitState(task, "TASK_FAILED")
	if st.GetReason() != mesos.REASON_CONTAINER_LAUNCH_FAILED || !strings.HasPrefix(st.GetMessage(), "Failed to create pod sandbox: ") ||
		!strings.Contains(st.GetMessage(), "no-such-binary") {
		t.Errorf("terminal update %s %q, want REASON_CONTAINER_LAUNCH_FAILED with the agent's text", st.GetReason(), st.GetMessage())
	}
	var phase string
	for _, l := range st.GetLabels().GetLabels() {
		if l.Key == podtranslate.LabelPodPhase {
			phase = l.GetValue()
		}
	}
	if phase != string(corev1.PodFailed) {
		t.Errorf("phase label %q", phase)
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
	ex := env.agent.Executors()
	if len(ex) == 1 {
		if _, err := os.Stat(nested.SandboxDir(env.workDir, pod.UID)); !os.IsNotExist(err) {
			t.Errorf("the failed sandbox left its directory (%v)", err)
		}
	}
}

// TASK_RUNNING names the pod's sandbox container, so the agent adds its status (network_infos with the
// pod's address) to the update, as for a task of Mesos' default executor.
func TestRunningUpdateNamesTheSandbox(t *testing.T) {
	env := newSimEnv(t)
	pod := shPod("named", corev1.RestartPolicyNever, 30, `sleep 600`)
	task := env.launch(pod)
	st := env.awaitState(task, "TASK_RUNNING")
	id := st.GetContainerStatus().GetContainerID()
	if id.GetValue() != nested.SandboxID(pod.UID) || id.GetParent() != nil {
		t.Errorf("TASK_RUNNING container_status.container_id = %v, want the standalone %s", id, nested.SandboxID(pod.UID))
	}
	if nis := st.GetContainerStatus().GetNetworkInfos(); len(nis) == 0 || len(nis[0].GetIPAddresses()) == 0 {
		t.Errorf("TASK_RUNNING network_infos = %v, want the agent's addition", nis)
	}
}
